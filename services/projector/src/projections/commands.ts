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
};

function isRejection(event: CairnEvent): event is CairnEvent & {
  data: { commandId: string; commandType: string; code: string; reason: string };
} {
  return event.type.endsWith(".rejected");
}

/**
 * The command row after one more event. Events without `meta.commandId` leave it as
 * it is. A `*.rejected` event marks the command rejected with its code and reason;
 * any other event marks it accepted. A rejection is final: a later accepted event of
 * the same command does not undo it. The first event fixes the aggregate, the trace
 * and `firstSequence`.
 */
export function applyCommandEvent(
  row: CommandRow | undefined,
  event: CairnEvent,
  sequence: number,
): CommandRow | undefined {
  const commandId = event.meta.commandId;
  if (commandId === undefined) return row;
  const rejected = isRejection(event);
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
