/**
 * Spot/on-demand placement on the sim's Kubernetes API through client-node: an opted-in
 * Deployment is split between itself (on-demand nodes) and its spot twin; when spot
 * capacity vanishes, everything moves to on-demand at once and the on-demand floor is
 * never broken; when it comes back, the split returns after the cooldown.
 */
import { catalogue, EventStore } from "@cairn/events";
import { recordClusterRequested, startJetStream, type TestJetStream } from "@cairn/events/testing";
import { SIM_CREDENTIALS, type Sim, startSim } from "@cairn/sim";
import { AppsV1Api, KubeConfig } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { kubeconfigParameter } from "../adapters/kube.ts";
import { type NodeOps, startNodeOps } from "../node-ops.ts";

const CLUSTER = "place-1";
let js: TestJetStream;
let sim: Sim;
let nodeOps: NodeOps;
let apps: AppsV1Api;
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
  const kc = new KubeConfig();
  kc.loadFromString(sim.world.kube.kubeconfig(CLUSTER));
  apps = kc.makeApiClient(AppsV1Api);
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
});
