/**
 * The `session` aggregate (owned by the idle-detector): an interactive user session on
 * a cluster. Its life, each move an event naming its cause:
 *
 *     Pending → Starting → Running ⇄ (Hibernating → Hibernated → Waking → Running)
 *     any live state → Terminating → Terminated;  Pending, Starting, Running, Waking → Failed
 *
 * The same subject space holds the quota ledgers (`userQuotaId`, `groupQuotaId`): one
 * more instance of the aggregate type per user and per group, whose decisions take and
 * give back quota, serialised by the event store's optimistic concurrency, so two
 * concurrent creates can never both take the last slot (see docs/sessions.md). Each
 * cluster has one too (`clusterSessionsId`): the sessions on it, which a delete looks at.
 */
import { z } from "zod";
import { tokenSafeId } from "../ids.ts";
import { rejectedData } from "./common.ts";
import { type CommandOf, defineCommand, defineEvent, type EventOf } from "./define.ts";

/** Kubernetes quantities: `500m`, `2`, `4Gi`, `10G`. */
const quantity = z
  .string()
  .regex(/^\d+(\.\d+)?(m|k|M|G|T|Ki|Mi|Gi|Ti)?$/, "must be a Kubernetes quantity such as 2, 500m or 4Gi");

export const sessionTemplate = z.object({
  image: z.string().min(1).max(512),
  cpu: quantity,
  memory: quantity,
  storage: quantity,
});
export type SessionTemplate = z.infer<typeof sessionTemplate>;

/** Distinct templates kept by {@link sharedTemplate}; past it, a template is returned as given. */
export const SHARED_TEMPLATES_MAX = 4096;
const sharedTemplates = new Map<string, SessionTemplate>();

/**
 * One frozen object for every equal template: a folded session or workload keeps the
 * shared one, not the copy its event's parse made (an object and four strings, ~170 bytes
 * a session; at 20,000 sessions of a few templates, ~3 MB in each of the session index, a
 * command handler's cache and node-ops' workload map; docs/benchmarks.md). Pure as far as
 * a caller can tell: the result is equal to `t`, field for field. Bounded: past
 * {@link SHARED_TEMPLATES_MAX} distinct templates, `t` itself.
 * @example sharedTemplate({ image: "ide:1", cpu: "1", memory: "1Gi", storage: "1Gi" }) === sharedTemplate({ ... the same })
 */
export function sharedTemplate(t: SessionTemplate): SessionTemplate {
  const key = `${t.image}\u0000${t.cpu}\u0000${t.memory}\u0000${t.storage}`;
  const kept = sharedTemplates.get(key);
  if (kept) return kept;
  if (sharedTemplates.size >= SHARED_TEMPLATES_MAX) return t;
  const shared = Object.freeze({ image: t.image, cpu: t.cpu, memory: t.memory, storage: t.storage });
  sharedTemplates.set(key, shared);
  return shared;
}

const SUFFIX: Record<string, number> = {
  "": 1,
  m: 1e-3,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
};

/**
 * The value of a Kubernetes quantity in base units (cores, bytes); undefined when it is
 * not one. @example quantityValue("500m") // 0.5;  quantityValue("4Gi") // 4294967296
 */
export function quantityValue(q: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)(m|k|M|G|T|Ki|Mi|Gi|Ti)?$/.exec(q);
  if (!m) return undefined;
  return Number(m[1]) * (SUFFIX[m[2] ?? ""] ?? 1);
}

/** @example cpuMillis("1.5") // 1500 */
export const cpuMillis = (q: string) => Math.round((quantityValue(q) ?? Number.NaN) * 1000);
/** @example bytesOf("1Gi") // 1073741824 */
export const bytesOf = (q: string) => Math.round(quantityValue(q) ?? Number.NaN);

