import type { Selectable } from "kysely";
import { type RawBuilder, sql } from "kysely";
import type { CommandsTable, Db } from "../db/database.ts";
import type { CommandRow } from "../projections/commands.ts";
import { qualified, type RecordsetColumn, recordsetUpsert, type Staging } from "./recordset.ts";

export function fromStored(r: Selectable<CommandsTable>): CommandRow {
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

/** One `insert … select from json_to_recordset(…) on conflict do update` (repository/recordset.ts; no `jsonb` column, so a `json` literal). */
export async function upsertCommands(db: Db, schema: string, rows: readonly CommandRow[]): Promise<void> {
  if (rows.length === 0) return;
  await upsertCommandsSql(schema, rows).execute(db);
}

const COMMAND_COLUMNS: readonly RecordsetColumn[] = [
  { column: "command_id", key: "commandId", type: "text" },
  { column: "command_type", key: "commandType", type: "text" },
  { column: "aggregate_type", key: "aggregateType", type: "text" },
  { column: "aggregate_id", key: "aggregateId", type: "text" },
  { column: "status", key: "status", type: "text" },
  { column: "reason", key: "reason", type: "text" },
  { column: "code", key: "code", type: "text" },
  { column: "trace_id", key: "traceId", type: "text" },
  { column: "first_sequence", key: "firstSequence", type: "bigint" },
  { column: "updated_at", key: "updatedAt", type: "timestamptz" },
];

/** The upsert statement of upsertCommands, as SQL text. */
export function upsertCommandsText(schema: string, rows: readonly CommandRow[], staging?: Staging): string {
  return recordsetUpsert(qualified(schema, "commands"), COMMAND_COLUMNS, ["command_id"], rows, [], staging);
}

/** The upsert statement of upsertCommands (for one statement with others, see `writeBatchRows`). */
export function upsertCommandsSql(schema: string, rows: readonly CommandRow[]): RawBuilder<unknown> {
  return sql.raw(upsertCommandsText(schema, rows));
}
