/**
 * Read models belong to one event log. A projector pointed at another one (the stream
 * was deleted and made again, `.cairn` was wiped while Postgres kept its database, the
 * NATS URL changed) would find a checkpoint that means nothing there: it would skip the
 * new log's first events as "already applied" and show clusters that never existed.
 *
 * The check at start: the commit at the newest indexed sequence up to the checkpoint
 * must still be in the stream, holding the events the index says it held. If not, the
 * read models are thrown away (they are derived data: the log is the truth) and the
 * projection starts again from sequence 1.
 */
import { catalogue, type Nats, Streams } from "@cairn/events";
import { sql } from "kysely";
import type { Db } from "./db/database.ts";

export type LogCheck = { same: true } | { same: false; reason: string };

/** Whether the read models in `schema`, applied up to `checkpoint`, were built from this stream. */
export async function checkSameLog(
  nats: Nats,
  db: Db,
  schema: string,
  checkpoint: number,
): Promise<LogCheck> {
  if (checkpoint <= 0) return { same: true };
  const info = await nats.jsm.streams.info(Streams.events);
  if (info.state.last_seq < checkpoint)
    return {
      same: false,
      reason: `the read models were applied up to sequence ${checkpoint}, but the stream ${Streams.events} ends at ${info.state.last_seq}`,
    };
  const indexed = await sql<{ sequence: string; event_id: string }>`
    select sequence, event_id from ${sql.table(`${schema}.event_index`)}
    where sequence = (select max(sequence) from ${sql.table(`${schema}.event_index`)} where sequence <= ${checkpoint})`.execute(
    db,
  );
  const at = Number(indexed.rows[0]?.sequence ?? 0);
  // Nothing indexed (only dead letters so far), or purged from the stream: nothing to compare.
  if (at === 0 || at < info.state.first_seq) return { same: true };
  let ids: string[];
  try {
    const m = await nats.jsm.streams.getMessage(Streams.events, { seq: at });
    ids = catalogue.parseCommit(JSON.parse(new TextDecoder().decode(m?.data))).events.map((e) => e.id);
  } catch {
    return {
      same: false,
      reason: `the stream's message ${at} is not the commit the read models indexed there`,
    };
  }
  const known = new Set(ids);
  if (indexed.rows.some((r) => known.has(r.event_id))) return { same: true };
  return {
    same: false,
    reason: `the stream's commit at sequence ${at} holds other events than the read models indexed there`,
  };
}

/** Empties every read model of `schema` and sets the checkpoint back to 0, in one transaction. */
export async function forgetReadModels(db: Db, schema: string): Promise<string[]> {
  return await db.transaction().execute(async (trx) => {
    const tables = await sql<{ table_name: string }>`
      select table_name from information_schema.tables
      where table_schema = ${schema} and table_type = 'BASE TABLE'
        and table_name not in ('projector_checkpoint', 'kysely_migration', 'kysely_migration_lock')`.execute(
      trx,
    );
    const names = tables.rows.map((r) => r.table_name).sort();
    if (names.length > 0)
      await sql`truncate ${sql.join(names.map((n) => sql.table(`${schema}.${n}`)))}`.execute(trx);
    await sql`update ${sql.table(`${schema}.projector_checkpoint`)} set last_sequence = 0`.execute(trx);
    return names;
  });
}
