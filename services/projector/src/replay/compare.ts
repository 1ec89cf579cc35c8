/**
 * The check that a rebuild equals the live read models: per table, the row count and
 * a content hash (md5 over each row's md5, in key order), computed by Postgres.
 */
import { sql } from "kysely";
import { assertSchemaName, type Db } from "../db/database.ts";

/** The compared tables and their keys (the checkpoint and migration bookkeeping are not read models). */
export const COMPARED_TABLES = [
  { table: "clusters", key: "id" },
  { table: "event_index", key: "aggregate_type, aggregate_id, position" },
  { table: "commands", key: "command_id" },
] as const;

export interface TableDigest {
  readonly rows: number;
  readonly hash: string;
}

export interface TableComparison {
  readonly table: string;
  readonly live: TableDigest;
  readonly rebuilt: TableDigest;
  readonly equal: boolean;
}

export type Comparison =
  | {
      readonly compared: true;
      readonly equal: boolean;
      /** The checkpoint both sides were at. */
      readonly at: number;
      readonly tables: readonly TableComparison[];
    }
  | { readonly compared: false; readonly reason: string };

/** Row count and content hash of every compared table in `schema`. */
export async function digestSchema(db: Db, schema: string): Promise<Record<string, TableDigest>> {
  assertSchemaName(schema);
  const out: Record<string, TableDigest> = {};
  for (const { table, key } of COMPARED_TABLES) {
    const r = await sql<{ n: number; h: string }>`
      select count(*)::bigint as n,
             md5(coalesce(string_agg(md5(t::text), '' order by ${sql.raw(key)}), '')) as h
      from ${sql.table(`${schema}.${table}`)} t`.execute(db);
    const row = r.rows[0];
    out[table] = { rows: Number(row?.n ?? 0), hash: row?.h ?? "" };
  }
  return out;
}

/** Compares two schemas table by table; `at` is the checkpoint both are at. */
export async function compareSchemas(db: Db, live: string, rebuilt: string, at: number): Promise<Comparison> {
  const [a, b] = [await digestSchema(db, live), await digestSchema(db, rebuilt)];
  const tables = COMPARED_TABLES.map(({ table }) => {
    const l = a[table]!;
    const r = b[table]!;
    return { table, live: l, rebuilt: r, equal: l.rows === r.rows && l.hash === r.hash };
  });
  return { compared: true, equal: tables.every((t) => t.equal), at, tables };
}
