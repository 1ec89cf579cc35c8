import { type Kysely, sql } from "kysely";
import type { Migration } from "kysely/migration";

/**
 * Clusters carry their conditions, health and failure (projections/cluster-conditions.ts).
 * Conditions and failure come from a cluster's history, so a row projected before this
 * migration gets them from its next event on, and whole from a replay (`cairn replay`);
 * its health depends on its state alone and is filled in here.
 */
export function clusterConditions(schema: string): Migration {
  return {
    async up(db: Kysely<unknown>) {
      await db.schema
        .withSchema(schema)
        .alterTable("clusters")
        .addColumn("conditions", "jsonb", (c) => c.notNull().defaultTo(sql`'[]'::jsonb`))
        .addColumn("health", "text", (c) => c.notNull().defaultTo("Unknown"))
        .addColumn("failure", "jsonb")
        .execute();
      // healthOf(state), as the fold computes it.
      await sql`update ${sql.table(`${schema}.clusters`)} set health = case state
          when 'Ready' then 'Healthy' when 'Degraded' then 'Degraded' when 'Recovering' then 'Recovering'
          when 'Failed' then 'Failed' when 'Deleted' then 'Unknown' else 'Progressing' end`.execute(db);
    },
    async down(db: Kysely<unknown>) {
      await db.schema
        .withSchema(schema)
        .alterTable("clusters")
        .dropColumn("conditions")
        .dropColumn("health")
        .dropColumn("failure")
        .execute();
    },
  };
}
