/**
 * One batch of a rebuild, in two halves so that they overlap: `prepareBatch` (CPU:
 * parse, fold, the COPY text) runs for batch N+1 while `writeBatch` of batch N waits on
 * Postgres. The fold is the live path's (`foldInto`, `eventIndexRows`); what differs is
 * that the rows stay in memory between batches — the rebuild is its schema's only
 * writer — and that the event index is written with COPY.
 */
import type { AnyEvent, Catalogue } from "@cairn/events";
import type { JsMsg } from "@nats-io/jetstream";
import { type RawBuilder, sql } from "kysely";
import {
  type ChangedMore,
  clearMoreRows,
  emptyMoreRows,
  eventIndexRows,
  foldInto,
  loadMoreRows,
  type MoreRows,
  mergeChangedMore,
  moreRowCount,
  moreRowsCtes,
  NO_MORE_CHANGES,
  type SequencedEvent,
} from "../apply-events.ts";
import type { Db } from "../db/database.ts";
import type { ClusterRow, FoldOwned } from "../projections/clusters.ts";
import { type CommandRow, commandIdsOf } from "../projections/commands.ts";
import type { EventIndexRow } from "../projections/event-index.ts";
import { fromStored, getClusters, upsertClustersSql } from "../repository/clusters.ts";
import { getCommands, upsertCommandsSql } from "../repository/commands.ts";
import {
  getAllDocs,
  installsTable,
  nodeopsTable,
  nodesTable,
  sessionsTable,
  stepDurationsTable,
  upsertDocsSql,
} from "../repository/doc-tables.ts";
import { copyEventIndex, eventIndexCopyText } from "../repository/event-index-copy.ts";
import { storableBody } from "../storable.ts";

/** Past this many cached rows the rebuild forgets them and reads rows back (bounded memory on any log). */
export const MAX_CACHED_ROWS = 1_000_000;

/** The rows a rebuild keeps in memory; past {@link MAX_CACHED_ROWS}, `prepareBatch` forgets them. */
export const cachedRowCount = (state: RebuildState) =>
  state.clusters.size + state.commands.size + moreRowCount(state.more);

/** What a rebuild keeps between batches. */
export interface RebuildState {
  readonly clusters: Map<string, ClusterRow>;
  readonly commands: Map<string, CommandRow>;
  /** The highest position in the index per aggregate: an event at or below it would collide with COPY. */
  readonly positions: Map<string, number>;
  /** Installs, nodes, nodeops, sessions and step durations (see `MoreRows`). */
  readonly more: MoreRows;
  /** Every row of the schema is in the maps (nothing to read back). */
  complete: boolean;
}

const aggregateKey = (type: string, id: string) => `${type}\u0000${id}`;

/** The state of a rebuild schema: empty for a fresh one, read back for a resumed one. */
export async function loadRebuildState(db: Db, schema: string, fresh: boolean): Promise<RebuildState> {
  const state: RebuildState = {
    clusters: new Map(),
    commands: new Map(),
    positions: new Map(),
    more: emptyMoreRows(),
    complete: true,
  };
  if (fresh) return state;
  const positions = await sql<{ aggregate_type: string; aggregate_id: string; p: number }>`
    select aggregate_type, aggregate_id, max(position)::int as p
    from ${sql.table(`${schema}.event_index`)} group by 1, 2`.execute(db);
  for (const r of positions.rows) state.positions.set(aggregateKey(r.aggregate_type, r.aggregate_id), r.p);
  const count = await sql<{ n: number }>`
    select (select count(*) from ${sql.table(`${schema}.clusters`)}) + (select count(*) from ${sql.table(`${schema}.commands`)}) as n`.execute(
    db,
  );
  if (Number(count.rows[0]?.n ?? 0) > MAX_CACHED_ROWS) {
    state.complete = false;
    return state;
  }
  for (const r of await db.withSchema(schema).selectFrom("clusters").selectAll().execute())
    state.clusters.set(r.id, fromStored(r));
  const ids = (await db.withSchema(schema).selectFrom("commands").select("command_id").execute()).map(
    (r) => r.command_id,
  );
  for (const [id, row] of await getCommands(db, schema, ids)) state.commands.set(id, row);
  for (const r of await getAllDocs(db, schema, installsTable)) state.more.installs.set(r.clusterId, r);
  for (const r of await getAllDocs(db, schema, nodesTable)) state.more.nodes.set(r.id, r);
  for (const r of await getAllDocs(db, schema, nodeopsTable)) state.more.nodeops.set(r.id, r);
  for (const r of await getAllDocs(db, schema, sessionsTable)) state.more.sessions.set(r.id, r);
  for (const r of await getAllDocs(db, schema, stepDurationsTable)) state.more.durations.set(r.kind, r);
  return state;
}

