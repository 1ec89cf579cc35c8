import { type Kysely, sql } from "kysely";
import type { Migration } from "kysely/migration";

/** Clusters carry their progress: the operation under way and where each node slot is. */
export function clusterProgress(schema: string): Migration {
  return {
    async up(db: Kysely<unknown>) {
      await db.schema
        .withSchema(schema)
        .alterTable("clusters")
        .addColumn("progress", "jsonb", (c) =>
          c.notNull().defaultTo(sql`'{"operation":null,"nodes":{}}'::jsonb`),
        )
        .execute();
    },
    async down(db: Kysely<unknown>) {
      await db.schema.withSchema(schema).alterTable("clusters").dropColumn("progress").execute();
    },
  };
}
