/**
 * The idle sweep. `planSweep` is pure: given every live session, their last activity and
 * the time, the decisions to propose:
 *  - Running, no activity since max(last heartbeat, Running since) for longer than its
 *    idle timeout plus the grace → `session.idle` (hibernation follows);
 *  - its maximum lifetime over (whatever its activity or state) → `session.end` lifetime;
 *  - Hibernated longer than the dormancy period → `session.end` dormancy.
 * Each proposal is named after the session and what the sweep saw (the Running period and
 * the activity; the hibernation; the lifetime), so a second sweeper, or the same one after
 * a SIGKILL, proposing the same thing decides nothing twice, and one that saw other
 * activity proposes what the session's decider then refuses to act on.
 *
 * `startSweeper` runs it every `intervalMs` while this process holds the sweep lease.
 * Each decision starts its own trace, linked to the session's lifecycle trace (DESIGN §4).
 */
import { hostname } from "node:os";
import {
  type CommandHandler,
  catalogue,
  derivedId,
  linkTo,
  newId,
  type ParsedCommand,
  PermanentError,
  type RunnerLogger,
  type SessionCommand,
  type SessionEvent,
  tracer,
} from "@cairn/events";
import { acquireLeadership, counter, type LeaderLease } from "@cairn/service";
import type { NatsConnection } from "@nats-io/transport-node";
import { context, ROOT_CONTEXT, SpanStatusCode, trace } from "@opentelemetry/api";
import type { SessionState } from "./decider.ts";
import type { SessionPolicy } from "./policy.ts";
import type { IndexedSession } from "./session-index.ts";

export const SWEEP_LEASE = "idle-detector.sweep";

export interface SweepProposal {
  readonly sessionId: string;
  /** What the sweep saw, for the command's id. */
  readonly seen: string;
  readonly command: SessionCommand;
}

export function planSweep(
  sessions: Iterable<[string, Pick<IndexedSession, "state">]>,
  lastActivity: (sessionId: string) => number | undefined,
  now: number,
  policy: SessionPolicy,
): SweepProposal[] {
  const out: SweepProposal[] = [];
  for (const [sessionId, { state: s }] of sessions) {
    const lifetimeEnd =
      Date.parse(s.createdAt ?? "") + (s.maxLifetimeSeconds ?? policy.maxLifetimeSeconds) * 1000;
    if (s.status !== "Terminating" && now >= lifetimeEnd) {
      out.push({
        sessionId,
        seen: "lifetime",
        command: {
          type: "session.end",
          data: {
            sessionId,
            cause: "lifetime",
            reason: `its maximum lifetime of ${s.maxLifetimeSeconds} s is over (created ${s.createdAt})`,
          },
        },
      });
      continue;
    }
    if (s.status === "Running" && s.runningSince) {
      const since = Date.parse(s.runningSince);
      const last = Math.max(since, lastActivity(sessionId) ?? 0);
      const timeout = s.idleTimeoutSeconds ?? policy.defaultIdleTimeoutSeconds;
      if (now - last >= (timeout + policy.idleGraceSeconds) * 1000) {
        const lastActivityAt = new Date(last).toISOString();
        out.push({
          sessionId,
          seen: `idle|${s.runningSince}|${lastActivityAt}`,
          command: { type: "session.idle", data: { sessionId, lastActivityAt } },
        });
      }
    }
    if (s.status === "Hibernated" && s.hibernatedAt) {
      if (now >= Date.parse(s.hibernatedAt) + policy.dormancySeconds * 1000)
        out.push({
          sessionId,
          seen: `dormancy|${s.hibernatedAt}`,
          command: {
            type: "session.end",
            data: {
              sessionId,
              cause: "dormancy",
              reason: `hibernated since ${s.hibernatedAt}, longer than the dormancy period of ${policy.dormancySeconds} s: its volume is released`,
            },
          },
        });
    }
  }
  return out;
}

/**
 * The command of a proposal, named after the session and what the sweep saw: the same
 * proposal from any sweeper, before or after a crash, is the same command.
 */
