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
/** `jsonb` or `json`: read parsed, written as JSON text (so arrays are not taken for Postgres arrays). */
export type Json = ColumnType<unknown, string, string>;

export interface ClustersTable {
  id: string;
  name: string;
  region: string;
  state: string;
  /** `json` (not `jsonb`), as are `progress`, `conditions` and `failure`: migration 20261203170000_clusters_json. */
  spec: Json;
  /** Events in the aggregate so far, rejections included: the aggregate's version. */
  version: number;
  trace_id: string | null;
  created_at: Timestamp;
  updated_at: Timestamp;
  last_event_type: string;
  last_sequence: number;
  progress: Json;
  /** Kubernetes-style conditions, stored compact (repository/stored-conditions.ts; migration 20261203220000). */
  conditions: Json;
  health: string;
  /** Why a Failed, Degraded or Recovering cluster is so, and the hint; null otherwise. */
  failure: Json | null;
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

/** pg's type parsers, with `bigint` read as a number (stream sequences stay far below 2^53). */
const types = {
  getTypeParser: ((oid: number, format?: "text" | "binary") =>
    oid === INT8_OID
      ? (v: string) => Number(v)
      : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
};

/** The connection settings every projector connection uses. */
function connectionConfig(url: string, searchPath: string | undefined) {
  return {
    connectionString: url,
    options: `-c search_path=${assertSchemaName(searchPath ?? DEFAULT_SCHEMA)},public`,
    types,
  };
}

/**
 * A kysely instance on its own pool. Each connection starts with
 * `search_path = <searchPath>, public` (default: the live schema), resolved by name at
 * every statement, so unqualified table names follow a schema swap.
 */
export function openDatabase(url: string, opts: { max?: number; searchPath?: string } = {}): Db {
  const pool = new pg.Pool({ ...connectionConfig(url, opts.searchPath), max: opts.max ?? 10 });
  // An idle connection that the server ends (a restart, a dropped test database) is
  // discarded by the pool; without a listener the event would crash the process.
  pool.on("error", () => {});
  // The pool listens on its idle clients only: while kysely holds one (a transaction, or
  // between its statements) the pool takes its listener off, and a Postgres restart then
  // emits 'error' on a client nobody listens on — an uncaught exception that ended the
  // projector. The statement under way fails on its own and the client is released broken
  // (the pool drops it), so the event needs nothing but a listener.
  pool.on("connect", (client) => {
    client.on("error", () => {});
  });
  return lendsClients(new Kysely<Database>({ dialect: new PostgresDialect({ pool }) }), async () => {
    const client = await pool.connect();
    return { client, release: (err?: Error) => client.release(err) };
  });
}

/** A connection of a `Db`'s own, for statements kysely cannot send (several in one simple query). */
export interface LentClient {
  readonly client: pg.ClientBase;
  /** Gives it back; with an error, a pooled connection is closed instead of reused. */
  release(err?: Error): void;
}

const clientLenders = new WeakMap<Db, () => Promise<LentClient>>();

function lendsClients(db: Db, lend: () => Promise<LentClient>): Db {
  clientLenders.set(db, lend);
  return db;
}

/**
 * Runs `fn` with a raw connection of `db` (one of its pool's, or its dedicated one). The
 * live projection sends its batch as two simple queries of several statements each (one
 * round trip each, see projection.ts), which kysely's one-statement API cannot express.
 */
export async function withRawClient<T>(db: Db, fn: (client: pg.ClientBase) => Promise<T>): Promise<T> {
  const lend = clientLenders.get(db);
  if (!lend) throw new Error("this Db was not made by openDatabase or openDedicatedConnection");
  const lent = await lend();
  try {
    const out = await fn(lent.client);
    lent.release();
    return out;
  } catch (err) {
    lent.release(err instanceof Error ? err : new Error(String(err)));
    throw err;
  }
}

/** One connection, and a kysely instance that runs every query on it (for COPY and hand-made transactions). */
export interface DedicatedConnection {
  readonly client: pg.Client;
  readonly db: Db;
  close(): Promise<void>;
}

/**
 * Opens one connection. Statements from `client` and `db` share it, so a transaction
 * begun with `client.query("begin")` covers both, and COPY (which needs the raw client)
 * sits in the same transaction as kysely's upserts.
 */
export async function openDedicatedConnection(
  url: string,
  opts: { searchPath?: string } = {},
): Promise<DedicatedConnection> {
  const client = new pg.Client(connectionConfig(url, opts.searchPath));
  // A broken connection fails the statement under way; the event alone must not crash the process.
  client.on("error", () => {});
  await client.connect();
  // kysely asks a pool for a connection per query and releases it after: lend it the one client.
  const lent = Object.assign(client, { release() {} });
  const db = lendsClients(
    new Kysely<Database>({
      dialect: new PostgresDialect({ pool: { connect: async () => lent, end: async () => {}, options: {} } }),
    }),
    async () => ({ client, release: () => {} }),
  );
  return {
    client,
    db,
    close: async () => {
      await db.destroy();
      await client.end();
    },
  };
}

/** SQLSTATEs and socket errors of a server that is going away, away, or not back yet. */
const UNAVAILABLE = new Set([
  "57P01", // admin_shutdown: the server is stopping
  "57P02", // crash_shutdown
  "57P03", // cannot_connect_now: starting up or shutting down
  "08000",
  "08001",
  "08003",
  "08006",
  "ECONNREFUSED",
  "ECONNRESET",
  "EPIPE",
  "ETIMEDOUT",
]);

/** The error (or one it was caused by) says Postgres is unavailable for now, not that the statement is wrong. */
export function isDatabaseUnavailable(err: unknown): boolean {
  for (
    let e = err as { code?: unknown; message?: unknown; cause?: unknown } | undefined;
    e;
    e = e.cause as typeof e
  ) {
    if (typeof e.code === "string" && UNAVAILABLE.has(e.code)) return true;
    if (typeof e.message === "string" && /Connection terminated|connection timeout/i.test(e.message))
      return true;
    if (typeof e !== "object") break;
  }
  return false;
}

/**
 * Runs `f`, and again while Postgres is unavailable (a restart under way), backing off from
 * 200 ms to 2 s, for up to `maxMs`. A start-up that met a restarting database waits for it
 * instead of exiting; any other error is thrown at once.
 */
export async function whileDatabaseUnavailable<T>(
  f: () => Promise<T>,
  opts: { maxMs?: number; onRetry?: (err: unknown, attempt: number) => void } = {},
): Promise<T> {
  const deadline = Date.now() + (opts.maxMs ?? 60_000);
  for (let attempt = 1; ; attempt++) {
    try {
      return await f();
    } catch (err) {
      if (!isDatabaseUnavailable(err) || Date.now() >= deadline) throw err;
      opts.onRetry?.(err, attempt);
      await new Promise((r) => setTimeout(r, Math.min(2_000, 200 * 2 ** (attempt - 1))));
    }
  }
}
