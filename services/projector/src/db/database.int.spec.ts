/**
 * A connection the server ends while kysely holds it (a Postgres restart in the middle of a
 * projector's transaction) fails the statement under way and nothing else: no uncaught
 * 'error' event, and the pool's next statement runs on a fresh connection.
 */
import { createTestDatabase, type DisposableDatabase } from "@cairn/testkit";
import { sql } from "kysely";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Db, openDatabase } from "./database.ts";

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
