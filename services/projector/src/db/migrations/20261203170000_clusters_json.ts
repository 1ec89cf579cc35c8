import { type Kysely, sql } from "kysely";
import type { Migration } from "kysely/migration";

/** The cluster row's document columns. */
const COLUMNS = ["spec", "progress", "conditions", "failure"] as const;

/**
 * The cluster row's documents as `json`, not `jsonb` (issue 16, docs/projector.md "Live
 * apply, third pass"). Nearly every event rewrites its cluster's whole row (~1.9 kB, the
 * conditions 1.2 kB of it), and Postgres's cost of that write was mostly JSON work, not the
 * row: `jsonb_in` building the binary form of the batch's JSON literal, then
 * `jsonb_to_recordset` taking each row's documents out of it, then, on every read, the
 * binary form printed back as text. Nothing queries inside these documents (the API
 * filters on `state` and `region`, plain columns); they are written whole and read whole.
 * `json` keeps the text as written, checked for syntax only: the same upsert of 1,000
 * cluster rows took a third to a half of the time (measured 2026-12-03).
 *
 * Key order: `json` keeps the order the rows were written in (jsonb sorts keys), so the
 * replay's comparison digests `clusters` as jsonb (`replay/compare.ts`).
 */
export function clustersJson(schema: string): Migration {
  const retype = (type: "json" | "jsonb") => async (db: Kysely<unknown>) => {
    const table = sql.table(`${schema}.clusters`);
    const alters = COLUMNS.map(
      (c) => sql`alter column ${sql.ref(c)} type ${sql.raw(type)} using ${sql.ref(c)}::${sql.raw(type)}`,
    );
    await sql`alter table ${table} ${sql.join(alters, sql`, `)}`.execute(db);
  };
  return { up: retype("json"), down: retype("jsonb") };
}
