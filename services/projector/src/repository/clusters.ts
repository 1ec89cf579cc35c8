import type { Selectable } from "kysely";
import { type RawBuilder, sql } from "kysely";
import type { ClustersTable, Db } from "../db/database.ts";
import type { ClusterRow, ClusterState } from "../projections/clusters.ts";
import { qualified, type RecordsetColumn, recordsetUpsert, type Staging } from "./recordset.ts";
import { compactConditions, expandConditions } from "./stored-conditions.ts";

type Stored = Selectable<ClustersTable>;

export function fromStored(r: Stored): ClusterRow {
  return {
    id: r.id,
    name: r.name,
    region: r.region,
    state: r.state as ClusterState,
    spec: r.spec as ClusterRow["spec"],
    version: r.version,
    traceId: r.trace_id,
    createdAt: r.created_at.toISOString(),
    updatedAt: r.updated_at.toISOString(),
    lastEventType: r.last_event_type,
    lastSequence: r.last_sequence,
    progress: r.progress as unknown as ClusterRow["progress"],
    conditions: expandConditions(r.conditions),
    health: r.health as ClusterRow["health"],
    failure: r.failure as unknown as ClusterRow["failure"],
  };
}

export async function getCluster(db: Db, schema: string, id: string): Promise<ClusterRow | undefined> {
  const r = await db
    .withSchema(schema)
    .selectFrom("clusters")
    .selectAll()
    .where("id", "=", id)
    .executeTakeFirst();
  return r ? fromStored(r) : undefined;
}

/** Several clusters by id, keyed by id (the ones that exist). */
export async function getClusters(
  db: Db,
  schema: string,
  ids: readonly string[],
): Promise<Map<string, ClusterRow>> {
  const out = new Map<string, ClusterRow>();
  if (ids.length === 0) return out;
  const rows = await db
    .withSchema(schema)
    .selectFrom("clusters")
    .selectAll()
    .where("id", "in", [...ids])
    .execute();
  for (const r of rows) out.set(r.id, fromStored(r));
  return out;
}

export interface ClusterPage {
  readonly items: ClusterRow[];
  /** The id to pass as `cursor` for the next page; absent on the last page. */
  readonly nextCursor?: string;
}

/** Clusters in id order, after `cursor`, at most `limit`, optionally in one state and region. */
export async function listClusters(
  db: Db,
  schema: string,
  q: { state?: string; region?: string; limit: number; cursor?: string },
): Promise<ClusterPage> {
  let query = db
    .withSchema(schema)
    .selectFrom("clusters")
    .selectAll()
    .orderBy("id")
    .limit(q.limit + 1);
  if (q.state !== undefined) query = query.where("state", "=", q.state);
  if (q.region !== undefined) query = query.where("region", "=", q.region);
  if (q.cursor !== undefined) query = query.where("id", ">", q.cursor);
  const rows = await query.execute();
  const items = rows.slice(0, q.limit).map(fromStored);
  const last = items.at(-1);
  return rows.length > q.limit && last ? { items, nextCursor: last.id } : { items };
}

/**
 * One `insert … select from json_to_recordset(<the rows as one JSON literal>) on conflict
 * (id) do update` (repository/recordset.ts): any row count, no bind parameters. The
 * documents are `json` columns (migration `20261203170000_clusters_json`), so the whole
 * literal is `json` too: Postgres checks its syntax and keeps each document's text.
 */
export async function upsertClusters(db: Db, schema: string, rows: readonly ClusterRow[]): Promise<void> {
  if (rows.length === 0) return;
  await upsertClustersSql(schema, rows).execute(db);
}

const CLUSTER_COLUMNS: readonly RecordsetColumn[] = [
  { column: "id", key: "id", type: "text" },
  { column: "name", key: "name", type: "text" },
  { column: "region", key: "region", type: "text" },
  { column: "state", key: "state", type: "text" },
  { column: "spec", key: "spec", type: "json" },
  { column: "progress", key: "progress", type: "json" },
  { column: "version", key: "version", type: "integer" },
  { column: "trace_id", key: "traceId", type: "text" },
  { column: "created_at", key: "createdAt", type: "timestamptz" },
  { column: "updated_at", key: "updatedAt", type: "timestamptz" },
  { column: "last_event_type", key: "lastEventType", type: "text" },
  { column: "last_sequence", key: "lastSequence", type: "bigint" },
  { column: "conditions", key: "conditions", type: "json" },
  { column: "health", key: "health", type: "text" },
  { column: "failure", key: "failure", type: "json" },
];

/**
 * The upsert statement of upsertClusters, as SQL text (a statement of the batch's one round
 * trip). The conditions go compact (`stored-conditions.ts`). `specStored(row)`: true when
 * the table already holds the row's spec as it is (the live batch read it and no event
 * changed it); the spec is then not sent again and the update keeps it.
 */
export function upsertClustersText(
  schema: string,
  rows: readonly ClusterRow[],
  specStored: (row: ClusterRow) => boolean = () => false,
  staging?: Staging,
): string {
  const stored = rows.map((r) => ({
    ...r,
    spec: specStored(r) ? null : r.spec,
    conditions: compactConditions(r.conditions),
  }));
  return recordsetUpsert(qualified(schema, "clusters"), CLUSTER_COLUMNS, ["id"], stored, ["spec"], staging);
}

/** The upsert statement of upsertClusters (for one statement with others, see `writeBatchRows`). */
export function upsertClustersSql(schema: string, rows: readonly ClusterRow[]): RawBuilder<unknown> {
  return sql.raw(upsertClustersText(schema, rows));
}
