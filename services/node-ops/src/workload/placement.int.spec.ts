/**
 * Spot/on-demand placement on the sim's Kubernetes API through client-node: an opted-in
 * Deployment is split between itself (on-demand nodes) and its spot twin; when spot
 * capacity vanishes, everything moves to on-demand at once and the on-demand floor is
 * never broken; when it comes back, the split returns after the cooldown.
 */
import { catalogue, EventStore } from "@cairn/events";
import { recordClusterRequested, startJetStream, type TestJetStream } from "@cairn/events/testing";
import { SIM_CREDENTIALS, type Sim, startSim } from "@cairn/sim";
import {
  AppsV1Api,
  CoreV1Api,
  KubeConfig,
  PatchStrategy,
  setHeaderOptions,
  type V1ReplicaSet,
  Watch,
} from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { kubeconfigParameter } from "../adapters/kube.ts";
import { createWorkloads } from "../adapters/workloads.ts";
import { type NodeOps, startNodeOps } from "../node-ops.ts";
import { startPlacementLoop } from "./placement-reactor.ts";

const CLUSTER = "place-1";
let js: TestJetStream;
let sim: Sim;
let nodeOps: NodeOps;
let apps: AppsV1Api;
let core: CoreV1Api;
let kc: KubeConfig;
const logLines: string[] = [];
const logger = {
  info: (o: object, m?: string) => void logLines.push(`${m} ${JSON.stringify(o)}`),
  warn: (o: object, m?: string) => void logLines.push(`${m} ${JSON.stringify(o)}`),
  error: (o: object, m?: string) => void logLines.push(`${m} ${JSON.stringify(o)}`),
};
const node = (name: string, capacityType: "spot" | "on-demand") => ({
  name,
  role: "agent" as const,
  labels: { "cairn.dev/capacity-type": capacityType },
  taints: [],
});

beforeAll(async () => {
  js = await startJetStream();
  sim = await startSim({ seed: 9, timeScale: 100 });
  const store = new EventStore({ js: js.nats.js, jsm: js.nats.jsm, catalogue });
  const { region } = await recordClusterRequested(store, CLUSTER);
  sim.world.kube.ensureCluster(CLUSTER);
  for (const n of [
    node("od-1", "on-demand"),
    node("od-2", "on-demand"),
    node("sp-1", "spot"),
    node("sp-2", "spot"),
  ])
    sim.world.kube.registerNode(CLUSTER, n);
  sim.world.ssm.putParameter(region, kubeconfigParameter(CLUSTER), sim.world.kube.kubeconfig(CLUSTER), true);
  kc = new KubeConfig();
  kc.loadFromString(sim.world.kube.kubeconfig(CLUSTER));
  apps = kc.makeApiClient(AppsV1Api);
  core = kc.makeApiClient(CoreV1Api);
  const aws = { endpoint: sim.url, credentials: SIM_CREDENTIALS };
  nodeOps = await startNodeOps({
    nats: js.nats,
    logger,
    ssm: aws,
    facts: false,
    // The loop's own ticks are slow here: the test drives passes with reconcilePlacement().
    spot: { sqs: aws, placement: { intervalMs: 60_000, cooldownMs: 1_000 } },
  });
}, 60_000);
afterAll(async () => {
  await nodeOps?.stop();
  await sim?.stop();
  await js?.dispose();
});

