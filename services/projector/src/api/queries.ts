/**
 * Reads of the event index for the API: a cluster's history, a trace across
 * aggregates, the owner of a session. Plain functions over `db`, like `repository/`.
 */
import { type Selectable, sql } from "kysely";
import type { Db, EventIndexTable } from "../db/database.ts";

export type IndexedEvent = Selectable<EventIndexTable>;

/** One aggregate's events in version order, after `afterPosition`, at most `limit` (+1 to tell a next page). */
export async function aggregateHistory(
  db: Db,
  schema: string,
  q: { type: string; id: string; afterPosition?: number; limit: number },
): Promise<IndexedEvent[]> {
  let query = db
    .withSchema(schema)
    .selectFrom("event_index")
    .selectAll()
    .where("aggregate_type", "=", q.type)
    .where("aggregate_id", "=", q.id)
    .orderBy("position")
    .limit(q.limit + 1);
  if (q.afterPosition !== undefined) query = query.where("position", ">", q.afterPosition);
  return await query.execute();
}

/**
 * Every event of a trace, across aggregates, in log order (stream sequence, then the
 * position inside the commit), after `after`, at most `limit` (+1).
 */
export async function traceEvents(
  db: Db,
  schema: string,
  q: { traceId: string; after?: { sequence: number; position: number }; limit: number },
): Promise<IndexedEvent[]> {
  let query = db
    .withSchema(schema)
    .selectFrom("event_index")
    .selectAll()
    .where("trace_id", "=", q.traceId)
    .orderBy("sequence")
    .orderBy("position")
    .limit(q.limit + 1);
  const after = q.after;
  if (after !== undefined) {
    query = query.where((eb) =>
      eb.or([
        eb("sequence", ">", after.sequence),
        eb.and([eb("sequence", "=", after.sequence), eb("position", ">", after.position)]),
      ]),
    );
  }
  return await query.execute();
}

/**
 * The user a session belongs to: `data.user` of the session's first event that names
 * one (its creation), or undefined when no such event was projected (yet).
 */
export async function sessionOwner(db: Db, schema: string, sessionId: string): Promise<string | undefined> {
  const r = await db
    .withSchema(schema)
    .selectFrom("event_index")
    .select(sql<string>`data->>'user'`.as("user"))
    .where("aggregate_type", "=", "session")
    .where("aggregate_id", "=", sessionId)
    .where(sql<boolean>`data ? 'user'`)
    .orderBy("position")
    .limit(1)
    .executeTakeFirst();
  return r?.user ?? undefined;
}
