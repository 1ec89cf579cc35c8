/**
 * Writes parsed events into the read models of one schema, inside the caller's
 * transaction: the event index, then clusters and commands folded in memory and
 * written with one multi-row upsert each. A rebuild uses the same fold
 * (`foldInto`) and rows (`eventIndexRows`), so it builds exactly what the live path
 * builds; it only keeps the rows in memory and writes the index with COPY.
 */
import type { CairnEvent } from "@cairn/events";
import { type RawBuilder, type Selectable, sql } from "kysely";
import type { ClustersTable, CommandsTable, Db } from "./db/database.ts";
import { applyClusterEvent, type ClusterRow, type FoldOwned } from "./projections/clusters.ts";
import { applyCommandEvent, type CommandRow, commandIdsOf } from "./projections/commands.ts";
import { type EventIndexRow, toEventIndexRow } from "./projections/event-index.ts";
import { applyInstallEvent, type InstallRow } from "./projections/installs.ts";
import { applyNodeOpEvent, type NodeOpRow, nodeOpIdOf } from "./projections/nodeops.ts";
import { applyNodeEvent, type NodeRow, nodeKeysOf, nodeRowId } from "./projections/nodes.ts";
import { applySessionEvent, isSessionEvent, type SessionRow } from "./projections/sessions.ts";
import { addSample, type StepDurationRow, sampleOf } from "./projections/step-durations.ts";
import { fromStored as clusterFromStored, upsertClustersText } from "./repository/clusters.ts";
import { fromStored as commandFromStored, upsertCommandsText } from "./repository/commands.ts";
import {
  type DocTable,
  getAllDocs,
  getDocs,
  installsTable,
  nodeopsTable,
  nodesTable,
  sessionsTable,
  stepDurationsTable,
  upsertDocsSql,
  upsertDocsText,
} from "./repository/doc-tables.ts";
import { indexRowsByKey, upsertEventIndexText } from "./repository/event-index.ts";
import { dollarQuoted, qualified, type Staging, textArrayLiteral } from "./repository/recordset.ts";

export interface SequencedEvent {
  readonly event: CairnEvent;
  /** Stream sequence of the commit that holds the event. */
  readonly sequence: number;
}

/** The rows a live batch reads before it folds: those its events touch. */
export interface ReadSet {
  readonly clusters: Set<string>;
  readonly commands: Set<string>;
  readonly installs: Set<string>;
  readonly nodes: Set<string>;
  readonly nodeops: Set<string>;
  readonly sessions: Set<string>;
  /** The step durations (all of them, a handful): when a node moves. */
  durations: boolean;
}

export function emptyReadSet(): ReadSet {
  return {
    clusters: new Set(),
    commands: new Set(),
    installs: new Set(),
    nodes: new Set(),
    nodeops: new Set(),
    sessions: new Set(),
    durations: false,
  };
}

/** Adds to `set` the rows folding `events` reads. */
export function addToReadSet(set: ReadSet, events: readonly SequencedEvent[]): ReadSet {
  // Straight into `set` (it is called once per commit: no sets of its own per call).
  for (const { event } of events) {
    // An install's events move its cluster's progress (read from both rows): its row is
    // read too, to announce it (see `foldBatch`).
    if (event.aggregate.type === "cluster" || event.aggregate.type === "install")
      set.clusters.add(event.aggregate.id);
    for (const id of commandIdsOf(event)) set.commands.add(id);
    addMoreRowIds(set, event);
  }
  if (set.nodes.size > 0) set.durations = true;
  return set;
}

/** What `set` holds that `done` does not (the rows a batch still has to read). */
export function readSetMinus(set: ReadSet, done: ReadSet): ReadSet {
  const minus = (a: Set<string>, b: Set<string>) => new Set([...a].filter((x) => !b.has(x)));
  return {
    clusters: minus(set.clusters, done.clusters),
    commands: minus(set.commands, done.commands),
    installs: minus(set.installs, done.installs),
    nodes: minus(set.nodes, done.nodes),
    nodeops: minus(set.nodeops, done.nodeops),
    sessions: minus(set.sessions, done.sessions),
    durations: set.durations && !done.durations,
  };
}

export function readSetSize(set: ReadSet): number {
  return (
    set.clusters.size +
    set.commands.size +
    set.installs.size +
    set.nodes.size +
    set.nodeops.size +
    set.sessions.size +
    (set.durations ? 1 : 0)
  );
}

/** The rows a live batch folds into, as read. */
export interface LoadedRows {
  readonly clusters: Map<string, ClusterRow>;
  readonly commands: Map<string, CommandRow>;
  readonly more: MoreRows;
}

export const emptyLoadedRows = (): LoadedRows => ({
  clusters: new Map(),
  commands: new Map(),
  more: emptyMoreRows(),
});

