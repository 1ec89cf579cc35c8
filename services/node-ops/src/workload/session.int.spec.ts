/**
 * Session workloads on the simulated cloud: workload commands through the real command
 * bus, node-ops' real adapter (kubeconfig from the cluster's SecureString, client-node v2)
 * and the sim's Kubernetes API (scheduling by requests, image pulls, pod start-up).
 * Start → Running on a node; stop → zero replicas, the claim kept; start again → Running;
 * delete with and without the volume; no capacity and a bad image → failed, saying why;
 * a drain of the session's node → moved, Ready on another node.
 */
import { CommandBus, catalogue, EventStore, type RawEventEnvelope } from "@cairn/events";
import { startJetStream, type TestJetStream, until } from "@cairn/events/testing";
import { SIM_CREDENTIALS, type Sim, startSim } from "@cairn/sim";
import { AppsV1Api, CoreV1Api } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sessionNames } from "../adapters/session-workloads.ts";
import { type NodeOps, startNodeOps } from "../node-ops.ts";
import { simCluster } from "../testing/sim-cluster.ts";
import { SESSIONS_NAMESPACE } from "./session-port.ts";

const CLUSTER = "sess-1";
const NS = SESSIONS_NAMESPACE;
let js: TestJetStream;
let sim: Sim;
let nodeOps: NodeOps;
let bus: CommandBus;
let store: EventStore;
let core: CoreV1Api;
let apps: AppsV1Api;

beforeAll(async () => {
  js = await startJetStream();
  // Realistic latencies at 100×: a pod pulls its image (5 s → 50 ms) and starts (10 s → 100 ms).
  sim = await startSim({ seed: 5, timeScale: 100 });
  store = new EventStore({ js: js.nats.js, jsm: js.nats.jsm, catalogue });
  // Three nodes of 2 CPU and ~3.8Gi each.
  const { kc } = await simCluster(sim, store, CLUSTER, ["agent-a", "agent-b", "agent-c"]);
  core = kc.makeApiClient(CoreV1Api);
  apps = kc.makeApiClient(AppsV1Api);
  nodeOps = await startNodeOps({
    nats: js.nats,
    ssm: { endpoint: sim.url, credentials: SIM_CREDENTIALS },
    drain: { pollMs: 20, maxPollMs: 200 },
    limit: { max: 100 },
    facts: false,
    restore: false,
    sessions: { poll: { firstMs: 20, minMs: 20, maxMs: 200 }, unschedulableGraceMs: 0, movesIntervalMs: 100 },
  });
  bus = new CommandBus({ js: js.nats.js, catalogue });
}, 30_000);
afterAll(async () => {
  await nodeOps?.stop();
  await sim?.stop();
  await js?.dispose();
});

const template = (o: Partial<{ image: string; cpu: string; memory: string; storage: string }> = {}) => ({
  image: "ghcr.io/acme/ide:1",
  cpu: "500m",
  memory: "512Mi",
  storage: "1Gi",
  ...o,
});
const send = (type: string, sessionId: string, data: object = {}) =>
  bus.send({ type, data: { sessionId, clusterId: CLUSTER, ...data }, meta: { actor: "idle-detector" } });
const start = (sessionId: string, t = template()) =>
  send("workload.start", sessionId, { user: "alice", template: t });
const events = async (sessionId: string) => (await store.load({ type: "workload", id: sessionId })).events;
/** The n-th (1-based) event of `type` of the session, once it is there. */
const nth = (sessionId: string, type: string, n = 1) =>
  until(
    `${type} #${n} of ${sessionId}`,
    async () => (await events(sessionId)).filter((e) => e.type === type)[n - 1],
    20_000,
  );
const data = <T>(e: RawEventEnvelope) => e.data as T;
const deployment = (sessionId: string) =>
  apps.readNamespacedDeployment({ namespace: NS, name: sessionNames(sessionId).deployment });
const claimExists = async (sessionId: string) => {
  try {
    await core.readNamespacedPersistentVolumeClaim({
      namespace: NS,
      name: sessionNames(sessionId).volumeClaim,
    });
    return true;
  } catch (err) {
    if ((err as { code?: number }).code === 404) return false;
    throw err;
  }
};
const podsOf = async (sessionId: string) =>
  (await core.listNamespacedPod({ namespace: NS, labelSelector: `cairn.dev/session=${sessionId}` })).items;

