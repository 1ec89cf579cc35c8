/**
 * A rebuild loads millions of rows into empty tables: maintaining indexes row by row
 * costs more than building them once at the end. So a fresh rebuild schema sets aside
 * the event index's secondary indexes and its primary key — definitions kept in a table
 * of the schema, so a resumed rebuild still knows them — and builds them again before
 * the swap, then ANALYZEs the tables (a swapped-in schema must not be planned as empty).
 * The event index is written with COPY, which needs no key; `clusters` and `commands`
 * keep their keys (their upserts need them) and are small.
 */
import { sql } from "kysely";
import type { Db } from "../db/database.ts";

const TABLE = "replay_deferred_indexes";

/** Drops the schema's secondary indexes, remembering them. Idempotent. */
export async function deferIndexes(db: Db, schema: string): Promise<number> {
  const table = sql.table(`${schema}.${TABLE}`);
  await sql`create table if not exists ${table} (name text primary key, definition text not null)`.execute(
    db,
  );
  await sql`
    insert into ${table} (name, definition)
    select c.relname, pg_get_indexdef(i.indexrelid)
    from pg_index i
      join pg_class c on c.oid = i.indexrelid
      join pg_class t on t.oid = i.indrelid
      join pg_namespace n on n.oid = t.relnamespace
    where n.nspname = ${schema} and not i.indisprimary and not i.indisunique
      and t.relname not like 'kysely%'
    on conflict (name) do nothing`.execute(db);
  // The event index's key too (an ALTER, built first by restoreIndexes). Until this
  // change only the secondary indexes went, though this page said the key did: the
  // bulk load's COPY kept a 3-column B-tree up to date row by row.
  await sql`
    insert into ${table} (name, definition)
    select c.conname,
           'ALTER TABLE ' || quote_ident(n.nspname) || '.' || quote_ident(t.relname) ||
           ' ADD CONSTRAINT ' || quote_ident(c.conname) || ' ' || pg_get_constraintdef(c.oid)
    from pg_constraint c
      join pg_class t on t.oid = c.conrelid
      join pg_namespace n on n.oid = t.relnamespace
    where n.nspname = ${schema} and t.relname = 'event_index' and c.contype = 'p'
    on conflict (name) do nothing`.execute(db);
  const rows = await sql<{ name: string; definition: string }>`select name, definition from ${table}`.execute(
    db,
  );
  for (const { name, definition } of rows.rows) {
    if (definition.startsWith("ALTER"))
      await sql`alter table ${sql.table(`${schema}.event_index`)} drop constraint if exists ${sql.id(name)}`.execute(
        db,
      );
    else await sql`drop index if exists ${sql.table(`${schema}.${name}`)}`.execute(db);
  }
  return rows.rows.length;
}

/** Builds the indexes set aside by {@link deferIndexes} and forgets them. Idempotent. */
export async function restoreIndexes(db: Db, schema: string): Promise<number> {
  const exists = await sql<{
    t: string | null;
  }>`select to_regclass(${`${schema}.${TABLE}`})::text as t`.execute(db);
  if (!exists.rows[0]?.t) return 0;
  const table = sql.table(`${schema}.${TABLE}`);
  const rows = await sql<{ name: string; definition: string }>`select name, definition from ${table}`.execute(
    db,
  );
  // The key first: the secondary indexes are built after it (their order is free).
  const ordered = [...rows.rows].sort(
    (a, b) => Number(b.definition.startsWith("ALTER")) - Number(a.definition.startsWith("ALTER")),
  );
  for (const { definition } of ordered) {
    try {
      await sql.raw(definition.replace(/^CREATE INDEX /, "CREATE INDEX IF NOT EXISTS ")).execute(db);
    } catch (err) {
      // 42P16: the key is already there (a run that stopped between building it and forgetting it).
      if ((err as { code?: string }).code !== "42P16") throw err;
    }
  }
  await sql`drop table ${table}`.execute(db);
  for (const t of [
    "event_index",
    "clusters",
    "commands",
    "installs",
    "nodes",
    "nodeops",
    "sessions",
    "step_durations",
  ])
    await sql`analyze ${sql.table(`${schema}.${t}`)}`.execute(db);
  return rows.rows.length;
}
