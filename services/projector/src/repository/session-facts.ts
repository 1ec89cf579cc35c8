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

/** The live sessions' facts (neither Terminated nor Failed), at most `limit`, most recently changed first. */
export async function liveSessionFacts(
  db: Db,
  schema: string,
  limit: number,
): Promise<[string, SessionFacts][]> {
  const over = SESSION_STATES.filter((s) => !isLiveSession(s));
  const r = await sql<unknown>`
    select id, user_id, state, last_sequence from ${sql.table(`${schema}.sessions`)}
    where state <> all(${over}::text[]) order by last_sequence desc limit ${limit}`.execute(db);
  return r.rows.map((row) => {
    const f = factsRow.parse(row);
    return [f.id, toFacts(f)];
  });
}
