/**
 * Writes parsed events into the read models of one schema, inside the caller's
 * transaction: the event index, then clusters and commands folded in memory and
 * written with one multi-row upsert each. A rebuild uses the same fold
 * (`foldInto`) and rows (`eventIndexRows`), so it builds exactly what the live path
 * builds; it only keeps the rows in memory and writes the index with COPY.
 */
import type { RawEventEnvelope } from "@cairn/events";
import { type RawBuilder, sql } from "kysely";
import type { Db } from "./db/database.ts";
import { applyClusterEvent, type ClusterRow } from "./projections/clusters.ts";
import { applyCommandEvent, type CommandRow } from "./projections/commands.ts";
import { type EventIndexRow, toEventIndexRow } from "./projections/event-index.ts";
import { getClusters, upsertClustersSql } from "./repository/clusters.ts";
import { getCommands, upsertCommandsSql } from "./repository/commands.ts";
import { indexRowsByKey, upsertEventIndexSql } from "./repository/event-index.ts";

export interface SequencedEvent {
  readonly event: RawEventEnvelope;
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
): Promise<{ clusters: ClusterRow[]; commands: CommandRow[] }> {
  const clusterIds = new Set<string>();
  const commandIds = new Set<string>();
  for (const { event } of events) {
    if (event.aggregate.type === "cluster") clusterIds.add(event.aggregate.id);
    if (event.meta.commandId !== undefined) commandIds.add(event.meta.commandId);
  }
  const clusters = await getClusters(trx, schema, [...clusterIds]);
  const commands = await getCommands(trx, schema, [...commandIds]);
  const changed = foldInto(events, clusters, commands);
  const index = eventIndexRows(events);
  const ctes: RawBuilder<unknown>[] = [];
  if (index.length > 0) ctes.push(sql`index_rows as (${upsertEventIndexSql(schema, index)})`);
  if (changed.clusters.length > 0)
    ctes.push(sql`cluster_rows as (${upsertClustersSql(schema, changed.clusters)})`);
  if (changed.commands.length > 0)
    ctes.push(sql`command_rows as (${upsertCommandsSql(schema, changed.commands)})`);
  const update = sql`update ${sql.table(`${schema}.projector_checkpoint`)}
    set last_sequence = ${checkpoint.sequence} where name = ${checkpoint.name}`;
  await (ctes.length > 0 ? sql`with ${sql.join(ctes)} ${update}` : update).execute(trx);
  // What changed, for those who follow the read models live (the SSE stream).
  return changed;
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
): { clusters: ClusterRow[]; commands: CommandRow[] } {
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
    const commandId = event.meta.commandId;
    if (commandId !== undefined) {
      const after = applyCommandEvent(commands.get(commandId), event, sequence);
      if (after) {
        commands.set(commandId, after);
        changedCommands.set(commandId, after);
      }
    }
  }
  return { clusters: [...changedClusters.values()], commands: [...changedCommands.values()] };
}