/**
 * The selects of `set` as SQL texts (no parameters: they go in one simple query with
 * others), and how to take their results into `into`: `read(results)` expects the
 * results of exactly these statements, in order.
 */
export function readStatements(
  schema: string,
  set: ReadSet,
  into: LoadedRows,
): { statements: string[]; read(results: readonly { rows: unknown[] }[]): void } {
  const statements: string[] = [];
  const readers: ((rows: unknown[]) => void)[] = [];
  if (set.clusters.size > 0) {
    statements.push(
      `select * from ${qualified(schema, "clusters")} where id = any(${textArrayLiteral(set.clusters)})`,
    );
    readers.push((rows) => {
      for (const r of rows as Selectable<ClustersTable>[]) into.clusters.set(r.id, clusterFromStored(r));
    });
  }
  if (set.commands.size > 0) {
    statements.push(
      `select * from ${qualified(schema, "commands")} where command_id = any(${textArrayLiteral(set.commands)})`,
    );
    readers.push((rows) => {
      for (const r of rows as Selectable<CommandsTable>[])
        into.commands.set(r.command_id, commandFromStored(r));
    });
  }
  const docs = <R>(ids: Set<string>, t: DocTable<R>, m: Map<string, R>) => {
    if (ids.size === 0) return;
    statements.push(
      `select id, doc from ${qualified(schema, t.table)} where id = any(${textArrayLiteral(ids)})`,
    );
    readers.push((rows) => {
      for (const r of rows as { id: string; doc: R }[]) m.set(r.id, r.doc);
    });
  };
  docs(set.installs, installsTable, into.more.installs);
  docs(set.nodes, nodesTable, into.more.nodes);
  docs(set.nodeops, nodeopsTable, into.more.nodeops);
  docs(set.sessions, sessionsTable, into.more.sessions);
  if (set.durations) {
    statements.push(`select doc from ${qualified(schema, stepDurationsTable.table)} order by id`);
    readers.push((rows) => {
      for (const r of rows as { doc: StepDurationRow }[]) into.more.durations.set(r.doc.kind, r.doc);
    });
  }
  return {
    statements,
    read: (results) => {
      if (results.length !== readers.length)
        throw new Error(`expected ${readers.length} results of the batch's reads, got ${results.length}`);
      for (let i = 0; i < readers.length; i++) readers[i]!(results[i]!.rows);
    },
  };
}

/** The rows a live batch changed, and the clusters whose install moved though their own row did not. */
export interface FoldedBatch {
  readonly clusters: ClusterRow[];
  readonly commands: CommandRow[];
  readonly more: ChangedMore;
  readonly progressed: ClusterRow[];
  /**
   * The spec of each cluster row as the batch read it: a written row whose spec is still
   * that same object holds it in the table already, so its spec is not sent again.
   */
  readonly specRead: ReadonlyMap<string, ClusterRow["spec"]>;
}

/** Folds a live batch's `events` into the rows it read (`loaded`, updated in place). */
export function foldBatch(events: readonly SequencedEvent[], loaded: LoadedRows): FoldedBatch {
  const specRead = new Map<string, ClusterRow["spec"]>();
  // The rows were read for this batch alone (each attempt reads its own): the fold changes
  // them in place, with no copy at all (the spec is never changed in place, only replaced).
  const owned: FoldOwned = new WeakSet();
  for (const [id, row] of loaded.clusters) {
    specRead.set(id, row.spec);
    owned.add(row);
    owned.add(row.progress.nodes);
  }
  const changed = foldInto(events, loaded.clusters, loaded.commands, loaded.more, owned);
  // What changed, for those who follow the read models live (the SSE stream): with the
  // clusters whose install moved though their own row did not, since their progress did.
  const written = new Set(changed.clusters.map((r) => r.id));
  const progressed = changed.more.installs
    .filter((i) => !written.has(i.clusterId))
    .map((i) => loaded.clusters.get(i.clusterId))
    .filter((r): r is ClusterRow => r !== undefined);
  return { ...changed, progressed, specRead };
}

/**
 * The write of a live batch as SQL text: one statement that upserts the event index and
 * every changed row (data-modifying CTEs) and moves the checkpoint.
 */