export interface PreparedBatch {
  /** The last sequence of the batch: the checkpoint once written. */
  readonly checkpoint: number;
  readonly commits: number;
  readonly events: number;
  /** Not readable commits (the live projection dead-lettered them): passed. */
  readonly unreadable: number;
  /** COPY text of the index rows. */
  readonly copy: string;
  /** Index rows whose key may be there already (a log that repeats a position): deleted before the COPY. */
  readonly replaces: EventIndexRow[];
  readonly clusters: ClusterRow[];
  readonly commands: CommandRow[];
  readonly more: ChangedMore;
}

/** Lets pending I/O callbacks (the previous batch's statements) run between slices of CPU work. */
const yieldToIo = () => new Promise<void>((r) => setImmediate(r));
const SLICE = 1_000;

/**
 * Parses and folds one batch against `state` (updated: after it, the state is the
 * batch's). `trusted`: read with `parseCommitTrusted`, else with the validating
 * `parseCommit`. When the state is not complete, the rows it lacks are read with `db`:
 * the caller must have finished writing the previous batch.
 */
export async function prepareBatch(
  msgs: readonly JsMsg[],
  cat: Catalogue<AnyEvent>,
  state: RebuildState,
  db: Db,
  schema: string,
  trusted = true,
): Promise<PreparedBatch> {
  const events: SequencedEvent[] = [];
  let commits = 0;
  let unreadable = 0;
  for (let i = 0; i < msgs.length; i++) {
    const m = msgs[i]!;
    try {
      // Trusted by default: the owning services validated every event before appending it
      // and the live projection parsed each commit fully (see `ReplayOptions.trustLog`).
      const body = storableBody(m);
      const at = { subject: m.subject };
      const parsed = trusted ? cat.parseCommitTrusted(body, at) : cat.parseCommit(body, at);
      commits++;
      for (const event of parsed.events) events.push({ event, sequence: m.seq });
    } catch {
      unreadable++;
    }
    if (i % SLICE === SLICE - 1) await yieldToIo();
  }

  if (cachedRowCount(state) > MAX_CACHED_ROWS) {
    state.clusters.clear();
    state.commands.clear();
    clearMoreRows(state.more);
    state.complete = false;
  }
  if (!state.complete) {
    const clusterIds = new Set<string>();
    const commandIds = new Set<string>();
    for (const { event } of events) {
      if (event.aggregate.type === "cluster" && !state.clusters.has(event.aggregate.id))
        clusterIds.add(event.aggregate.id);
      for (const c of commandIdsOf(event)) if (!state.commands.has(c)) commandIds.add(c);
    }
    for (const [id, row] of await getClusters(db, schema, [...clusterIds])) state.clusters.set(id, row);
    for (const [id, row] of await getCommands(db, schema, [...commandIds])) state.commands.set(id, row);
    await loadMoreRows(db, schema, events, state.more);
  }

  const clusters = new Map<string, ClusterRow>();
  const commands = new Map<string, CommandRow>();
  let more = NO_MORE_CHANGES;
  // One copy per row per batch (copy on first write): the rows of earlier batches are
  // still to be written (`writeBatch`, the pending flush) and are never changed in place.
  const owned: FoldOwned = new WeakSet();
  for (let i = 0; i < events.length; i += SLICE) {
    const changed = foldInto(events.slice(i, i + SLICE), state.clusters, state.commands, state.more, owned);
    more = mergeChangedMore(more, changed.more);
    for (const r of changed.clusters) clusters.set(r.id, r);
    for (const r of changed.commands) commands.set(r.commandId, r);
    await yieldToIo();
  }

  const rows = eventIndexRows(events);
  const replaces: EventIndexRow[] = [];
  for (const r of rows) {
    const key = aggregateKey(r.aggregateType, r.aggregateId);
    const highest = state.positions.get(key) ?? 0;
    if (r.position <= highest) replaces.push(r);
    else state.positions.set(key, r.position);
  }
  return {
    checkpoint: msgs.at(-1)?.seq ?? 0,
    commits,
    events: events.length,
    unreadable,
    copy: eventIndexCopyText(rows),
    replaces,
    clusters: [...clusters.values()],
    commands: [...commands.values()],
    more,
  };
}