const replicasOf = async (name: string) => {
  const d = await apps.readNamespacedDeployment({ name, namespace: "default" });
  return { wanted: d.spec?.replicas ?? 0, ready: d.status?.readyReplicas ?? 0 };
};
const pass = () => nodeOps.reconcilePlacement();
async function until<T>(what: string, f: () => Promise<T | undefined>, ms = 30_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v !== undefined) return v;
    if (Date.now() > end)
      throw new Error(`timed out waiting for ${what}; last log: ${logLines.slice(-4).join(" | ")}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe("spot/on-demand placement", () => {
  it("splits 10 replicas 7 spot / 3 on-demand, and keeps the floor when spot capacity vanishes", async () => {
    await until("node-ops leading the spot intake", async () => {
      await pass();
      return nodeOps.spotRegions().length > 0 ? true : undefined;
    });
    await apps.createNamespacedDeployment({
      namespace: "default",
      body: {
        metadata: {
          name: "web",
          annotations: { "cairn.dev/spot-percentage": "70", "cairn.dev/min-on-demand": "3" },
        },
        spec: {
          replicas: 10,
          selector: { matchLabels: { app: "web" } },
          template: {
            metadata: { labels: { app: "web" } },
            spec: { containers: [{ name: "a", image: "nginx:1.27" }] },
          },
        },
      },
    });

    // Taken over: spot up first (on-demand is at or above its target), then, after the
    // cooldown, on-demand down to its target.
    await until("7 spot / 3 on-demand", async () => {
      await pass();
      const [od, sp] = [await replicasOf("web"), await replicasOf("web-spot")];
      return od.wanted === 3 && sp.wanted === 7 ? true : undefined;
    });
    const web = await apps.readNamespacedDeployment({ name: "web", namespace: "default" });
    expect(web.spec?.template?.spec?.nodeSelector).toEqual({ "cairn.dev/capacity-type": "on-demand" });
    expect(web.metadata?.annotations?.["cairn.dev/replicas"]).toBe("10");
    const twin = await apps.readNamespacedDeployment({ name: "web-spot", namespace: "default" });
    expect(twin.spec?.template?.spec?.nodeSelector).toEqual({ "cairn.dev/capacity-type": "spot" });
    await until("both ready", async () => {
      const [od, sp] = [await replicasOf("web"), await replicasOf("web-spot")];
      return od.ready === 3 && sp.ready === 7 ? true : undefined;
    });

    // Spot capacity vanishes: both spot nodes are reclaimed (NotReady).
    sim.world.kube.setNodeReady(CLUSTER, "sp-1", false);
    sim.world.kube.setNodeReady(CLUSTER, "sp-2", false);
    const floor: number[] = [];
    await until("all on on-demand", async () => {
      await pass();
      const [od, sp] = [await replicasOf("web"), await replicasOf("web-spot")];
      floor.push(od.wanted);
      return od.wanted === 10 && sp.wanted === 0 ? true : undefined;
    });
    // The on-demand side never went below its floor of 3 on the way (it only grew).
    expect(Math.min(...floor)).toBeGreaterThanOrEqual(3);
    await until("10 ready on on-demand", async () =>
      (await replicasOf("web")).ready === 10 ? true : undefined,
    );

    // Spot comes back: after the cooldown the split returns, spot first.
    sim.world.kube.setNodeReady(CLUSTER, "sp-1", true);
    await until("back to 7 / 3", async () => {
      await pass();
      const [od, sp] = [await replicasOf("web"), await replicasOf("web-spot")];
      expect(od.wanted).toBeGreaterThanOrEqual(3);
      return od.wanted === 3 && sp.wanted === 7 ? true : undefined;
    });
    const changes = logLines.filter((l) => l.startsWith("placement changed"));
    expect(changes.length).toBeGreaterThanOrEqual(5);
  });

  it("pinning a running Deployment to on-demand rolls it through a new ReplicaSet, never all pods at once; deleting it deletes its twin, their ReplicaSets and pods", async () => {
    await apps.createNamespacedDeployment({
      namespace: "default",
      body: {
        metadata: { name: "api" },
        spec: {
          replicas: 4,
          selector: { matchLabels: { app: "api" } },
          template: {
            metadata: { labels: { app: "api" } },
            spec: { containers: [{ name: "a", image: "nginx:1.27" }] },
          },
        },
      },
    });
    await until("api ready on revision 1", async () =>
      (await replicasOf("api")).ready === 4 ? true : undefined,
    );
    const replicaSets = async (owner: string) =>
      (await apps.listNamespacedReplicaSet({ namespace: "default" })).items.filter((rs) =>
        (rs.metadata?.ownerReferences ?? []).some((r) => r.kind === "Deployment" && r.name === owner),
      );
    const [first] = await replicaSets("api");
    expect(first?.metadata?.annotations?.["deployment.kubernetes.io/revision"]).toBe("1");

    // Opted in: node-ops pins the Deployment's template to on-demand nodes (and makes the
    // twin). A real Deployment controller rolls that change: a new ReplicaSet grows while
    // the old one shrinks, so pods of the old template serve until new ones are ready.
    await apps.patchNamespacedDeployment(
      {
        namespace: "default",
        name: "api",
        body: {
          metadata: { annotations: { "cairn.dev/spot-percentage": "50", "cairn.dev/min-on-demand": "2" } },
        },
      },
      setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
    );
    let leastReady = 4;
    // Both ReplicaSets serving at once is a window a poll can miss on a loaded machine
    // (it did): a watch hears every change of their replicas, in order.
    let bothServing = false;
    const servingBySet = new Map<string, number>();
    const rolling = await new Watch(kc).watch(
      "/apis/apps/v1/namespaces/default/replicasets",
      {
        resourceVersion: (await apps.listNamespacedReplicaSet({ namespace: "default" })).metadata
          ?.resourceVersion,
      },
      (type, rs: V1ReplicaSet) => {
        if (!(rs.metadata?.ownerReferences ?? []).some((r) => r.kind === "Deployment" && r.name === "api"))
          return;
        servingBySet.set(rs.metadata?.uid ?? "", type === "DELETED" ? 0 : (rs.status?.replicas ?? 0));
        if ([...servingBySet.values()].filter((n) => n > 0).length >= 2) bothServing = true;
      },
      () => {},
    );
    await until("api pinned, split 2 / 2 and rolled out", async () => {
      await pass();
      const d = await apps.readNamespacedDeployment({ name: "api", namespace: "default" });
      leastReady = Math.min(leastReady, d.status?.readyReplicas ?? 0);
      const twin = await replicasOf("api-spot");
      return d.spec?.template?.spec?.nodeSelector?.["cairn.dev/capacity-type"] === "on-demand" &&
        d.spec?.replicas === 2 &&
        twin.wanted === 2 &&
        twin.ready === 2 &&
        d.status?.updatedReplicas === 2 &&
        d.status?.readyReplicas === 2 &&
        (d.status?.replicas ?? 0) === 2
        ? true
        : undefined;
    });
    rolling.abort();
    expect(bothServing).toBe(true);
    expect(leastReady).toBeGreaterThan(0);
    const sets = await replicaSets("api");
    const byRevision = Object.fromEntries(
      sets.map((rs) => [rs.metadata?.annotations?.["deployment.kubernetes.io/revision"], rs]),
    );
    expect(Object.keys(byRevision).sort()).toEqual(["1", "2"]);
    expect(byRevision["1"]?.metadata?.name).toBe(first?.metadata?.name);
    expect(byRevision["1"]?.spec?.replicas).toBe(0); // kept as history
    expect(byRevision["2"]?.spec?.template?.spec?.nodeSelector).toEqual({
      "cairn.dev/capacity-type": "on-demand",
    });
    const apiPods = (
      await core.listNamespacedPod({ namespace: "default", labelSelector: "app=api" })
    ).items.filter((p) => !p.metadata?.deletionTimestamp);
    expect(apiPods).toHaveLength(4);
    const owners = new Set([...sets, ...(await replicaSets("api-spot"))].map((rs) => rs.metadata?.uid));
    for (const p of apiPods) {
      const ref = p.metadata?.ownerReferences?.find((r) => r.controller);
      expect(ref?.kind).toBe("ReplicaSet");
      expect(owners.has(ref?.uid)).toBe(true);
    }

    // A user deletes the Deployment (client-node's default: Background propagation): the
    // garbage collector takes the twin node-ops made (it named the Deployment its owner),
    // every ReplicaSet of both, and their pods.
    await apps.deleteNamespacedDeployment({ name: "api", namespace: "default" });
    await until("the twin, the ReplicaSets and the pods gone", async () => {
      const twinGone = await apps.readNamespacedDeployment({ name: "api-spot", namespace: "default" }).then(
        () => false,
        (e: { code?: number }) => e.code === 404,
      );
      const rsLeft = (await apps.listNamespacedReplicaSet({ namespace: "default" })).items.filter((rs) =>
        rs.metadata?.name?.startsWith("api-"),
      );
      const podsLeft = (await core.listNamespacedPod({ namespace: "default", labelSelector: "app=api" }))
        .items;
      return twinGone && rsLeft.length === 0 && podsLeft.length === 0 ? true : undefined;
    });
    // node-ops does not bring the twin back for a Deployment that is gone.
    await pass();
    await expect(
      apps.readNamespacedDeployment({ name: "api-spot", namespace: "default" }),
    ).rejects.toMatchObject({
      code: 404,
    });
  });

  it("its ticks look at a cluster where no Deployment opts in once per idleLookMs, hold no watch of its Deployments, and take over one that opts in at the next look", async () => {
    // No Deployment opts in any more (the earlier cases' "web" may be left).
    await apps.deleteNamespacedDeployment({ name: "web", namespace: "default" }).catch(() => {});
    const kc = new KubeConfig();
    kc.loadFromString(sim.world.kube.kubeconfig(CLUSTER));
    const last = () => sim.requests.list().at(-1)?.seq ?? 0;
    const from = last();
    // A loop of its own on the real adapter, ticking every 100 ms (node-ops' ticks here are a minute apart).
    const loop = startPlacementLoop({
      workloads: createWorkloads({ kubeConfig: async () => kc }),
      clusters: () => [CLUSTER],
      intervalMs: 100,
      idleLookMs: 1_000,
      cooldownMs: 1_000,
    });
    const calls = (action: string, since: number) =>
      sim.requests.list({ service: "kube" }).filter((r) => r.seq > since && r.action === action).length;
    try {
      // 30 ticks over 3 s: a look at the start and about one a second after it, not one a tick.
      await new Promise((r) => setTimeout(r, 3_000));
      expect(calls("list deployments", from)).toBeGreaterThanOrEqual(2);
      expect(calls("list deployments", from)).toBeLessThanOrEqual(5);
      // Nothing standing between looks (a watch per cluster was ~32 KB of heap a cluster).
      expect(calls("watch deployments", from)).toBe(0);
      await apps.createNamespacedDeployment({
        namespace: "default",
        body: {
          metadata: {
            name: "late",
            annotations: { "cairn.dev/spot-percentage": "50", "cairn.dev/min-on-demand": "1" },
          },
          spec: {
            replicas: 2,
            selector: { matchLabels: { app: "late" } },
            template: {
              metadata: { labels: { app: "late" } },
              spec: { containers: [{ name: "c", image: "nginx:1" }] },
            },
          },
        },
      });
      await until(
        "late taken over by a tick",
        async () => {
          const d = await apps.readNamespacedDeployment({ name: "late", namespace: "default" });
          return d.metadata?.annotations?.["cairn.dev/replicas"] === "2" ? true : undefined;
        },
        5_000,
      );
      expect(calls("watch deployments", from)).toBe(0);
    } finally {
      await loop.stop();
    }
    await apps.deleteNamespacedDeployment({ name: "late", namespace: "default" });
  });
});
