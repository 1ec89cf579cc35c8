import type { Selectable } from "kysely";
import { type RawBuilder, sql } from "kysely";
import type { CommandsTable, Db } from "../db/database.ts";
import type { CommandRow } from "../projections/commands.ts";

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

/** One `insert … select from unnest(…) on conflict do update` (ten parameters, any row count). */
export async function upsertCommands(db: Db, schema: string, rows: readonly CommandRow[]): Promise<void> {
  if (rows.length === 0) return;
  await upsertCommandsSql(schema, rows).execute(db);
}

/** The upsert statement of upsertCommands (for one statement with others, see `writeBatchRows`). */
export function upsertCommandsSql(schema: string, rows: readonly CommandRow[]): RawBuilder<unknown> {
  const col = <T>(f: (r: CommandRow) => T) => rows.map(f);
  return sql`
    insert into ${sql.table(`${schema}.commands`)}
      (command_id, command_type, aggregate_type, aggregate_id, status, reason, code, trace_id, first_sequence, updated_at)
    select * from unnest(
      ${col((r) => r.commandId)}::text[], ${col((r) => r.commandType)}::text[],
      ${col((r) => r.aggregateType)}::text[], ${col((r) => r.aggregateId)}::text[],
      ${col((r) => r.status)}::text[], ${col((r) => r.reason)}::text[], ${col((r) => r.code)}::text[],
      ${col((r) => r.traceId)}::text[], ${col((r) => r.firstSequence)}::bigint[],
      ${col((r) => r.updatedAt)}::timestamptz[])
    on conflict (command_id) do update set
      command_type = excluded.command_type, aggregate_type = excluded.aggregate_type,
      aggregate_id = excluded.aggregate_id, status = excluded.status, reason = excluded.reason,
      code = excluded.code, trace_id = excluded.trace_id, first_sequence = excluded.first_sequence,
      updated_at = excluded.updated_at`;
}
