import { type RawBuilder, sql } from "kysely";
import type { Db } from "../db/database.ts";
import type { EventIndexRow } from "../projections/event-index.ts";

/**
 * One `insert … select from unnest(…) on conflict do update` keyed by
 * (aggregate_type, aggregate_id, position), thirteen parameters whatever the row count.
 * Rows must be unique by that key within one call (Postgres refuses to update a row
 * twice in one statement); `indexRowsByKey` makes them so.
 */
export async function upsertEventIndex(
  db: Db,
  schema: string,
  rows: readonly EventIndexRow[],
): Promise<void> {
  if (rows.length === 0) return;
  await upsertEventIndexSql(schema, rows).execute(db);
}

/** The upsert statement of upsertEventIndex (for one statement with others, see `writeBatchRows`). */
export function upsertEventIndexSql(schema: string, rows: readonly EventIndexRow[]): RawBuilder<unknown> {
  const col = <T>(f: (r: EventIndexRow) => T) => rows.map(f);
  return sql`
    insert into ${sql.table(`${schema}.event_index`)}
      (aggregate_type, aggregate_id, position, sequence, event_id, type, command_id, causation_id,
       correlation_id, actor, trace_id, time, data)
    select * from unnest(
      ${col((r) => r.aggregateType)}::text[], ${col((r) => r.aggregateId)}::text[],
      ${col((r) => r.position)}::integer[], ${col((r) => r.sequence)}::bigint[],
      ${col((r) => r.eventId)}::uuid[], ${col((r) => r.type)}::text[], ${col((r) => r.commandId)}::text[],
      ${col((r) => r.causationId)}::text[], ${col((r) => r.correlationId)}::text[],
      ${col((r) => r.actor)}::text[], ${col((r) => r.traceId)}::text[], ${col((r) => r.time)}::timestamptz[],
      ${col((r) => JSON.stringify(r.data))}::jsonb[])
    on conflict (aggregate_type, aggregate_id, position) do update set
      sequence = excluded.sequence, event_id = excluded.event_id, type = excluded.type,
      command_id = excluded.command_id, causation_id = excluded.causation_id,
      correlation_id = excluded.correlation_id, actor = excluded.actor, trace_id = excluded.trace_id,
      time = excluded.time, data = excluded.data`;
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