export function writeStatement(
  schema: string,
  events: readonly SequencedEvent[],
  folded: FoldedBatch,
  checkpoint: { readonly name: string; readonly sequence: number },
  /**
   * `eventIndex: false`: the caller wrote the event index already (the live COPY).
   * `staging`: the rows go to staging tables (COPY) instead of inline; the caller sends
   * its creates and COPYs first (`Staging`, repository/recordset.ts).
   */
  opts: { readonly eventIndex?: boolean; readonly staging?: Staging } = {},
): string {
  const index = opts.eventIndex === false ? [] : eventIndexRows(events);
  const ctes: string[] = [];
  if (index.length > 0) ctes.push(`index_rows as (${upsertEventIndexText(schema, index)})`);
  if (folded.clusters.length > 0)
    ctes.push(
      `cluster_rows as (${upsertClustersText(schema, folded.clusters, (r) => folded.specRead.get(r.id) === r.spec, opts.staging)})`,
    );
  if (folded.commands.length > 0)
    ctes.push(`command_rows as (${upsertCommandsText(schema, folded.commands, opts.staging)})`);
  const more: [string, DocTable<never>, readonly unknown[]][] = [
    ["install_rows", installsTable as DocTable<never>, folded.more.installs],
    ["node_rows", nodesTable as DocTable<never>, folded.more.nodes],
    ["nodeop_rows", nodeopsTable as DocTable<never>, folded.more.nodeops],
    ["session_rows", sessionsTable as DocTable<never>, folded.more.sessions],
    ["duration_rows", stepDurationsTable as DocTable<never>, folded.more.durations],
  ];
  for (const [name, t, rows] of more)
    if (rows.length > 0)
      ctes.push(`${name} as (${upsertDocsText(schema, t, rows as never[], opts.staging)})`);
  const update = `update ${qualified(schema, "projector_checkpoint")}
    set last_sequence = ${Math.trunc(checkpoint.sequence)} where name = ${dollarQuoted(checkpoint.name)}`;
  return ctes.length > 0 ? `with ${ctes.join(",\n")} ${update}` : update;
}

/** The event index rows of `events`, unique by key (the last one wins). */
export function eventIndexRows(events: readonly SequencedEvent[]): EventIndexRow[] {
  return indexRowsByKey(events.map(({ event, sequence }) => toEventIndexRow(event, sequence)));
}

/**
 * Folds `events` into the rows in `clusters` and `commands` (updated in place: the
 * maps hold the rows after the events) and returns the rows that changed. Pure
 * otherwise: the rows it was given are left as they were; the rows it returns are new
 * objects (each cluster row copied once, then changed in place by the call's later events).
 */
export function foldInto(
  events: readonly SequencedEvent[],
  clusters: Map<string, ClusterRow>,
  commands: Map<string, CommandRow>,
  more: MoreRows = emptyMoreRows(),
  /**
   * Copy on first write: a row (and its slot record) not in `owned` is copied by the first
   * event that changes it, the copy added, then changed in place by the next ones — so a
   * cluster's 50 events in a batch cost one copy, not 50, and the rows the caller holds
   * from before are never changed. By default a set of the call's own; one shared by the
   * calls of one batch, or holding rows only this batch holds (the live batch's reads:
   * `foldBatch`), copies fewer.
   */
  owned: FoldOwned = new WeakSet(),
): { clusters: ClusterRow[]; commands: CommandRow[]; more: ChangedMore } {
  const changedClusters = new Map<string, ClusterRow>();
  const changedCommands = new Map<string, CommandRow>();
  for (const { event, sequence } of events) {
    if (event.aggregate.type === "cluster") {
      const id = event.aggregate.id;
      const before = clusters.get(id);
      const version = before?.version;
      const after = applyClusterEvent(before, event, sequence, owned);
      if (after && (after !== before || after.version !== version)) {
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
    more: foldMore(events, more, owned),
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
  const ids = {
    installs: new Set<string>(),
    nodes: new Set<string>(),
    nodeops: new Set<string>(),
    sessions: new Set<string>(),
  };
  for (const { event } of events) addMoreRowIds(ids, event);
  return ids;
}

function addMoreRowIds(
  ids: { installs: Set<string>; nodes: Set<string>; nodeops: Set<string>; sessions: Set<string> },
  event: CairnEvent,
): void {
  if (event.aggregate.type === "install") ids.installs.add(event.aggregate.id);
  if (isSessionEvent(event)) ids.sessions.add(event.aggregate.id);
  for (const node of nodeKeysOf(event)) ids.nodes.add(nodeRowId(node));
  const op = nodeOpIdOf(event);
  if (op !== undefined) ids.nodeops.add(op);
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
export function foldMore(
  events: readonly SequencedEvent[],
  rows: MoreRows,
  /** As `foldInto`'s: an install's node record and step list copied once per batch, not per event. */
  owned?: FoldOwned,
): ChangedMore {
  const installs = new Map<string, InstallRow>();
  const nodes = new Map<string, NodeRow>();
  const nodeops = new Map<string, NodeOpRow>();
  const sessions = new Map<string, SessionRow>();
  const durations = new Map<string, StepDurationRow>();
  for (const { event, sequence } of events) {
    if (event.aggregate.type === "install") {
      const id = event.aggregate.id;
      const before = rows.installs.get(id);
      const after = applyInstallEvent(before, event, sequence, owned);
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
