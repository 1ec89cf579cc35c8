/**
 * Subjects, stream names and header names: the only place they are spelt out.
 * Everything else builds them with these functions (DESIGN §2, §7).
 */
import { type MsgHdrs, headers as natsHeaders } from "@nats-io/transport-node";
import { TOKEN_SAFE, tokenSafeId } from "./ids.ts";

export const AGGREGATE_TYPES = ["cluster", "install", "session", "nodeop", "workload", "kube"] as const;
export type AggregateType = (typeof AGGREGATE_TYPES)[number];

export const Streams = { commands: "CMD", events: "EVT" } as const;
export type StreamName = (typeof Streams)[keyof typeof Streams];

/** Header names Cairn reads and writes. `Nats-*` ones are JetStream's own. */
export const Headers = {
  msgId: "Nats-Msg-Id",
  expectedLastSubjectSequence: "Nats-Expected-Last-Subject-Sequence",
  traceparent: "traceparent",
  tracestate: "tracestate",
  /** Comma-separated event types of a commit, so a reader can filter without parsing. */
  eventTypes: "Cairn-Event-Types",
  commandType: "Cairn-Command-Type",
  /** On a dead letter: why it died, where it came from. */
  dlqReason: "Cairn-Dlq-Reason",
  dlqStream: "Cairn-Dlq-Stream",
  dlqSubject: "Cairn-Dlq-Subject",
  dlqSequence: "Cairn-Dlq-Sequence",
  dlqConsumer: "Cairn-Dlq-Consumer",
  dlqDeliveries: "Cairn-Dlq-Deliveries",
  /** On a projector's change announcement: its batch and its part, `changesBatchHeader`. */
  changesBatch: "Cairn-Changes-Batch",
  /**
   * On a projector's change announcement: the step durations its batch wrote, a JSON array
   * (`[]` when none, and on every part but the last). Its presence says the projector
   * announces them, so a follower need not drop what it holds of them when a node moves.
   */
  changesDurations: "Cairn-Changes-Durations",
  /**
   * On a projector's change announcement: the announcing replica's own id (random per
   * start). The announcing replica hands its rows to its own listeners in process, and
   * skips its announcements when NATS echoes them back.
   */
  changesOrigin: "Cairn-Changes-Origin",
} as const;

/** A change announcement's batch (`from`, `to`] (checkpoints) and its part (1-based) of `parts`. */
export interface ChangesBatch {
  readonly from: number;
  readonly to: number;
  readonly part: number;
  readonly parts: number;
}

/**
 * The `Cairn-Changes-Batch` header's value: `<from> <to> <part>/<parts>`.
 * @example changesBatchHeader({ from: 120, to: 134, part: 1, parts: 2 }) // "120 134 1/2"
 */
export function changesBatchHeader(b: ChangesBatch): string {
  return `${b.from} ${b.to} ${b.part}/${b.parts}`;
}

/**
 * Headers holding `Cairn-Changes-Batch` for a change announcement,
 * `Cairn-Changes-Durations` when `durations` (the batch's step-duration rows, JSON) is given,
 * and `Cairn-Changes-Origin` when `origin` (the announcing replica's id) is.
 */
export function changesBatchHeaders(b: ChangesBatch, durations?: string, origin?: string): MsgHdrs {
  const h = natsHeaders();
  h.set(Headers.changesBatch, changesBatchHeader(b));
  if (durations !== undefined) h.set(Headers.changesDurations, durations);
  if (origin !== undefined) h.set(Headers.changesOrigin, origin);
  return h;
}

/** The header's value read back; undefined when absent or not of that shape. */
export function parseChangesBatchHeader(value: string | undefined): ChangesBatch | undefined {
  const m = value === undefined ? null : /^(\d+) (\d+) (\d+)\/(\d+)$/.exec(value);
  if (!m) return undefined;
  const [from, to, part, parts] = m.slice(1).map(Number) as [number, number, number, number];
  if (part < 1 || part > parts) return undefined;
  return { from, to, part, parts };
}

