/**
 * The cluster-wide disruption limit on the simulated cloud (limit 1): a second cordon
 * waits (`nodeop.waiting` naming the holder) and goes through once the first node is
 * uncordoned; `force: true` goes past the limit; a drain that waits past its deadline
 * fails without touching the node.
 */
import {
  CommandBus,
  catalogue,
  EventStore,
  nodeAggregateId,
  nodeopLimitId,
  type RecordedEvent,
} from "@cairn/events";
import { startJetStream, type TestJetStream, until } from "@cairn/events/testing";
import { SIM_CREDENTIALS, type Sim, startSim } from "@cairn/sim";
import type { CoreV1Api } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type NodeOps, startNodeOps } from "../node-ops.ts";
import { simCluster } from "../testing/sim-cluster.ts";

const CLUSTER = "limit-1";
let js: TestJetStream;
let sim: Sim;
let nodeOps: NodeOps;
let bus: CommandBus;
let store: EventStore;
let core: CoreV1Api;

beforeAll(async () => {
  js = await startJetStream();
  sim = await startSim({ seed: 14, timeScale: 100 });
  store = new EventStore({ js: js.nats.js, jsm: js.nats.jsm, catalogue });
  ({ core } = await simCluster(sim, store, CLUSTER, ["node-a", "node-b", "node-c", "node-d"]));
  nodeOps = await startNodeOps({
    nats: js.nats,
    ssm: { endpoint: sim.url, credentials: SIM_CREDENTIALS },
    facts: false,
    limit: { max: 1, pollMs: 20, maxPollMs: 100 },
  });
  bus = new CommandBus({ js: js.nats.js, catalogue });
}, 30_000);
afterAll(async () => {
  await nodeOps?.stop();
  await sim?.stop();
  await js?.dispose();
});

const eventsOf = async (node: string) =>
  (await store.load({ type: "nodeop", id: nodeAggregateId(CLUSTER, node) })).events;
const eventAfter = (node: string, commandId: string, type: string) =>
  until<RecordedEvent>(`${type} on ${node}`, async () => {
    const events = await eventsOf(node);
    const from = events.findIndex((e) => e.meta.commandId === commandId);
    return from < 0 ? undefined : events.slice(from).find((e) => e.type === type);
  });
const send = async (type: string, node: string, data: object = {}) =>
  (
    await bus.send({
      type,
      data: { clusterId: CLUSTER, node, reason: "rolling upgrade", ...data },
      meta: { actor: "installer" },
    })
  ).commandId;
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