type Client = Parameters<typeof copyEventIndex>[0];

/** Deletes the index rows with these keys. */
async function deleteEventIndexKeys(db: Db, schema: string, rows: readonly EventIndexRow[]): Promise<void> {
  await sql`
    delete from ${sql.table(`${schema}.event_index`)} e
    using unnest(${rows.map((r) => r.aggregateType)}::text[], ${rows.map((r) => r.aggregateId)}::text[],
                 ${rows.map((r) => r.position)}::integer[]) as k(aggregate_type, aggregate_id, position)
    where e.aggregate_type = k.aggregate_type and e.aggregate_id = k.aggregate_id and e.position = k.position`.execute(
    db,
  );
}

/** Writes a prepared batch and the checkpoint, inside the caller's transaction: COPY, then one statement. */
export async function writeBatch(
  client: Client,
  db: Db,
  schema: string,
  name: string,
  batch: PreparedBatch,
): Promise<void> {
  await writeEventIndex(client, db, schema, batch);
  const ctes: RawBuilder<unknown>[] = [];
  if (batch.clusters.length > 0)
    ctes.push(sql`cluster_rows as (${upsertClustersSql(schema, batch.clusters)})`);
  if (batch.commands.length > 0)
    ctes.push(sql`command_rows as (${upsertCommandsSql(schema, batch.commands)})`);
  ctes.push(...moreRowsCtes(schema, batch.more));
  const update = checkpointUpdate(schema, name, batch.checkpoint);
  await (ctes.length > 0 ? sql`with ${sql.join(ctes)} ${update}` : update).execute(db);
}

/**
 * The batch's event index rows alone (the bulk load's write): a row that could already be
 * there is deleted first — delete-then-insert is the upsert, and needs no unique key (the
 * rebuild builds the key only after the bulk load) — then COPY.
 */
export async function writeEventIndex(
  client: Client,
  db: Db,
  schema: string,
  batch: PreparedBatch,
): Promise<void> {
  if (batch.replaces.length > 0) await deleteEventIndexKeys(db, schema, batch.replaces);
  await copyEventIndex(client, schema, batch.copy);
}

const checkpointUpdate = (schema: string, name: string, checkpoint: number) =>
  sql`update ${sql.table(`${schema}.projector_checkpoint`)}
    set last_sequence = ${checkpoint} where name = ${name}`;

/**
 * The read-model rows the bulk load changed since its last flush, each the latest
 * version of its row (clusters, commands, installs, nodes, nodeops, sessions, step
 * durations): written once per flush instead of once per batch — a cluster touched in
 * every batch was rewritten (a 2 kB row, with its key) 20 times per 100,000 events.
 */
