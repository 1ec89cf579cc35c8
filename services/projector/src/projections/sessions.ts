/**
 * The `sessions` read model as a pure fold: `applySessionEvent(row, event, sequence)`,
 * one row per session (the quota ledgers, ids holding `=`, are not sessions). The status
 * is the shared lifecycle's (`sessionTransition`, libs/events), which the idle-detector's
 * `evolve` applies too; this fold adds the columns people read: the cause of the last
 * transition, failure and rejection, idle and wake figures, the node, the trace.
 *
 * Only event times and data go in, never the projector's clock, so a replay folds the
 * very same rows. What depends on now (when it will go idle, the last heartbeat in the
 * KV bucket) is added when the API reads the row.
 */
import {
  type CairnEvent,
  type EventEnvelope,
  isQuotaLedgerId,
  type QuotaBreach,
  type SessionCause,
  type SessionEvent,
  type SessionStatus,
  type SessionTemplate,
  sessionTransition,
  traceIdOf,
} from "@cairn/events";

export interface SessionRow {
  readonly id: string;
  readonly user: string;
  readonly clusterId: string;
  readonly state: SessionStatus;
  readonly template: SessionTemplate;
  readonly idleTimeoutSeconds: number;
  readonly maxLifetimeSeconds: number;
  /** The groups whose quota it also counts against (known once admitted). */
  readonly groups: readonly string[];
  /** Where its pod runs (or last ran). */
  readonly node: string | null;
  readonly pod: string | null;
  /** The event that made the last transition, its time and its cause. */
  readonly lastTransition: {
    readonly type: string;
    readonly at: string;
    readonly cause: SessionCause | null;
  };
  /** When it last became Running (activity counts from here when no heartbeat came since). */
  readonly runningSince: string | null;
  /** The latest activity the log knows of: the idle sweep's `lastActivityAt`. Heartbeats live in the KV bucket. */
  readonly lastActivityAt: string | null;
  /** When the sweep last found it idle (`session.idled`), and how long it had been idle then. */
  readonly idledAt: string | null;
  readonly idleForSeconds: number | null;
  readonly hibernatedAt: string | null;
  /** The last wake: when asked (connect or wake) and, once Running, its latency. */
  readonly wake: {
    readonly cause: SessionCause;
    readonly requestedAt: string;
    readonly latencyMs: number | null;
  } | null;
  readonly wakes: number;
  /** Its pod evicted and back elsewhere: how often, and the last move. */
  readonly moves: number;
  readonly lastMove: {
    readonly fromNode: string;
    readonly toNode: string;
    readonly reason: string | null;
    readonly at: string;
  } | null;
  readonly failure: {
    readonly reason: string;
    readonly remediation: string | null;
    readonly from: SessionStatus;
    readonly cause: SessionCause;
  } | null;
  /** The last command refused on it (over quota: with the limit passed and the usage). */
  readonly rejection: {
    readonly commandId: string;
    readonly commandType: string;
    readonly code: string;
    readonly reason: string;
    readonly quota: QuotaBreach | null;
    readonly at: string;
  } | null;
  readonly volumeReleased: boolean | null;
  /** The create's command id: what `POST /sessions` follows. */
  readonly createCommandId: string | null;
  /** The session's lifecycle trace (its create's). */
  readonly traceId: string | null;
  /** Number of events of the session (its position). */
  readonly version: number;
  readonly createdAt: string;
  readonly updatedAt: string;
  readonly lastEventType: string;
  readonly lastSequence: number;
}

type SessionEnvelope = EventEnvelope<SessionEvent>;

/** Whether the event is a session's own (not a quota ledger's). */
export function isSessionEvent(event: CairnEvent): event is CairnEvent & SessionEnvelope {
  return event.aggregate.type === "session" && !isQuotaLedgerId(event.aggregate.id);
}

/**
 * The session row after one more event. `session.requested` creates it; every other
 * event of a session never requested leaves no row (a rejected create of an id that
 * does not exist). Like clusters, an event at or below the row's version is ignored.
 */