/** A user's quota ledger on the session subject space. A session id never holds `=`. @example userQuotaId("alice") // "alice=_quota" */
export const userQuotaId = (user: string) => `${user}=_quota`;
/** A group's quota ledger. @example groupQuotaId("team-a") // "team-a=_group-quota" */
export const groupQuotaId = (group: string) => `${group}=_group-quota`;
/**
 * A cluster's session ledger: the sessions admitted to (or being admitted to) the
 * cluster and not yet ended, no limits. The provisioner reads it to refuse deleting a
 * cluster with live sessions. @example clusterSessionsId("demo-1") // "demo-1=_cluster-sessions"
 */
export const clusterSessionsId = (clusterId: string) => `${clusterId}=_cluster-sessions`;
/** True for a ledger's id, false for a session's. */
export const isQuotaLedgerId = (id: string) => id.includes("=");

/** Why a session moved: in every transition event. */
export const sessionCause = z.enum([
  /** A person asked (create, hibernate, wake, terminate). */
  "user",
  /** No activity for longer than its idle timeout plus the grace period. */
  "idle",
  /** Its maximum lifetime is over, whatever its activity. */
  "lifetime",
  /** A connection to a hibernated session (`session.connect`). */
  "connection",
  /** Hibernated longer than the dormancy period: ended, its volume released. */
  "dormancy",
  /** Over its user's or group's quota. */
  "quota",
  /** Something failed (the cluster is not there or not Ready, the workload failed). */
  "failure",
  /** Its cluster is being deleted. */
  "cluster-deleted",
]);
export type SessionCause = z.infer<typeof sessionCause>;

export const SESSION_STATES = [
  "Pending",
  "Starting",
  "Running",
  "Hibernating",
  "Hibernated",
  "Waking",
  "Terminating",
  "Terminated",
  "Failed",
] as const;
export type SessionStatus = (typeof SESSION_STATES)[number];

const sessionRef = z.object({ sessionId: tokenSafeId });
const bySession = (d: { sessionId: string }) => d.sessionId;
const seconds = z.number().int().positive();
const reason = z.string().min(1).max(2048);
const remediation = z.string().min(1).max(2048).optional();
const iso = z.iso.datetime({ offset: true });

// ── public commands (DESIGN §7) ─────────────────────────────────────────────────────

export const CreateSession = defineCommand({
  type: "session.create",
  aggregate: "session",
  schema: z.object({
    sessionId: tokenSafeId,
    user: tokenSafeId,
    clusterId: tokenSafeId,
    template: sessionTemplate,
    idleTimeoutSeconds: seconds.optional(),
    maxLifetimeSeconds: seconds.optional(),
  }),
  aggregateId: bySession,
  description:
    "Start an interactive user session on a cluster, subject to the user's (and group's) quota and the operator's maximum idle timeout and lifetime.",
});
export const HibernateSession = defineCommand({
  type: "session.hibernate",
  aggregate: "session",
  schema: sessionRef,
  aggregateId: bySession,
  description: "Hibernate a running session: stop its workload, keep its storage.",
});
export const WakeSession = defineCommand({
  type: "session.wake",
  aggregate: "session",
  schema: sessionRef,
  aggregateId: bySession,
  description: "Wake a hibernated session.",
});
export const ConnectSession = defineCommand({
  type: "session.connect",
  aggregate: "session",
  schema: sessionRef,
  aggregateId: bySession,
  description: "A user connects to the session: wakes it when hibernated (the wake latency is recorded).",
});
export const TerminateSession = defineCommand({
  type: "session.terminate",
  aggregate: "session",
  schema: sessionRef,
  aggregateId: bySession,
  description: "End a session for good: remove its workload and storage.",
});

// ── the ledgers (`userQuotaId(user)`, `groupQuotaId(group)`, `clusterSessionsId(cluster)`) ─

