/**
 * Writes parsed events into the read models of one schema, inside the caller's
 * transaction: the event index, then clusters and commands folded in memory and
 * written with one multi-row upsert each. A rebuild uses the same fold
 * (`foldInto`) and rows (`eventIndexRows`), so it builds exactly what the live path
 * builds; it only keeps the rows in memory and writes the index with COPY.
 */
import type { CairnEvent } from "@cairn/events";
import { type RawBuilder, sql } from "kysely";
import type { Db } from "./db/database.ts";
import { applyClusterEvent, type ClusterRow } from "./projections/clusters.ts";
import { applyCommandEvent, type CommandRow, commandIdsOf } from "./projections/commands.ts";
import { type EventIndexRow, toEventIndexRow } from "./projections/event-index.ts";
import { applyInstallEvent, type InstallRow } from "./projections/installs.ts";
import { applyNodeOpEvent, type NodeOpRow, nodeOpIdOf } from "./projections/nodeops.ts";
import { applyNodeEvent, type NodeRow, nodeKeysOf, nodeRowId } from "./projections/nodes.ts";
import { applySessionEvent, isSessionEvent, type SessionRow } from "./projections/sessions.ts";
import { addSample, type StepDurationRow, sampleOf } from "./projections/step-durations.ts";
import { getClusters, upsertClustersSql } from "./repository/clusters.ts";
import { getCommands, upsertCommandsSql } from "./repository/commands.ts";
import {
  getAllDocs,
  getDocs,
  installsTable,
  nodeopsTable,
  nodesTable,
  sessionsTable,
  stepDurationsTable,
  upsertDocsSql,
} from "./repository/doc-tables.ts";
import { indexRowsByKey, upsertEventIndexSql } from "./repository/event-index.ts";

export interface SequencedEvent {
  readonly event: CairnEvent;
  /** Stream sequence of the commit that holds the event. */
  readonly sequence: number;
}

/**
 * Applies `events` (in stream order) to the read models in `schema` and sets the
 * checkpoint: two reads (the rows the events touch), then one statement that upserts
 * the index, clusters and commands and moves the checkpoint — few round trips, since
 * they are most of a small batch's latency.
 */
export async function applyEvents(
  trx: Db,
  schema: string,
  events: readonly SequencedEvent[],
  checkpoint: { readonly name: string; readonly sequence: number },
): Promise<{ clusters: ClusterRow[]; commands: CommandRow[]; more: ChangedMore; progressed: ClusterRow[] }> {
  const clusterIds = new Set<string>();
  const commandIds = new Set<string>();
  for (const { event } of events) {
    // An install's events move its cluster's progress (read from both rows): its row is
    // read in the same select, to announce it (below).
    if (event.aggregate.type === "cluster" || event.aggregate.type === "install")
      clusterIds.add(event.aggregate.id);
    for (const id of commandIdsOf(event)) commandIds.add(id);
  }
  const clusters = await getClusters(trx, schema, [...clusterIds]);
  const commands = await getCommands(trx, schema, [...commandIds]);
  const more = emptyMoreRows();
  await loadMoreRows(trx, schema, events, more);
  const changed = foldInto(events, clusters, commands, more);
  const index = eventIndexRows(events);
  const ctes: RawBuilder<unknown>[] = [];
  if (index.length > 0) ctes.push(sql`index_rows as (${upsertEventIndexSql(schema, index)})`);
  if (changed.clusters.length > 0)
    ctes.push(sql`cluster_rows as (${upsertClustersSql(schema, changed.clusters)})`);
  if (changed.commands.length > 0)
    ctes.push(sql`command_rows as (${upsertCommandsSql(schema, changed.commands)})`);
  ctes.push(...moreRowsCtes(schema, changed.more));
  const update = sql`update ${sql.table(`${schema}.projector_checkpoint`)}
    set last_sequence = ${checkpoint.sequence} where name = ${checkpoint.name}`;
  await (ctes.length > 0 ? sql`with ${sql.join(ctes)} ${update}` : update).execute(trx);
  // What changed, for those who follow the read models live (the SSE stream): with the
  // clusters whose install moved though their own row did not, since their progress did.
  const written = new Set(changed.clusters.map((r) => r.id));
  const progressed = changed.more.installs
    .filter((i) => !written.has(i.clusterId))
    .map((i) => clusters.get(i.clusterId))
    .filter((r): r is ClusterRow => r !== undefined);
  return { ...changed, progressed };
}