/** `cmd.cluster.create` for command type `cluster.create`. */
export function commandSubject(commandType: string): string {
  const [aggregate, verb, ...rest] = commandType.split(".");
  if (!aggregate || !verb || rest.length > 0) {
    throw new Error(`a command type is <aggregate>.<verb>, got ${JSON.stringify(commandType)}`);
  }
  return `cmd.${aggregate}.${verb}`;
}

/**
 * The filter that one owning service consumes: `cmd.cluster.>` (one filter subject per
 * consumer); without a family, every command (`cmd.>`).
 */
export function commandFilter(aggregate?: string): string {
  return aggregate ? `cmd.${aggregate}.>` : "cmd.>";
}

/** `evt.cluster.demo-1`: one subject per aggregate instance; one message per commit. */
export function eventSubject(aggregate: { type: string; id: string }): string {
  // The common case, checked without zod (every append and load asks); zod says why not.
  if (typeof aggregate.id === "string" && aggregate.id.length <= 128 && TOKEN_SAFE.test(aggregate.id))
    return `evt.${aggregate.type}.${aggregate.id}`;
  const id = tokenSafeId.safeParse(aggregate.id);
  if (!id.success) {
    throw new Error(
      `aggregate id ${JSON.stringify(aggregate.id)} ${id.error.issues[0]?.message ?? "is invalid"}`,
    );
  }
  return `evt.${aggregate.type}.${aggregate.id}`;
}

/** `evt.cluster.*` (one aggregate type) or `evt.>` (everything). */
export function eventFilter(aggregate?: string): string {
  return aggregate ? `evt.${aggregate}.*` : "evt.>";
}

/** `dlq.CMD`: where poison messages of a stream go, with the reason in headers. */
export function dlqSubject(stream: string): string {
  return `dlq.${stream}`;
}

/** `kv` bucket names Cairn uses. */
export const Buckets = {
  leases: "cairn_leases",
  heartbeats: "cairn_heartbeats",
  /** Aggregate snapshots (key `<type>.<id>`), written by the owning service: a shortcut, never the record. */
  snapshots: "cairn_snapshots",
} as const;

/**
 * `hb.session.s-1`: a session's heartbeat on core NATS, `{ "connections": n }` (not a
 * command, outside every stream). The idle-detector's replicas share them in the queue
 * group {@link HEARTBEAT_QUEUE}.
 */
export function heartbeatSubject(sessionId: string): string {
  return `hb.session.${sessionId}`;
}
export const HEARTBEAT_SUBJECTS = "hb.session.*";
/** The session id of a heartbeat subject (`hb.session.s-1` → `s-1`). */
export function heartbeatSessionId(subject: string): string {
  return subject.slice("hb.session.".length);
}
export const HEARTBEAT_QUEUE = "idle-detector-heartbeats";

/**
 * Parses `evt.<type>.<id>` back into its aggregate. Returns undefined for anything else.
 */
export function parseEventSubject(subject: string): { type: string; id: string } | undefined {
  const parts = subject.split(".");
  if (parts.length !== 3 || parts[0] !== "evt" || !parts[1] || !parts[2]) return undefined;
  return { type: parts[1], id: parts[2] };
}

/**
 * `cairn.projector.changes.projector`: where the projector replica that projects
 * announces the read-model rows each committed batch wrote, so every replica's live
 * stream (`GET /events/stream`) sees them. Core NATS, outside every stream.
 */
export function projectorChangesSubject(durable: string): string {
  return `cairn.projector.changes.${tokenSafeId.parse(durable)}`;
}

/**
 * `cairn.admin.projector.replay`: a core-NATS request subject for an operator action
 * on one service. Outside every stream (JetStream would answer a request on a stream
 * subject itself); in deploy/nats only `admin` may publish under `cairn.admin.>`.
 */
export function adminSubject(service: string, action: string): string {
  if (!/^[a-z][a-z0-9-]*$/.test(service) || !/^[a-z][a-z0-9-]*$/.test(action)) {
    throw new Error(`admin subject parts are lower-case words, got ${JSON.stringify([service, action])}`);
  }
  return `cairn.admin.${service}.${action}`;
}
