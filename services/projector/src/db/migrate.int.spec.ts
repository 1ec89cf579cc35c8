import { createTestDatabase, type DisposableDatabase } from "@cairn/testkit";
import { sql } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { initialConditions } from "../projections/cluster-conditions.ts";
import { getCluster, upsertClusters } from "../repository/clusters.ts";
import { compactConditions } from "../repository/stored-conditions.ts";
import { aSpec } from "../testing/fixtures.ts";
import { assertSchemaName, type Db, openDatabase } from "./database.ts";
import { migrateDownAll, migrateToLatest } from "./migrate.ts";
import { clustersCompactConditions } from "./migrations/20261203220000_clusters_compact_conditions.ts";

let database: DisposableDatabase;
let db: Db;

beforeAll(async () => {
  database = await createTestDatabase("projector_migrate");
  db = openDatabase(database.url, { max: 2 });
});
afterAll(async () => {
  await db?.destroy();
  await database?.dispose();
});

async function tablesIn(schema: string): Promise<string[]> {
  const r = await sql<{ table_name: string }>`
    select table_name from information_schema.tables where table_schema = ${schema} order by table_name`.execute(
    db,
  );
  return r.rows.map((x) => x.table_name);
}

describe("migrations", () => {
  it("create the read models in the schema asked for, idempotently, and drop them on the way down", async () => {
    const first = await migrateToLatest(db, "replay_1");
    expect(first.results?.map((r) => [r.migrationName, r.status])).toEqual([
      ["20261122054700_initial", "Success"],
      ["20261122071500_cluster_progress", "Success"],
      ["20261122090000_installs_nodes_nodeops", "Success"],
      ["20261123090000_sessions", "Success"],
      ["20261124090000_cluster_conditions", "Success"],
      ["20261202200000_sessions_last_sequence", "Success"],
      ["20261203130000_hot_path", "Success"],
      ["20261203170000_clusters_json", "Success"],
      ["20261203220000_clusters_compact_conditions", "Success"],
    ]);
    expect((await migrateToLatest(db, "replay_1")).results).toEqual([]);
    expect(await tablesIn("replay_1")).toEqual(
      expect.arrayContaining([
        "clusters",
        "commands",
        "event_index",
        "installs",
        "nodeops",
        "nodes",
        "projector_checkpoint",
        "step_durations",
      ]),
    );
    expect(await tablesIn("public")).not.toContain("clusters");

    // The same repository functions work in that schema.
    const spec = aSpec("m1");
    const row = {
      id: "m1",
      name: "m1",
      region: "eu-west-1",
      state: "Pending" as const,
      spec,
      version: 1,
      traceId: null,
      createdAt: "2026-01-01T00:00:00.000Z",
      updatedAt: "2026-01-01T00:00:00.000Z",
      lastEventType: "cluster.requested",
      lastSequence: 9_007_199_254_740_000,
      progress: {
        operation: "provisioning" as const,
        nodes: { "0": "running" as const, "1000": "launched" as const },
      },
      conditions: [
        {
          type: "Failed" as const,
          status: "True" as const,
          reason: "LaunchFailed",
          message: "slot 0 could not be launched",
          lastTransitionTime: "2026-01-01T00:00:00.000Z",
        },
      ],
      health: "Failed" as const,
      failure: {
        reason: "slot 0 could not be launched",
        remediation: "retry",
        code: "launch-failed" as const,
        since: "2026-01-01T00:00:00.000Z",
      },
    };
    await upsertClusters(db, "replay_1", [row]);
    await upsertClusters(db, "replay_1", [{ ...row, version: 2, state: "Deleting" as const }]);
    expect(await getCluster(db, "replay_1", "m1")).toEqual({ ...row, version: 2, state: "Deleting" });

    const indexes = await sql<{ indexname: string }>`
      select indexname from pg_indexes where schemaname = 'replay_1' and tablename = 'event_index'`.execute(
      db,
    );
    // Exactly these: the key and the two lookups a query uses (trace, sequence); the
    // aggregate, type and command-id indexes went in 20261203130000_hot_path (a write per event each).
    expect(indexes.rows.map((r) => r.indexname).sort()).toEqual([
      "event_index_pk",
      "event_index_sequence_idx",
      "event_index_trace_id_idx",
    ]);

    await migrateDownAll(db, "replay_1");
    expect(await tablesIn("replay_1")).not.toContain("clusters");
    expect(await tablesIn("replay_1")).not.toContain("event_index");
    expect(await tablesIn("replay_1")).not.toContain("installs");
  });

  it("20261203220000 stores existing rows' conditions compact, reads either form the same, and goes back down", async () => {
    await migrateToLatest(db, "replay_2");
    const conditions = initialConditions("2026-01-01T00:00:00.000Z");
    // A row as written before the migration: the conditions as objects.
    await sql`insert into replay_2.clusters (id, name, region, state, spec, version, created_at, updated_at,
        last_event_type, last_sequence, progress, conditions, health)
      values ('o1', 'o1', 'eu-west-1', 'Pending', ${JSON.stringify(aSpec("o1"))}::json, 1, now(), now(),
        'cluster.requested', 1, '{"operation":"pending","nodes":{}}'::json, ${JSON.stringify(conditions)}::json,
        'Progressing')`.execute(db);
    const stored = async () =>
      (
        await sql<{ c: string }>`select conditions::text as c from replay_2.clusters where id = 'o1'`.execute(
          db,
        )
      ).rows[0]!.c;
    expect((await getCluster(db, "replay_2", "o1"))?.conditions).toEqual(conditions);

    const migration = clustersCompactConditions("replay_2");
    await migration.up(db);
    expect(JSON.parse(await stored())).toEqual(compactConditions(conditions));
    expect((await getCluster(db, "replay_2", "o1"))?.conditions).toEqual(conditions);
    await migration.down!(db);
    expect(JSON.parse(await stored())).toEqual(conditions);
    await migrateDownAll(db, "replay_2");
  });

  it("refuses schema names it would have to quote", () => {
    expect(() => assertSchemaName('x"; drop table clusters; --')).toThrow(/lower-case SQL identifier/);
    expect(assertSchemaName("public")).toBe("public");
  });
});
