/**
 * The cluster-wide disruption limit on the simulated cloud (limit 1): a second cordon
 * waits (`nodeop.waiting` naming the holder) and goes through once the first node is
 * uncordoned; `force: true` goes past the limit; a drain that waits past its deadline
 * fails without touching the node. A drained node stays cordoned, holding its place
 * until it is gone: its Node deleted by other hands (the facts see it leave), or its
 * instance retired by the provisioner (node-ops deletes the Node).
 */
import {
  CommandBus,
  catalogue,
  EventStore,
  nodeAggregateId,
  nodeopLimitId,
  type RecordedEvent,
} from "@cairn/events";
import { appendAsOwner, startJetStream, type TestJetStream, until } from "@cairn/events/testing";
import { SIM_CREDENTIALS, type Sim, startSim } from "@cairn/sim";
import type { CoreV1Api } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { kubeconfigParameter } from "../adapters/kube.ts";
import { type NodeOps, startNodeOps } from "../node-ops.ts";
import { simCluster } from "../testing/sim-cluster.ts";

const CLUSTER = "limit-1";
/** Watched by node-ops' facts (its kubeconfig published), unlike CLUSTER. */
const GONE = "limit-2";
/** Also watched: retired three at once with two replicas of node-ops. */
const REPLICAS = "limit-3";
const options = () => ({
  nats: js.nats,
  ssm: { endpoint: sim.url, credentials: SIM_CREDENTIALS },
  // The facts watch GONE and REPLICAS only; no classification restores on the bare sim nodes.
  facts: { backoff: { baseMs: 20, maxMs: 200 } },
  restore: false as const,
  drain: { pollMs: 20, maxPollMs: 100 },
  limit: { max: 1, pollMs: 20, maxPollMs: 100 },
});
let js: TestJetStream;
let sim: Sim;
let nodeOps: NodeOps;
let bus: CommandBus;
let store: EventStore;
let core: CoreV1Api;
let goneCore: CoreV1Api;

beforeAll(async () => {
  js = await startJetStream();
  sim = await startSim({ seed: 14, timeScale: 100 });
  store = new EventStore({ js: js.nats.js, jsm: js.nats.jsm, catalogue });
  ({ core } = await simCluster(sim, store, CLUSTER, ["node-a", "node-b", "node-c", "node-d"]));
  ({ core: goneCore } = await simCluster(sim, store, GONE, ["node-e", "node-f", "node-g", "node-h"]));
  await simCluster(sim, store, REPLICAS, ["node-r1", "node-r2", "node-r3"]);
  for (const id of [GONE, REPLICAS])
    await appendAsOwner(store, { type: "install", id }, "install.kubeconfig-published", {
      parameter: kubeconfigParameter(id),
      version: 1,
    });
  nodeOps = await startNodeOps(options());
  bus = new CommandBus({ js: js.nats.js, catalogue });
}, 30_000);
afterAll(async () => {
  await nodeOps?.stop();
  await sim?.stop();
  await js?.dispose();
});

const eventsOf = async (node: string, clusterId = CLUSTER) =>
  (await store.load({ type: "nodeop", id: nodeAggregateId(clusterId, node) })).events;
const eventAfter = (node: string, commandId: string, type: string, clusterId = CLUSTER) =>
  until<RecordedEvent>(`${type} on ${node}`, async () => {
    const events = await eventsOf(node, clusterId);
    const from = events.findIndex((e) => e.meta.commandId === commandId);
    return from < 0 ? undefined : events.slice(from).find((e) => e.type === type);
  });
const send = async (type: string, node: string, data: object = {}, clusterId = CLUSTER) =>
  (
    await bus.send({
      type,
      data: { clusterId, node, reason: "rolling upgrade", ...data },
      meta: { actor: "installer" },
    })
  ).commandId;
const ledgerOf = async (clusterId: string) =>
  (await store.load({ type: "nodeop", id: nodeopLimitId(clusterId) })).events;
/** The ledger's release of `node`, once it is in the log. */
const releaseOf = (clusterId: string, node: string) =>
  until<RecordedEvent>(`the release of ${node}`, async () =>
    (await ledgerOf(clusterId)).find(
      (e) => e.type === "nodeop.disruption-released" && (e.data as { node: string }).node === node,
    ),
  );
const unschedulable = async (node: string) =>
  (await core.readNode({ name: node })).spec?.unschedulable === true;