/** The event index rows of `events`, unique by key (the last one wins). */
export function eventIndexRows(events: readonly SequencedEvent[]): EventIndexRow[] {
  return indexRowsByKey(events.map(({ event, sequence }) => toEventIndexRow(event, sequence)));
}

/**
 * Folds `events` into the rows in `clusters` and `commands` (updated in place: the
 * maps hold the rows after the events) and returns the rows that changed. Pure
 * otherwise: the rows themselves are new objects.
 */
export function foldInto(
  events: readonly SequencedEvent[],
  clusters: Map<string, ClusterRow>,
  commands: Map<string, CommandRow>,
  more: MoreRows = emptyMoreRows(),
): { clusters: ClusterRow[]; commands: CommandRow[]; more: ChangedMore } {
  const changedClusters = new Map<string, ClusterRow>();
  const changedCommands = new Map<string, CommandRow>();
  for (const { event, sequence } of events) {
    if (event.aggregate.type === "cluster") {
      const id = event.aggregate.id;
      const before = clusters.get(id);
      const after = applyClusterEvent(before, event, sequence);
      if (after && after !== before) {
        clusters.set(id, after);
        changedClusters.set(id, after);
      }
    }
    for (const commandId of commandIdsOf(event)) {
      const after = applyCommandEvent(commands.get(commandId), event, sequence, commandId);
      if (after) {
        commands.set(commandId, after);
        changedCommands.set(commandId, after);
      }
    }
  }
  return {
    clusters: [...changedClusters.values()],
    commands: [...changedCommands.values()],
    more: foldMore(events, more),
  };
}

/**
 * The read models beyond clusters and commands, keyed by row id: installs (by cluster
 * id), nodes and nodeops (by `nodeAggregateId`), sessions (by session id), step
 * durations (by kind).
 */
export interface MoreRows {
  readonly installs: Map<string, InstallRow>;
  readonly nodes: Map<string, NodeRow>;
  readonly nodeops: Map<string, NodeOpRow>;
  readonly sessions: Map<string, SessionRow>;
  readonly durations: Map<string, StepDurationRow>;
}

/** The rows of `MoreRows` that a fold changed. */
export interface ChangedMore {
  readonly installs: InstallRow[];
  readonly nodes: NodeRow[];
  readonly nodeops: NodeOpRow[];
  readonly sessions: SessionRow[];
  readonly durations: StepDurationRow[];
}

export const emptyMoreRows = (): MoreRows => ({
  installs: new Map(),
  nodes: new Map(),
  nodeops: new Map(),
  sessions: new Map(),
  durations: new Map(),
});

/** Forgets every row (a rebuild past its memory bound). */
export function clearMoreRows(rows: MoreRows): void {
  for (const m of Object.values(rows)) m.clear();
}

export const moreRowCount = (rows: MoreRows) =>
  rows.installs.size + rows.nodes.size + rows.nodeops.size + rows.sessions.size + rows.durations.size;

/** The row ids `events` touch in each model (the ones `foldMore` will read). */
export function moreRowIds(events: readonly SequencedEvent[]) {
  const installs = new Set<string>();
  const nodes = new Set<string>();
  const nodeops = new Set<string>();
  const sessions = new Set<string>();
  for (const { event } of events) {
    if (event.aggregate.type === "install") installs.add(event.aggregate.id);
    if (isSessionEvent(event)) sessions.add(event.aggregate.id);
    for (const node of nodeKeysOf(event)) nodes.add(nodeRowId(node));
    const op = nodeOpIdOf(event);
    if (op !== undefined) nodeops.add(op);
  }
  return { installs, nodes, nodeops, sessions };
}

/**
 * Reads into `rows` what folding `events` needs and `rows` lacks: the touched installs,
 * nodes and nodeops, and every step duration (a handful of rows) when it has none.
 */
export async function loadMoreRows(
  db: Db,
  schema: string,
  events: readonly SequencedEvent[],
  rows: MoreRows,
): Promise<void> {
  const ids = moreRowIds(events);
  const missing = (m: Map<string, unknown>, s: Set<string>) => [...s].filter((id) => !m.has(id));
  for (const [id, r] of await getDocs(db, schema, installsTable, missing(rows.installs, ids.installs)))
    rows.installs.set(id, r);
  for (const [id, r] of await getDocs(db, schema, nodesTable, missing(rows.nodes, ids.nodes)))
    rows.nodes.set(id, r);
  for (const [id, r] of await getDocs(db, schema, nodeopsTable, missing(rows.nodeops, ids.nodeops)))
    rows.nodeops.set(id, r);
  for (const [id, r] of await getDocs(db, schema, sessionsTable, missing(rows.sessions, ids.sessions)))
    rows.sessions.set(id, r);
  if (rows.durations.size === 0 && ids.nodes.size > 0)
    for (const r of await getAllDocs(db, schema, stepDurationsTable)) rows.durations.set(r.kind, r);
}

