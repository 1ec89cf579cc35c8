/**
 * Cordon and uncordon on the simulated cloud, through the public command bus, the real
 * adapter (kubeconfig from SSM in the cluster's region, client-node v2) and the sim's
 * Kubernetes API: cordon → unschedulable and annotated; uncordon → schedulable; a node
 * cordoned outside Cairn is refused unless forced; a missing node fails with a reason.
 */
import { CommandBus, catalogue, EventStore, nodeAggregateId } from "@cairn/events";
import { recordClusterRequested, startJetStream, type TestJetStream, until } from "@cairn/events/testing";
import { Resilience } from "@cairn/service";
import { SIM_CREDENTIALS, type Sim, startSim } from "@cairn/sim";
import { AppsV1Api, CoreV1Api, PatchStrategy, PolicyV1Api, setHeaderOptions } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type NodeOps, startNodeOps } from "../node-ops.ts";
import { CORDON_REASON, CORDONED_BY } from "../ports.ts";
import { fixturePodOwner } from "../testing/pod-owner.ts";
import { simCluster } from "../testing/sim-cluster.ts";

const CLUSTER = "nodes-1";
let js: TestJetStream;
let sim: Sim;
let nodeOps: NodeOps;
let bus: CommandBus;
let store: EventStore;
let core: CoreV1Api;
let apps: AppsV1Api;
let policy: PolicyV1Api;
/** The controller the fixture pods name: it exists, so the garbage collector leaves them be. */
let owner: { apiVersion: string; kind: string; name: string; uid: string; controller: boolean };

const fixtureOwner = (kc: import("@kubernetes/client-node").KubeConfig) => fixturePodOwner(kc);

beforeAll(async () => {
  js = await startJetStream();
  sim = await startSim({ seed: 11, timeScale: 100 });
  store = new EventStore({ js: js.nats.js, jsm: js.nats.jsm, catalogue });
  // The cluster's history (for its region), its API server, its nodes and its kubeconfig in SSM.
  const nodes = [
    "agent-a",
    "agent-b",
    "agent-c",
    "drain-d",
    "drain-e",
    "drain-f",
    "drain-g",
    "drain-h",
    "drain-i",
    "agent-j",
    "drain-k",
  ];
  const { kc } = await simCluster(sim, store, CLUSTER, nodes);
  // A second cluster with a history but no kubeconfig published yet.
  await recordClusterRequested(store, "nodes-2");
  core = kc.makeApiClient(CoreV1Api);
  apps = kc.makeApiClient(AppsV1Api);
  policy = kc.makeApiClient(PolicyV1Api);
  owner = await fixtureOwner(kc);

  nodeOps = await startNodeOps({
    nats: js.nats,
    ssm: { endpoint: sim.url, credentials: SIM_CREDENTIALS },
    drain: { pollMs: 20, maxPollMs: 200 },
    // Drained nodes stay cordoned: these tests are about one node each, not the cluster-wide limit.
    limit: { max: 100 },
    // A cordon gives up on an API that keeps failing after this long (default 10 minutes).
    operationPatienceMs: 3_000,
    // The fault tests open the cluster's breaker; it lets a trial through after 1 s here
    // (20 s in production), so the next test does not wait it out.
    resilience: new Resilience({ services: { kubernetes: { breaker: { halfOpenAfterMs: 1_000 } } } }),
  });
  bus = new CommandBus({ js: js.nats.js, catalogue });
}, 30_000);
afterAll(async () => {
  await nodeOps?.stop();
  await sim?.stop();
  await js?.dispose();
});

const ref = (node: string, clusterId = CLUSTER) => ({
  type: "nodeop" as const,
  id: nodeAggregateId(clusterId, node),
});
/** The first event of `type` on the node after the command `commandId`. */
const eventAfter = (node: string, commandId: string, type: string, clusterId = CLUSTER) =>
  until(`${type} on ${node}`, async () => {
    const events = (await store.load(ref(node, clusterId))).events;
    const from = events.findIndex((e) => e.meta.commandId === commandId || e.meta.causationId === commandId);
    return from < 0 ? undefined : events.slice(from).find((e) => e.type === type);
  });
const send = (type: string, node: string, data: object = {}, actor = "alice", clusterId = CLUSTER) =>
  bus.send({ type, data: { clusterId, node, reason: "kernel patch", ...data }, meta: { actor } });
const readNode = (name: string) => core.readNode({ name });
/**
 * A pod a controller owns, unless `meta` says otherwise. The owner must exist: a real
 * garbage collector deletes pods whose owner does not (and so does the sim's).
 */