describe("the cluster-wide disruption limit on the sim (limit 1)", () => {
  it("a second cordon waits, naming the node it waits for, and goes through once that one is uncordoned", async () => {
    await eventAfter("node-a", await send("node.cordon", "node-a"), "nodeop.cordoned");
    const second = await send("node.cordon", "node-b");
    const waiting = await eventAfter("node-b", second, "nodeop.waiting");
    expect(waiting.data).toEqual({
      clusterId: CLUSTER,
      node: "node-b",
      operation: "cordon",
      limit: 1,
      waitingFor: ["node-a"],
    });
    expect(await unschedulable("node-b")).toBe(false);
    // Queued, not failed: a new operation on the node is refused while it waits.
    const other = await send("node.label", "node-b", { labels: { a: "b" } });
    expect((await eventAfter("node-b", other, "nodeop.rejected")).data).toMatchObject({ code: "conflict" });

    await eventAfter("node-a", await send("node.uncordon", "node-a"), "nodeop.uncordoned");
    await eventAfter("node-b", second, "nodeop.cordoned");
    expect(await unschedulable("node-b")).toBe(true);
    // Waiting was recorded once per holder set, not once per look.
    expect((await eventsOf("node-b")).filter((e) => e.type === "nodeop.waiting")).toHaveLength(1);
  });

  it("force: true goes past the limit at once, and the ledger says it was forced", async () => {
    const forced = await send("node.cordon", "node-c", { force: true });
    await eventAfter("node-c", forced, "nodeop.cordoned");
    expect(await unschedulable("node-c")).toBe(true);
    const ledger = (await store.load({ type: "nodeop", id: nodeopLimitId(CLUSTER) })).events;
    expect(ledger.at(-1)?.data).toMatchObject({
      node: "node-c",
      forced: true,
      holders: ["node-b", "node-c"],
    });
  });

  it("a drain that waits past its deadline fails without touching the node", async () => {
    const drain = await send("node.drain", "node-d", { timeoutSeconds: 1 });
    await eventAfter("node-d", drain, "nodeop.waiting");
    const failed = await eventAfter("node-d", drain, "nodeop.drain-failed");
    expect(failed.data).toMatchObject({ leftCordoned: false, blocking: [] });
    expect((failed.data as { reason: string }).reason).toContain(
      "waiting for the cluster's disruption limit",
    );
    expect(await unschedulable("node-d")).toBe(false);
  });
});

describe("a drained node gives its place back once it is gone (limit 1)", () => {
  it("its Node deleted by other hands: the next node to wait releases it and goes through", async () => {
    // Drained and left cordoned (kubectl semantics): node-e keeps its place.
    await eventAfter("node-e", await send("node.drain", "node-e", {}, GONE), "nodeop.drained", GONE);
    expect((await goneCore.readNode({ name: "node-e" })).spec?.unschedulable).toBe(true);
    await until("the facts know GONE's nodes", async () =>
      (
        await nodeOps.kubeHandler?.read(
          { type: "kube", id: GONE },
          { atLeastSequence: Number.MAX_SAFE_INTEGER },
        )
      )?.state.nodes["node-e"]
        ? true
        : undefined,
    );
    const drain = await send("node.drain", "node-f", { timeoutSeconds: 60 }, GONE);
    expect((await eventAfter("node-f", drain, "nodeop.waiting", GONE)).data).toMatchObject({
      waitingFor: ["node-e"],
    });
    // Somebody (kubectl, a cloud controller) deletes node-e's Node.
    await goneCore.deleteNode({ name: "node-e" });
    await eventAfter("node-f", drain, "nodeop.drained", GONE);
    const released = await releaseOf(GONE, "node-e");
    expect(released.data).toEqual({
      clusterId: GONE,
      node: "node-e",
      reason: "node node-e left the cluster's API (its Node was deleted)",
    });
    // Released once, named after the drain that needed the place.
    expect(released.meta.causationId).toBe(
      (await eventsOf("node-f", GONE)).find((e) => e.type === "nodeop.drain-requested")?.id,
    );
    expect(
      (await ledgerOf(GONE)).filter(
        (e) => e.type === "nodeop.disruption-released" && (e.data as { node: string }).node === "node-e",
      ),
    ).toHaveLength(1);
  });

  it("its instance retired by the provisioner: the Node deleted by node-ops releases it at once", async () => {
    // node-f holds the place since its drain (previous test); node-g is drained after it goes.
    const retired = "node-f";
    expect((await ledgerOf(GONE)).at(-1)?.data).toMatchObject({ node: retired, holders: [retired] });
    await appendAsOwner(store, { type: "cluster", id: GONE }, "cluster.instance-termination-requested", {
      slot: 1001,
      instanceId: retired,
    });
    // The instance goes, its kubelet with it: node-ops deletes the Node and records it.
    sim.world.kube.setNodeReady(GONE, retired, false);
    await until("node-f deleted", async () =>
      (await eventsOf(retired, GONE)).some((e) => e.type === "nodeop.node-deleted") ? true : undefined,
    );
    // Released by the deletion itself, before any node asked for the place.
    const released = await releaseOf(GONE, retired);
    expect((released.data as { reason: string }).reason).toMatch(
      /^its Node was deleted: its instance node-f was terminated by the provisioner/,
    );
    expect((await ledgerOf(GONE)).at(-1)?.type).toBe("nodeop.disruption-released");
    // The next drain takes the free place without waiting.
    const drain = await send("node.drain", "node-g", {}, GONE);
    await eventAfter("node-g", drain, "nodeop.drained", GONE);
    expect((await eventsOf("node-g", GONE)).some((e) => e.type === "nodeop.waiting")).toBe(false);
  });

  it("its instance retired after its Node was deleted by other hands: released by the retirement", async () => {
    // node-g holds the place since its drain (previous test).
    expect((await ledgerOf(GONE)).at(-1)?.data).toMatchObject({ node: "node-g", holders: ["node-g"] });
    await goneCore.deleteNode({ name: "node-g" });
    await appendAsOwner(store, { type: "cluster", id: GONE }, "cluster.instance-termination-requested", {
      slot: 1002,
      instanceId: "node-g",
    });
    // Nothing to delete, but the place goes back without any node having to ask for it.
    const released = await releaseOf(GONE, "node-g");
    expect((released.data as { reason: string }).reason).toBe(
      "its instance node-g was retired and its Node is gone",
    );
    expect((await eventsOf("node-g", GONE)).some((e) => e.type === "nodeop.node-deleted")).toBe(false);
  });
});

