import type { CairnEvent } from "@cairn/events";
import { traceIdOf } from "@cairn/events";

/** One row of `event_index`: every event, searchable by type, command, trace and aggregate. */
export interface EventIndexRow {
  readonly aggregateType: string;
  readonly aggregateId: string;
  readonly position: number;
  readonly sequence: number;
  readonly eventId: string;
  readonly type: string;
  readonly commandId: string | null;
  readonly causationId: string;
  readonly correlationId: string;
  readonly actor: string;
  readonly traceId: string | null;
  readonly time: string;
  readonly data: unknown;
}

export function toEventIndexRow(event: CairnEvent, sequence: number): EventIndexRow {
  return {
    aggregateType: event.aggregate.type,
    aggregateId: event.aggregate.id,
    position: event.position,
    sequence,
    eventId: event.id,
    type: event.type,
    commandId: event.meta.commandId ?? null,
    causationId: event.meta.causationId,
    correlationId: event.meta.correlationId,
    actor: event.meta.actor,
    traceId: traceIdOf(event.meta.traceparent) ?? null,
    time: event.time,
    data: event.data ?? {},
  };
}