export interface PendingRows {
  readonly clusters: Map<string, ClusterRow>;
  readonly commands: Map<string, CommandRow>;
  readonly installs: Map<string, ChangedMore["installs"][number]>;
  readonly nodes: Map<string, ChangedMore["nodes"][number]>;
  readonly nodeops: Map<string, ChangedMore["nodeops"][number]>;
  readonly sessions: Map<string, ChangedMore["sessions"][number]>;
  readonly durations: Map<string, ChangedMore["durations"][number]>;
}

export const emptyPendingRows = (): PendingRows => ({
  clusters: new Map(),
  commands: new Map(),
  installs: new Map(),
  nodes: new Map(),
  nodeops: new Map(),
  sessions: new Map(),
  durations: new Map(),
});

export const pendingRowCount = (p: PendingRows) =>
  p.clusters.size +
  p.commands.size +
  p.installs.size +
  p.nodes.size +
  p.nodeops.size +
  p.sessions.size +
  p.durations.size;

/** Remembers a batch's changed rows (later versions replace earlier ones). */
export function addPendingRows(p: PendingRows, batch: PreparedBatch): void {
  for (const r of batch.clusters) p.clusters.set(r.id, r);
  for (const r of batch.commands) p.commands.set(r.commandId, r);
  for (const r of batch.more.installs) p.installs.set(r.clusterId, r);
  for (const r of batch.more.nodes) p.nodes.set(r.id, r);
  for (const r of batch.more.nodeops) p.nodeops.set(r.id, r);
  for (const r of batch.more.sessions) p.sessions.set(r.id, r);
  for (const r of batch.more.durations) p.durations.set(r.kind, r);
}

/** Rows per statement of a flush (a 2 kB cluster row: a few MB of SQL text). */
const FLUSH_CHUNK = 2_000;

function* chunks<R>(rows: Map<string, R>): Generator<R[]> {
  let out: R[] = [];
  for (const r of rows.values()) {
    out.push(r);
    if (out.length === FLUSH_CHUNK) {
      yield out;
      out = [];
    }
  }
  if (out.length > 0) yield out;
}

/**
 * Writes the pending rows (the live path's upserts, so the rows are the live path's) and
 * moves the checkpoint to `checkpoint`, inside the caller's transaction; the pending rows
 * are forgotten. After it, every row of the rebuild is as of `checkpoint`.
 */
export async function flushRows(
  db: Db,
  schema: string,
  name: string,
  pending: PendingRows,
  checkpoint: number,
): Promise<void> {
  for (const rows of chunks(pending.clusters)) await upsertClustersSql(schema, rows).execute(db);
  for (const rows of chunks(pending.commands)) await upsertCommandsSql(schema, rows).execute(db);
  for (const rows of chunks(pending.installs)) await upsertDocsSql(schema, installsTable, rows).execute(db);
  for (const rows of chunks(pending.nodes)) await upsertDocsSql(schema, nodesTable, rows).execute(db);
  for (const rows of chunks(pending.nodeops)) await upsertDocsSql(schema, nodeopsTable, rows).execute(db);
  for (const rows of chunks(pending.sessions)) await upsertDocsSql(schema, sessionsTable, rows).execute(db);
  for (const rows of chunks(pending.durations))
    await upsertDocsSql(schema, stepDurationsTable, rows).execute(db);
  await checkpointUpdate(schema, name, checkpoint).execute(db);
  for (const m of Object.values(pending)) (m as Map<string, unknown>).clear();
}

/**
 * Takes a rebuild back to its checkpoint: the bulk load COPYs each batch's event index rows
 * at once but moves the checkpoint only when it flushes the other rows, so the index may
 * hold rows past it (a crash between two flushes). They are deleted; the resumed run writes
 * them again. Returns how many there were.
 */
export async function trimToCheckpoint(db: Db, schema: string, checkpoint: number): Promise<number> {
  const r =
    await sql`delete from ${sql.table(`${schema}.event_index`)} where sequence > ${checkpoint}`.execute(db);
  return Number(r.numAffectedRows ?? 0);
}