describe("two replicas of node-ops, three nodes retired at once (limit 1)", () => {
  let second: NodeOps | undefined;
  beforeAll(async () => {
    second = await startNodeOps(options());
  });
  afterAll(async () => {
    await second?.stop();
  });

  it("each drain goes through once the node before it is gone; every place is taken and given back once", async () => {
    const nodes = ["node-r1", "node-r2", "node-r3"];
    await until("the facts know the nodes", async () =>
      (await store.load({ type: "kube", id: REPLICAS })).events.filter(
        (e) => e.type === "kube.node-registered",
      ).length === nodes.length
        ? true
        : undefined,
    );
    // As the provisioner does: every surplus node's drain asked at once, each instance
    // terminated once its node is drained (its kubelet gone with it: NotReady).
    await Promise.all(nodes.map((n) => send("node.drain", n, {}, REPLICAS)));
    const retired = new Set<string>();
    await until(
      "every node drained and retired",
      async () => {
        for (const [i, node] of nodes.entries()) {
          if (retired.has(node)) continue;
          const events = await eventsOf(node, REPLICAS);
          if (!events.some((e) => e.type === "nodeop.drained")) continue;
          retired.add(node);
          await appendAsOwner(
            store,
            { type: "cluster", id: REPLICAS },
            "cluster.instance-termination-requested",
            {
              slot: 1000 + i,
              instanceId: node,
            },
          );
          sim.world.kube.setNodeReady(REPLICAS, node, false);
        }
        return retired.size === nodes.length ? true : undefined;
      },
      20_000,
    );
    for (const node of nodes) {
      const ended = (await eventsOf(node, REPLICAS)).filter(
        (e) => e.type === "nodeop.drained" || e.type === "nodeop.drain-failed",
      );
      expect({ node, ended: ended.map((e) => e.type) }).toEqual({ node, ended: ["nodeop.drained"] });
    }
    for (const node of nodes) await releaseOf(REPLICAS, node);
    // One at a time, and each admitted and released exactly once, whichever replica decided.
    const ledger = await ledgerOf(REPLICAS);
    for (const node of nodes)
      expect(ledger.filter((e) => (e.data as { node: string }).node === node).map((e) => e.type)).toEqual([
        "nodeop.disruption-admitted",
        "nodeop.disruption-released",
      ]);
    expect(
      ledger
        .filter((e) => e.type === "nodeop.disruption-admitted")
        .every((e) => (e.data as { holders: string[] }).holders.length === 1),
    ).toBe(true);
  });
});
