import type { Selectable } from "kysely";
import type { CommandsTable, Db } from "../db/database.ts";
import type { CommandRow } from "../projections/commands.ts";
import { chunksFor } from "./chunks.ts";

function fromStored(r: Selectable<CommandsTable>): CommandRow {
  return {
    commandId: r.command_id,
    commandType: r.command_type,
    aggregateType: r.aggregate_type,
    aggregateId: r.aggregate_id,
    status: r.status,
    reason: r.reason,
    code: r.code,
    traceId: r.trace_id,
    firstSequence: r.first_sequence,
    updatedAt: r.updated_at.toISOString(),
  };
}

export async function getCommand(db: Db, schema: string, commandId: string): Promise<CommandRow | undefined> {
  const r = await db
    .withSchema(schema)
    .selectFrom("commands")
    .selectAll()
    .where("command_id", "=", commandId)
    .executeTakeFirst();
  return r ? fromStored(r) : undefined;
}

export async function getCommands(
  db: Db,
  schema: string,
  ids: readonly string[],
): Promise<Map<string, CommandRow>> {
  const out = new Map<string, CommandRow>();
  if (ids.length === 0) return out;
  const rows = await db
    .withSchema(schema)
    .selectFrom("commands")
    .selectAll()
    .where("command_id", "in", [...ids])
    .execute();
  for (const r of rows) out.set(r.command_id, fromStored(r));
  return out;
}

const COLUMNS = 10;

export async function upsertCommands(db: Db, schema: string, rows: readonly CommandRow[]): Promise<void> {
  for (const chunk of chunksFor(rows, COLUMNS)) {
    if (chunk.length === 0) continue;
    await db
      .withSchema(schema)
      .insertInto("commands")
      .values(
        chunk.map((r) => ({
          command_id: r.commandId,
          command_type: r.commandType,
          aggregate_type: r.aggregateType,
          aggregate_id: r.aggregateId,
          status: r.status,
          reason: r.reason,
          code: r.code,
          trace_id: r.traceId,
          first_sequence: r.firstSequence,
          updated_at: r.updatedAt,
        })),
      )
      .onConflict((oc) =>
        oc.column("command_id").doUpdateSet((eb) => ({
          command_type: eb.ref("excluded.command_type"),
          aggregate_type: eb.ref("excluded.aggregate_type"),
          aggregate_id: eb.ref("excluded.aggregate_id"),
          status: eb.ref("excluded.status"),
          reason: eb.ref("excluded.reason"),
          code: eb.ref("excluded.code"),
          trace_id: eb.ref("excluded.trace_id"),
          first_sequence: eb.ref("excluded.first_sequence"),
          updated_at: eb.ref("excluded.updated_at"),
        })),
      )
      .execute();
  }
}
