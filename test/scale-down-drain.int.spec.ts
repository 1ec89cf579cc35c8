/**
 * Removing several nodes at once on the simulated cloud, through the real parts (the
 * provisioner, the installer and node-ops on a disposable JetStream and the sim): a
 * rollback and a scale down that each remove two workers. Each surplus node is drained
 * through node-ops before its instance goes, one at a time under the cluster-wide
 * disruption limit (1 here: 10% of five nodes). A node drained for retirement stays
 * cordoned, so its place must be released when its Node is gone — else the second
 * drain waits on a node that no longer exists until the provisioner's drain deadline
 * (SCALE_DOWN_DRAIN_SECONDS, five minutes) terminates its instance undrained.
 */
import {
  type CommandBus,
  catalogue,
  EventStore,
  exampleClusterCreate,
  nodeAggregateId,
  nodeopLimitId,
  type RecordedEvent,
} from "@cairn/events";
import type { TestJetStream } from "@cairn/events/testing";
import { type ControlPlane, startControlPlane } from "@cairn/installer/testing";
import type { Provisioner } from "@cairn/provisioner";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

/** Well under the provisioner's drain deadline (300 s): two drains of idle nodes, one after the other. */
const BOUND_MS = 45_000;

let plane: ControlPlane;
let js: TestJetStream;
let provisioner: Provisioner;
let bus: CommandBus;
const logLines: string[] = [];
const logger = {
  info() {},
  warn: (o: object, m?: string) => void logLines.push(`${m} ${JSON.stringify(o)}`),
  error: (o: object, m?: string) => void logLines.push(`${m} ${JSON.stringify(o)}`),
};

beforeAll(async () => {
  plane = await startControlPlane({
    seed: 31,
    logger,
    nodeOps: { drain: { pollMs: 20, maxPollMs: 100 } },
    installer: { reactor: { maxPollMs: 100 } },
  });
  ({ js, provisioner, bus } = plane);
}, 60_000);
afterAll(async () => {
  await plane?.stop();
});

async function until<T>(
  what: string,
  f: () => Promise<T | undefined>,
  ms = 50_000,
  why: () => Promise<string> = async () => "",
): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v !== undefined) return v;
    if (Date.now() > end)
      throw new Error(
        `timed out waiting for ${what}; ${await why()} last log: ${logLines.slice(-5).join(" | ")}`,
      );
    await new Promise((r) => setTimeout(r, 20));
  }
}
const store = () => new EventStore({ js: js.nats.js, jsm: js.nats.jsm, catalogue });
const clusterState = async (id: string) =>
  (await provisioner.handler.read({ type: "cluster", id }, { atLeastSequence: Number.MAX_SAFE_INTEGER }))
    .state;
const clusterEvents = async (id: string) => (await store().load({ type: "cluster", id })).events;
const nodeopEvents = async (clusterId: string, node: string) =>
  (await store().load({ type: "nodeop", id: nodeAggregateId(clusterId, node) })).events;
const workers = async (id: string) => {
  const s = await clusterState(id);
  if (s.status === "Absent") throw new Error(`no cluster ${id}`);
  return Object.values(s.slots).filter((x) => x.pool === "workers");
};
const ready = (id: string, count: number) =>
  until(`${id} Ready with ${count} workers`, async () => {
    const s = await clusterState(id);
    // A scale keeps the cluster Ready while it launches: every worker running too, or the
    // new slots would be counted before they have an instance.
    const w = await workers(id);
    return s.status === "Ready" &&
      w.length === count &&
      w.every((x) => x.status === "running" && x.instanceId)
      ? true
      : undefined;
  });

/**
 * Sends `command`, waits until every surplus slot's instance is terminated, and checks
 * it took the drains' time, not the deadline: each surplus node's drain ended drained,
 * and none was terminated "anyway".
 */
