import type { Selectable } from "kysely";
import { type RawBuilder, sql } from "kysely";
import type { ClustersTable, Db } from "../db/database.ts";
import type { ClusterRow, ClusterState } from "../projections/clusters.ts";

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
    conditions: r.conditions as unknown as ClusterRow["conditions"],
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
 * One `insert … select from unnest(<one array per column>) on conflict (id) do update`:
 * fifteen bind parameters whatever the row count, so Postgres parses a short statement
 * and no batch has to be cut to fit the 65,535-parameter limit.
 */
export async function upsertClusters(db: Db, schema: string, rows: readonly ClusterRow[]): Promise<void> {
  if (rows.length === 0) return;
  await upsertClustersSql(schema, rows).execute(db);
}

/** The upsert statement of upsertClusters (for one statement with others, see `writeBatchRows`). */
export function upsertClustersSql(schema: string, rows: readonly ClusterRow[]): RawBuilder<unknown> {
  const col = <T>(f: (r: ClusterRow) => T) => rows.map(f);
  return sql`
    insert into ${sql.table(`${schema}.clusters`)}
      (id, name, region, state, spec, progress, version, trace_id, created_at, updated_at, last_event_type,
       last_sequence, conditions, health, failure)
    select * from unnest(
      ${col((r) => r.id)}::text[], ${col((r) => r.name)}::text[], ${col((r) => r.region)}::text[],
      ${col((r) => r.state)}::text[], ${col((r) => JSON.stringify(r.spec))}::jsonb[],
      ${col((r) => JSON.stringify(r.progress))}::jsonb[], ${col((r) => r.version)}::integer[],
      ${col((r) => r.traceId)}::text[], ${col((r) => r.createdAt)}::timestamptz[],
      ${col((r) => r.updatedAt)}::timestamptz[], ${col((r) => r.lastEventType)}::text[],
      ${col((r) => r.lastSequence)}::bigint[], ${col((r) => JSON.stringify(r.conditions))}::jsonb[],
      ${col((r) => r.health)}::text[], ${col((r) => (r.failure ? JSON.stringify(r.failure) : null))}::jsonb[])
    on conflict (id) do update set
      name = excluded.name, region = excluded.region, state = excluded.state, spec = excluded.spec,
      progress = excluded.progress, version = excluded.version, trace_id = excluded.trace_id,
      created_at = excluded.created_at, updated_at = excluded.updated_at,
      last_event_type = excluded.last_event_type, last_sequence = excluded.last_sequence,
      conditions = excluded.conditions, health = excluded.health, failure = excluded.failure`;
}
