import type { Kysely } from "kysely";
import type { Migration } from "kysely/migration";

/**
 * The installs, nodes, node operations and learnt step durations: one JSON document
 * per row (`doc`, the reducer's row) beside the plain columns the API filters on.
 */
export function installsNodesNodeops(schema: string): Migration {
  return {
    async up(db: Kysely<unknown>) {
      const s = db.schema.withSchema(schema);
      await s
        .createTable("installs")
        .addColumn("id", "text", (c) => c.primaryKey())
        .addColumn("state", "text", (c) => c.notNull())
        .addColumn("updated_at", "timestamptz", (c) => c.notNull())
        .addColumn("last_sequence", "bigint", (c) => c.notNull())
        .addColumn("doc", "jsonb", (c) => c.notNull())
        .execute();

      await s
        .createTable("nodes")
        .addColumn("id", "text", (c) => c.primaryKey())
        .addColumn("cluster_id", "text", (c) => c.notNull())
        .addColumn("node", "text", (c) => c.notNull())
        .addColumn("pool", "text")
        .addColumn("k3s_state", "text", (c) => c.notNull())
        .addColumn("updated_at", "timestamptz", (c) => c.notNull())
        .addColumn("last_sequence", "bigint", (c) => c.notNull())
        .addColumn("doc", "jsonb", (c) => c.notNull())
        .execute();
      await s.createIndex("nodes_cluster_idx").on("nodes").columns(["cluster_id", "id"]).execute();

      await s
        .createTable("nodeops")
        .addColumn("id", "text", (c) => c.primaryKey())
        .addColumn("cluster_id", "text", (c) => c.notNull())
        .addColumn("node", "text", (c) => c.notNull())
        .addColumn("state", "text", (c) => c.notNull())
        .addColumn("updated_at", "timestamptz", (c) => c.notNull())
        .addColumn("last_sequence", "bigint", (c) => c.notNull())
        .addColumn("doc", "jsonb", (c) => c.notNull())
        .execute();
      await s.createIndex("nodeops_cluster_idx").on("nodeops").columns(["cluster_id", "id"]).execute();

      await s
        .createTable("step_durations")
        .addColumn("id", "text", (c) => c.primaryKey())
        .addColumn("samples", "integer", (c) => c.notNull())
        .addColumn("mean_ms", "integer", (c) => c.notNull())
        .addColumn("updated_at", "timestamptz", (c) => c.notNull())
        .addColumn("last_sequence", "bigint", (c) => c.notNull())
        .addColumn("doc", "jsonb", (c) => c.notNull())
        .execute();
    },
    async down(db: Kysely<unknown>) {
      const s = db.schema.withSchema(schema);
      for (const table of ["step_durations", "nodeops", "nodes", "installs"]) {
        await s.dropTable(table).ifExists().execute();
      }
    },
  };
}
