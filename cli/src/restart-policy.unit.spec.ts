import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { type CrashHistory, NO_CRASHES, nextRestart, type RestartPolicy } from "./restart-policy.ts";

const policy: RestartPolicy = {
  initialDelayMs: 1_000,
  factor: 2,
  maxDelayMs: 30_000,
  resetAfterMs: 60_000,
  crashLoopWindowMs: 120_000,
  crashLoopCrashes: 5,
};

/** Crashes after the given uptimes, each restart taking exactly its delay; the decisions. */
function crashesAfter(uptimes: number[], p = policy) {
  let history: CrashHistory = NO_CRASHES;
  let now = 0;
  return uptimes.map((uptime) => {
    const r = nextRestart(history, { startedAt: now, exitedAt: now + uptime }, p);
    history = r.history;
    now += uptime + r.delayMs;
    return r;
  });
}

describe("nextRestart", () => {
  it("given a service that never crashed, when it crashes, then it restarts after the initial delay", () => {
    const [r] = crashesAfter([500]);
    expect(r).toMatchObject({ delayMs: 1_000, crashesInWindow: 1, crashLoop: false });
  });

  it("given a streak of quick crashes, then the delay doubles up to the cap", () => {
    const delays = crashesAfter(Array(8).fill(100)).map((r) => r.delayMs);
    expect(delays).toEqual([1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000, 30_000]);
  });

  it("given a streak, when the service then stays up past resetAfterMs before crashing, then the delay starts over", () => {
    const delays = crashesAfter([100, 100, 100, 60_000, 100]).map((r) => r.delayMs);
    expect(delays).toEqual([1_000, 2_000, 4_000, 1_000, 2_000]);
  });

  it("given four crashes in the window, when a fifth comes inside it, then it is a crash loop — still with a restart", () => {
    const rs = crashesAfter([100, 100, 100, 100, 100]);
    expect(rs.map((r) => r.crashLoop)).toEqual([false, false, false, false, true]);
    expect(rs[4]).toMatchObject({ crashesInWindow: 5, delayMs: 16_000 });
  });

  it("given crashes spread wider than the window, then it is no crash loop however many there are", () => {
    const rs = crashesAfter(Array(10).fill(59_000));
    expect(rs.every((r) => !r.crashLoop)).toBe(true);
    expect(Math.max(...rs.map((r) => r.crashesInWindow))).toBeLessThan(policy.crashLoopCrashes);
  });

  it("given a crash loop, when the crashes stop for a window, then the next crash is no crash loop", () => {
    const rs = crashesAfter([100, 100, 100, 100, 100, 200_000]);
    expect(rs[4]?.crashLoop).toBe(true);
    expect(rs[5]).toMatchObject({ crashLoop: false, crashesInWindow: 1, delayMs: 1_000 });
  });

  it("never waits longer than the cap nor less than nothing, and a streak's delays never shrink", () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: 59_999 }), { minLength: 1, maxLength: 60 }),
        (uptimes) => {
          const delays = crashesAfter(uptimes).map((r) => r.delayMs);
          for (const [i, d] of delays.entries()) {
            expect(d).toBeGreaterThanOrEqual(0);
            expect(d).toBeLessThanOrEqual(policy.maxDelayMs);
            if (i > 0) expect(d).toBeGreaterThanOrEqual(delays[i - 1] ?? 0);
          }
        },
      ),
    );
  });
});
