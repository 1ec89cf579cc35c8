/**
 * Node facts on the simulated cloud: real NATS, the sim's Kubernetes and SSM, the real
 * adapter. A published kubeconfig starts the watch; Ready flips, removals and an API
 * outage become facts exactly once; resumed watches, relists and a restarted node-ops
 * record nothing new; a deleted cluster is no longer watched. Every assertion reads the
 * kube aggregate back from the event store.
 */
import { catalogue, EventStore, type RecordedEvent } from "@cairn/events";
import {
  appendAsOwner,
  recordClusterRequested,
  startJetStream,
  type TestJetStream,
  until,
} from "@cairn/events/testing";
import { SIM_CREDENTIALS, type Sim, startSim } from "@cairn/sim";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { kubeconfigParameter } from "../adapters/kube.ts";
import { WATCH_TIMEOUT_SECONDS } from "../adapters/kube-watch.ts";
import { type NodeOps, startNodeOps } from "../node-ops.ts";

const CLUSTER = "facts-1";
const OTHER = "facts-2";
const SERVER = "i-0aaa0000000000001";
const AGENT_1 = "i-0bbb0000000000002";
const AGENT_2 = "i-0ccc0000000000003";
const OTHER_NODE = "i-0ddd0000000000004";

let js: TestJetStream;
let sim: Sim;
let store: EventStore;
let nodeOps: NodeOps;

const start = () =>
  startNodeOps({
    nats: js.nats,
    ssm: { endpoint: sim.url, credentials: SIM_CREDENTIALS },
    facts: { backoff: { baseMs: 20, maxMs: 200 }, leaseTtlMs: 3_000 },
  });

const appendEvent = (aggregate: { type: "install" | "cluster"; id: string }, type: string, data: object) =>
  appendAsOwner(store, aggregate, type, data);
const publishKubeconfig = (clusterId: string) =>
  appendEvent({ type: "install", id: clusterId }, "install.kubeconfig-published", {
    parameter: kubeconfigParameter(clusterId),
    version: 1,
  });

const facts = async (clusterId = CLUSTER): Promise<RecordedEvent[]> =>
  (await store.load({ type: "kube", id: clusterId })).events;
const ofType = (events: RecordedEvent[], type: string, node?: string) =>
  events.filter(
    (e) => e.type === type && (node === undefined || (e.data as { node?: string }).node === node),
  );
/** Waits until `count` events of `type` (for `node`) are in the log; returns the whole log. */
const untilFacts = (type: string, count: number, node?: string, clusterId = CLUSTER) =>
  until(`${count} × ${type}${node ? ` on ${node}` : ""}`, async () => {
    const events = await facts(clusterId);
    return ofType(events, type, node).length >= count ? events : undefined;
  });
const requests = (action: "list nodes" | "watch nodes", clusterId = CLUSTER) =>
  sim.requests.list({ service: "kube", region: clusterId, action });

async function setUpCluster(
  clusterId: string,
  nodes: { name: string; role: "server" | "agent"; pool: string }[],
) {
  const { region } = await recordClusterRequested(store, clusterId);
  sim.world.kube.ensureCluster(clusterId);
  for (const n of nodes)
    sim.world.kube.registerNode(clusterId, {
      name: n.name,
      role: n.role,
      instanceId: n.name,
      availabilityZone: `${region}a`,
      labels: {
        "cairn.dev/pool": n.pool,
        "cairn.dev/capacity-type": n.role === "server" ? "on-demand" : "spot",
      },
      taints: [],
    });
  sim.world.ssm.putParameter(
    region,
    kubeconfigParameter(clusterId),
    sim.world.kube.kubeconfig(clusterId),
    true,
  );
  return region;
}

beforeAll(async () => {
  js = await startJetStream();
  sim = await startSim({ seed: 21, timeScale: 100 });
  store = new EventStore({ js: js.nats.js, jsm: js.nats.jsm, catalogue });
  await setUpCluster(CLUSTER, [
    { name: SERVER, role: "server", pool: "servers" },
    { name: AGENT_1, role: "agent", pool: "workers" },
    { name: AGENT_2, role: "agent", pool: "workers" },
  ]);
  await setUpCluster(OTHER, [{ name: OTHER_NODE, role: "server", pool: "servers" }]);
  nodeOps = await start();
}, 30_000);
afterAll(async () => {
  await nodeOps?.stop();
  await sim?.stop();
  await js?.dispose();
});

