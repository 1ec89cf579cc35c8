import type { Kysely } from "kysely";
import type { Migration } from "kysely/migration";

/**
 * The sessions read model: one JSON document per session (`doc`, the reducer's row)
 * beside the plain columns the API filters on (user, cluster, state).
 */
export function sessions(schema: string): Migration {
  return {
    async up(db: Kysely<unknown>) {
      const s = db.schema.withSchema(schema);
      await s
        .createTable("sessions")
        .addColumn("id", "text", (c) => c.primaryKey())
        .addColumn("user_id", "text", (c) => c.notNull())
        .addColumn("cluster_id", "text", (c) => c.notNull())
        .addColumn("state", "text", (c) => c.notNull())
        .addColumn("updated_at", "timestamptz", (c) => c.notNull())
        .addColumn("last_sequence", "bigint", (c) => c.notNull())
        .addColumn("doc", "jsonb", (c) => c.notNull())
        .execute();
      await s.createIndex("sessions_user_idx").on("sessions").columns(["user_id", "id"]).execute();
      await s.createIndex("sessions_cluster_idx").on("sessions").columns(["cluster_id", "id"]).execute();
    },
    async down(db: Kysely<unknown>) {
      await db.schema.withSchema(schema).dropTable("sessions").ifExists().execute();
    },
  };
}
