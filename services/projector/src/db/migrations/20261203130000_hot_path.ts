import type { Kysely } from "kysely";
import type { Migration } from "kysely/migration";

/**
 * The live apply's hot path (issue 16, docs/projector.md "Live apply"): every event is an
 * `event_index` row, and each index is one more B-tree insert per row.
 *
 * - `event_index_aggregate_idx` (aggregate_type, aggregate_id) repeats the primary key's
 *   prefix: every aggregate lookup (history, `?at=`, the session owner) is served by
 *   `event_index_pk` as well.
 * - `event_index_type_idx` and `event_index_command_id_idx`: no query of the projector
 *   filters the index by type or by command id (the API's reads are by aggregate, by trace
 *   and, at start, by sequence: `api/queries.ts`, `foreign-log.ts`); the commands table
 *   answers command lookups.
 *
 * Dropped: three fewer index inserts per event, live and in a replay's deferred build.
 */
export function hotPath(schema: string): Migration {
  return {
    async up(db: Kysely<unknown>) {
      for (const name of ["event_index_aggregate_idx", "event_index_type_idx", "event_index_command_id_idx"])
        await db.schema.withSchema(schema).dropIndex(name).ifExists().execute();
    },
    async down(db: Kysely<unknown>) {
      const s = db.schema.withSchema(schema);
      await s.createIndex("event_index_type_idx").on("event_index").column("type").execute();
      await s.createIndex("event_index_command_id_idx").on("event_index").column("command_id").execute();
      await s
        .createIndex("event_index_aggregate_idx")
        .on("event_index")
        .columns(["aggregate_type", "aggregate_id"])
        .execute();
    },
  };
}
