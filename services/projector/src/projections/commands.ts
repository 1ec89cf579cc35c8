/**
 * The `commands` read model: what became of a command, read off the events that
 * answer it (those whose `meta.commandId` is set).
 */
import type { CairnEvent } from "@cairn/events";
import { traceIdOf } from "@cairn/events";

export type CommandStatus = "accepted" | "rejected";

export interface CommandRow {
  readonly commandId: string;
  /** Known for rejections (they name it) and for events this projection maps back; else null. */
  readonly commandType: string | null;
  readonly aggregateType: string;
  readonly aggregateId: string;
  readonly status: CommandStatus;
  readonly reason: string | null;
  readonly code: string | null;
  readonly traceId: string | null;
  /** Stream sequence of the first commit that answered the command. */
  readonly firstSequence: number;
  readonly updatedAt: string;
}

/** The command that an accepted event answers, where it is unambiguous. */
const COMMAND_OF_EVENT: Readonly<Record<string, string>> = {
  "cluster.requested": "cluster.create",
  "cluster.scale-requested": "cluster.scale",
  "cluster.rollback-requested": "cluster.rollback",
  "cluster.deletion-requested": "cluster.delete",
  "session.requested": "session.create",
};

function isRejection(event: CairnEvent): event is CairnEvent & {
  data: { commandId: string; commandType: string; code: string; reason: string };
} {
  return event.type.endsWith(".rejected");
}

/**
 * The commands an event answers: its own `meta.commandId`, and, for a rejection naming
 * another command in `data.commandId`, that one too. A session's admission refuses its
 * create after the fact: the `session.rejected` is appended by the idle-detector's
 * internal `session.refuse` (its meta) and names the create (its data), which must show
 * rejected.
 */
export function commandIdsOf(event: CairnEvent): string[] {
  const own = event.meta.commandId;
  const named =
    isRejection(event) && typeof event.data.commandId === "string" ? event.data.commandId : undefined;
  const ids: string[] = [];
  if (named !== undefined) ids.push(named);
  if (own !== undefined && own !== named) ids.push(own);
  return ids;
}

/**
 * The command row after one more event. Events without `meta.commandId` leave it as
 * it is. A `*.rejected` event marks the command rejected with its code and reason;
 * any other event marks it accepted. A rejection is final: a later accepted event of
 * the same command does not undo it. The first event fixes the aggregate, the trace
 * and `firstSequence`; events of any other aggregate that name the same command id
 * leave the row alone.
 */
export function applyCommandEvent(
  row: CommandRow | undefined,
  event: CairnEvent,
  sequence: number,
  commandId: string | undefined = event.meta.commandId,
): CommandRow | undefined {
  if (commandId === undefined) return row;
  // A command decides one aggregate. An event of another naming the same id answers another
  // command that reused the id (a publisher's mistake, or an id sent again after JetStream's
  // dedupe window): it must not rewrite what the first command came to.
  if (row && (row.aggregateType !== event.aggregate.type || row.aggregateId !== event.aggregate.id))
    return row;
  // A rejection answers the command it names; to the command that appended it (another
  // one), it is one of its accepted events.
  const rejected =
    isRejection(event) && (event.data.commandId === commandId || event.data.commandId === undefined);
  const commandType = rejected ? event.data.commandType : (COMMAND_OF_EVENT[event.type] ?? null);
  const base: CommandRow = row ?? {
    commandId,
    commandType,
    aggregateType: event.aggregate.type,
    aggregateId: event.aggregate.id,
    status: "accepted",
    reason: null,
    code: null,
    traceId: traceIdOf(event.meta.traceparent) ?? null,
    firstSequence: sequence,
    updatedAt: event.time,
  };
  const next: CommandRow = {
    ...base,
    commandType: base.commandType ?? commandType,
    traceId: base.traceId ?? traceIdOf(event.meta.traceparent) ?? null,
    firstSequence: Math.min(base.firstSequence, sequence),
    updatedAt: event.time,
  };
  if (rejected) return { ...next, status: "rejected", reason: event.data.reason, code: event.data.code };
  return next;
}
