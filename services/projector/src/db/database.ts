/**
 * The read-model tables as kysely sees them, and the connection. The live tables live
 * in one Postgres schema, `cairn`; a replay builds `cairn_rebuild_<n>` next to it and
 * swaps the two by renaming schemas. Every connection has `search_path = cairn, public`,
 * so a query that names a table without a schema (`select … from clusters`) reads the
 * live one, before and after a swap alike.
 */
import { type ColumnType, Kysely, PostgresDialect } from "kysely";
import pg from "pg";

/** `timestamptz`: read as a Date, written as a Date or an ISO string. */
export type Timestamp = ColumnType<Date, Date | string, Date | string>;
/** `jsonb`: read parsed, written as JSON text (so arrays are not taken for Postgres arrays). */
export type Json = ColumnType<unknown, string, string>;

export interface ClustersTable {
  id: string;
  name: string;
  region: string;
  state: string;
  spec: Json;
  /** Events in the aggregate so far, rejections included: the aggregate's version. */
  version: number;
  trace_id: string | null;
  created_at: Timestamp;
  updated_at: Timestamp;
  last_event_type: string;
  last_sequence: number;
  progress: Json;
}

export interface EventIndexTable {
  aggregate_type: string;
  aggregate_id: string;
  position: number;
  sequence: number;
  event_id: string;
  type: string;
  command_id: string | null;
  causation_id: string;
  correlation_id: string;
  actor: string;
  trace_id: string | null;
  time: Timestamp;
  data: Json;
}

export interface CommandsTable {
  command_id: string;
  command_type: string | null;
  aggregate_type: string;
  aggregate_id: string;
  status: "accepted" | "rejected";
  reason: string | null;
  code: string | null;
  trace_id: string | null;
  first_sequence: number;
  updated_at: Timestamp;
}

export interface ProjectorCheckpointTable {
  name: string;
  last_sequence: number;
}

export interface Database {
  clusters: ClustersTable;
  event_index: EventIndexTable;
  commands: CommandsTable;
  projector_checkpoint: ProjectorCheckpointTable;
}

export type Db = Kysely<Database>;

/** The schema of the live read models (a replay renames a rebuilt schema to it). */
export const DEFAULT_SCHEMA = "cairn";

/** A schema name we are willing to splice into DDL: lower-case identifier, at most 63 characters. */
export function assertSchemaName(schema: string): string {
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(schema)) {
    throw new Error(
      `schema name ${JSON.stringify(schema)} must be a lower-case SQL identifier ([a-z_][a-z0-9_]*)`,
    );
  }
  return schema;
}

const INT8_OID = 20;

/**
 * A kysely instance on its own pool. `bigint` columns (stream sequences) are read as
 * numbers: JetStream sequences stay far below 2^53. Each connection starts with
 * `search_path = <searchPath>, public` (default: the live schema), resolved by name at
 * every statement, so unqualified table names follow a schema swap.
 */
export function openDatabase(url: string, opts: { max?: number; searchPath?: string } = {}): Db {
  const searchPath = assertSchemaName(opts.searchPath ?? DEFAULT_SCHEMA);
  const pool = new pg.Pool({
    connectionString: url,
    max: opts.max ?? 10,
    options: `-c search_path=${searchPath},public`,
    types: {
      getTypeParser: ((oid: number, format?: "text" | "binary") =>
        oid === INT8_OID
          ? (v: string) => Number(v)
          : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
    },
  });
  return new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
}