/** Limits of one ledger; absent: unlimited in that dimension. */
export const quotaLimits = z.object({
  sessions: z.number().int().nonnegative().optional(),
  cpuMillis: z.number().int().nonnegative().optional(),
  memoryBytes: z.number().int().nonnegative().optional(),
});
export type QuotaLimits = z.infer<typeof quotaLimits>;
export const quotaUsage = z.object({
  sessions: z.number().int().nonnegative(),
  cpuMillis: z.number().int().nonnegative(),
  memoryBytes: z.number().int().nonnegative(),
});
export type QuotaUsage = z.infer<typeof quotaUsage>;
/** Whose ledger: a user's, a group's (quota), or a cluster's (the sessions on it). */
export const ledgerScope = z.enum(["user", "group", "cluster"]);
export type LedgerScope = z.infer<typeof ledgerScope>;
const ledgerKey = { scope: ledgerScope, owner: tokenSafeId };
/** The ledger's aggregate id. @example ledgerId("cluster", "demo-1") // "demo-1=_cluster-sessions" */
export const ledgerId = (scope: LedgerScope, owner: string) =>
  scope === "user" ? userQuotaId(owner) : scope === "group" ? groupQuotaId(owner) : clusterSessionsId(owner);
const byLedger = (d: { scope: LedgerScope; owner: string }) => ledgerId(d.scope, d.owner);

/** Which limit a create would pass, and by how much: for the 403 and for people. */
export const quotaBreach = z.object({
  ...ledgerKey,
  dimension: z.enum(["sessions", "cpuMillis", "memoryBytes"]),
  limit: z.number().int().nonnegative(),
  /** What the owner's live sessions hold now. */
  usage: quotaUsage,
  /** What the session asked for. */
  requested: quotaUsage,
});
export type QuotaBreach = z.infer<typeof quotaBreach>;

// ── internal commands (the idle-detector records what it saw and decided) ───────────

export const AdmitSession = defineCommand({
  type: "session.admit",
  aggregate: "session",
  internal: true,
  schema: z.object({ sessionId: tokenSafeId, groups: z.array(tokenSafeId) }),
  aggregateId: bySession,
  description: "internal: the cluster is Ready and the session's quota is taken (on these ledgers).",
});
export const RefuseSession = defineCommand({
  type: "session.refuse",
  aggregate: "session",
  internal: true,
  schema: z.object({
    sessionId: tokenSafeId,
    cause: z.enum(["quota", "failure"]),
    code: z.enum(["not-found", "conflict", "over-quota"]),
    reason,
    remediation,
    quota: quotaBreach.optional(),
  }),
  aggregateId: bySession,
  description:
    "internal: a Pending session cannot be admitted (no such cluster, cluster not Ready, over quota); its create is rejected.",
});
export const RecordSessionRunning = defineCommand({
  type: "session.record-running",
  aggregate: "session",
  internal: true,
  schema: z.object({ sessionId: tokenSafeId, node: z.string().min(1).max(253), pod: z.string().optional() }),
  aggregateId: bySession,
  description: "internal: the session's pod is ready on `node`.",
});
export const RecordSessionHibernated = defineCommand({
  type: "session.record-hibernated",
  aggregate: "session",
  internal: true,
  schema: sessionRef,
  aggregateId: bySession,
  description: "internal: the session's workload is scaled to zero (its volume kept).",
});
export const RecordSessionTerminated = defineCommand({
  type: "session.record-terminated",
  aggregate: "session",
  internal: true,
  schema: z.object({ sessionId: tokenSafeId, volumeReleased: z.boolean() }),
  aggregateId: bySession,
  description: "internal: the session's workload (and, by policy, its volume) is deleted.",
});
export const RecordSessionFailure = defineCommand({
  type: "session.record-failure",
  aggregate: "session",
  internal: true,
  schema: z.object({ sessionId: tokenSafeId, reason, remediation }),
  aggregateId: bySession,
  description: "internal: the session's workload failed (cannot be scheduled, image cannot be pulled, …).",
});
export const RecordSessionMoved = defineCommand({
  type: "session.record-moved",
  aggregate: "session",
  internal: true,
  schema: z.object({
    sessionId: tokenSafeId,
    fromNode: z.string().min(1),
    toNode: z.string().min(1),
    reason: z.string().optional(),
  }),
  aggregateId: bySession,
  description: "internal: the session's pod was evicted and is back, ready, on another node.",
});
export const IdleSession = defineCommand({
  type: "session.idle",
  aggregate: "session",
  internal: true,
  schema: z.object({
    sessionId: tokenSafeId,
    /** The last activity the sweep saw (or when the session last became Running, if none since). */
    lastActivityAt: iso,
  }),
  aggregateId: bySession,
  description: "internal: the idle sweep saw no activity for longer than the idle timeout plus the grace.",
});
export const EndSession = defineCommand({
  type: "session.end",
  aggregate: "session",
  internal: true,
  schema: z.object({
    sessionId: tokenSafeId,
    cause: z.enum(["lifetime", "dormancy", "cluster-deleted"]),
    reason,
  }),
  aggregateId: bySession,
  description: "internal: the session is ended by policy (its lifetime, dormancy) or with its cluster.",
});

