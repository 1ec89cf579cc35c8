/**
 * The idle-detector on real NATS JetStream: sessions from create to Terminated, the idle
 * sweep, wake on connection, lifetimes, quota, and replicas. node-ops' workload side is
 * played by a stand-in (../testing/workload-stand-in.ts: it consumes `cmd.workload.>`
 * and records the workload events of the contract) until node-ops serves it.
 */
import {
  CommandBus,
  catalogue,
  clusterSessionsId,
  connectNats,
  EventStore,
  type Nats,
  startSessionActivity,
  userQuotaId,
} from "@cairn/events";
import {
  appendAsOwner,
  recordClusterRequested,
  startJetStream,
  type TestJetStream,
  until,
} from "@cairn/events/testing";
import { registry } from "@cairn/service";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { heartbeatSubject } from "../heartbeats.ts";
import { type IdleDetector, type IdleDetectorOptions, startIdleDetector } from "../idle-detector.ts";
import { quotaPolicyFrom } from "../quota-policy.ts";
import { startWorkloadStandIn, type WorkloadStandIn } from "../testing/workload-stand-in.ts";
import { initialSessionState } from "./decider.ts";
import { sweepCommand } from "./sweep.ts";

const template = { image: "ghcr.io/acme/ide:1", cpu: "500m", memory: "1Gi", storage: "1Gi" };
const FAST = { defaultIdleTimeoutSeconds: 1, idleGraceSeconds: 1 };

let js: TestJetStream;
let store: EventStore;
let bus: CommandBus;
let standIn: WorkloadStandIn;
const running: { detector: IdleDetector; nats: Nats }[] = [];

async function readyCluster(clusterId: string) {
  await recordClusterRequested(store, clusterId);
  await appendAsOwner(store, { type: "cluster", id: clusterId }, "cluster.ready", {
    nodes: 3,
    k3sVersion: "v1.31.4+k3s1",
  });
}

/** An idle-detector process with its own connection (a replica). */
async function detector(o: Partial<IdleDetectorOptions> = {}) {
  const nats = await connectNats(js.server.url);
  const d = await startIdleDetector({ nats, sweepIntervalMs: 200, leaseTtlMs: 1_500, policy: FAST, ...o });
  running.push({ detector: d, nats });
  return d;
}

const create = (sessionId: string, extra: object = {}, user = "alice") =>
  bus.send({
    type: "session.create",
    data: { sessionId, user, clusterId: "demo-1", template, ...extra },
    meta: { actor: user },
  });
const send = (type: string, sessionId: string) =>
  bus.send({ type, data: { sessionId }, meta: { actor: "alice" } });

async function events(id: string) {
  return (await store.load({ type: "session", id })).events;
}
async function statusOf(d: IdleDetector, id: string) {
  return (await d.handler.read({ type: "session", id })).state.status;
}
const reach = (d: IdleDetector, id: string, status: string, ms = 20_000) =>
  until(`session ${id} ${status}`, async () => (await statusOf(d, id)) === status, ms);

beforeEach(async () => {
  js = await startJetStream();
  store = new EventStore({ js: js.nats.js, jsm: js.nats.jsm, catalogue });
  bus = new CommandBus({ js: js.nats.js, catalogue });
  standIn = await startWorkloadStandIn(js.nats, { podReadyMs: 100 });
  await readyCluster("demo-1");
});
afterEach(async () => {
  for (const r of running.splice(0)) {
    await r.detector.stop().catch(() => {});
    await r.nats.close().catch(() => {});
  }
  await standIn.stop();
  await js.dispose();
});

