import { type Kysely, sql } from "kysely";
import type { Migration } from "kysely/migration";

/** The first read models: clusters, the event index, command status and the checkpoint. */
export function initial(schema: string): Migration {
  return {
    async up(db: Kysely<unknown>) {
      const s = db.schema.withSchema(schema);
      await s
        .createTable("clusters")
        .addColumn("id", "text", (c) => c.primaryKey())
        .addColumn("name", "text", (c) => c.notNull())
        .addColumn("region", "text", (c) => c.notNull())
        .addColumn("state", "text", (c) => c.notNull())
        .addColumn("spec", "jsonb", (c) => c.notNull())
        .addColumn("version", "integer", (c) => c.notNull())
        .addColumn("trace_id", "text")
        .addColumn("created_at", "timestamptz", (c) => c.notNull())
        .addColumn("updated_at", "timestamptz", (c) => c.notNull())
        .addColumn("last_event_type", "text", (c) => c.notNull())
        .addColumn("last_sequence", "bigint", (c) => c.notNull())
        .execute();
      await s.createIndex("clusters_state_idx").on("clusters").columns(["state", "id"]).execute();

      await s
        .createTable("event_index")
        .addColumn("aggregate_type", "text", (c) => c.notNull())
        .addColumn("aggregate_id", "text", (c) => c.notNull())
        .addColumn("position", "integer", (c) => c.notNull())
        .addColumn("sequence", "bigint", (c) => c.notNull())
        .addColumn("event_id", "uuid", (c) => c.notNull())
        .addColumn("type", "text", (c) => c.notNull())
        .addColumn("command_id", "text")
        .addColumn("causation_id", "text", (c) => c.notNull())
        .addColumn("correlation_id", "text", (c) => c.notNull())
        .addColumn("actor", "text", (c) => c.notNull())
        .addColumn("trace_id", "text")
        .addColumn("time", "timestamptz", (c) => c.notNull())
        .addColumn("data", "jsonb", (c) => c.notNull())
        .addPrimaryKeyConstraint("event_index_pk", ["aggregate_type", "aggregate_id", "position"])
        .execute();
      await s.createIndex("event_index_type_idx").on("event_index").column("type").execute();
      await s.createIndex("event_index_command_id_idx").on("event_index").column("command_id").execute();
      await s.createIndex("event_index_trace_id_idx").on("event_index").column("trace_id").execute();
      await s.createIndex("event_index_sequence_idx").on("event_index").column("sequence").execute();
      // The primary key already serves (aggregate_type, aggregate_id) lookups as its prefix;
      // the explicit index is kept because the read API names it.
      await s
        .createIndex("event_index_aggregate_idx")
        .on("event_index")
        .columns(["aggregate_type", "aggregate_id"])
        .execute();

      await s
        .createTable("commands")
        .addColumn("command_id", "text", (c) => c.primaryKey())
        .addColumn("command_type", "text")
        .addColumn("aggregate_type", "text", (c) => c.notNull())
        .addColumn("aggregate_id", "text", (c) => c.notNull())
        .addColumn("status", "text", (c) => c.notNull().check(sql`status in ('accepted', 'rejected')`))
        .addColumn("reason", "text")
        .addColumn("code", "text")
        .addColumn("trace_id", "text")
        .addColumn("first_sequence", "bigint", (c) => c.notNull())
        .addColumn("updated_at", "timestamptz", (c) => c.notNull())
        .execute();

      await s
        .createTable("projector_checkpoint")
        .addColumn("name", "text", (c) => c.primaryKey())
        .addColumn("last_sequence", "bigint", (c) => c.notNull().defaultTo(0))
        .execute();
    },

    async down(db: Kysely<unknown>) {
      const s = db.schema.withSchema(schema);
      for (const table of ["projector_checkpoint", "commands", "event_index", "clusters"]) {
        await s.dropTable(table).ifExists().execute();
      }
    },
  };
}
