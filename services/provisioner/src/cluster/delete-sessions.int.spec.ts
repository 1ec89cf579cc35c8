/**
 * Deleting a cluster that sessions live on, through the public command bus, the real EC2
 * adapter on the sim and the real `ClusterSessions` adapter on the log. The sessions are
 * recorded as their owner (the idle-detector) records them — a place on the cluster's
 * session ledger, each session's own history — so the provisioner reads exactly what it
 * reads in production; nobody ends them here unless the test does, which is how the
 * bound on the wait is seen. (test/cluster-delete-sessions.int.spec.ts runs the whole
 * thing with the real idle-detector and node-ops.)
 */
import {
  type AggregateRef,
  CommandBus,
  catalogue,
  clusterSessionsId,
  EventStore,
  exampleClusterCreate,
  type RecordedEvent,
} from "@cairn/events";
import { appendAsOwner, startJetStream, type TestJetStream } from "@cairn/events/testing";
import { SIM_CREDENTIALS, type Sim, startSim } from "@cairn/sim";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createEc2Compute } from "../adapters/ec2.ts";
import { type Provisioner, startProvisioner } from "../provisioner.ts";
import type { ClusterState } from "./decider.ts";

/** Short, so the bound is seen; long enough for a test to end a session inside it. */
const SESSIONS_END_TIMEOUT_MS = 4_000;

let js: TestJetStream;
let sim: Sim;
let provisioner: Provisioner;
let bus: CommandBus;
let store: EventStore;
const warnings: string[] = [];
const logger = {
  info() {},
  warn: (o: object, m?: string) => void warnings.push(`${m} ${JSON.stringify(o)}`),
  error: (o: object, m?: string) => void warnings.push(`${m} ${JSON.stringify(o)}`),
};

beforeAll(async () => {
  js = await startJetStream();
  sim = await startSim({ seed: 13, timeScale: 100 });
  provisioner = await startProvisioner({
    nats: js.nats,
    compute: createEc2Compute({ endpoint: sim.url, credentials: SIM_CREDENTIALS }),
    logger,
    pollMs: 20,
    maxPollMs: 100,
    sessionsEndTimeoutMs: SESSIONS_END_TIMEOUT_MS,
  });
  bus = new CommandBus({ js: js.nats.js, catalogue });
  store = new EventStore({ js: js.nats.js, jsm: js.nats.jsm, catalogue });
});
afterAll(async () => {
  await provisioner?.stop();
  await sim?.stop();
  await js?.dispose();
});

async function until<T>(what: string, f: () => Promise<T | undefined>, ms = 30_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}; ${warnings.slice(-3).join(" | ")}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
const stateOf = async (id: string): Promise<ClusterState> =>
  (await provisioner.handler.read({ type: "cluster", id }, { atLeastSequence: Number.MAX_SAFE_INTEGER }))
    .state;
const reaches = (id: string, status: string) =>
  until(`${id} ${status}`, async () => ((await stateOf(id)).status === status ? true : undefined));
const liveInstances = (id: string) =>
  sim.world.ec2
    .instances("eu-west-1")
    .filter((i) => i.tags["cairn:cluster"] === id && i.state !== "terminated" && i.state !== "shutting-down");
const clusterEvents = async (id: string) => (await store.load({ type: "cluster", id })).events;
/** The delete's outcome: the cluster event that answers the command. */
const answerTo = (id: string, commandId: string) =>
  until(`an answer to ${commandId}`, async () =>
    (await clusterEvents(id)).find(
      (e) => e.meta.commandId === commandId || (e.data as { commandId?: string }).commandId === commandId,
    ),
  );

const template = { image: "ghcr.io/acme/ide:1", cpu: "500m", memory: "1Gi", storage: "1Gi" };
const session = (id: string): AggregateRef => ({ type: "session", id });
/** A session on `clusterId`, recorded as the idle-detector records it: requested, its place taken, then `moves`. */
async function sessionOn(clusterId: string, sessionId: string, moves: [string, object][]) {
  await appendAsOwner(store, session(sessionId), "session.requested", {
    sessionId,
    user: "alice",
    clusterId,
    template,
    idleTimeoutSeconds: 1800,
    maxLifetimeSeconds: 86_400,
    cause: "user",
  });
  await appendAsOwner(store, session(clusterSessionsId(clusterId)), "session.quota-taken", {
    scope: "cluster",
    owner: clusterId,
    sessionId,
    cpuMillis: 500,
    memoryBytes: 2 ** 30,
    limits: {},
    usage: { sessions: 1, cpuMillis: 500, memoryBytes: 2 ** 30 },
  });
  for (const [type, data] of moves)
    await appendAsOwner(store, session(sessionId), type, { sessionId, ...data });
}
const running: [string, object][] = [
  ["session.admitted", { groups: [], cause: "user" }],
  ["session.running", { node: "n-1", cause: "user" }],
];
async function terminate(clusterId: string, sessionId: string) {
  await appendAsOwner(store, session(sessionId), "session.terminating", {
    sessionId,
    cause: "cluster-deleted",
  });
  await appendAsOwner(store, session(sessionId), "session.terminated", {
    sessionId,
    cause: "cluster-deleted",
    volumeReleased: true,
  });
  await appendAsOwner(store, session(clusterSessionsId(clusterId)), "session.quota-released", {
    scope: "cluster",
    owner: clusterId,
    sessionId,
    reason: "terminated (cluster-deleted)",
    usage: { sessions: 0, cpuMillis: 0, memoryBytes: 0 },
  });
}
const deleteCluster = (clusterId: string, force?: boolean) =>
  bus.send({
    type: "cluster.delete",
    data: { clusterId, ...(force !== undefined ? { force } : {}) },
    meta: { actor: "alice" },
  });

