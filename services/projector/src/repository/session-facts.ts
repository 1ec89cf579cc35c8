/**
 * The few columns of the sessions read model a heartbeat needs (owner, state, the last
 * sequence folded in), read without the document: the session directory's port to Postgres.
 */
import { isLiveSession, SESSION_STATES } from "@cairn/events";
import { sql } from "kysely";
import { z } from "zod";
import type { SessionFacts } from "../api/session-directory.ts";
import type { Db } from "../db/database.ts";

const factsRow = z.object({
  id: z.string(),
  user_id: z.string(),
  state: z.enum(SESSION_STATES),
  // bigint columns come back as strings from pg.
  last_sequence: z.coerce.number(),
});

const toFacts = (r: z.infer<typeof factsRow>): SessionFacts => ({
  user: r.user_id,
  state: r.state,
  lastSequence: r.last_sequence,
});

/** One session's facts, or undefined when the read model has no such session. */
export async function sessionFacts(db: Db, schema: string, id: string): Promise<SessionFacts | undefined> {
  const r = await sql<unknown>`
    select id, user_id, state, last_sequence from ${sql.table(`${schema}.sessions`)} where id = ${id}`.execute(
    db,
  );
  const row = r.rows[0];
  return row === undefined ? undefined : toFacts(factsRow.parse(row));
}

/**
 * The live sessions' facts (neither Terminated nor Failed), at most `limit`, most recently
 * changed first; and `high`, the last sequence folded into any row when it was read: every
 * change after it has a later sequence ({@link sessionFactsChangedSince}).
 */
export async function liveSessionFacts(
  db: Db,
  schema: string,
  limit: number,
): Promise<{ rows: [string, SessionFacts][]; high: number }> {
  const table = sql.table(`${schema}.sessions`);
  // Read first, so that a row changed between the two queries is caught by the next poll.
  const m = await sql<{ high: string | null }>`select max(last_sequence) as high from ${table}`.execute(db);
  const over = SESSION_STATES.filter((s) => !isLiveSession(s));
  const r = await sql<unknown>`
    select id, user_id, state, last_sequence from ${table}
    where state <> all(${over}::text[]) order by last_sequence desc limit ${limit}`.execute(db);
  return { rows: r.rows.map(entry), high: Number(m.rows[0]?.high ?? 0) };
}

/**
 * The sessions changed since `after` (their last sequence later than it), in sequence
 * order, at most `limit`. The projector commits batches in sequence order, so once a row
 * with sequence n is visible every earlier change is too: asking again from the last
 * sequence seen misses nothing.
 */
export async function sessionFactsChangedSince(
  db: Db,
  schema: string,
  after: number,
  limit: number,
): Promise<[string, SessionFacts][]> {
  const r = await sql<unknown>`
    select id, user_id, state, last_sequence from ${sql.table(`${schema}.sessions`)}
    where last_sequence > ${after} order by last_sequence limit ${limit}`.execute(db);
  return r.rows.map(entry);
}

function entry(row: unknown): [string, SessionFacts] {
  const f = factsRow.parse(row);
  return [f.id, toFacts(f)];
}