const createPod = (
  node: string,
  name: string,
  labels: Record<string, string>,
  meta: object = {},
  spec: object = {},
) =>
  core.createNamespacedPod({
    namespace: "default",
    body: {
      metadata: {
        name,
        labels,
        ownerReferences: [owner],
        ...meta,
      },
      spec: { nodeName: node, containers: [{ name: "app", image: "nginx:1.27" }], ...spec },
    },
  });
const createPdb = (name: string, app: string, minAvailable: number) =>
  policy.createNamespacedPodDisruptionBudget({
    namespace: "default",
    body: { metadata: { name }, spec: { minAvailable, selector: { matchLabels: { app } } } },
  });
const podsOn = async (node: string) =>
  (await core.listPodForAllNamespaces({ fieldSelector: `spec.nodeName=${node}` })).items
    .map((p) => p.metadata?.name ?? "")
    .sort();

describe("node-ops on the sim", () => {
  it("cordon: the node is unschedulable, annotated with who and why; uncordon: schedulable again", async () => {
    const cordon = await send("node.cordon", "agent-a", {}, "alice");
    await eventAfter("agent-a", cordon.commandId, "nodeop.cordoned");
    const n = await readNode("agent-a");
    expect(n.spec?.unschedulable).toBe(true);
    expect(n.metadata?.annotations?.[CORDONED_BY]).toBe("alice");
    expect(n.metadata?.annotations?.[CORDON_REASON]).toBe("kernel patch");

    const uncordon = await send("node.uncordon", "agent-a", { reason: "patched" }, "bob");
    const done = await eventAfter("agent-a", uncordon.commandId, "nodeop.uncordoned");
    expect(done.data).toEqual({ clusterId: CLUSTER, node: "agent-a", by: "bob" });
    const after = await readNode("agent-a");
    expect(after.spec?.unschedulable ?? false).toBe(false);
    expect(after.metadata?.annotations?.[CORDONED_BY]).toBeUndefined();
    expect(after.metadata?.annotations?.[CORDON_REASON]).toBeUndefined();
  });

  it("a node cordoned outside Cairn: uncordon is refused, and goes through with force: true", async () => {
    await core.patchNode(
      { name: "agent-b", body: { spec: { unschedulable: true } } },
      setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
    );
    const refused = await send("node.uncordon", "agent-b");
    const rejected = await eventAfter("agent-b", refused.commandId, "nodeop.rejected");
    expect(rejected.data).toMatchObject({ code: "conflict", commandType: "node.uncordon" });
    expect((rejected.data as { reason: string }).reason).toMatch(/not cordoned by Cairn.*force: true/);
    expect((await readNode("agent-b")).spec?.unschedulable).toBe(true);

    const forced = await send("node.uncordon", "agent-b", { force: true }, "carol");
    const requested = await eventAfter("agent-b", forced.commandId, "nodeop.uncordon-requested");
    expect(requested.data).toMatchObject({ forced: true, by: "carol" });
    await eventAfter("agent-b", forced.commandId, "nodeop.uncordoned");
    expect((await readNode("agent-b")).spec?.unschedulable ?? false).toBe(false);
  });

  it("cordon of a node the cluster does not have fails with the reason", async () => {
    const cordon = await send("node.cordon", "ghost");
    const failed = await eventAfter("ghost", cordon.commandId, "nodeop.failed");
    expect(failed.data).toMatchObject({
      clusterId: CLUSTER,
      node: "ghost",
      operation: "cordon",
      reason: `node ghost not found in cluster ${CLUSTER}`,
    });
    // The operation is over: the node accepts commands again (and fails the same way).
    const again = await send("node.cordon", "ghost");
    await eventAfter("ghost", again.commandId, "nodeop.cordon-requested");
  });

  it("drain: a node with 3 plain pods is cordoned and emptied", async () => {
    for (const i of [1, 2, 3]) await createPod("drain-d", `plain-d${i}`, { app: "plain-d" });
    const drain = await send("node.drain", "drain-d", {}, "dave");
    const requested = await eventAfter("drain-d", drain.commandId, "nodeop.drain-requested");
    expect(requested.data).toMatchObject({ by: "dave", reason: "kernel patch" });
    const drained = await eventAfter("drain-d", drain.commandId, "nodeop.drained");
    expect(drained.data).toMatchObject({ clusterId: CLUSTER, node: "drain-d", by: "dave", evicted: 3 });
    const n = await readNode("drain-d");
    expect(n.spec?.unschedulable).toBe(true);
    expect(n.metadata?.annotations?.[CORDONED_BY]).toBe("dave");
    expect(await podsOn("drain-d")).toEqual([]);
  });

  it("drain refuses, as kubectl drain does, pods no controller manages and pods with emptyDir data — unless told", async () => {
    await createPod("drain-h", "owned-h1", { app: "owned-h" });
    await createPod("drain-h", "bare-h1", { app: "bare-h" }, { ownerReferences: [] });
    await createPod(
      "drain-h",
      "scratch-h1",
      { app: "scratch-h" },
      {},
      { volumes: [{ name: "tmp", emptyDir: {} }] },
    );
    const refused = await send("node.drain", "drain-h");
    const failed = await eventAfter("drain-h", refused.commandId, "nodeop.drain-failed");
    expect(failed.data).toMatchObject({ leftCordoned: true });
    const reason = (failed.data as { reason: string }).reason;
    expect(reason).toContain("pods no controller manages (they would not come back): default/bare-h1");
    expect(reason).toContain("pods with emptyDir data (it would be lost): default/scratch-h1");
    expect((failed.data as { blocking: { pod: string }[] }).blocking.map((b) => b.pod).sort()).toEqual([
      "default/bare-h1",
      "default/scratch-h1",
    ]);
    // Nothing was evicted.
    expect(await podsOn("drain-h")).toEqual(["bare-h1", "owned-h1", "scratch-h1"]);
    const forced = await send("node.drain", "drain-h", { forceUnmanaged: true, deleteEmptyDirData: true });
    await eventAfter("drain-h", forced.commandId, "nodeop.drained");
    expect(await podsOn("drain-h")).toEqual([]);
  });

  it("drain leaves DaemonSet and mirror pods alone and still completes", async () => {
    await createPod("drain-e", "plain-e1", { app: "plain-e" });
    // A real DaemonSet, on this node only: its controller makes the pod (and would make it again).
    await apps.createNamespacedDaemonSet({
      namespace: "default",
      body: {
        metadata: { name: "ds-e" },
        spec: {
          selector: { matchLabels: { app: "ds-e" } },
          template: {
            metadata: { labels: { app: "ds-e" } },
            spec: {
              nodeSelector: { "kubernetes.io/hostname": "drain-e" },
              containers: [{ name: "app", image: "nginx:1.27" }],
            },
          },
        },
      },
    });
    const dsPod = await until("the DaemonSet's pod on drain-e", async () =>
      (await podsOn("drain-e")).find((n) => n.startsWith("ds-e-")),
    );
    // A static pod's mirror, as its kubelet makes it: owned by the Node.
    const node = await readNode("drain-e");
    await createPod(
      "drain-e",
      "mirror-e1",
      { app: "mirror-e" },
      {
        annotations: { "kubernetes.io/config.mirror": "abc" },
        ownerReferences: [
          { apiVersion: "v1", kind: "Node", name: "drain-e", uid: node.metadata!.uid!, controller: true },
        ],
      },
    );
    const drain = await send("node.drain", "drain-e");
    await eventAfter("drain-e", drain.commandId, "nodeop.drained");
    expect(await podsOn("drain-e")).toEqual([dsPod, "mirror-e1"].sort());
  });

  it("drain blocked by a PDB reports it in progress, and completes once the PDB is relaxed", async () => {
    for (const i of [1, 2]) await createPod("drain-f", `db-f${i}`, { app: "db-f" });
    await createPdb("db-f-pdb", "db-f", 2);
    const drain = await send("node.drain", "drain-f");
    const progress = await eventAfter("drain-f", drain.commandId, "nodeop.drain-progress");
    expect(progress.data).toMatchObject({ evicted: 0, remaining: 2, blockedBy: ["db-f-pdb"] });
    // No spam: the same blocked state is recorded once.
    await new Promise((r) => setTimeout(r, 500));
    const before = (await store.load(ref("drain-f"))).events.filter(
      (e) => e.type === "nodeop.drain-progress",
    );
    expect(before).toHaveLength(1);
    await policy.patchNamespacedPodDisruptionBudget(
      { name: "db-f-pdb", namespace: "default", body: { spec: { minAvailable: 0 } } },
      setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
    );
    const drained = await eventAfter("drain-f", drain.commandId, "nodeop.drained");
    expect(drained.data).toMatchObject({ evicted: 2 });
    expect(await podsOn("drain-f")).toEqual([]);
  });

  it("a budget still being processed (429, Retry-After 10) holds only its pod: the 4 others count as evicted, and the drain completes once it is processed", async () => {
    // A second sim whose disruption controller takes an hour to process a budget, so the
    // refusal lasts as long as the test needs; the cluster's kubeconfig is in the first sim's SSM.
    const slow = await startSim({ seed: 12, timeScale: 100, latencies: { pdbSync: 3600 } });
    try {
      const { kc: slowKc } = await simCluster(sim, store, "nodes-3", ["drain-i"], slow);
      const slowCore = slowKc.makeApiClient(CoreV1Api);
      const slowPolicy = slowKc.makeApiClient(PolicyV1Api);
      const slowOwner = await fixtureOwner(slowKc);
      for (const name of ["web-i1", "web-i2", "web-i3", "web-i4", "db-i1"])
        await slowCore.createNamespacedPod({
          namespace: "default",
          body: {
            metadata: {
              name,
              labels: { app: name.startsWith("db") ? "db-i" : "web-i" },
              ownerReferences: [slowOwner],
            },
            spec: { nodeName: "drain-i", containers: [{ name: "app", image: "nginx:1.27" }] },
          },
        });
      await slowPolicy.createNamespacedPodDisruptionBudget({
        namespace: "default",
        body: {
          metadata: { name: "db-i-pdb" },
          spec: { minAvailable: 0, selector: { matchLabels: { app: "db-i" } } },
        },
      });
      const drain = await send("node.drain", "drain-i", {}, "alice", "nodes-3");
      const progress = await eventAfter("drain-i", drain.commandId, "nodeop.drain-progress", "nodes-3");
      expect(progress.data).toMatchObject({ evicted: 4, blockedBy: ["db-i-pdb"] });
      const stillThere = (await slowCore.listPodForAllNamespaces({ fieldSelector: "spec.nodeName=drain-i" }))
        .items;
      expect(stillThere.map((p) => p.metadata?.name)).toContain("db-i1");
      slow.clock.advance(3600_000);
      const drained = await eventAfter("drain-i", drain.commandId, "nodeop.drained", "nodes-3");
      expect(drained.data).toMatchObject({ evicted: 5 });
    } finally {
      await slow.stop();
    }
  });

  it("a maxUnavailable budget over a pod no controller manages blocks it, as the real server does (it expects 0 pods): a forced drain waits on the budget, then completes once it is gone", async () => {
    await createPod("drain-k", "bare-k1", { app: "bare-k" }, { ownerReferences: [] });
    const pdb = await policy.createNamespacedPodDisruptionBudget({
      namespace: "default",
      body: {
        metadata: { name: "bare-k-pdb" },
        spec: { maxUnavailable: 1, selector: { matchLabels: { app: "bare-k" } } },
      },
    });
    await until("the budget processed", async () => {
      const b = await policy.readNamespacedPodDisruptionBudget({ name: "bare-k-pdb", namespace: "default" });
      return b.status?.observedGeneration === pdb.metadata?.generation ? b : undefined;
    });
    // The API's own answer (a dry run changes nothing): the unmanaged pod adds nothing to the
    // expected count, so the budget needs 0 healthy pods and allows no disruption.
    const refusal = (await core
      .createNamespacedPodEviction({
        name: "bare-k1",
        namespace: "default",
        dryRun: "All",
        body: { metadata: { name: "bare-k1", namespace: "default" } },
      })
      .then(
        () => undefined,
        (e: unknown) => e,
      )) as { code?: number; body?: string } | undefined;
    expect(refusal?.code).toBe(429);
    expect(refusal?.body).toContain(
      "The disruption budget bare-k-pdb needs 0 healthy pods and has 1 currently",
    );

    const drain = await send("node.drain", "drain-k", { forceUnmanaged: true });
    const progress = await eventAfter("drain-k", drain.commandId, "nodeop.drain-progress");
    expect(progress.data).toMatchObject({ evicted: 0, remaining: 1, blockedBy: ["bare-k-pdb"] });
    expect(await podsOn("drain-k")).toEqual(["bare-k1"]);
    await policy.deleteNamespacedPodDisruptionBudget({ name: "bare-k-pdb", namespace: "default" });
    const drained = await eventAfter("drain-k", drain.commandId, "nodeop.drained");
    expect(drained.data).toMatchObject({ evicted: 1 });
    expect(await podsOn("drain-k")).toEqual([]);
  });

  it("drain that a PDB never allows fails at the timeout naming pod and PDB; the node stays cordoned", async () => {
    await createPod("drain-g", "db-g1", { app: "db-g" });
    await createPdb("db-g-pdb", "db-g", 1);
    const drain = await send("node.drain", "drain-g", { timeoutSeconds: 2 });
    const failed = await eventAfter("drain-g", drain.commandId, "nodeop.drain-failed");
    expect(failed.data).toMatchObject({
      clusterId: CLUSTER,
      node: "drain-g",
      blocking: [{ pod: "default/db-g1", pdb: "db-g-pdb" }],
      remediation:
        "the PodDisruptionBudget db-g-pdb allows no disruption: scale its workload up or relax the budget, or drain again with a longer timeout",
      leftCordoned: true,
    });
    expect((failed.data as { reason: string }).reason).toContain("left cordoned");
    expect((await readNode("drain-g")).spec?.unschedulable).toBe(true);
    expect(await podsOn("drain-g")).toEqual(["db-g1"]);
  });

  it("a transient Kubernetes failure (503) is retried until the cordon goes through", async () => {
    const fault = sim.faults.add({
      kind: "kube-down",
      service: "kube",
      action: "patch",
      match: { clusterId: CLUSTER, node: "agent-c" },
      count: 2,
    });
    const cordon = await send("node.cordon", "agent-c");
    await eventAfter("agent-c", cordon.commandId, "nodeop.cordoned");
    expect((await readNode("agent-c")).spec?.unschedulable).toBe(true);
    const events = (await store.load(ref("agent-c"))).events.map((e) => e.type);
    expect(events).not.toContain("nodeop.failed");
    expect(sim.faults.hits.get(fault.id)).toBe(2);
  });

  it("an API that keeps failing through a drain: retried past the failure budget, then the drain fails at its deadline", async () => {
    const fault = sim.faults.add({
      kind: "kube-down",
      service: "kube",
      action: "patch",
      match: { clusterId: CLUSTER, node: "drain-i" },
      rate: 1,
    });
    try {
      // Longer than five real failures with backoff take (at most 0.5 + 1 + 2 + 4 s): a
      // drain whose failures counted would be dead-lettered first and stay in flight.
      const drain = await send("node.drain", "drain-i", { timeoutSeconds: 10 });
      const failed = await eventAfter("drain-i", drain.commandId, "nodeop.drain-failed");
      expect(failed.data).toMatchObject({
        node: "drain-i",
        leftCordoned: true,
        remediation: "check the cluster's API server, then drain again",
      });
      expect((failed.data as { reason: string }).reason).toContain("the Kubernetes API kept failing");
      expect(sim.faults.hits.get(fault.id) ?? 0).toBeGreaterThan(5);
    } finally {
      sim.faults.remove(fault.id);
    }
  }, 30_000);

  it("an API that keeps failing through a cordon: retried past the failure budget, then recorded failed (the node is not left in flight)", async () => {
    const fault = sim.faults.add({
      kind: "kube-down",
      service: "kube",
      action: "patch",
      match: { clusterId: CLUSTER, node: "agent-j" },
      rate: 1,
    });
    try {
      const cordon = await send("node.cordon", "agent-j");
      const failed = await eventAfter("agent-j", cordon.commandId, "nodeop.failed");
      expect(failed.data).toMatchObject({
        operation: "cordon",
        remediation: "check the cluster's API server, then try again",
      });
      const reason = (failed.data as { reason: string }).reason;
      expect(reason).toContain("the Kubernetes API kept failing");
      // Retried (more than one call reached the API; on a loaded machine some time out on
      // the way, uncounted by the sim) past the failure budget, or (after the drain
      // test's storm) the cluster's breaker, open, refused them without calling.
      const hits = sim.faults.hits.get(fault.id) ?? 0;
      expect({ hits, breaker: /breaker|circuit/i.test(reason) }).toSatisfy(
        (x: { hits: number; breaker: boolean }) => x.hits > 1 || x.breaker,
      );
    } finally {
      sim.faults.remove(fault.id);
    }
    // The node takes the next operation.
    const again = await send("node.cordon", "agent-j");
    await eventAfter("agent-j", again.commandId, "nodeop.cordoned");
  });

  it("a cluster without a kubeconfig fails with the reason; one without a history is refused at once", async () => {
    const noKubeconfig = await send("node.cordon", "agent-a", {}, "alice", "nodes-2");
    const failed = await eventAfter("agent-a", noKubeconfig.commandId, "nodeop.failed", "nodes-2");
    expect((failed.data as { reason: string }).reason).toContain("cluster nodes-2 has no kubeconfig yet");
    // Never created: checked when the command is decided (nodeop/known-nodes.ts), nothing is tried.
    const unknown = await send("node.cordon", "agent-a", {}, "alice", "nodes-x");
    const refused = await eventAfter("agent-a", unknown.commandId, "nodeop.rejected", "nodes-x");
    expect(refused.data).toMatchObject({ code: "not-found", reason: "cluster nodes-x does not exist" });
  });
});