export function sweepCommand(p: SweepProposal): ParsedCommand {
  const parsed = catalogue.parseCommand({
    id: derivedId("idle-detector.sweep", p.sessionId, p.command.type, p.seen),
    type: p.command.type,
    data: p.command.data,
    meta: { actor: "idle-detector" },
  });
  if (!parsed.ok)
    throw new PermanentError(`the sweep built an invalid ${p.command.type}: ${parsed.error.message}`);
  return parsed.value;
}

export interface SweeperOptions {
  nc: NatsConnection;
  handler: CommandHandler<SessionCommand, SessionEvent, SessionState>;
  sessions: () => Iterable<[string, IndexedSession]>;
  traceOf: (sessionId: string) => string | undefined;
  lastActivity: (sessionId: string) => number | undefined;
  /** Resolves when the index and the activity are caught up: no sweep before. */
  ready: Promise<unknown>;
  policy: SessionPolicy;
  intervalMs: number;
  leaseTtlMs?: number;
  logger?: RunnerLogger;
  now?: () => number;
}

export interface Sweeper {
  /** One sweep now, if this process holds the lease; how many decisions appended events. */
  sweep(): Promise<{ proposed: number; decided: number } | undefined>;
  isLeader(): boolean;
  stop(): Promise<void>;
}

export async function startSweeper(o: SweeperOptions): Promise<Sweeper> {
  const now = o.now ?? Date.now;
  const decisions = counter("cairn_session_sweep_decisions_total", "Decisions of the idle sweep", [
    "kind",
    "outcome",
  ]);
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<unknown> | undefined;
  let leading = false;
  let lease: LeaderLease | undefined;

  const decide = async (p: SweepProposal) => {
    const parsed = sweepCommand(p);
    // Its own trace, linked to the session's lifecycle trace.
    const span = tracer().startSpan(
      `sweep ${p.command.type}`,
      { root: true, links: linkTo(o.traceOf(p.sessionId)), attributes: { "cairn.session.id": p.sessionId } },
      ROOT_CONTEXT,
    );
    try {
      return await context.with(trace.setSpan(ROOT_CONTEXT, span), () => o.handler.handle(parsed));
    } catch (err) {
      span.setStatus({ code: SpanStatusCode.ERROR, message: String(err) });
      throw err;
    } finally {
      span.end();
    }
  };

  const sweepOnce = async () => {
    if (!leading || !lease?.isLeader()) return undefined;
    await o.ready;
    const proposals = planSweep(o.sessions(), o.lastActivity, now(), o.policy);
    let decided = 0;
    for (const p of proposals) {
      // Deposed mid-sweep: stop; the next leader sweeps again (every decision is idempotent).
      if (!lease.isLeader()) break;
      const kind =
        p.command.type === "session.idle"
          ? "idle"
          : "cause" in p.command.data
            ? String(p.command.data.cause)
            : p.command.type;
      try {
        const outcome = await decide(p);
        decisions.inc({ kind, outcome: outcome.status });
        if (outcome.status === "accepted") decided++;
      } catch (err) {
        decisions.inc({ kind, outcome: "error" });
        o.logger?.warn(
          { session: p.sessionId, err: String(err) },
          "idle sweep: a decision failed; the next sweep tries again",
        );
      }
    }
    return { proposed: proposals.length, decided };
  };

  const sweep = () => {
    // One sweep at a time in a process.
    const next = (running ?? Promise.resolve()).then(sweepOnce, sweepOnce);
    running = next.catch(() => {});
    return next;
  };

  const tick = () => {
    timer = setTimeout(async () => {
      await sweep().catch((err: unknown) => o.logger?.error({ err: String(err) }, "idle sweep failed"));
      if (leading) tick();
    }, o.intervalMs);
  };

  lease = await acquireLeadership({
    nc: o.nc,
    name: SWEEP_LEASE,
    holder: `${hostname()}-${process.pid}-${newId()}`,
    ...(o.leaseTtlMs !== undefined ? { ttlMs: o.leaseTtlMs } : {}),
    onElected: () => {
      leading = true;
      clearTimeout(timer);
      tick();
    },
    onDeposed: () => {
      leading = false;
      clearTimeout(timer);
    },
  });

  return {
    sweep,
    isLeader: () => leading && (lease?.isLeader() ?? false),
    stop: async () => {
      leading = false;
      clearTimeout(timer);
      await lease?.release();
      await running;
    },
  };
}
