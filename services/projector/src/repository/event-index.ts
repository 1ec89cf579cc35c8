import type { Db } from "../db/database.ts";
import type { EventIndexRow } from "../projections/event-index.ts";
import { chunksFor } from "./chunks.ts";

const COLUMNS = 13;

/**
 * Multi-row upsert keyed by (aggregate_type, aggregate_id, position). Rows must be
 * unique by that key within one call (Postgres refuses to update a row twice in one
 * statement); `indexRowsByKey` makes them so.
 */
export async function upsertEventIndex(
  db: Db,
  schema: string,
  rows: readonly EventIndexRow[],
): Promise<void> {
  for (const chunk of chunksFor(rows, COLUMNS)) {
    if (chunk.length === 0) continue;
    await db
      .withSchema(schema)
      .insertInto("event_index")
      .values(
        chunk.map((r) => ({
          aggregate_type: r.aggregateType,
          aggregate_id: r.aggregateId,
          position: r.position,
          sequence: r.sequence,
          event_id: r.eventId,
          type: r.type,
          command_id: r.commandId,
          causation_id: r.causationId,
          correlation_id: r.correlationId,
          actor: r.actor,
          trace_id: r.traceId,
          time: r.time,
          data: JSON.stringify(r.data),
        })),
      )
      .onConflict((oc) =>
        oc.columns(["aggregate_type", "aggregate_id", "position"]).doUpdateSet((eb) => ({
          sequence: eb.ref("excluded.sequence"),
          event_id: eb.ref("excluded.event_id"),
          type: eb.ref("excluded.type"),
          command_id: eb.ref("excluded.command_id"),
          causation_id: eb.ref("excluded.causation_id"),
          correlation_id: eb.ref("excluded.correlation_id"),
          actor: eb.ref("excluded.actor"),
          trace_id: eb.ref("excluded.trace_id"),
          time: eb.ref("excluded.time"),
          data: eb.ref("excluded.data"),
        })),
      )
      .execute();
  }
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
