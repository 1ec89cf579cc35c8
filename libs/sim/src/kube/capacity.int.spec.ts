/**
 * What a session's pod meets in the sim's cluster, through the real client: scheduling
 * by resource requests against allocatable, image pull time (once per image and node),
 * and an image the registry does not have.
 */
import { AppsV1Api, CoreV1Api, KubeConfig, type V1Pod } from "@kubernetes/client-node";
import { afterEach, describe, expect, it } from "vitest";
import { type Sim, startSim } from "../sim.ts";
import { IMAGE_PULL_BACKOFF_MS } from "./cluster.ts";
import { agent } from "./test-support.ts";

const LAT = { apiCall: 0, deploymentReady: 10, podTermination: 2, imagePull: 5 };

let sim: Sim;
afterEach(async () => {
  await sim?.stop();
});

async function cluster(nodes: string[]) {
  sim = await startSim({ seed: 11, timeScale: 1, latencies: LAT });
  sim.world.kube.ensureCluster("c1");
  for (const n of nodes) sim.world.kube.registerNode("c1", agent(n)); // 2 CPU, ~3.8Gi allocatable each
  const kc = new KubeConfig();
  kc.loadFromString(sim.world.kube.kubeconfig("c1"));
  return { core: kc.makeApiClient(CoreV1Api), apps: kc.makeApiClient(AppsV1Api) };
}

const deployment = (name: string, o: { cpu?: string; memory?: string; image?: string } = {}) => ({
  metadata: { name },
  spec: {
    replicas: 1,
    selector: { matchLabels: { app: name } },
    template: {
      metadata: { labels: { app: name } },
      spec: {
        containers: [
          {
            name: "ide",
            image: o.image ?? "ghcr.io/acme/ide:1",
            resources: {
              requests: { ...(o.cpu ? { cpu: o.cpu } : {}), ...(o.memory ? { memory: o.memory } : {}) },
              limits: { ...(o.cpu ? { cpu: o.cpu } : {}), ...(o.memory ? { memory: o.memory } : {}) },
            },
          },
        ],
      },
    },
  },
});

const podOf = async (core: CoreV1Api, app: string): Promise<V1Pod> => {
  const pods = (await core.listNamespacedPod({ namespace: "default", labelSelector: `app=${app}` })).items;
  expect(pods).toHaveLength(1);
  return pods[0]!;
};

describe("sim kube: resource requests, image pulls", () => {
  it("a pod asking more CPU than any node has stays Pending, Unschedulable, in the scheduler's words; a bigger node takes it", async () => {
    const { core, apps } = await cluster(["n1", "n2", "n3"]);
    await apps.createNamespacedDeployment({ namespace: "default", body: deployment("big", { cpu: "3" }) });
    const pod = await podOf(core, "big");
    expect(pod.spec?.nodeName).toBeUndefined();
    expect(pod.status?.phase).toBe("Pending");
    expect(pod.status?.conditions?.find((c) => c.type === "PodScheduled")).toMatchObject({
      status: "False",
      reason: "Unschedulable",
      message:
        "0/3 nodes are available: 3 Insufficient cpu. preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod.",
    });

    sim.world.kube.registerNode("c1", agent("n4", { instanceId: "i-0000000000000004a" }));
    // n4 has the same 2 CPU: still no room.
    expect((await podOf(core, "big")).spec?.nodeName).toBeUndefined();
  });

  it("requests add up on a node: what the first pod takes, the second cannot have; memory is named too", async () => {
    const { core, apps } = await cluster(["n1"]);
    await apps.createNamespacedDeployment({
      namespace: "default",
      body: deployment("a", { cpu: "1500m", memory: "1Gi" }),
    });
    expect((await podOf(core, "a")).spec?.nodeName).toBe("n1");
    await apps.createNamespacedDeployment({
      namespace: "default",
      body: deployment("b", { cpu: "1", memory: "3Gi" }),
    });
    const b = await podOf(core, "b");
    expect(b.spec?.nodeName).toBeUndefined();
    expect(b.status?.conditions?.find((c) => c.type === "PodScheduled")?.message).toBe(
      "0/1 nodes are available: 1 Insufficient cpu, 1 Insufficient memory. preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod.",
    );
    // The first one scaled away (and gone): the second fits.
    await apps.patchNamespacedDeploymentScale({
      namespace: "default",
      name: "a",
      body: [{ op: "replace", path: "/spec/replicas", value: 0 }],
    });
    sim.clock.advance(LAT.podTermination * 1000);
    expect((await podOf(core, "b")).spec?.nodeName).toBe("n1");
  });

  it("the first pod of an image on a node waits for the pull, the next one of it on that node does not", async () => {
    const { core, apps } = await cluster(["n1"]);
    await apps.createNamespacedDeployment({ namespace: "default", body: deployment("one", { cpu: "100m" }) });
    sim.clock.advance(LAT.deploymentReady * 1000); // pulled (5 s) but not started yet (5 + 10)
    let pod = await podOf(core, "one");
    expect(pod.status?.phase).toBe("Pending");
    expect(pod.status?.containerStatuses?.[0]?.state?.waiting?.reason).toBe("ContainerCreating");
    sim.clock.advance(LAT.imagePull * 1000);
    pod = await podOf(core, "one");
    expect(pod.status?.phase).toBe("Running");
    expect(pod.status?.conditions?.find((c) => c.type === "Ready")?.status).toBe("True");

    await apps.createNamespacedDeployment({ namespace: "default", body: deployment("two", { cpu: "100m" }) });
    sim.clock.advance(LAT.deploymentReady * 1000); // the image is on n1 already: start-up only
    expect((await podOf(core, "two")).status?.conditions?.find((c) => c.type === "Ready")?.status).toBe(
      "True",
    );
  });

  it("an image the registry does not have: ErrImagePull after the pull, then ImagePullBackOff, never Ready", async () => {
    const { core, apps } = await cluster(["n1"]);
    sim.world.kube.setImageAvailable("acme/ide:nope", false);
    await apps.createNamespacedDeployment({
      namespace: "default",
      body: deployment("bad", { image: "acme/ide:nope" }),
    });
    sim.clock.advance(LAT.imagePull * 1000);
    let pod = await podOf(core, "bad");
    expect(pod.status?.phase).toBe("Pending");
    expect(pod.status?.containerStatuses?.[0]?.state?.waiting).toEqual({
      reason: "ErrImagePull",
      message:
        'rpc error: code = NotFound desc = failed to pull and unpack image "docker.io/acme/ide:nope": failed to resolve reference "docker.io/acme/ide:nope": docker.io/acme/ide:nope: not found',
    });
    sim.clock.advance(IMAGE_PULL_BACKOFF_MS + 60_000);
    pod = await podOf(core, "bad");
    expect(pod.status?.containerStatuses?.[0]?.state?.waiting).toEqual({
      reason: "ImagePullBackOff",
      message: 'Back-off pulling image "acme/ide:nope"',
    });
    expect(pod.status?.conditions?.find((c) => c.type === "Ready")?.status).toBe("False");
  });
});