export const TakeQuota = defineCommand({
  type: "session.take-quota",
  aggregate: "session",
  internal: true,
  schema: z.object({
    ...ledgerKey,
    sessionId: tokenSafeId,
    cpuMillis: z.number().int().nonnegative(),
    memoryBytes: z.number().int().nonnegative(),
    limits: quotaLimits,
  }),
  aggregateId: byLedger,
  description:
    "internal: on a ledger (a user's or group's quota, a cluster's sessions), the session takes a place if it fits under `limits`.",
});
export const ReleaseQuota = defineCommand({
  type: "session.release-quota",
  aggregate: "session",
  internal: true,
  schema: z.object({ ...ledgerKey, sessionId: tokenSafeId, reason }),
  aggregateId: byLedger,
  description: "internal: on a quota ledger, the session gives its place back (it ended, or was refused).",
});

export const sessionCommands = [
  CreateSession,
  HibernateSession,
  WakeSession,
  ConnectSession,
  TerminateSession,
  AdmitSession,
  RefuseSession,
  RecordSessionRunning,
  RecordSessionHibernated,
  RecordSessionTerminated,
  RecordSessionFailure,
  RecordSessionMoved,
  IdleSession,
  EndSession,
  TakeQuota,
  ReleaseQuota,
] as const;
export type SessionCommand = CommandOf<(typeof sessionCommands)[number]>;

// ── events ───────────────────────────────────────────────────────────────────────────

