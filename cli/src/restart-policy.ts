/**
 * When a crashed service process starts again: exponential backoff with a cap, reset once
 * a process has stayed up for a while, and a crash-loop verdict over a sliding window.
 * Pure: the caller passes the clock readings in, so the schedule is a plain function of
 * the crash history (restart-policy.unit.spec.ts).
 *
 * @example
 * let history = NO_CRASHES;
 * const r = nextRestart(history, { startedAt: 0, exitedAt: 200 }, DEFAULT_RESTART_POLICY);
 * // r.delayMs === 1000; r.crashLoop === false; history = r.history
 */

export interface RestartPolicy {
  /** The delay before the first restart of a streak. */
  readonly initialDelayMs: number;
  /** Each further crash of a streak multiplies the delay by this. */
  readonly factor: number;
  /** The delay never exceeds this: a broken service is still retried, at this pace. */
  readonly maxDelayMs: number;
  /** A process that ran at least this long before it crashed was healthy: its streak starts over. */
  readonly resetAfterMs: number;
  /** `crashLoopCrashes` crashes within `crashLoopWindowMs` is a crash loop (logged loudly). */
  readonly crashLoopWindowMs: number;
  readonly crashLoopCrashes: number;
}

export const DEFAULT_RESTART_POLICY: RestartPolicy = {
  initialDelayMs: 1_000,
  factor: 2,
  maxDelayMs: 30_000,
  resetAfterMs: 60_000,
  crashLoopWindowMs: 120_000,
  crashLoopCrashes: 5,
};

/** What the policy remembers of one service's crashes. */
export interface CrashHistory {
  /** Crashes since the service last stayed up `resetAfterMs`. */
  readonly streak: number;
  /** When the crashes inside the crash-loop window happened (ms, ascending). */
  readonly recent: readonly number[];
}

export const NO_CRASHES: CrashHistory = { streak: 0, recent: [] };

export interface RestartDecision {
  readonly history: CrashHistory;
  /** How long to wait before starting the process again. */
  readonly delayMs: number;
  /** Crashes inside the window, this one included. */
  readonly crashesInWindow: number;
  /** The service crashes too often: keep restarting (at the capped pace) but say so loudly. */
  readonly crashLoop: boolean;
}

/**
 * The restart after a crash of a process that started at `startedAt` and exited at `exitedAt`.
 * Never throws; the delay is always within [0, maxDelayMs].
 */
export function nextRestart(
  history: CrashHistory,
  crash: { startedAt: number; exitedAt: number },
  policy: RestartPolicy,
): RestartDecision {
  const stayedUp = crash.exitedAt - crash.startedAt >= policy.resetAfterMs;
  const streak = stayedUp ? 0 : history.streak;
  const delayMs = Math.min(policy.maxDelayMs, policy.initialDelayMs * policy.factor ** streak);
  const recent = [
    ...history.recent.filter((t) => crash.exitedAt - t < policy.crashLoopWindowMs),
    crash.exitedAt,
  ];
  return {
    history: { streak: streak + 1, recent },
    delayMs,
    crashesInWindow: recent.length,
    crashLoop: recent.length >= policy.crashLoopCrashes,
  };
}
