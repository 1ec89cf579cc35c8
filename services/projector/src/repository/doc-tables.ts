/**
 * The read models kept as one JSON document per row (installs, nodes, nodeops,
 * sessions, step_durations): a text `id`, a few plain columns the API filters and sorts on, and
 * `doc jsonb`, the row as its reducer returns it. The rows are nested (steps, labels,
 * taints), so a document per row keeps the reducers and the table in step without a
 * column per field; the plain columns are copies for the indexes.
 */
import { type RawBuilder, sql } from "kysely";
import type { Db } from "../db/database.ts";
import type { InstallRow } from "../projections/installs.ts";
import type { NodeOpRow } from "../projections/nodeops.ts";
import type { NodeRow } from "../projections/nodes.ts";
import type { SessionRow } from "../projections/sessions.ts";
import type { StepDurationRow } from "../projections/step-durations.ts";
import { qualified, type RecordsetColumn, recordsetUpsert, type Staging } from "./recordset.ts";

export interface DocColumn<R> {
  readonly name: string;
  /** The Postgres type of the column, as the unnest array's element type. */
  readonly type: "text" | "integer" | "bigint" | "timestamptz";
  readonly value: (r: R) => string | number | null;
}

export interface DocTable<R> {
  readonly table: string;
  readonly id: (r: R) => string;
  readonly columns: readonly DocColumn<R>[];
}

export const installsTable: DocTable<InstallRow> = {
  table: "installs",
  id: (r) => r.clusterId,
  columns: [
    { name: "state", type: "text", value: (r) => r.state },
    { name: "updated_at", type: "timestamptz", value: (r) => r.updatedAt },
    { name: "last_sequence", type: "bigint", value: (r) => r.lastSequence },
  ],
};

export const nodesTable: DocTable<NodeRow> = {
  table: "nodes",
  id: (r) => r.id,
  columns: [
    { name: "cluster_id", type: "text", value: (r) => r.clusterId },
    { name: "node", type: "text", value: (r) => r.node },
    { name: "pool", type: "text", value: (r) => r.pool },
    { name: "k3s_state", type: "text", value: (r) => r.k3s },
    { name: "updated_at", type: "timestamptz", value: (r) => r.updatedAt },
    { name: "last_sequence", type: "bigint", value: (r) => r.lastSequence },
  ],
};

export const nodeopsTable: DocTable<NodeOpRow> = {
  table: "nodeops",
  id: (r) => r.id,
  columns: [
    { name: "cluster_id", type: "text", value: (r) => r.clusterId },
    { name: "node", type: "text", value: (r) => r.node },
    { name: "state", type: "text", value: (r) => r.state },
    { name: "updated_at", type: "timestamptz", value: (r) => r.updatedAt },
    { name: "last_sequence", type: "bigint", value: (r) => r.lastSequence },
  ],
};

export const sessionsTable: DocTable<SessionRow> = {
  table: "sessions",
  id: (r) => r.id,
  columns: [
    { name: "user_id", type: "text", value: (r) => r.user },
    { name: "cluster_id", type: "text", value: (r) => r.clusterId },
    { name: "state", type: "text", value: (r) => r.state },
    { name: "updated_at", type: "timestamptz", value: (r) => r.updatedAt },
    { name: "last_sequence", type: "bigint", value: (r) => r.lastSequence },
  ],
};

export const stepDurationsTable: DocTable<StepDurationRow> = {
  table: "step_durations",
  id: (r) => r.kind,
  columns: [
    { name: "samples", type: "integer", value: (r) => r.samples },
    { name: "mean_ms", type: "integer", value: (r) => r.meanMs },
    { name: "updated_at", type: "timestamptz", value: (r) => r.updatedAt },
    { name: "last_sequence", type: "bigint", value: (r) => r.lastSequence },
  ],
};

/**
 * One `insert … select from jsonb_to_recordset(…) on conflict (id) do update`
 * (repository/recordset.ts), as SQL text: each row goes as `{id, <plain columns>, doc}`.
 */
export function upsertDocsText<R>(
  schema: string,
  t: DocTable<R>,
  rows: readonly R[],
  staging?: Staging,
): string {
  const columns: RecordsetColumn[] = [
    { column: "id", key: "id", type: "text" },
    ...t.columns.map((c) => ({ column: c.name, key: c.name, type: c.type })),
    { column: "doc", key: "doc", type: "jsonb" },
  ];
  const records = rows.map((r) => {
    const o: Record<string, unknown> = { id: t.id(r) };
    for (const c of t.columns) o[c.name] = c.value(r);
    o.doc = r;
    return o;
  });
  return recordsetUpsert(qualified(schema, t.table), columns, ["id"], records, [], staging);
}

/** The upsert statement of `upsertDocsText`, for kysely. */
export function upsertDocsSql<R>(schema: string, t: DocTable<R>, rows: readonly R[]): RawBuilder<unknown> {
  return sql.raw(upsertDocsText(schema, t, rows));
}

/** The rows with these ids, keyed by id (the ones that exist). */
export async function getDocs<R>(
  db: Db,
  schema: string,
  t: DocTable<R>,
  ids: readonly string[],
): Promise<Map<string, R>> {
  const out = new Map<string, R>();
  if (ids.length === 0) return out;
  const r = await sql<{ id: string; doc: R }>`
    select id, doc from ${sql.table(`${schema}.${t.table}`)} where id = any(${[...ids]}::text[])`.execute(db);
  for (const row of r.rows) out.set(row.id, row.doc);
  return out;
}

/** Every row of a table (the small ones: step_durations). */
export async function getAllDocs<R>(db: Db, schema: string, t: DocTable<R>): Promise<R[]> {
  const r = await sql<{ doc: R }>`select doc from ${sql.table(`${schema}.${t.table}`)} order by id`.execute(
    db,
  );
  return r.rows.map((row) => row.doc);
}

/**
 * A page of rows in id order after `cursor`, at most `limit`, where the given plain
 * columns equal the given values (undefined: no condition).
 */
export async function listDocs<R>(
  db: Db,
  schema: string,
  t: DocTable<R>,
  q: { where: Record<string, string | undefined>; limit: number; cursor?: string | undefined },
): Promise<{ items: R[]; nextCursor?: string }> {
  const conditions = Object.entries(q.where)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => sql`${sql.ref(k)} = ${v}`);
  if (q.cursor !== undefined) conditions.push(sql`id > ${q.cursor}`);
  const where = conditions.length > 0 ? sql`where ${sql.join(conditions, sql` and `)}` : sql``;
  const r = await sql<{ id: string; doc: R }>`
    select id, doc from ${sql.table(`${schema}.${t.table}`)} ${where}
    order by id limit ${q.limit + 1}`.execute(db);
  const items = r.rows.slice(0, q.limit);
  const last = items.at(-1);
  return r.rows.length > q.limit && last
    ? { items: items.map((x) => x.doc), nextCursor: last.id }
    : { items: items.map((x) => x.doc) };
}