/** `session.rejected`: a command refused; over quota, with the limit passed and the usage. */
export const SessionRejected = defineEvent({
  type: "session.rejected",
  aggregate: "session",
  schema: rejectedData.extend({ quota: quotaBreach.optional() }),
  description:
    "A session command was refused; names the command and the reason (over quota: `code` over-quota and `quota` with the limit and the usage).",
});
export const SessionRequested = defineEvent({
  type: "session.requested",
  aggregate: "session",
  schema: z.object({
    sessionId: tokenSafeId,
    user: tokenSafeId,
    clusterId: tokenSafeId,
    template: sessionTemplate,
    /** As decided: the request's, else the operator's default (never above the operator's maximum). */
    idleTimeoutSeconds: seconds,
    maxLifetimeSeconds: seconds,
    cause: z.literal("user"),
  }),
  description: "Pending: a session was asked for; the cluster and the quota are checked next.",
});
export const SessionAdmitted = defineEvent({
  type: "session.admitted",
  aggregate: "session",
  schema: z.object({ sessionId: tokenSafeId, groups: z.array(tokenSafeId), cause: z.literal("user") }),
  description:
    "Starting: the cluster is Ready and the quota taken (user's and `groups`'); its workload starts.",
});
export const SessionRunning = defineEvent({
  type: "session.running",
  aggregate: "session",
  schema: z.object({
    sessionId: tokenSafeId,
    node: z.string(),
    pod: z.string().optional(),
    /** Set when it woke: connect (or wake) → Running, in milliseconds. */
    wakeLatencyMs: z.number().int().nonnegative().optional(),
    cause: sessionCause,
  }),
  description: "Running: its pod is ready on `node` (after a wake, with the wake latency).",
});
export const SessionIdled = defineEvent({
  type: "session.idled",
  aggregate: "session",
  schema: z.object({
    sessionId: tokenSafeId,
    lastActivityAt: iso,
    idleTimeoutSeconds: seconds,
    graceSeconds: z.number().int().nonnegative(),
  }),
  description:
    "The idle sweep's decision: no activity since `lastActivityAt`, longer than the timeout plus the grace.",
});
export const SessionHibernating = defineEvent({
  type: "session.hibernating",
  aggregate: "session",
  schema: z.object({ sessionId: tokenSafeId, cause: sessionCause }),
  description: "Hibernating: its workload scales to zero; its volume stays.",
});
export const SessionHibernated = defineEvent({
  type: "session.hibernated",
  aggregate: "session",
  schema: z.object({ sessionId: tokenSafeId, cause: sessionCause }),
  description: "Hibernated: no pod runs; a connect or a wake brings it back.",
});
export const SessionWakeRequested = defineEvent({
  type: "session.wake-requested",
  aggregate: "session",
  schema: z.object({ sessionId: tokenSafeId, cause: sessionCause }),
  description: "A wake (or connect) while it was still Hibernating: it wakes as soon as it is Hibernated.",
});
export const SessionWaking = defineEvent({
  type: "session.waking",
  aggregate: "session",
  schema: z.object({
    sessionId: tokenSafeId,
    cause: sessionCause,
    /** When the wake was asked for: the wake latency runs from here. */
    requestedAt: iso,
  }),
  description: "Waking: its workload scales back to one; Running once the pod is ready.",
});
export const SessionMoved = defineEvent({
  type: "session.moved",
  aggregate: "session",
  schema: z.object({
    sessionId: tokenSafeId,
    fromNode: z.string(),
    toNode: z.string(),
    reason: z.string().optional(),
  }),
  description: "Its pod was evicted (a drain, a spot interruption) and is ready again on another node.",
});
export const SessionTerminating = defineEvent({
  type: "session.terminating",
  aggregate: "session",
  schema: z.object({ sessionId: tokenSafeId, cause: sessionCause, reason: z.string().optional() }),
  description: "Terminating: its workload is deleted, its volume released.",
});
export const SessionTerminated = defineEvent({
  type: "session.terminated",
  aggregate: "session",
  schema: z.object({ sessionId: tokenSafeId, cause: sessionCause, volumeReleased: z.boolean() }),
  description: "Terminated, for good: nothing of it runs; its quota is given back.",
});
export const SessionFailed = defineEvent({
  type: "session.failed",
  aggregate: "session",
  schema: z.object({
    sessionId: tokenSafeId,
    cause: sessionCause,
    reason,
    remediation,
    /** What it was doing when it failed. */
    from: z.enum(SESSION_STATES),
  }),
  description: "Failed, for good, saying why (and what to do); its quota is given back.",
});
export const QuotaTaken = defineEvent({
  type: "session.quota-taken",
  aggregate: "session",
  schema: z.object({
    ...ledgerKey,
    sessionId: tokenSafeId,
    cpuMillis: z.number().int().nonnegative(),
    memoryBytes: z.number().int().nonnegative(),
    limits: quotaLimits,
    /** The ledger's usage after this session took its place. */
    usage: quotaUsage,
  }),
  description:
    "On a ledger (a user's or group's quota, a cluster's sessions): the session holds a place (its CPU and memory counted).",
});
export const QuotaReleased = defineEvent({
  type: "session.quota-released",
  aggregate: "session",
  schema: z.object({ ...ledgerKey, sessionId: tokenSafeId, reason, usage: quotaUsage }),
  description: "On a quota ledger: the session gave its place back; `usage` after.",
});

export const sessionEvents = [
  SessionRejected,
  SessionRequested,
  SessionAdmitted,
  SessionRunning,
  SessionIdled,
  SessionHibernating,
  SessionHibernated,
  SessionWakeRequested,
  SessionWaking,
  SessionMoved,
  SessionTerminating,
  SessionTerminated,
  SessionFailed,
  QuotaTaken,
  QuotaReleased,
] as const;
export type SessionEvent = EventOf<(typeof sessionEvents)[number]>;
