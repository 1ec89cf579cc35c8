/**
 * The idle-detector owns the session aggregate: quota admission, heartbeats, idle
 * detection, hibernation and wake-up (docs/sessions.md).
 */
export * from "./heartbeats.ts";
export * from "./idle-detector.ts";
export * from "./quota-policy.ts";
export * from "./session/decider.ts";
export * from "./session/policy.ts";
export * from "./session/quota.ts";
export { planSweep, SWEEP_LEASE, type SweepProposal, sweepCommand } from "./session/sweep.ts";
export { wakeLatency } from "./session/workload-follower.ts";

export const capabilities: readonly string[] = [
  "session.create",
  "session.hibernate",
  "session.wake",
  "session.connect",
  "session.terminate",
];
