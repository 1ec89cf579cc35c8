import { describe, expect, it } from "vitest";
import type { SessionState } from "./decider.ts";
import { initialSessionState } from "./decider.ts";
import { DEFAULT_SESSION_POLICY } from "./policy.ts";
import { planSweep } from "./sweep.ts";

const T0 = Date.parse("2026-01-01T00:00:00.000Z");
const iso = (ms: number) => new Date(ms).toISOString();
const session = (s: Partial<SessionState>): SessionState => ({
  ...initialSessionState(),
  status: "Running",
  createdAt: iso(T0),
  runningSince: iso(T0),
  idleTimeoutSeconds: 1800,
  maxLifetimeSeconds: 86_400,
  ...s,
});
const plan = (s: SessionState, now: number, activity?: number) =>
  planSweep([["s-1", { state: s }]], () => activity, now, DEFAULT_SESSION_POLICY);

describe("planSweep", () => {
  it("Running with no heartbeat: idle once the timeout plus the grace have passed since it became Running", () => {
    expect(plan(session({}), T0 + 1859_000)).toEqual([]);
    expect(plan(session({}), T0 + 1860_000)).toEqual([
      {
        sessionId: "s-1",
        seen: `idle|${iso(T0)}|${iso(T0)}`,
        command: { type: "session.idle", data: { sessionId: "s-1", lastActivityAt: iso(T0) } },
      },
    ]);
  });
  it("a heartbeat moves the idle time; an old heartbeat from before it became Running does not count", () => {
    expect(plan(session({}), T0 + 1860_000, T0 + 60_000)).toEqual([]);
    const woke = session({ runningSince: iso(T0 + 3600_000) });
    expect(plan(woke, T0 + 3600_000 + 1860_000, T0 + 60_000)[0]?.command).toEqual({
      type: "session.idle",
      data: { sessionId: "s-1", lastActivityAt: iso(T0 + 3600_000) },
    });
  });
  it("its lifetime over: ended whatever its activity or state (not while already Terminating)", () => {
    for (const status of ["Running", "Hibernated", "Starting"] as const)
      expect(plan(session({ status }), T0 + 86_400_000, T0 + 86_399_000)[0]?.command).toMatchObject({
        type: "session.end",
        data: { cause: "lifetime" },
      });
    expect(plan(session({ status: "Terminating" }), T0 + 86_400_000)).toEqual([]);
  });
  it("Hibernated longer than the dormancy period: ended, named after its hibernation", () => {
    const h = session({ status: "Hibernated", hibernatedAt: iso(T0), maxLifetimeSeconds: 10 ** 8 });
    expect(plan(h, T0 + 14 * 86_400_000 - 1)).toEqual([]);
    expect(plan(h, T0 + 14 * 86_400_000)).toMatchObject([
      { seen: `dormancy|${iso(T0)}`, command: { type: "session.end", data: { cause: "dormancy" } } },
    ]);
  });
});
