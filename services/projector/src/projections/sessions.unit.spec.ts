import { describe, expect, it } from "vitest";
import { everySessionEventCommits } from "../testing/every-event.ts";
import { anEnvelope, aTraceparent } from "../testing/fixtures.ts";
import { applyCommandEvent, commandIdsOf } from "./commands.ts";
import { applySessionEvent, foldSession, idleView, type SessionRow } from "./sessions.ts";

/** The fixture's commits of cluster `c`, as enveloped events with positions per aggregate and times a second apart. */
function history(c = "c") {
  const positions = new Map<string, number>();
  const out: { event: ReturnType<typeof anEnvelope>; sequence: number }[] = [];
  let sequence = 0;
  for (const commit of everySessionEventCommits(c)) {
    sequence++;
    const key = `${commit.aggregate.type}/${commit.aggregate.id}`;
    for (const e of commit.events) {
      const position = (positions.get(key) ?? 0) + 1;
      positions.set(key, position);
      const meta = {
        commandId: `cmd-${sequence}`,
        time: new Date(Date.UTC(2026, 10, 22, 9, 0, sequence)).toISOString(),
        ...(sequence === 1 ? { traceparent: TP } : {}),
      };
      out.push({ event: anEnvelope(commit.aggregate, position, e, meta), sequence });
    }
  }
  return out;
}
const TP = aTraceparent();

const upTo = (c: string, type: string, nth = 1) => {
  const h = history(c);
  let seen = 0;
  const i = h.findIndex((x) => x.event.type === type && x.event.aggregate.id === `${c}-s1` && ++seen === nth);
  return h.filter((x) => x.event.aggregate.id === `${c}-s1`).filter((x) => h.indexOf(x) <= i);
};

describe("applySessionEvent (the sessions read model)", () => {
  it("given session.requested, then a Pending row with the create's command and trace", () => {
    const row = foldSession(upTo("c", "session.requested"));
    expect(row).toMatchObject({
      id: "c-s1",
      user: "user-0",
      clusterId: "c",
      state: "Pending",
      template: { cpu: "1", memory: "2Gi" },
      idleTimeoutSeconds: 1800,
      createCommandId: "cmd-1",
      traceId: TP.split("-")[1],
      lastTransition: { type: "session.requested", cause: "user" },
      version: 1,
    });
  });

  it("given admitted and running, then Running on its node, with the groups", () => {
    const row = foldSession(upTo("c", "session.running"));
    expect(row).toMatchObject({ state: "Running", node: "i-c-a", pod: "p-c-s1-1", groups: [] });
    expect(row?.runningSince).toBe(row?.lastTransition.at);
  });

  it("given the sweep's idled + hibernating, then Hibernating (cause idle) with when and how long idle", () => {
    const row = foldSession(upTo("c", "session.hibernating"))!;
    expect(row.state).toBe("Hibernating");
    expect(row.lastTransition).toMatchObject({ type: "session.hibernating", cause: "idle" });
    expect(row.idledAt).toBe(row.updatedAt);
    expect(row.lastActivityAt).toBe("2026-11-22T08:00:00.000Z");
    expect(row.idleForSeconds).toBe((Date.parse(row.idledAt!) - Date.parse(row.lastActivityAt!)) / 1000);
  });

  it("given a connect while stopping, then hibernated, waking and running again: one wake, its latency", () => {
    const row = foldSession(upTo("c", "session.running", 2))!;
    expect(row).toMatchObject({
      state: "Running",
      node: "i-c-b",
      wakes: 1,
      wake: { cause: "connection", latencyMs: 1200 },
      lastTransition: { type: "session.running", cause: "connection" },
    });
    expect(row.hibernatedAt).not.toBeNull();
  });

  it("given the whole life, then Terminated with the volume released and the move recorded", () => {
    const row = foldSession(history("c").filter((x) => x.event.aggregate.id === "c-s1"))!;
    expect(row).toMatchObject({
      state: "Terminated",
      volumeReleased: true,
      moves: 1,
      lastMove: { fromNode: "i-c-b", toNode: "i-c-a", reason: "drain" },
      node: "i-c-a",
      lastTransition: { type: "session.terminated", cause: "user" },
      failure: null,
    });
  });

  it("given a create refused over quota, then Failed with the reason and the rejection's limit and usage", () => {
    const row = foldSession(history("c").filter((x) => x.event.aggregate.id === "c-s2"))!;
    expect(row.state).toBe("Failed");
    expect(row.failure).toMatchObject({ cause: "quota", from: "Pending", reason: /over quota/ });
    expect(row.rejection).toMatchObject({
      commandId: "create-c-s2",
      code: "over-quota",
      quota: { dimension: "sessions", limit: 1, usage: { sessions: 1 } },
    });
  });

  it("quota ledgers are not sessions; events before session.requested make no row; replays are ignored", () => {
    const h = history("c");
    const ledger = h.find((x) => x.event.aggregate.id.includes("="))!;
    expect(applySessionEvent(undefined, ledger.event, 1)).toBeUndefined();
    const running = h.find((x) => x.event.type === "session.running")!;
    expect(applySessionEvent(undefined, running.event, 1)).toBeUndefined();
    const row = foldSession(upTo("c", "session.running"))!;
    expect(applySessionEvent(row, running.event, 99)).toBe(row);
  });

  it("a refused create shows rejected under the create's id; the refusing command stays accepted", () => {
    const refusal = history("c").find((x) => x.event.type === "session.rejected")!;
    expect(commandIdsOf(refusal.event)).toEqual(["create-c-s2", refusal.event.meta.commandId]);
    expect(applyCommandEvent(undefined, refusal.event, 1, "create-c-s2")).toMatchObject({
      status: "rejected",
      code: "over-quota",
      commandType: "session.create",
    });
    expect(applyCommandEvent(undefined, refusal.event, 1)).toMatchObject({ status: "accepted" });
  });
});

describe("idleView (read time)", () => {
  const running = foldSession(upTo("c", "session.running")) as SessionRow;
  const since = Date.parse(running.runningSince!);

  it("a Running session goes idle its timeout plus the grace after its last activity", () => {
    const v = idleView(running, {
      heartbeatAt: since + 60_000,
      graceSeconds: 60,
      now: new Date(since + 120_000),
    });
    expect(v.lastActivity).toBe(new Date(since + 60_000).toISOString());
    expect(v.idleAt).toBe(new Date(since + 60_000 + (1800 + 60) * 1000).toISOString());
    expect(v.idleInSeconds).toBe(1800 + 60 - 60);
  });

  it("without a heartbeat, activity counts from when it became Running; not Running: no idle time", () => {
    const v = idleView(running, { heartbeatAt: undefined, graceSeconds: 0, now: new Date(since) });
    expect(v).toEqual({
      lastActivity: null,
      idleAt: new Date(since + 1800_000).toISOString(),
      idleInSeconds: 1800,
    });
    const hib = foldSession(upTo("c", "session.hibernating"))!;
    expect(idleView(hib, { heartbeatAt: undefined, graceSeconds: 0, now: new Date() })).toMatchObject({
      idleAt: null,
      idleInSeconds: null,
      lastActivity: "2026-11-22T08:00:00.000Z",
    });
  });
});