describe("a session's life", () => {
  it("create → Running; heartbeats keep it alive past its idle timeout; silence → Hibernated; connect → Running with the wake latency; terminate → Terminated, quota given back", async () => {
    const d = await detector();
    await create("s-1", { idleTimeoutSeconds: 1 });
    await reach(d, "s-1", "Running");
    expect(standIn.commands.map((c) => c.type)).toEqual(["workload.start"]);
    expect(
      (await d.handler.read({ type: "session", id: userQuotaId("alice") })).state.ledger.holders,
    ).toHaveProperty("s-1");

    // Heartbeats with a connection, for longer than timeout + grace: still Running.
    const until4s = Date.now() + 4_000;
    while (Date.now() < until4s) {
      const answer = await js.nats.nc.request(heartbeatSubject("s-1"), JSON.stringify({ connections: 1 }));
      expect(answer.json()).toEqual({ ok: true, status: 200 });
      await new Promise((r) => setTimeout(r, 300));
    }
    expect(await statusOf(d, "s-1")).toBe("Running");
    // Zero connections is not activity: it goes idle all the same.
    const silentSince = Date.now();
    const hb0 = setInterval(
      () => js.nats.nc.publish(heartbeatSubject("s-1"), JSON.stringify({ connections: 0 })),
      200,
    );
    try {
      await reach(d, "s-1", "Hibernated");
    } finally {
      clearInterval(hb0);
    }
    const idled = (await events("s-1")).filter((e) => e.type === "session.idled");
    expect(idled).toHaveLength(1);
    // The heartbeats counted (the activity it saw is the last one written, writes being
    // coalesced to one a second), and it waited the timeout plus the grace after it.
    const seen = Date.parse((idled[0]!.data as { lastActivityAt: string }).lastActivityAt);
    expect(seen).toBeGreaterThanOrEqual(silentSince - 1_500);
    expect(Date.parse(idled[0]!.time) - seen).toBeGreaterThanOrEqual(2_000);
    expect((await events("s-1")).find((e) => e.type === "session.hibernating")?.data).toEqual({
      sessionId: "s-1",
      cause: "idle",
    });
    // No heartbeat ever touched the log: only transitions are there.
    expect((await events("s-1")).map((e) => e.type)).toEqual([
      "session.requested",
      "session.admitted",
      "session.running",
      "session.idled",
      "session.hibernating",
      "session.hibernated",
    ]);

    const before =
      (await registry.getSingleMetric("cairn_session_wake_seconds")?.get())?.values.find(
        (v) => (v as { metricName?: string }).metricName === "cairn_session_wake_seconds_count",
      )?.value ?? 0;
    await send("session.connect", "s-1");
    await reach(d, "s-1", "Running");
    const woke = (await events("s-1")).filter((e) => e.type === "session.running").at(-1)!;
    const latency = (woke.data as { wakeLatencyMs: number }).wakeLatencyMs;
    expect(latency).toBeGreaterThanOrEqual(100); // the stand-in's pod start-up
    expect((woke.data as { cause: string }).cause).toBe("connection");
    const after = (await registry.getSingleMetric("cairn_session_wake_seconds")?.get())?.values.find(
      (v) => (v as { metricName?: string }).metricName === "cairn_session_wake_seconds_count",
    )?.value;
    expect(after).toBe(before + 1);

    await send("session.terminate", "s-1");
    await reach(d, "s-1", "Terminated");
    expect(standIn.commands.at(-1)).toEqual({
      type: "workload.delete",
      data: { sessionId: "s-1", clusterId: "demo-1", releaseVolume: true },
    });
    await until("quota given back", async () => {
      const { state } = await d.handler.read({ type: "session", id: userQuotaId("alice") });
      return Object.keys(state.ledger.holders).length === 0;
    });
    // A heartbeat for a terminated session, or an unknown one, is answered clearly.
    const late = await js.nats.nc.request(heartbeatSubject("s-1"), JSON.stringify({ connections: 1 }));
    expect(late.json()).toMatchObject({ ok: false, status: 409 });
    // The index keeps nothing of an ended session but its status (one shared entry): its
    // user, cluster, template and trace are forgotten, so 20,000 ended sessions cost a map entry each.
    expect(d.index.get("s-1")?.state).toEqual({ ...initialSessionState(), status: "Terminated" });
    expect(d.index.get("s-1")?.traceparent).toBeUndefined();
    await until("index knows nothing of s-404", () => d.index.get("s-404") === undefined);
    const unknown = await js.nats.nc.request(heartbeatSubject("s-404"), JSON.stringify({ connections: 1 }));
    expect(unknown.json()).toMatchObject({ ok: false, status: 404 });
    const junk = await js.nats.nc.request(heartbeatSubject("s-1"), JSON.stringify({ connections: -1 }));
    expect(junk.json()).toMatchObject({ ok: false, status: 400 });
  }, 60_000);

  it("a maximum lifetime ends a session whatever its activity", async () => {
    const d = await detector({ policy: { defaultIdleTimeoutSeconds: 3600, idleGraceSeconds: 60 } });
    await create("s-2", { maxLifetimeSeconds: 2 });
    await reach(d, "s-2", "Running");
    const hb = setInterval(
      () => js.nats.nc.publish(heartbeatSubject("s-2"), JSON.stringify({ connections: 3 })),
      200,
    );
    try {
      await reach(d, "s-2", "Terminated");
    } finally {
      clearInterval(hb);
    }
    const terminating = (await events("s-2")).find((e) => e.type === "session.terminating");
    expect(terminating?.data).toMatchObject({ cause: "lifetime" });
    expect(Date.parse(terminating!.time) - Date.parse((await events("s-2"))[0]!.time)).toBeGreaterThanOrEqual(
      2_000,
    );
  }, 30_000);

  it("a session hibernated longer than the dormancy period is terminated, its volume released", async () => {
    const d = await detector({
      policy: { defaultIdleTimeoutSeconds: 3600, idleGraceSeconds: 60, dormancySeconds: 1 },
    });
    await create("s-d");
    await reach(d, "s-d", "Running");
    await send("session.hibernate", "s-d");
    await reach(d, "s-d", "Hibernated");
    await reach(d, "s-d", "Terminated");
    const history = await events("s-d");
    expect(history.find((e) => e.type === "session.terminating")?.data).toMatchObject({ cause: "dormancy" });
    expect(history.find((e) => e.type === "session.terminated")?.data).toMatchObject({
      cause: "dormancy",
      volumeReleased: true,
    });
    const hibernatedAt = Date.parse(history.find((e) => e.type === "session.hibernated")!.time);
    expect(
      Date.parse(history.find((e) => e.type === "session.terminating")!.time) - hibernatedAt,
    ).toBeGreaterThanOrEqual(1_000);
  }, 30_000);

  it("refused with a reason a person understands: no such cluster, cluster not Ready, over quota (limit and usage); a scheduling failure fails it saying why", async () => {
    const quotas = quotaPolicyFrom({ defaults: { sessions: 1 } });
    const d = await detector({ quotas });
    await bus.send({
      type: "session.create",
      data: { sessionId: "s-x", user: "bob", clusterId: "nowhere", template },
      meta: { actor: "bob" },
    });
    await recordClusterRequested(store, "building");
    await bus.send({
      type: "session.create",
      data: { sessionId: "s-y", user: "bob", clusterId: "building", template },
      meta: { actor: "bob" },
    });
    await reach(d, "s-x", "Failed");
    await reach(d, "s-y", "Failed");
    const rejected = async (id: string) =>
      (await events(id)).find((e) => e.type === "session.rejected")?.data;
    expect(await rejected("s-x")).toMatchObject({ code: "not-found", reason: "no such cluster: nowhere" });
    expect(await rejected("s-y")).toMatchObject({
      code: "conflict",
      reason: "cluster building is Pending, not Ready",
    });

    await create("s-3");
    await reach(d, "s-3", "Running");
    const second = await create("s-4");
    await reach(d, "s-4", "Failed");
    expect(await rejected("s-4")).toEqual({
      commandId: second.commandId,
      commandType: "session.create",
      code: "over-quota",
      reason: "over quota: user alice has 1 live session(s) and the limit is 1",
      quota: {
        scope: "user",
        owner: "alice",
        dimension: "sessions",
        limit: 1,
        usage: { sessions: 1, cpuMillis: 500, memoryBytes: 2 ** 30 },
        requested: { sessions: 1, cpuMillis: 500, memoryBytes: 2 ** 30 },
      },
    });
    // Terminating the first frees the place for the next.
    await send("session.terminate", "s-3");
    await reach(d, "s-3", "Terminated");
    await until("quota given back", async () => {
      const { state } = await d.handler.read({ type: "session", id: userQuotaId("alice") });
      return Object.keys(state.ledger.holders).length === 0;
    });
    await create("s-5");
    await reach(d, "s-5", "Running");
  }, 40_000);

  it("a pod that cannot be scheduled fails the session, saying why; a moved pod is in its history", async () => {
    await standIn.stop();
    standIn = await startWorkloadStandIn(js.nats, { failStart: (id) => id === "s-full" });
    const d = await detector({ policy: { defaultIdleTimeoutSeconds: 3600, idleGraceSeconds: 60 } });
    await create("s-full");
    await reach(d, "s-full", "Failed");
    expect((await events("s-full")).find((e) => e.type === "session.failed")?.data).toMatchObject({
      cause: "failure",
      reason: "start failed (no-capacity): 0/3 nodes are available: 3 Insufficient cpu",
      remediation: "add nodes to the cluster or ask for less CPU",
      from: "Starting",
    });
    await create("s-ok");
    await reach(d, "s-ok", "Running");
    await standIn.move("s-ok", "demo-1", "node-b");
    await until("moved", async () => (await events("s-ok")).some((e) => e.type === "session.moved"));
    expect((await d.handler.read({ type: "session", id: "s-ok" })).state.node).toBe("node-b");
  }, 30_000);
  it("a cluster being deleted ends its sessions (cause cluster-deleted), not another cluster's", async () => {
    const d = await detector({ policy: { defaultIdleTimeoutSeconds: 3600, idleGraceSeconds: 60 } });
    await readyCluster("other");
    await create("s-8");
    await bus.send({
      type: "session.create",
      data: { sessionId: "s-9", user: "alice", clusterId: "other", template },
      meta: { actor: "alice" },
    });
    await reach(d, "s-8", "Running");
    await reach(d, "s-9", "Running");
    // Each holds a place on its own cluster's session ledger (what a delete looks at).
    const onLedger = async (clusterId: string) =>
      Object.keys(
        (await d.handler.read({ type: "session", id: clusterSessionsId(clusterId) })).state.ledger.holders,
      );
    expect(await onLedger("demo-1")).toEqual(["s-8"]);
    expect(await onLedger("other")).toEqual(["s-9"]);
    await appendAsOwner(store, { type: "cluster", id: "demo-1" }, "cluster.deletion-requested", {
      force: true,
      sessions: [{ sessionId: "s-8", status: "Running" }],
    });
    await reach(d, "s-8", "Terminated");
    expect((await events("s-8")).find((e) => e.type === "session.terminating")?.data).toEqual({
      sessionId: "s-8",
      cause: "cluster-deleted",
      reason: "its cluster demo-1 is being deleted (forced)",
    });
    expect((await events("s-8")).find((e) => e.type === "session.terminated")?.data).toMatchObject({
      cause: "cluster-deleted",
    });
    // Its place is given back once it is Terminated; the other cluster's session keeps its own.
    await until("s-8's place given back", async () => (await onLedger("demo-1")).length === 0);
    expect(await statusOf(d, "s-9")).toBe("Running");
    expect(await onLedger("other")).toEqual(["s-9"]);
    // A Deleting cluster takes no new session: refused, saying so, its place given back.
    const late = await create("s-10");
    await reach(d, "s-10", "Failed");
    expect((await events("s-10")).find((e) => e.type === "session.rejected")?.data).toMatchObject({
      commandId: late.commandId,
      code: "conflict",
      reason: "cluster demo-1 is Deleting: it takes no new sessions",
    });
    expect(await onLedger("demo-1")).toEqual([]);
  }, 30_000);
});

