import { sql } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Db, openDatabase } from "../db/database.ts";
import { migrateToLatest } from "../db/migrate.ts";
import { type Infra, startInfra } from "../testing/infra.ts";
import { deferIndexes, restoreIndexes } from "./deferred-indexes.ts";

let infra: Infra;
let db: Db;
beforeAll(async () => {
  infra = await startInfra();
  db = openDatabase(infra.database.url, { max: 2 });
});
afterAll(async () => {
  await db.destroy();
  await infra.dispose();
});

/** Indexes (name → definition, the schema's name taken out) of a table or the whole schema; whether the event index has a key. */
async function eventIndexIndexes(
  schema: string,
  table = "event_index",
): Promise<{ defs: Record<string, string>; key: boolean }> {
  const r = await sql<{ indexname: string; indexdef: string }>`
    select indexname, indexdef from pg_indexes
    where schemaname = ${schema} and (tablename = ${table} or ${table} = '*')`.execute(db);
  const k = await sql<{ n: number }>`
    select count(*)::int as n from pg_constraint c join pg_class t on t.oid = c.conrelid
      join pg_namespace n on n.oid = t.relnamespace
    where n.nspname = ${schema} and t.relname = 'event_index' and c.contype = 'p'`.execute(db);
  return {
    defs: Object.fromEntries(r.rows.map((x) => [x.indexname, x.indexdef.replaceAll(schema, "S")])),
    key: (k.rows[0]?.n ?? 0) > 0,
  };
}

const COLUMNS = sql.raw(
  "(aggregate_type, aggregate_id, position, sequence, event_id, type, causation_id, correlation_id, actor, time, data)",
);
const UUID = "00000000-0000-7000-8000-000000000001";

describe("deferred indexes of a rebuild schema", () => {
  it("sets aside the event index's key and secondary indexes for the bulk load, and builds the same ones back", async () => {
    await migrateToLatest(db, "live_like");
    await migrateToLatest(db, "rebuild_like");
    const live = await eventIndexIndexes("live_like");
    const liveAll = await eventIndexIndexes("live_like", "*");
    expect(live.key).toBe(true);
    expect(Object.keys(live.defs)).toContain("event_index_pk");

    const deferred = await deferIndexes(db, "rebuild_like");
    expect(deferred).toBeGreaterThanOrEqual(Object.keys(live.defs).length);
    // COPY into the bulk load's event index maintains no B-tree at all.
    expect(await eventIndexIndexes("rebuild_like")).toEqual({ defs: {}, key: false });
    // Again (a resumed run): nothing more, nothing lost.
    expect(await deferIndexes(db, "rebuild_like")).toBe(deferred);

    // A row COPYed meanwhile is still there, under the rebuilt key.
    await sql`insert into rebuild_like.event_index ${COLUMNS}
      values ('cluster', 'c1', 1, 1, ${UUID}, 'cluster.requested', 'x', 'x', 'a', now(), '{}')`.execute(db);
    expect(await restoreIndexes(db, "rebuild_like")).toBe(deferred);
    expect(await eventIndexIndexes("rebuild_like")).toEqual(live);
    expect(await eventIndexIndexes("rebuild_like", "*")).toEqual(liveAll);
    // The key holds: the same position again is refused.
    await expect(
      sql`insert into rebuild_like.event_index ${COLUMNS}
        values ('cluster', 'c1', 1, 2, ${UUID}, 'cluster.requested', 'x', 'x', 'a', now(), '{}')`.execute(db),
    ).rejects.toMatchObject({ code: "23505" });
    expect(await restoreIndexes(db, "rebuild_like")).toBe(0);
  });
});
