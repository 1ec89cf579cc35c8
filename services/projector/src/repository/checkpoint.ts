import { sql } from "kysely";
import type { Db } from "../db/database.ts";
import { dollarQuoted, qualified } from "./recordset.ts";

/** Makes sure the checkpoint row exists (at 0). Idempotent. */
export async function ensureCheckpoint(db: Db, schema: string, name: string): Promise<void> {
  await db
    .withSchema(schema)
    .insertInto("projector_checkpoint")
    .values({ name, last_sequence: 0 })
    .onConflict((oc) => oc.column("name").doNothing())
    .execute();
}

/** The last stream sequence applied (0: none). */
export async function readCheckpoint(db: Db, schema: string, name: string): Promise<number> {
  const row = await db
    .withSchema(schema)
    .selectFrom("projector_checkpoint")
    .select("last_sequence")
    .where("name", "=", name)
    .executeTakeFirst();
  return row?.last_sequence ?? 0;
}

/**
 * Reads the checkpoint inside a transaction and locks its row until the transaction
 * ends, so two writers of the same projection can never interleave. One statement: an
 * upsert that changes nothing creates the row if it is missing and locks it like
 * `select … for update`.
 */
export async function lockCheckpoint(trx: Db, schema: string, name: string): Promise<number> {
  const r = await sql.raw<{ last_sequence: number }>(lockCheckpointText(schema, name)).execute(trx);
  return r.rows[0]!.last_sequence;
}

/** `lockCheckpoint`'s statement as SQL text (the live batch sends it with others in one round trip). */
export function lockCheckpointText(schema: string, name: string): string {
  return `insert into ${qualified(schema, "projector_checkpoint")} as c (name, last_sequence)
    values (${dollarQuoted(name)}, 0)
    on conflict (name) do update set last_sequence = c.last_sequence
    returning last_sequence`;
}

export async function writeCheckpoint(
  trx: Db,
  schema: string,
  name: string,
  lastSequence: number,
): Promise<void> {
  await trx
    .withSchema(schema)
    .updateTable("projector_checkpoint")
    .set({ last_sequence: lastSequence })
    .where("name", "=", name)
    .execute();
}

/**
 * Every live batch takes this transaction-scoped advisory lock first; a replay's swap
 * takes it to pause the live apply while it applies the last tail and renames schemas.
 * (An arbitrary constant: "cairn-projector-apply" in the database's advisory-lock space.)
 */
export const APPLY_LOCK_KEY = 7_361_043_501;

/**
 * Waits for, then holds until the transaction ends, the apply lock. `relaxedCommit`
 * also sets `synchronous_commit = off` for the transaction, in the same statement.
 */
export async function takeApplyLock(trx: Db, opts: { relaxedCommit?: boolean } = {}): Promise<void> {
  await (opts.relaxedCommit
    ? sql`select pg_advisory_xact_lock(${sql.lit(APPLY_LOCK_KEY)}), set_config('synchronous_commit', 'off', true)`
    : sql`select pg_advisory_xact_lock(${sql.lit(APPLY_LOCK_KEY)})`
  ).execute(trx);
}
