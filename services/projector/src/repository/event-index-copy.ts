/**
 * COPY of event index rows: the rebuild's fast path into a fresh table. Plain insert
 * semantics: a key that is already there fails the COPY (23505); the caller falls back
 * to the upsert.
 */
import type pg from "pg";
import type { EventIndexRow } from "../projections/event-index.ts";
import { copyText, copyField as field } from "./copy-text.ts";

/** The COPY text of `rows`, one line per row, in the column order of {@link copyEventIndex}. */
export function eventIndexCopyText(rows: readonly EventIndexRow[]): string {
  let out = "";
  for (const r of rows) {
    out += `${field(r.aggregateType)}\t${field(r.aggregateId)}\t${r.position}\t${r.sequence}\t${field(r.eventId)}\t${field(r.type)}\t${field(r.commandId)}\t${field(r.causationId)}\t${field(r.correlationId)}\t${field(r.actor)}\t${field(r.traceId)}\t${field(r.time)}\t${field(JSON.stringify(r.data))}\n`;
  }
  return out;
}

/** `COPY <schema>.event_index FROM STDIN` of text from {@link eventIndexCopyText}, on `client` (inside the caller's transaction). */
export async function copyEventIndex(client: pg.ClientBase, schema: string, text: string): Promise<void> {
  await copyText(
    client,
    `copy "${schema}".event_index (aggregate_type, aggregate_id, position, sequence, event_id, type, command_id, causation_id, correlation_id, actor, trace_id, time, data) from stdin`,
    text,
  );
}
