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
import type { ClusterRow } from "../projections/clusters.ts";
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
} from "../repository/doc-tables.ts";
import { copyEventIndex, eventIndexCopyText } from "../repository/event-index-copy.ts";
import { storableBody } from "../storable.ts";

/** Past this many cached rows the rebuild forgets them and reads rows back (bounded memory on any log). */
const MAX_CACHED_ROWS = 1_000_000;

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

  if (state.clusters.size + state.commands.size + moreRowCount(state.more) > MAX_CACHED_ROWS) {
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
  for (let i = 0; i < events.length; i += SLICE) {
    const changed = foldInto(events.slice(i, i + SLICE), state.clusters, state.commands, state.more);
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
  const ctes: RawBuilder<unknown>[] = [];
  // A row that could already be there is deleted first: delete-then-insert is the upsert,
  // and needs no unique key (the rebuild builds the key only after the bulk load).
  if (batch.replaces.length > 0) await deleteEventIndexKeys(db, schema, batch.replaces);
  await copyEventIndex(client, schema, batch.copy);
  if (batch.clusters.length > 0)
    ctes.push(sql`cluster_rows as (${upsertClustersSql(schema, batch.clusters)})`);
  if (batch.commands.length > 0)
    ctes.push(sql`command_rows as (${upsertCommandsSql(schema, batch.commands)})`);
  ctes.push(...moreRowsCtes(schema, batch.more));
  const update = sql`update ${sql.table(`${schema}.projector_checkpoint`)}
    set last_sequence = ${batch.checkpoint} where name = ${name}`;
  await (ctes.length > 0 ? sql`with ${sql.join(ctes)} ${update}` : update).execute(db);
}