describe("replicas and crashes", () => {
  it("a second replica takes over the sweep when the lease holder dies", async () => {
    const slow = { policy: { defaultIdleTimeoutSeconds: 3, idleGraceSeconds: 1 } };
    const a = await detector(slow);
    const b = await detector(slow);
    await until("one sweeper", () => a.sweeper.isLeader() !== b.sweeper.isLeader());
    const [leader, other] = a.sweeper.isLeader() ? [running[0]!, b] : [running[1]!, a];
    await create("s-6", { idleTimeoutSeconds: 3 });
    await reach(other, "s-6", "Running");
    // A heartbeat reaches one replica (a queue group) and every replica knows it; a
    // replica started later reads it from the bucket.
    await js.nats.nc.request(heartbeatSubject("s-6"), JSON.stringify({ connections: 2 }));
    const at = await until("a knows", () => a.heartbeats.lastActivity("s-6"));
    expect(await until("b knows", () => b.heartbeats.lastActivity("s-6"))).toBe(at);
    const late = await detector(slow);
    await late.heartbeats.caughtUp;
    expect(late.heartbeats.lastActivity("s-6")).toBe(at);
    // Another writer of the bucket (the API, for POST /sessions/:id/heartbeat): every
    // replica follows it, and an earlier time from anyone never replaces a later one.
    const api = await startSessionActivity({ nc: js.nats.nc, resolutionMs: 0 });
    try {
      await api.record("s-6", 1, at + 500);
      for (const d of [a, b, late])
        await until(
          "every replica follows the API's write",
          () => d.heartbeats.lastActivity("s-6") === at + 500,
        );
      await a.heartbeats.activity.record("s-6", 1, at + 100);
      expect(await api.load("s-6")).toBe(at + 500);
      const stored = await js.nats.jsm.direct.getMessage("KV_cairn_heartbeats", {
        last_by_subj: "$KV.cairn_heartbeats.s-6",
      });
      expect(stored?.json<{ at: number }>().at).toBe(at + 500);
    } finally {
      api.stop();
    }
    const lateProcess = running.pop()!;
    await lateProcess.detector.stop();
    await lateProcess.nats.close();
    // The leader dies without a word (its connection gone, its lease left to expire).
    await leader.nats.nc.close();
    await until("the other replica sweeps", () => other.sweeper.isLeader(), 10_000);
    await reach(other, "s-6", "Hibernated", 20_000);
    expect((await events("s-6")).filter((e) => e.type === "session.idled")).toHaveLength(1);
  }, 40_000);

  it("killed mid-sweep and restarted: no double hibernate (a decision seen twice is decided once)", async () => {
    const d1 = await detector();
    await create("s-7", { idleTimeoutSeconds: 1 });
    await reach(d1, "s-7", "Running");
    await until("d1 decided idle", async () => (await events("s-7")).some((e) => e.type === "session.idled"));
    // Killed right after its decision: nothing of its work in hand survives.
    await running[0]!.nats.nc.close();
    const d2 = await detector();
    await reach(d2, "s-7", "Hibernated");
    // The same sweep proposal decided again, by another process: a duplicate.
    const entry = (await events("s-7")).find((e) => e.type === "session.idled")!;
    const runningSince = (await events("s-7")).find((e) => e.type === "session.running")!.time;
    const again = await d2.handler.handle(
      sweepCommand({
        sessionId: "s-7",
        seen: `idle|${runningSince}|${(entry.data as { lastActivityAt: string }).lastActivityAt}`,
        command: {
          type: "session.idle",
          data: {
            sessionId: "s-7",
            lastActivityAt: (entry.data as { lastActivityAt: string }).lastActivityAt,
          },
        },
      }),
    );
    expect(["duplicate", "unchanged"]).toContain(again.status);
    const types = (await events("s-7")).map((e) => e.type);
    expect(types.filter((t) => t === "session.idled")).toHaveLength(1);
    expect(types.filter((t) => t === "session.hibernating")).toHaveLength(1);
    expect(types.filter((t) => t === "session.hibernated")).toHaveLength(1);
  }, 40_000);
});