describe("session workloads on the sim", () => {
  it("start: the claim and a one-replica Deployment labelled with the session, then Running on a node with its pod", async () => {
    await start("s-run");
    const running = await nth("s-run", "workload.running");
    const { node, pod } = data<{ node: string; pod: string }>(running);
    expect(["agent-a", "agent-b", "agent-c"]).toContain(node);
    const types = (await events("s-run")).map((e) => e.type);
    expect(types).toEqual(["workload.starting", "workload.started", "workload.running"]);

    const d = await deployment("s-run");
    expect(d.spec?.replicas).toBe(1);
    expect(d.metadata?.labels).toMatchObject({ "cairn.dev/session": "s-run", "cairn.dev/user": "alice" });
    const c = d.spec?.template?.spec?.containers?.[0];
    expect(c?.image).toBe("ghcr.io/acme/ide:1");
    expect(c?.resources).toEqual({
      requests: { cpu: "500m", memory: "512Mi" },
      limits: { cpu: "500m", memory: "512Mi" },
    });
    expect(await claimExists("s-run")).toBe(true);
    const pods = await podsOf("s-run");
    expect(pods.map((p) => [p.metadata?.name, p.spec?.nodeName])).toEqual([[pod, node]]);

    // A resent start changes nothing.
    await start("s-run");
    await new Promise((r) => setTimeout(r, 300));
    expect((await events("s-run")).length).toBe(3);
  });

  it("a first start asks the cluster's API only what it needs: the claim and the Deployment made straight away (no scale answered 404 first), the namespace once per cluster, and no read of the claim or the Deployment while the session's pod is there", async () => {
    await start("s-calls-1");
    await nth("s-calls-1", "workload.running");
    const from = sim.requests.list().at(-1)?.seq ?? 0;
    await start("s-calls-2");
    await nth("s-calls-2", "workload.running");
    const calls = sim.requests
      .list()
      .filter((r) => r.seq > from && r.service === "kube")
      .map((r) => `${r.action} ${r.status}`);
    expect(calls.filter((c) => !c.startsWith("list ") && !c.startsWith("watch "))).toEqual([
      "create persistentvolumeclaim 201",
      "create deployment 201",
    ]);
  });

  it("a quiet cluster's move looks list no pods: they look at the session pods' standing watch", async () => {
    // Small: the tests after this one fill the nodes' room.
    await start("s-quiet", template({ cpu: "100m", memory: "128Mi" }));
    await nth("s-quiet", "workload.running");
    // The looks (every 100 ms here) follow the cluster's watch; it has listed once by now.
    await until("the cluster followed", async () =>
      nodeOps.sessionPodWatches().includes(CLUSTER) ? true : undefined,
    );
    await new Promise((r) => setTimeout(r, 500));
    const from = sim.requests.list().at(-1)?.seq ?? 0;
    await new Promise((r) => setTimeout(r, 1_500));
    const lists = sim.requests
      .list({ service: "kube" })
      .filter((r) => r.seq > from && r.action === "list pods");
    // Fifteen looks: one list of the cluster's pods each before.
    expect(lists).toHaveLength(0);
    await send("workload.stop", "s-quiet");
    await nth("s-quiet", "workload.stopped");
  });

  it("stop: zero replicas and no pod, the claim kept; start again (a wake): Running on the same claim", async () => {
    await start("s-wake");
    await nth("s-wake", "workload.running");
    await send("workload.stop", "s-wake");
    await nth("s-wake", "workload.stopped");
    expect((await deployment("s-wake")).spec?.replicas).toBe(0);
    expect(await podsOf("s-wake")).toEqual([]);
    expect(await claimExists("s-wake")).toBe(true);

    await start("s-wake");
    const again = await nth("s-wake", "workload.running", 2);
    expect(data<{ node: string }>(again).node).toMatch(/^agent-/);
    expect((await deployment("s-wake")).spec?.replicas).toBe(1);
    const vols = (await podsOf("s-wake"))[0]?.spec?.volumes ?? [];
    expect(vols.map((v) => v.persistentVolumeClaim?.claimName)).toContain(sessionNames("s-wake").volumeClaim);
  });

  it("delete without the volume keeps the claim; with it, the claim goes too; with nothing there, deleted all the same", async () => {
    await start("s-keep");
    await start("s-drop");
    await nth("s-keep", "workload.running");
    await nth("s-drop", "workload.running");

    const rsOf = async (sessionId: string) =>
      (
        await apps.listNamespacedReplicaSet({
          namespace: NS,
          labelSelector: `cairn.dev/session=${sessionId}`,
        })
      ).items;
    expect(await rsOf("s-keep")).toHaveLength(1);
    await send("workload.delete", "s-keep", { releaseVolume: false });
    expect(data<{ volumeReleased: boolean }>(await nth("s-keep", "workload.deleted")).volumeReleased).toBe(
      false,
    );
    await expect(deployment("s-keep")).rejects.toMatchObject({ code: 404 });
    // node-ops deletes with Background propagation: the garbage collector takes the
    // Deployment's ReplicaSet at once and its pod once its termination is over.
    expect(await rsOf("s-keep")).toEqual([]);
    await until("s-keep's pod gone", async () => ((await podsOf("s-keep")).length === 0 ? true : undefined));
    expect(await claimExists("s-keep")).toBe(true);

    await send("workload.delete", "s-drop", { releaseVolume: true });
    expect(data<{ volumeReleased: boolean }>(await nth("s-drop", "workload.deleted")).volumeReleased).toBe(
      true,
    );
    expect(await claimExists("s-drop")).toBe(false);
    expect(await podsOf("s-drop")).toEqual([]);

    await send("workload.delete", "s-never", { releaseVolume: true });
    expect(data<{ volumeReleased: boolean }>(await nth("s-never", "workload.deleted")).volumeReleased).toBe(
      true,
    );
  });

  it("no node has room: failed (no-capacity) with the scheduler's reason and a remediation", async () => {
    await start("s-big", template({ cpu: "8" }));
    const failed = data<{ kind: string; operation: string; reason: string; remediation?: string }>(
      await nth("s-big", "workload.failed"),
    );
    expect(failed.operation).toBe("start");
    expect(failed.kind).toBe("no-capacity");
    expect(failed.reason).toContain("0/3 nodes are available: 3 Insufficient cpu.");
    expect(failed.reason).toContain("8 CPU");
    expect(failed.remediation).toMatch(/add nodes/);
    expect((await events("s-big")).some((e) => e.type === "workload.running")).toBe(false);
  });

  it("an image the registry does not have: failed (image), naming it", async () => {
    sim.world.kube.setImageAvailable("ghcr.io/acme/ide:typo", false);
    await start("s-img", template({ image: "ghcr.io/acme/ide:typo" }));
    const failed = data<{ kind: string; reason: string }>(await nth("s-img", "workload.failed"));
    expect(failed.kind).toBe("image");
    expect(failed.reason).toContain("ghcr.io/acme/ide:typo");
    expect(failed.reason).toMatch(/ErrImagePull|ImagePullBackOff/);
  });

  it("a drain of the session's node: the pod comes back on another node, recorded as moved, and it is Running there", async () => {
    await start("s-move");
    const from = data<{ node: string }>(await nth("s-move", "workload.running")).node;
    await bus.send({
      type: "node.drain",
      data: { clusterId: CLUSTER, node: from, reason: "kernel patch" },
      meta: { actor: "alice" },
    });
    const moved = data<{ fromNode: string; toNode: string; pod: string; reason?: string }>(
      await nth("s-move", "workload.moved"),
    );
    expect(moved.fromNode).toBe(from);
    expect(moved.toNode).not.toBe(from);
    expect(moved.reason).toBe(`node ${from} was cordoned and drained`);
    const pods = (await podsOf("s-move")).filter((p) => !p.metadata?.deletionTimestamp);
    expect(pods.map((p) => [p.metadata?.name, p.spec?.nodeName])).toEqual([[moved.pod, moved.toNode]]);
    // Recorded once, whatever the number of looks since.
    await new Promise((r) => setTimeout(r, 400));
    expect((await events("s-move")).filter((e) => e.type === "workload.moved")).toHaveLength(1);
    await bus.send({
      type: "node.uncordon",
      data: { clusterId: CLUSTER, node: from, reason: "patched" },
      meta: { actor: "alice" },
    });
  });

  it("its node deleted (the instance gone): the pod outlives its Node until pod GC's minute, then comes back on another node, recorded as moved", async () => {
    await start("s-lost");
    const from = data<{ node: string }>(await nth("s-lost", "workload.running")).node;
    const removed = Date.now();
    sim.world.kube.removeNode(CLUSTER, from);
    // The real pod GC force-deletes a deleted node's pods 40–60 s later, not at once.
    expect((await podsOf("s-lost")).map((p) => p.spec?.nodeName)).toEqual([from]);
    const moved = data<{ fromNode: string; toNode: string; pod: string }>(
      await nth("s-lost", "workload.moved"),
    );
    expect(Date.now() - removed).toBeGreaterThanOrEqual(590); // orphanPodGc 60 s at 100×
    expect(moved.fromNode).toBe(from);
    expect(moved.toNode).not.toBe(from);
    const pods = (await podsOf("s-lost")).filter((p) => !p.metadata?.deletionTimestamp);
    expect(pods.map((p) => [p.metadata?.name, p.spec?.nodeName])).toEqual([[moved.pod, moved.toNode]]);
  });
  it("the sessions' namespace deleted by hand: the next first start makes it again (its claim's create answered 404, retried) and runs", async () => {
    await start("s-ns-before"); // node-ops has made (and remembers) the namespace
    await nth("s-ns-before", "workload.running");
    await core.deleteNamespace({ name: NS });
    await until(
      "the namespace gone",
      async () =>
        (await core.listNamespace()).items.every((n) => n.metadata?.name !== NS) ? true : undefined,
      20_000,
    );
    await start("s-ns-again");
    await nth("s-ns-again", "workload.running");
    expect(await claimExists("s-ns-again")).toBe(true);
  }, 60_000);
});
