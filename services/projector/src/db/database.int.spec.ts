/**
 * A connection the server ends while kysely holds it (a Postgres restart in the middle of a
 * projector's transaction) fails the statement under way and nothing else: no uncaught
 * 'error' event, and the pool's next statement runs on a fresh connection.
 */
import {
  createDatabase,
  createTestDatabase,
  type DisposableDatabase,
  startEmbeddedPostgres,
} from "@cairn/testkit";
import { sql } from "kysely";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Db, isDatabaseUnavailable, openDatabase, whileDatabaseUnavailable } from "./database.ts";
import { migrateToLatest } from "./migrate.ts";

let database: DisposableDatabase;
let db: Db;

beforeAll(async () => {
  database = await createTestDatabase("projector_database");
  db = openDatabase(database.url, { max: 2 });
});
afterAll(async () => {
  await db?.destroy();
  await database?.dispose();
});

describe("openDatabase", () => {
  it("survives the server ending a connection kysely holds in a transaction", async () => {
    const uncaught: unknown[] = [];
    const onUncaught = (err: unknown) => uncaught.push(err);
    process.on("uncaughtException", onUncaught);
    const admin = new pg.Client({ connectionString: database.url });
    await admin.connect();
    try {
      const outcome = await db
        .transaction()
        .execute(async (tx) => {
          const pid = (await sql<{ pid: number }>`select pg_backend_pid() as pid`.execute(tx)).rows[0]!.pid;
          // The server ends the backend while the transaction waits here (no statement under
          // way): the client emits 'error' while checked out of the pool.
          await admin.query("select pg_terminate_backend($1)", [pid]);
          await new Promise((r) => setTimeout(r, 300));
          await sql`select 1`.execute(tx);
          return "committed";
        })
        .catch((err: Error) => `failed: ${err.message}`);
      expect(outcome).toMatch(/^failed: /);
      expect(uncaught).toEqual([]);
      // The broken connection was dropped: the pool serves the next statement.
      const r = await sql<{ one: number }>`select 1 as one`.execute(db);
      expect(r.rows[0]?.one).toBe(1);
    } finally {
      process.off("uncaughtException", onUncaught);
      await admin.end();
    }
  });
});

describe("whileDatabaseUnavailable", () => {
  it("a migration started while Postgres restarts waits for it and then runs; a wrong statement fails at once", async () => {
    const server = await startEmbeddedPostgres();
    const own = await createDatabase(server, "projector_restart");
    const restartDb = openDatabase(own.url, { max: 2 });
    try {
      const restarting = server.restart!();
      // Down: a connection is refused or ended (the restart has begun).
      await until(async () => {
        const c = new pg.Client({ connectionString: own.url });
        c.on("error", () => {});
        try {
          await c.connect();
          await c.query("select 1");
          await c.end();
          return false;
        } catch {
          return true;
        }
      });
      const retries: unknown[] = [];
      const migrated = whileDatabaseUnavailable(() => migrateToLatest(restartDb, "restart_1"), {
        onRetry: (err) => retries.push(err),
      });
      await restarting;
      const result = await migrated;
      expect(result.error).toBeUndefined();
      expect(retries.length).toBeGreaterThan(0);
      expect(retries.every(isDatabaseUnavailable)).toBe(true);
      // Not a connection problem: no retry.
      let calls = 0;
      await expect(
        whileDatabaseUnavailable(async () => {
          calls++;
          await sql`select * from no_such_table`.execute(restartDb);
        }),
      ).rejects.toThrow(/no_such_table/);
      expect(calls).toBe(1);
    } finally {
      await restartDb.destroy();
      await own.dispose();
      await server.stop();
    }
  }, 60_000);
});

async function until(f: () => Promise<boolean>, ms = 20_000) {
  const end = Date.now() + ms;
  while (!(await f())) {
    if (Date.now() > end) throw new Error("Postgres never went down");
    await new Promise((r) => setTimeout(r, 20));
  }
}
