import { type RawBuilder, sql } from "kysely";
import type { Db } from "../db/database.ts";
import type { EventIndexRow } from "../projections/event-index.ts";
import { qualified, type RecordsetColumn, recordsetUpsert } from "./recordset.ts";

/**
 * One `insert … select from jsonb_to_recordset(…) on conflict do update` keyed by
 * (aggregate_type, aggregate_id, position) (repository/recordset.ts). Rows must be unique
 * by that key within one call (Postgres refuses to update a row twice in one statement);
 * `indexRowsByKey` makes them so.
 */
export async function upsertEventIndex(
  db: Db,
  schema: string,
  rows: readonly EventIndexRow[],
): Promise<void> {
  if (rows.length === 0) return;
  await upsertEventIndexSql(schema, rows).execute(db);
}

const EVENT_INDEX_COLUMNS: readonly RecordsetColumn[] = [
  { column: "aggregate_type", key: "aggregateType", type: "text" },
  { column: "aggregate_id", key: "aggregateId", type: "text" },
  { column: "position", key: "position", type: "integer" },
  { column: "sequence", key: "sequence", type: "bigint" },
  { column: "event_id", key: "eventId", type: "uuid" },
  { column: "type", key: "type", type: "text" },
  { column: "command_id", key: "commandId", type: "text" },
  { column: "causation_id", key: "causationId", type: "text" },
  { column: "correlation_id", key: "correlationId", type: "text" },
  { column: "actor", key: "actor", type: "text" },
  { column: "trace_id", key: "traceId", type: "text" },
  { column: "time", key: "time", type: "timestamptz" },
  { column: "data", key: "data", type: "jsonb" },
];

/** The upsert statement of upsertEventIndex, as SQL text. */
export function upsertEventIndexText(schema: string, rows: readonly EventIndexRow[]): string {
  return recordsetUpsert(
    qualified(schema, "event_index"),
    EVENT_INDEX_COLUMNS,
    ["aggregate_type", "aggregate_id", "position"],
    rows,
  );
}

/** The upsert statement of upsertEventIndex (for one statement with others, see `writeBatchRows`). */
export function upsertEventIndexSql(schema: string, rows: readonly EventIndexRow[]): RawBuilder<unknown> {
  return sql.raw(upsertEventIndexText(schema, rows));
}

/** The last row for each key, in first-seen order. */
export function indexRowsByKey(rows: readonly EventIndexRow[]): EventIndexRow[] {
  const byKey = new Map<string, EventIndexRow>();
  for (const r of rows) byKey.set(`${r.aggregateType}\u0000${r.aggregateId}\u0000${r.position}`, r);
  return [...byKey.values()];
}

/** Events of one aggregate in position order (for timelines). */
export async function eventsOf(db: Db, schema: string, aggregate: { type: string; id: string }) {
  return await db
    .withSchema(schema)
    .selectFrom("event_index")
    .selectAll()
    .where("aggregate_type", "=", aggregate.type)
    .where("aggregate_id", "=", aggregate.id)
    .orderBy("position")
    .execute();
}

export async function countEvents(db: Db, schema: string): Promise<number> {
  const r = await db
    .withSchema(schema)
    .selectFrom("event_index")
    .select((eb) => eb.fn.countAll<string>().as("n"))
    .executeTakeFirstOrThrow();
  return Number(r.n);
}
