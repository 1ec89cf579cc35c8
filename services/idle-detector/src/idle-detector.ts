import {
  CommandBus,
  type CommandHandler,
  catalogue,
  type Nats,
  type RunnerLogger,
  type SessionCommand,
  type SessionEvent,
  serveAggregate,
} from "@cairn/events";
import { type Heartbeats, startHeartbeats } from "./heartbeats.ts";
import { loadQuotaPolicy, type QuotaPolicy } from "./quota-policy.ts";
import { createAdmission } from "./session/admission.ts";
import { startClusterFollower } from "./session/cluster-follower.ts";
import { createSessionDecider, type SessionState } from "./session/decider.ts";
import { DEFAULT_SESSION_POLICY, type SessionPolicy } from "./session/policy.ts";
import { startSessionReactor } from "./session/reactor.ts";
import { type SessionIndex, startSessionIndex } from "./session/session-index.ts";
import { type Sweeper, startSweeper } from "./session/sweep.ts";
import { startWorkloadFollower } from "./session/workload-follower.ts";

export interface IdleDetectorOptions {
  nats: Nats;
  logger?: RunnerLogger;
  policy?: Partial<SessionPolicy>;
  /** The quota policy; default: `loadQuotaPolicy(quotasFile)` (absent file: the defaults). */
  quotas?: QuotaPolicy;
  quotasFile?: string;
  /** How often the sweep runs while this process holds its lease (default 15 s). */
  sweepIntervalMs?: number;
  /** The sweep lease's time to live (default 10 s): how long a dead sweeper's sessions go unswept. */
  leaseTtlMs?: number;
  /** Heartbeat writes per session per process at most one per this (default 1 s). */
  heartbeatCoalesceMs?: number;
}

export interface IdleDetector {
  readonly handler: CommandHandler<SessionCommand, SessionEvent, SessionState>;
  readonly index: SessionIndex;
  readonly heartbeats: Heartbeats;
  readonly sweeper: Sweeper;
  readonly policy: SessionPolicy;
  stop(): Promise<void>;
}

/**
 * The idle-detector owns the `session` aggregate: it serves `cmd.session.>`, is the only
 * writer of `evt.session.*` (sessions and quota ledgers), admits sessions (cluster Ready,
 * quota), drives their workloads through node-ops, records heartbeats in KV and, under a
 * lease, sweeps for idle, over-age and dormant sessions. See docs/sessions.md.
 */
export async function startIdleDetector(o: IdleDetectorOptions): Promise<IdleDetector> {
  const policy: SessionPolicy = { ...DEFAULT_SESSION_POLICY, ...o.policy };
  const quotas = o.quotas ?? loadQuotaPolicy(o.quotasFile);
  const log = o.logger ? { logger: o.logger } : {};
  const {
    handler,
    store,
    stop: stopCommands,
  } = await serveAggregate({
    nats: o.nats,
    catalogue,
    decider: createSessionDecider(policy),
    commandPrefix: "session",
    durable: "idle-detector-commands",
    ...log,
  });
  const bus = new CommandBus({ js: o.nats.js, catalogue });
  const admission = createAdmission({ handler, store, policy: quotas });
  const reactor = await startSessionReactor({ nats: o.nats, handler, bus, admission, ...log });
  const follower = await startWorkloadFollower({ nats: o.nats, handler, ...log });
  const index = await startSessionIndex(o.nats);
  const clusters = await startClusterFollower({ nats: o.nats, handler, index, ...log });
  const heartbeats = await startHeartbeats({
    nc: o.nats.nc,
    index,
    ...(o.heartbeatCoalesceMs !== undefined ? { coalesceMs: o.heartbeatCoalesceMs } : {}),
  });
  const sweeper = await startSweeper({
    nc: o.nats.nc,
    handler,
    sessions: () => index.live(),
    traceOf: (id) => index.get(id)?.traceparent,
    lastActivity: (id) => heartbeats.lastActivity(id),
    ready: Promise.all([index.caughtUp, heartbeats.caughtUp]),
    policy,
    intervalMs: o.sweepIntervalMs ?? 15_000,
    ...(o.leaseTtlMs !== undefined ? { leaseTtlMs: o.leaseTtlMs } : {}),
    ...log,
  });
  return {
    handler,
    index,
    heartbeats,
    sweeper,
    policy,
    stop: async () => {
      await sweeper.stop();
      await heartbeats.stop();
      await stopCommands();
      await reactor.stop();
      await follower.stop();
      await clusters.stop();
      await index.stop();
    },
  };
}