describe("deleting a cluster sessions live on", () => {
  it("is refused while they live, saying how many, in which states and which; once they are over it goes", async () => {
    await bus.send(exampleClusterCreate("del-1"));
    await reaches("del-1", "Configuring");
    await sessionOn("del-1", "s-run", running);
    await sessionOn("del-1", "s-new", []);
    // Over, though its place is not given back yet: not counted.
    await sessionOn("del-1", "s-gone", [
      ...running,
      ["session.terminating", { cause: "user" }],
      ["session.terminated", { cause: "user", volumeReleased: true }],
    ]);
    // Another cluster's session: not this one's.
    await sessionOn("elsewhere", "s-other", running);

    const refused = await deleteCluster("del-1");
    const answer = await answerTo("del-1", refused.commandId);
    expect(answer.type).toBe("cluster.rejected");
    expect(answer.data).toEqual({
      commandId: refused.commandId,
      commandType: "cluster.delete",
      code: "conflict",
      reason:
        "cluster del-1 has 2 live sessions (1 Pending, 1 Running: s-new, s-run); terminate them first, or send the delete with force: true to terminate them (cause cluster-deleted) before the cluster is deleted",
    });
    expect((await stateOf("del-1")).status).toBe("Configuring");
    expect(liveInstances("del-1")).toHaveLength(3);

    // The log, not a cache: each session ended since is seen at the next delete.
    await terminate("del-1", "s-run");
    const again = await answerTo("del-1", (await deleteCluster("del-1")).commandId);
    expect(again.data).toMatchObject({
      reason: expect.stringContaining("1 live session (1 Pending: s-new)"),
    });
    await appendAsOwner(store, session("s-new"), "session.failed", {
      sessionId: "s-new",
      cause: "failure",
      reason: "cluster del-1 is Deleting",
      from: "Pending",
    });
    const accepted = await answerTo("del-1", (await deleteCluster("del-1")).commandId);
    expect(accepted).toMatchObject({ type: "cluster.deletion-requested", data: {} });
    await reaches("del-1", "Deleted");
    expect(liveInstances("del-1")).toHaveLength(0);
  });

  it("with force: true it goes, and waits for the sessions to end before it terminates the instances", async () => {
    await bus.send(exampleClusterCreate("del-2"));
    await reaches("del-2", "Configuring");
    await sessionOn("del-2", "s-a", running);
    await sessionOn("del-2", "s-b", [...running, ["session.hibernating", { cause: "user" }]]);
    const forced = await deleteCluster("del-2", true);
    const answer = await answerTo("del-2", forced.commandId);
    expect(answer.type).toBe("cluster.deletion-requested");
    expect(answer.data).toEqual({
      force: true,
      sessions: [
        { sessionId: "s-a", status: "Running" },
        { sessionId: "s-b", status: "Hibernating" },
      ],
    });
    // The sessions live: the instances stay (the sessions' workloads need the nodes).
    await new Promise((r) => setTimeout(r, 1_000));
    expect((await stateOf("del-2")).status).toBe("Deleting");
    expect(liveInstances("del-2")).toHaveLength(3);
    await terminate("del-2", "s-a");
    await new Promise((r) => setTimeout(r, 300));
    expect(liveInstances("del-2")).toHaveLength(3);
    // The last one ends, well inside the bound: the instances go at once.
    const endedAt = Date.now();
    await terminate("del-2", "s-b");
    await reaches("del-2", "Deleted");
    expect(Date.now() - endedAt).toBeLessThan(SESSIONS_END_TIMEOUT_MS);
    const deleted = (await clusterEvents("del-2")).find((e) => e.type === "cluster.deleted");
    expect(deleted?.data).not.toHaveProperty("sessionsLeft");
  });

  it("a session that never ends holds the delete up only until the bound; the deletion names it", async () => {
    await bus.send(exampleClusterCreate("del-3"));
    await reaches("del-3", "Configuring");
    await sessionOn("del-3", "s-stuck", [...running, ["session.terminating", { cause: "cluster-deleted" }]]);
    const forced = await deleteCluster("del-3", true);
    const answer: RecordedEvent = await answerTo("del-3", forced.commandId);
    await reaches("del-3", "Deleted");
    const deleted = (await clusterEvents("del-3")).find((e) => e.type === "cluster.deleted");
    expect(Date.parse(deleted?.time ?? "") - Date.parse(answer.time)).toBeGreaterThanOrEqual(
      SESSIONS_END_TIMEOUT_MS,
    );
    expect(deleted?.data).toMatchObject({ sessionsLeft: [{ sessionId: "s-stuck", status: "Terminating" }] });
    expect(liveInstances("del-3")).toHaveLength(0);
    expect(warnings.some((w) => w.startsWith("sessions did not end in time") && w.includes("s-stuck"))).toBe(
      true,
    );
  });

  it("a second delete while Deleting changes nothing, forced or not", async () => {
    await bus.send(exampleClusterCreate("del-4"));
    await reaches("del-4", "Configuring");
    await sessionOn("del-4", "s-x", running);
    await answerTo("del-4", (await deleteCluster("del-4", true)).commandId);
    const before = (await clusterEvents("del-4")).length;
    const plain = await deleteCluster("del-4");
    const forced = await deleteCluster("del-4", true);
    await new Promise((r) => setTimeout(r, 500));
    const after = await clusterEvents("del-4");
    expect(
      after.filter((e) => e.meta.commandId === plain.commandId || e.meta.commandId === forced.commandId),
    ).toEqual([]);
    expect(after.filter((e) => e.type === "cluster.deletion-requested")).toHaveLength(1);
    expect(after.length).toBeGreaterThanOrEqual(before);
    await terminate("del-4", "s-x");
    await reaches("del-4", "Deleted");
  });
});
