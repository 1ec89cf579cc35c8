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
 *
 * `projector_checkpoint.writer`: a token the live batch that last moved the checkpoint
 * wrote with it (null after any other write: a rebuild, a reset). A live projection keeps
 * the rows of its last batch in memory and trusts them only while the token under its
 * lock is still its own (`projection.ts`, `RowCache`).
 */
export function hotPath(schema: string): Migration {
  return {
    async up(db: Kysely<unknown>) {
      for (const name of ["event_index_aggregate_idx", "event_index_type_idx", "event_index_command_id_idx"])
        await db.schema.withSchema(schema).dropIndex(name).ifExists().execute();
      await db.schema
        .withSchema(schema)
        .alterTable("projector_checkpoint")
        .addColumn("writer", "text")
        .execute();
    },
    async down(db: Kysely<unknown>) {
      const s = db.schema.withSchema(schema);
      await s.alterTable("projector_checkpoint").dropColumn("writer").execute();
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
