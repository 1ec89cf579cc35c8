/**
 * The embedded Postgres a chaos suite restarts (`startStack({ postgres: "embedded" })`): data
 * survives a restart on the same port, and a client reconnects to it.
 */
import pg from "pg";
import { expect, it } from "vitest";
import { startEmbeddedPostgres } from "./postgres.ts";

it("an embedded Postgres restarts on the same port with its data", async () => {
  const server = await startEmbeddedPostgres();
  try {
    const query = async (sql: string) => {
      const c = new pg.Client({ connectionString: server.adminUrl });
      await c.connect();
      try {
        return (await c.query(sql)).rows;
      } finally {
        await c.end();
      }
    };
    await query("create table kept (v int); insert into kept values (42)");
    const before = await query("select pg_postmaster_start_time() as t");
    await server.restart?.();
    expect(await query("select v from kept")).toEqual([{ v: 42 }]);
    const after = await query("select pg_postmaster_start_time() as t");
    expect(after[0]?.t).not.toEqual(before[0]?.t);
  } finally {
    await server.stop();
  }
}, 180_000); // initdb and two starts: slow on a loaded 2-core machine