/**
 * Folds `events` into `rows` (updated in place) and returns the rows that changed.
 * A step duration is sampled from the node's row as it was before the event that
 * completes the step, so the node is folded after the sample is taken.
 */
export function foldMore(events: readonly SequencedEvent[], rows: MoreRows): ChangedMore {
  const installs = new Map<string, InstallRow>();
  const nodes = new Map<string, NodeRow>();
  const nodeops = new Map<string, NodeOpRow>();
  const sessions = new Map<string, SessionRow>();
  const durations = new Map<string, StepDurationRow>();
  for (const { event, sequence } of events) {
    if (event.aggregate.type === "install") {
      const id = event.aggregate.id;
      const before = rows.installs.get(id);
      const after = applyInstallEvent(before, event, sequence);
      if (after && after !== before) {
        rows.installs.set(id, after);
        installs.set(id, after);
      }
    }
    for (const key of nodeKeysOf(event)) {
      const id = nodeRowId(key);
      const before = rows.nodes.get(id);
      const sample = sampleOf(event, before);
      if (sample) {
        const d = addSample(rows.durations.get(sample.kind), sample, event.time, sequence);
        rows.durations.set(d.kind, d);
        durations.set(d.kind, d);
      }
      const after = applyNodeEvent(before, event, sequence, key);
      if (after && after !== before) {
        rows.nodes.set(id, after);
        nodes.set(id, after);
      }
    }
    const op = nodeOpIdOf(event);
    if (op !== undefined) {
      const before = rows.nodeops.get(op);
      const after = applyNodeOpEvent(before, event, sequence);
      if (after && after !== before) {
        rows.nodeops.set(op, after);
        nodeops.set(op, after);
      }
    }
    if (isSessionEvent(event)) {
      const id = event.aggregate.id;
      const before = rows.sessions.get(id);
      const after = applySessionEvent(before, event, sequence);
      if (after && after !== before) {
        rows.sessions.set(id, after);
        sessions.set(id, after);
      }
    }
  }
  return {
    installs: [...installs.values()],
    nodes: [...nodes.values()],
    nodeops: [...nodeops.values()],
    sessions: [...sessions.values()],
    durations: [...durations.values()],
  };
}

/** The upserts of the changed rows, as CTEs of the batch's one statement. */
export function moreRowsCtes(schema: string, changed: ChangedMore): RawBuilder<unknown>[] {
  const ctes: RawBuilder<unknown>[] = [];
  if (changed.installs.length > 0)
    ctes.push(sql`install_rows as (${upsertDocsSql(schema, installsTable, changed.installs)})`);
  if (changed.nodes.length > 0)
    ctes.push(sql`node_rows as (${upsertDocsSql(schema, nodesTable, changed.nodes)})`);
  if (changed.nodeops.length > 0)
    ctes.push(sql`nodeop_rows as (${upsertDocsSql(schema, nodeopsTable, changed.nodeops)})`);
  if (changed.sessions.length > 0)
    ctes.push(sql`session_rows as (${upsertDocsSql(schema, sessionsTable, changed.sessions)})`);
  if (changed.durations.length > 0)
    ctes.push(sql`duration_rows as (${upsertDocsSql(schema, stepDurationsTable, changed.durations)})`);
  return ctes;
}

/** Merges the changes of successive folds (later rows win). */
export function mergeChangedMore(a: ChangedMore, b: ChangedMore): ChangedMore {
  const merge = <R>(x: readonly R[], y: readonly R[], id: (r: R) => string) => {
    const m = new Map<string, R>();
    for (const r of [...x, ...y]) m.set(id(r), r);
    return [...m.values()];
  };
  return {
    installs: merge(a.installs, b.installs, (r) => r.clusterId),
    nodes: merge(a.nodes, b.nodes, (r) => r.id),
    nodeops: merge(a.nodeops, b.nodeops, (r) => r.id),
    sessions: merge(a.sessions, b.sessions, (r) => r.id),
    durations: merge(a.durations, b.durations, (r) => r.kind),
  };
}

export const NO_MORE_CHANGES: ChangedMore = {
  installs: [],
  nodes: [],
  nodeops: [],
  sessions: [],
  durations: [],
};
