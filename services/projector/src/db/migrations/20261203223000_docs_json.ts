import { type Kysely, sql } from "kysely";
import type { Migration } from "kysely/migration";

/** The tables of one document per row (repository/doc-tables.ts). */
export const DOC_TABLES = ["installs", "nodes", "nodeops", "sessions", "step_durations"] as const;

/**
 * The document tables' `doc` as `json`, not `jsonb`, for the reason the cluster row's
 * documents went (20261203170000_clusters_json; issue 16, docs/projector.md "Live apply,
 * fourth pass"): with the cluster rows compact, the node rows (~850 bytes of JSON each,
 * one per node an event touches) were the largest part of a live batch's write, and
 * `jsonb` made Postgres build the binary form of the whole literal, take each document
 * out of it, and print it back as text on every read. Nothing queries inside a document
 * (the API filters on the plain columns beside it); `json_agg` and `->>` work on `json` too.
 * Key order: see 20261203170000_clusters_json (the replay's comparison digests as jsonb).
 */
export function docsJson(schema: string): Migration {
  const retype = (type: "json" | "jsonb") => async (db: Kysely<unknown>) => {
    for (const t of DOC_TABLES)
      await sql`alter table ${sql.table(`${schema}.${t}`)} alter column doc type ${sql.raw(type)} using doc::${sql.raw(type)}`.execute(
        db,
      );
  };
  return { up: retype("json"), down: retype("jsonb") };
}
