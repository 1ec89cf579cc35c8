import { type Kysely, sql } from "kysely";
import type { Migration } from "kysely/migration";
import type { ClusterCondition } from "../../projections/cluster-conditions.ts";
import { compactConditions, expandConditions } from "../../repository/stored-conditions.ts";

/** Rows rewritten per statement. */
const CHUNK = 1_000;

/**
 * The cluster rows' conditions in the compact stored form (`repository/stored-conditions.ts`;
 * issue 16, docs/projector.md "Live apply, fourth pass"), so every row has one form and a
 * replay's comparison with live is equal straight after the upgrade. The reader takes
 * either form, so this is for uniformity, not for reading. Down: the objects again.
 * The column stays `json`; only its documents change.
 */
export function clustersCompactConditions(schema: string): Migration {
  const rewrite = (to: (stored: unknown) => unknown) => async (db: Kysely<unknown>) => {
    const table = sql.table(`${schema}.clusters`);
    const { rows } = await sql<{
      id: string;
      conditions: unknown;
    }>`select id, conditions from ${table}`.execute(db);
    for (let i = 0; i < rows.length; i += CHUNK) {
      const chunk = rows.slice(i, i + CHUNK).map((r) => ({ id: r.id, conditions: to(r.conditions) }));
      await sql`update ${table} as c set conditions = r.conditions
        from json_to_recordset(${JSON.stringify(chunk)}::json) as r(id text, conditions json)
        where c.id = r.id`.execute(db);
    }
  };
  return {
    up: rewrite((stored) => compactConditions(expandConditions(stored))),
    down: rewrite((stored): ClusterCondition[] => expandConditions(stored)),
  };
}