export function applySessionEvent(
  row: SessionRow | undefined,
  event: CairnEvent,
  sequence: number,
): SessionRow | undefined {
  if (!isSessionEvent(event)) return row;
  if (row && event.position <= row.version) return row;
  const e = event as SessionEnvelope;
  const at = e.time;
  let base: SessionRow;
  if (!row) {
    if (e.type !== "session.requested") return undefined;
    const d = e.data;
    base = {
      id: e.aggregate.id,
      user: d.user,
      clusterId: d.clusterId,
      state: "Pending",
      template: d.template,
      idleTimeoutSeconds: d.idleTimeoutSeconds,
      maxLifetimeSeconds: d.maxLifetimeSeconds,
      groups: [],
      node: null,
      pod: null,
      lastTransition: { type: e.type, at, cause: d.cause },
      runningSince: null,
      lastActivityAt: null,
      idledAt: null,
      idleForSeconds: null,
      hibernatedAt: null,
      wake: null,
      wakes: 0,
      moves: 0,
      lastMove: null,
      failure: null,
      rejection: null,
      volumeReleased: null,
      createCommandId: e.meta.commandId ?? null,
      traceId: traceIdOf(e.meta.traceparent) ?? null,
      version: e.position,
      createdAt: at,
      updatedAt: at,
      lastEventType: e.type,
      lastSequence: sequence,
    };
    return base;
  }
  const to = sessionTransition(row.state, e);
  base = {
    ...row,
    ...(to ? { state: to, lastTransition: { type: e.type, at, cause: causeOf(e) } } : {}),
    version: e.position,
    updatedAt: at,
    lastEventType: e.type,
    lastSequence: sequence,
  };
  switch (e.type) {
    case "session.admitted":
      return { ...base, groups: e.data.groups };
    case "session.running": {
      const { wakeLatencyMs, node, pod } = e.data;
      return {
        ...base,
        node,
        pod: pod ?? null,
        runningSince: at,
        wake:
          base.wake && wakeLatencyMs !== undefined ? { ...base.wake, latencyMs: wakeLatencyMs } : base.wake,
      };
    }
    case "session.idled": {
      const idleFor = Math.floor((Date.parse(at) - Date.parse(e.data.lastActivityAt)) / 1000);
      return {
        ...base,
        idledAt: at,
        idleForSeconds: Number.isFinite(idleFor) ? idleFor : null,
        lastActivityAt: latest(base.lastActivityAt, e.data.lastActivityAt),
      };
    }
    case "session.hibernated":
      return { ...base, hibernatedAt: at };
    case "session.wake-requested":
      return { ...base, wake: { cause: e.data.cause, requestedAt: at, latencyMs: null } };
    // Every wake passes here once (one asked for while stopping too, once Hibernated).
    case "session.waking":
      return {
        ...base,
        wake: { cause: e.data.cause, requestedAt: e.data.requestedAt, latencyMs: null },
        wakes: base.wakes + 1,
      };
    case "session.moved": {
      const { fromNode, toNode, reason } = e.data;
      return {
        ...base,
        node: toNode,
        moves: base.moves + 1,
        lastMove: { fromNode, toNode, reason: reason ?? null, at },
      };
    }
    case "session.terminated":
      return { ...base, volumeReleased: e.data.volumeReleased };
    case "session.failed": {
      const { reason, remediation, from, cause } = e.data;
      return { ...base, failure: { reason, remediation: remediation ?? null, from, cause } };
    }
    case "session.rejected": {
      const { commandId, commandType, code, reason, quota } = e.data;
      return { ...base, rejection: { commandId, commandType, code, reason, quota: quota ?? null, at } };
    }
    default:
      return base;
  }
}

/** Folds a session's history in memory (the point-in-time view). */
export function foldSession(
  events: readonly { event: CairnEvent; sequence: number }[],
  initial?: SessionRow,
): SessionRow | undefined {
  let row = initial;
  for (const { event, sequence } of events) row = applySessionEvent(row, event, sequence);
  return row;
}

function causeOf(e: SessionEnvelope): SessionCause | null {
  const d = e.data;
  return "cause" in d && typeof d.cause === "string" ? (d.cause as SessionCause) : null;
}

const latest = (a: string | null, b: string) => (a === null || Date.parse(b) > Date.parse(a) ? b : a);

/**
 * What the API adds to a row at read time, from now and the last heartbeat: the last
 * activity (the later of the KV bucket's and the log's, or when it became Running), and
 * for a Running session when it will be found idle (`idleAt` = activity + idle timeout +
 * grace) and in how many seconds. Null when not Running.
 */
export function idleView(
  row: SessionRow,
  o: { heartbeatAt: number | undefined; graceSeconds: number; now: Date },
): { lastActivity: string | null; idleAt: string | null; idleInSeconds: number | null } {
  const candidates = [o.heartbeatAt, ms(row.lastActivityAt)].filter((x): x is number => x !== undefined);
  const lastActivityMs = candidates.length > 0 ? Math.max(...candidates) : undefined;
  const lastActivity = lastActivityMs !== undefined ? new Date(lastActivityMs).toISOString() : null;
  if (row.state !== "Running" || row.runningSince === null)
    return { lastActivity, idleAt: null, idleInSeconds: null };
  const since = Math.max(lastActivityMs ?? 0, Date.parse(row.runningSince));
  const idleAtMs = since + (row.idleTimeoutSeconds + o.graceSeconds) * 1000;
  return {
    lastActivity,
    idleAt: new Date(idleAtMs).toISOString(),
    idleInSeconds: Math.max(0, Math.ceil((idleAtMs - o.now.getTime()) / 1000)),
  };
}

const ms = (iso: string | null) => (iso === null ? undefined : Date.parse(iso));
