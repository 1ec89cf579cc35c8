import type { Selectable } from "kysely";
import type { ClustersTable, Db } from "../db/database.ts";
import type { ClusterRow, ClusterState } from "../projections/clusters.ts";
import { chunksFor } from "./chunks.ts";

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

const COLUMNS = 11;

/** One multi-row `insert … on conflict (id) do update` (cut only past the parameter limit). */
export async function upsertClusters(db: Db, schema: string, rows: readonly ClusterRow[]): Promise<void> {
  for (const chunk of chunksFor(rows, COLUMNS)) {
    if (chunk.length === 0) continue;
    await db
      .withSchema(schema)
      .insertInto("clusters")
      .values(
        chunk.map((r) => ({
          id: r.id,
          name: r.name,
          region: r.region,
          state: r.state,
          spec: JSON.stringify(r.spec),
          progress: JSON.stringify(r.progress),
          version: r.version,
          trace_id: r.traceId,
          created_at: r.createdAt,
          updated_at: r.updatedAt,
          last_event_type: r.lastEventType,
          last_sequence: r.lastSequence,
        })),
      )
      .onConflict((oc) =>
        oc.column("id").doUpdateSet((eb) => ({
          name: eb.ref("excluded.name"),
          region: eb.ref("excluded.region"),
          state: eb.ref("excluded.state"),
          spec: eb.ref("excluded.spec"),
          progress: eb.ref("excluded.progress"),
          version: eb.ref("excluded.version"),
          trace_id: eb.ref("excluded.trace_id"),
          created_at: eb.ref("excluded.created_at"),
          updated_at: eb.ref("excluded.updated_at"),
          last_event_type: eb.ref("excluded.last_event_type"),
          last_sequence: eb.ref("excluded.last_sequence"),
        })),
      )
      .execute();
  }
}
