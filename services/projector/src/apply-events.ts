/**
 * Writes parsed events into the read models of one schema, inside the caller's
 * transaction: the event index, then clusters and commands folded in memory and
 * written with one multi-row upsert each. The live projection and a rebuild share it,
 * so a rebuild builds exactly what the live path builds; only how the event index is
 * written differs (an upsert live, COPY into a fresh table in a rebuild).
 */
import type { RawEventEnvelope } from "@cairn/events";
import type { Db } from "./db/database.ts";
import { applyClusterEvent, type ClusterRow } from "./projections/clusters.ts";
import { applyCommandEvent, type CommandRow } from "./projections/commands.ts";
import { type EventIndexRow, toEventIndexRow } from "./projections/event-index.ts";
import { getClusters, upsertClusters } from "./repository/clusters.ts";
import { getCommands, upsertCommands } from "./repository/commands.ts";
import { indexRowsByKey, upsertEventIndex } from "./repository/event-index.ts";

export interface SequencedEvent {
  readonly event: RawEventEnvelope;
  /** Stream sequence of the commit that holds the event. */
  readonly sequence: number;
}

/** Writes event index rows (unique by key within one call). */
export type IndexWriter = (trx: Db, schema: string, rows: readonly EventIndexRow[]) => Promise<void>;

/** Applies `events` (in stream order) to the read models in `schema`. */
export async function applyEvents(
  trx: Db,
  schema: string,
  events: readonly SequencedEvent[],
  writeIndex: IndexWriter = upsertEventIndex,
): Promise<void> {
  if (events.length === 0) return;
  const clusterIds = new Set<string>();
  const commandIds = new Set<string>();
  for (const { event } of events) {
    if (event.aggregate.type === "cluster") clusterIds.add(event.aggregate.id);
    if (event.meta.commandId !== undefined) commandIds.add(event.meta.commandId);
  }
  const clusters = await getClusters(trx, schema, [...clusterIds]);
  const commands = await getCommands(trx, schema, [...commandIds]);
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

  await writeIndex(
    trx,
    schema,
    indexRowsByKey(events.map(({ event, sequence }) => toEventIndexRow(event, sequence))),
  );
  await upsertClusters(trx, schema, [...changedClusters.values()]);
  await upsertCommands(trx, schema, [...changedCommands.values()]);
}