describe("node facts on the sim", () => {
  it("a published kubeconfig: every node registered (role, instance, pool, capacity type) and ready", async () => {
    await until("node-ops to lead", () => nodeOps.watching());
    expect(await facts()).toEqual([]); // nothing is watched before the kubeconfig is published
    await publishKubeconfig(CLUSTER);
    const events = await untilFacts("kube.node-ready", 3);
    expect(ofType(events, "kube.api-reachable")).toHaveLength(1);
    const registered = ofType(events, "kube.node-registered").map((e) => e.data);
    expect(registered).toHaveLength(3);
    expect(registered).toContainEqual(
      expect.objectContaining({
        node: SERVER,
        instanceId: SERVER,
        role: "server",
        pool: "servers",
        capacityType: "on-demand",
        unschedulable: false,
      }),
    );
    for (const agent of [AGENT_1, AGENT_2])
      expect(registered).toContainEqual(
        expect.objectContaining({
          node: agent,
          instanceId: agent,
          role: "agent",
          pool: "workers",
          capacityType: "spot",
        }),
      );
    for (const n of [SERVER, AGENT_1, AGENT_2]) expect(ofType(events, "kube.node-ready", n)).toHaveLength(1);
    // Ready nodes carry no pressure: no pressure fact, no classification change.
    expect(events.map((e) => e.type).sort()).toEqual(
      [
        "kube.api-reachable",
        ...Array(3).fill("kube.node-registered"),
        ...Array(3).fill("kube.node-ready"),
      ].sort(),
    );
    expect(nodeOps.watchedClusters()).toEqual([CLUSTER]);
  });

  it("a node goes NotReady: exactly one not-ready (the controllers' taints are no classification); back: ready", async () => {
    sim.world.kube.setNodeReady(CLUSTER, AGENT_1, false);
    const down = await untilFacts("kube.node-not-ready", 1, AGENT_1);
    expect(ofType(down, "kube.node-not-ready", AGENT_1)[0]?.data).toMatchObject({
      node: AGENT_1,
      reason: expect.stringMatching(/^KubeletNotReady: container runtime network not ready/),
    });
    sim.world.kube.setNodeReady(CLUSTER, AGENT_1, true);
    // The ready that follows is the barrier: everything the watch saw before it is recorded.
    const events = await untilFacts("kube.node-ready", 2, AGENT_1);
    expect(ofType(events, "kube.node-not-ready", AGENT_1)).toHaveLength(1);
    expect(ofType(events, "kube.node-classification-changed")).toHaveLength(0);
    expect(events.slice(-2).map((e) => e.type)).toEqual(["kube.node-not-ready", "kube.node-ready"]);
  });

  it("a kubelet that stops: nothing for the node-monitor grace, then one not-ready (NodeStatusUnknown; the unreachable taints are no classification); re-registered: ready", async () => {
    const readyBefore = ofType(await facts(), "kube.node-ready", AGENT_1).length;
    const stopped = Date.now();
    sim.world.kube.stopKubelet(CLUSTER, AGENT_1);
    const down = await untilFacts("kube.node-not-ready", 2, AGENT_1);
    // The real node lifecycle controller waits --node-monitor-grace-period (40 s) before it
    // marks the node Unknown: 400 ms of wall time at this sim's scale of 100.
    expect(Date.now() - stopped).toBeGreaterThanOrEqual(390);
    expect(ofType(down, "kube.node-not-ready", AGENT_1)[1]?.data).toMatchObject({
      node: AGENT_1,
      reason: "NodeStatusUnknown: Kubelet stopped posting node status.",
    });
    const core = await import("@kubernetes/client-node");
    const kc = new core.KubeConfig();
    kc.loadFromString(sim.world.kube.kubeconfig(CLUSTER));
    const n = await kc.makeApiClient(core.CoreV1Api).readNode({ name: AGENT_1 });
    expect((n.spec?.taints ?? []).map((t) => `${t.key}:${t.effect}`).sort()).toEqual([
      "node.kubernetes.io/unreachable:NoExecute",
      "node.kubernetes.io/unreachable:NoSchedule",
    ]);
    // The kubelet comes back (registers again): ready, and nothing else was recorded.
    sim.world.kube.registerNode(CLUSTER, {
      name: AGENT_1,
      role: "agent",
      instanceId: AGENT_1,
      availabilityZone: n.metadata?.labels?.["topology.kubernetes.io/zone"] ?? "",
      labels: { "cairn.dev/pool": "workers", "cairn.dev/capacity-type": "spot" },
      taints: [],
    });
    const events = await untilFacts("kube.node-ready", readyBefore + 1, AGENT_1);
    expect(ofType(events, "kube.node-not-ready", AGENT_1)).toHaveLength(2);
    expect(ofType(events, "kube.node-classification-changed", AGENT_1)).toHaveLength(0);
  });

  it("a cordon outside Cairn is a classification change", async () => {
    const core = await import("@kubernetes/client-node");
    const kc = new core.KubeConfig();
    kc.loadFromString(sim.world.kube.kubeconfig(CLUSTER));
    await kc
      .makeApiClient(core.CoreV1Api)
      .patchNode(
        { name: AGENT_2, body: { spec: { unschedulable: true } } },
        core.setHeaderOptions("Content-Type", core.PatchStrategy.MergePatch),
      );
    const events = await untilFacts("kube.node-classification-changed", 1, AGENT_2);
    expect(ofType(events, "kube.node-classification-changed", AGENT_2)[0]?.data).toMatchObject({
      node: AGENT_2,
      unschedulable: true,
      taints: [], // node.kubernetes.io/unschedulable is the controller's mirror of the cordon
    });
  });

  it("a node removed: node-removed", async () => {
    sim.world.kube.removeNode(CLUSTER, AGENT_2);
    const events = await untilFacts("kube.node-removed", 1, AGENT_2);
    expect(ofType(events, "kube.node-removed")).toHaveLength(1);
  });

  it("watches that end and resume from their resourceVersion record nothing again", async () => {
    const before = (await facts()).length;
    const lists = requests("list nodes").length;
    const watches = requests("watch nodes").length;
    // The sim ends each watch at its timeoutSeconds, wall time as kube-apiserver does (sim
    // time × the scale); node-ops resumes it. Time jumps past two watches' lives.
    for (const n of [1, 2]) {
      sim.clock.advance(WATCH_TIMEOUT_SECONDS * 1000 * sim.clock.timeScale + 1_000);
      await until(`resumed watch ${n}`, () => requests("watch nodes").length >= watches + n, 30_000);
    }
    expect(requests("list nodes").length).toBe(lists); // resumed, not relisted
    expect((await facts()).length).toBe(before);
  });

  it("API down: one api-unreachable while it lasts; back up: api-reachable and a relist, no node fact again", async () => {
    const before = await facts();
    const fault = sim.faults.add({
      kind: "kube-down",
      service: "kube",
      rate: 1,
      match: { clusterId: CLUSTER },
    });
    const down = await untilFacts("kube.api-unreachable", 1);
    expect(ofType(down, "kube.api-unreachable")[0]?.data).toEqual({
      reason: expect.stringContaining(`the Kubernetes API of cluster ${CLUSTER} answered 503`),
    });
    // Several more failed attempts, each reported again to the decider: still one fact.
    await until("retries against the dead API", () => (sim.faults.hits.get(fault.id) ?? 0) >= 5);
    const lists = requests("list nodes").length;
    sim.faults.remove(fault.id);
    const after = await untilFacts("kube.api-reachable", 2);
    expect(ofType(after, "kube.api-unreachable")).toHaveLength(1);
    await until("a relist once the API answers", () =>
      requests("list nodes")
        .slice(lists)
        .some((r) => r.status === 200),
    );
    expect(after.slice(before.length).map((e) => e.type)).toEqual([
      "kube.api-unreachable",
      "kube.api-reachable",
    ]);
    // The relist changed nothing: a change made now is the next fact.
    sim.world.kube.setNodeReady(CLUSTER, SERVER, false);
    const next = await untilFacts("kube.node-not-ready", 1, SERVER);
    expect(next.slice(before.length).map((e) => e.type)).toEqual([
      "kube.api-unreachable",
      "kube.api-reachable",
      "kube.node-not-ready",
    ]);
    sim.world.kube.setNodeReady(CLUSTER, SERVER, true);
    await untilFacts("kube.node-ready", 2, SERVER);
  });

  it("a restarted node-ops watches again without recording anything twice", async () => {
    await nodeOps.stop();
    const before = (await facts()).length;
    const notReady = ofType(await facts(), "kube.node-not-ready", AGENT_1).length;
    const lists = requests("list nodes").length;
    nodeOps = await start();
    await until("the new node-ops to watch the cluster again", () =>
      nodeOps.watchedClusters().includes(CLUSTER),
    );
    await until("a relist after the restart", () => requests("list nodes").length > lists);
    sim.world.kube.setNodeReady(CLUSTER, AGENT_1, false);
    const events = await untilFacts("kube.node-not-ready", notReady + 1, AGENT_1);
    expect(events.slice(before).map((e) => e.type)).toEqual(["kube.node-not-ready"]);
  });

  it("cluster.deleted stops the watch: later changes record nothing", async () => {
    await publishKubeconfig(OTHER);
    await untilFacts("kube.node-ready", 1, OTHER_NODE, OTHER);
    await appendEvent({ type: "cluster", id: CLUSTER }, "cluster.deleted", { terminated: [] });
    await until("the watch to stop", () => !nodeOps.watchedClusters().includes(CLUSTER));
    expect(nodeOps.watchedClusters()).toEqual([OTHER]);
    const before = (await facts()).length;
    sim.world.kube.setNodeReady(CLUSTER, AGENT_1, true);
    sim.world.kube.removeNode(CLUSTER, SERVER);
    // The other cluster is still watched; its fact is the barrier for this one's.
    sim.world.kube.setNodeReady(OTHER, OTHER_NODE, false);
    await untilFacts("kube.node-not-ready", 1, OTHER_NODE, OTHER);
    expect((await facts()).length).toBe(before);
  });
});