async function removesTwoWithinTheDrainTime(id: string, command: { type: string; data: object }) {
  const before = (await workers(id)).map((w) => ({ slot: w.slot, node: w.instanceId ?? "" }));
  const startedAt = Date.now();
  const sent = await bus.send({ ...command, meta: { actor: "alice" } });
  const surplus = await until("the surplus slots", async () => {
    const events = await clusterEvents(id);
    const from = events.findIndex((e) => e.meta.commandId === sent.commandId);
    const slots = events
      .slice(Math.max(0, from))
      .filter((e) => e.type === "cluster.instance-termination-requested")
      .map((e) => (e.data as { slot: number }).slot);
    return slots.length === 2 ? slots : undefined;
  });
  const terminated = async (slot: number) =>
    (await clusterEvents(id)).some(
      (e) =>
        e.type === "cluster.instance-terminated" &&
        (e.data as { slot: number }).slot === slot &&
        Date.parse(e.time) >= startedAt,
    );
  const nodeOf = (slot: number) => before.find((b) => b.slot === slot)?.node ?? `slot ${slot}`;
  await until(
    "both surplus instances terminated",
    async () => ((await Promise.all(surplus.map(terminated))).every(Boolean) ? true : undefined),
    BOUND_MS - (Date.now() - startedAt),
    // Where each drain is, and who holds the ledger's places.
    async () => {
      const last = await Promise.all(
        surplus.map(async (s) => `${nodeOf(s)}: ${(await nodeopEvents(id, nodeOf(s))).at(-1)?.type}`),
      );
      const ledger = (await store().load({ type: "nodeop", id: nodeopLimitId(id) })).events;
      return `${last.join(", ")}; holders: ${heldBy(ledger).join(", ")};`;
    },
  );
  expect(Date.now() - startedAt).toBeLessThan(BOUND_MS);
  // Every surplus node was drained, none timed out waiting for the limit.
  for (const slot of surplus) {
    const node = nodeOf(slot);
    const ops = await nodeopEvents(id, node);
    const ended = ops.filter((e) => e.type === "nodeop.drained" || e.type === "nodeop.drain-failed");
    expect({ node, ended: ended.map((e) => e.type) }).toEqual({ node, ended: ["nodeop.drained"] });
  }
  expect(logLines.filter((l) => l.includes("terminating it anyway"))).toEqual([]);
  // Their places on the cluster's disruption ledger were given back: none of them still
  // counts. (The last one's is released once its Node is deleted, just after its instance
  // is terminated: a moment to wait for, not a deadline.)
  const ledger = await until(
    "the surplus nodes' places released",
    async () => {
      const events = (await store().load({ type: "nodeop", id: nodeopLimitId(id) })).events;
      const held = heldBy(events);
      return surplus.every((slot) => !held.includes(nodeOf(slot))) ? events : undefined;
    },
    10_000,
  ).catch(async () => (await store().load({ type: "nodeop", id: nodeopLimitId(id) })).events);
  const holders = heldBy(ledger);
  for (const slot of surplus) {
    expect(holders).not.toContain(nodeOf(slot));
    // Released because the node is gone (it stayed cordoned after its drain), and saying so.
    const release = ledger.findLast(
      (e) => e.type === "nodeop.disruption-released" && (e.data as { node: string }).node === nodeOf(slot),
    );
    expect((release?.data as { reason?: string } | undefined)?.reason).toMatch(/deleted|gone|left/);
  }
}

/** Who holds a place on a disruption ledger, from its events. */
const heldBy = (ledger: RecordedEvent[]) =>
  ledger.reduce<string[]>((held, e) => {
    const d = e.data as { node: string; holders?: string[] };
    if (e.type === "nodeop.disruption-admitted") return d.holders ?? held;
    if (e.type === "nodeop.disruption-released") return held.filter((n) => n !== d.node);
    return held;
  }, []);

describe("removing two nodes at once (disruption limit 1)", () => {
  it("a rollback that removes two workers drains both within the drain time, not the deadline", async () => {
    const id = "shrink-1";
    await bus.send(exampleClusterCreate(id));
    await ready(id, 2);
    await bus.send({ type: "cluster.scale", data: { clusterId: id, pool: "workers", count: 4 } });
    await ready(id, 4);
    await removesTwoWithinTheDrainTime(id, {
      type: "cluster.rollback",
      data: { clusterId: id, toVersion: 1 },
    });
    await ready(id, 2);
  }, 180_000);

  it("a scale down by two drains both within the drain time, not the deadline", async () => {
    const id = "shrink-2";
    const c = exampleClusterCreate(id);
    await bus.send({
      ...c,
      data: { ...c.data, pools: c.data.pools.map((p) => ({ ...p, count: 4 })) },
    });
    await ready(id, 4);
    await removesTwoWithinTheDrainTime(id, {
      type: "cluster.scale",
      data: { clusterId: id, pool: "workers", count: 2 },
    });
    await ready(id, 2);
  }, 120_000);
});
