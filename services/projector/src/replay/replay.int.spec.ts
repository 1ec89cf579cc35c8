import { catalogue, eventSubject } from "@cairn/events";
import { sql } from "kysely";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type Db, DEFAULT_SCHEMA, openDatabase } from "../db/database.ts";
import type { NodeRow } from "../projections/nodes.ts";
import { type Projector, startProjector } from "../projector.ts";
import { readCheckpoint } from "../repository/checkpoint.ts";
import { getCluster } from "../repository/clusters.ts";
import {
  everyClusterEventCommits,
  everyNodeEventCommits,
  everySessionEventCommits,
  rejectionOfEveryAggregate,
} from "../testing/every-event.ts";
import { anEnvelope, aTraceparent, cluster, deletionRequested, requested } from "../testing/fixtures.ts";
import { eventually, type Infra, startInfra } from "../testing/infra.ts";
import { digestSchema } from "./compare.ts";
import { REPLAY_LOCK_KEY, ReplayAbortedError, replay } from "./replay.ts";
import { REPLAY_SUBJECT, type ReplayReply } from "./trigger.ts";

let infra: Infra;
let db: Db;
let projector: Projector | undefined;
/** Ends a test's own read and write traffic: also when the test timed out, before the projector stops. */
let endTraffic: (() => Promise<void>) | undefined;

beforeEach(async () => {
  infra = await startInfra();
  db = openDatabase(infra.database.url, { max: 2 });
});
afterEach(async () => {
  // A test that timed out leaves its readers running; on keep-alive sockets they would
  // keep the API's close waiting for ever (how this suite once hung in CI).
  await endTraffic?.();
  endTraffic = undefined;
  await projector?.stop();
  projector = undefined;
  await db.destroy();
  await infra.dispose();
});

async function startLive(): Promise<Projector> {
  projector = await startProjector({
    nats: infra.nats,
    databaseUrl: infra.database.url,
    api: { port: 0 },
    batchSize: 50,
  });
  return projector;
}

const liveCheckpoint = () => readCheckpoint(db, DEFAULT_SCHEMA, "projector");
const caughtUp = () => eventually(async () => (await liveCheckpoint()) >= infra.writer.lastSequence, 20_000);

/** The commits of one cluster's life: its cluster events, its install, kube and nodeop events, its sessions. */
const lifeOf = (id: string, k: number) => [
  ...everyClusterEventCommits(id, k),
  ...everyNodeEventCommits(id, k),
  ...everySessionEventCommits(id, k),
];

/**
 * `clusters` clusters, each through every cluster, install, kube and nodeop event type,
 * and a rejection on every aggregate.
 */
async function writeLog(clusters: number, prefix = "c"): Promise<void> {
  for (let k = 0; k < clusters; k++) {
    for (const [i, c] of lifeOf(`${prefix}${k}`, k).entries()) {
      await infra.writer.append(c.aggregate, c.events, {
        commandId: `cmd-${prefix}${k}-${i}`,
        ...(i % 3 === 0 ? { traceparent: aTraceparent() } : {}),
      });
    }
  }
  for (const c of rejectionOfEveryAggregate(prefix)) {
    const commandId = `cmd-${c.aggregate.type}-${prefix}`;
    await infra.writer.append(c.aggregate, c.events, { commandId });
  }
}

describe("replay", () => {
  it("rebuilds read models equal to the live ones (row counts and hashes) from a log of every event type", async () => {
    await startLive();
    await writeLog(8);
    // The log really holds every event type the catalogue knows, and every aggregate.
    const types = new Set<string>(infra.writer.appended.map((a) => a.event.type));
    expect([...catalogue.events.keys()].filter((t) => !types.has(t))).toEqual([]);
    expect(new Set(infra.writer.appended.map((a) => a.event.aggregate.type)).size).toBe(6);
    await caughtUp();

    const check = await replay({ databaseUrl: infra.database.url, nats: infra.nats, checkOnly: true });
    expect(check.comparison).toMatchObject({ compared: true, equal: true, at: infra.writer.lastSequence });
    if (!check.comparison.compared) throw new Error("not compared");
    expect(check.comparison.tables.map((t) => [t.table, t.rebuilt.rows])).toEqual([
      ["clusters", 8],
      ["event_index", infra.writer.appended.length],
      // One command per commit of each cluster's history, one per rejection, and per
      // cluster the two commands its rejections name in their data (the refused scale,
      // the session create its admission refused), each beside the commit's own.
      ["commands", 8 * (lifeOf("x", 0).length + 2) + 6],
      ["installs", 8],
      // Per cluster: its server and two agents.
      ["nodes", 8 * 3],
      ["nodeops", 8 * 3],
      // Two sessions per cluster (the quota ledgers are not sessions).
      ["sessions", 8 * 2],
      // Boot, SSM registration, node-ready, and the init, join, restart and upgrade steps.
      ["step_durations", 7],
    ]);
    expect(check.swapped).toBe(false);
    // A check leaves no schema behind.
    const left = await sql<{ n: number }>`
      select count(*)::int as n from pg_namespace where nspname like 'cairn\\_rebuild\\_%'`.execute(db);
    expect(left.rows[0]?.n).toBe(0);

    // The nodes a Deleted cluster's deletion names are gone (when, and why: their
    // instances terminated, or the cluster deleted, whichever came first), and stay gone
    // through the events the log folds after it; the comparison covers it: a live row that
    // lost its `gone` differs from the rebuild.
    const gone = await sql<{ doc: NodeRow }>`
      select doc from nodes where cluster_id = 'c5' and doc->'gone' <> 'null'::jsonb`.execute(db);
    expect(gone.rows.map((r) => r.doc.node).sort()).toEqual(["i-c5-a", "i-c5-b"]);
    for (const { doc } of gone.rows)
      expect(doc).toMatchObject({
        gone: { at: expect.any(String), reason: expect.any(String) },
        instance: "terminated",
        k3s: "removed",
        kube: { ready: null, registered: false },
      });
    await sql`update nodes set doc = jsonb_set(doc, '{gone}', 'null') where cluster_id = 'c5'`.execute(db);
    const lostGone = await replay({ databaseUrl: infra.database.url, nats: infra.nats, checkOnly: true });
    if (!lostGone.comparison.compared) throw new Error("not compared");
    expect(lostGone.comparison.tables.filter((t) => !t.equal).map((t) => t.table)).toEqual(["nodes"]);

    // A difference in live is found, and named by table.
    await sql`update clusters set state = 'Ready' where id = 'c3'`.execute(db);
    await sql`update nodes set doc = jsonb_set(doc, '{k3s}', '"ready"') where cluster_id = 'c3'`.execute(db);
    await sql`update sessions set state = 'Running' where id = 'c3-s1'`.execute(db);
    const differs = await replay({ databaseUrl: infra.database.url, nats: infra.nats, checkOnly: true });
    if (!differs.comparison.compared) throw new Error("not compared");
    expect(differs.comparison.equal).toBe(false);
    expect(differs.comparison.tables.filter((t) => !t.equal).map((t) => t.table)).toEqual([
      "clusters",
      "nodes",
      "sessions",
    ]);

    // The swap replaces live with the rebuild: the tampered row is right again.
    const before = await digestSchema(db, DEFAULT_SCHEMA);
    const swapped = await replay({ databaseUrl: infra.database.url, nats: infra.nats });
    expect(swapped).toMatchObject({ swapped: true, resumedFrom: 0, checkpoint: infra.writer.lastSequence });
    const after = await digestSchema(db, DEFAULT_SCHEMA);
    expect(after.clusters).not.toEqual(before.clusters);
    expect(after.event_index).toEqual(before.event_index);
    expect((await getCluster(db, DEFAULT_SCHEMA, "c3"))?.state).toBe("Deleted");

    // The live projection carries on in the swapped-in schema.
    await infra.writer.append(cluster("late"), [requested("late")], { commandId: "cmd-late" });
    await caughtUp();
    expect((await getCluster(db, DEFAULT_SCHEMA, "late"))?.state).toBe("Pending");
  });

  it("rebuilds each cluster's conditions, health and failure as live folded them; the comparison covers them", async () => {
    await startLive();
    await writeLog(2);
    // A cluster that ends Failed (an event from before cluster.failed carried a code or a hint).
    const launch = {
      slot: 1000,
      pool: "workers",
      ordinal: 0,
      role: "agent",
      attempt: 1,
      placement: { instanceType: "t3.large", capacityType: "spot" },
    };
    await infra.writer.append(cluster("f0"), [requested("f0")], { commandId: "cmd-f0-1" });
    await infra.writer.append(
      cluster("f0"),
      [
        { type: "cluster.provisioning-started", data: { slots: [] } },
        { type: "cluster.instance-launch-requested", data: launch },
      ],
      { commandId: "cmd-f0-2" },
    );
    await infra.writer.append(
      cluster("f0"),
      [
        {
          type: "cluster.instance-launch-failed",
          data: {
            slot: 1000,
            attempt: 1,
            placement: launch.placement,
            code: "TagLimitExceeded",
            reason: "too many tags",
            capacity: false,
          },
        },
        { type: "cluster.failed", data: { reason: "slot 1000 could not be launched: too many tags" } },
      ],
      { commandId: "cmd-f0-3" },
    );
    await caughtUp();
    const f0 = await getCluster(db, DEFAULT_SCHEMA, "f0");
    const c0 = await getCluster(db, DEFAULT_SCHEMA, "c0");
    expect(f0).toMatchObject({ state: "Failed", health: "Failed", failure: { code: "launch-failed" } });
    expect(c0?.conditions.find((c) => c.type === "Deleting")).toMatchObject({
      status: "False",
      reason: "Deleted",
    });

    const check = await replay({ databaseUrl: infra.database.url, nats: infra.nats, checkOnly: true });
    expect(check.comparison).toMatchObject({ compared: true, equal: true });

    // A wrong condition, health or failure in live is a difference in `clusters`…
    await sql`update clusters set failure = null, health = 'Healthy' where id = 'f0'`.execute(db);
    await sql`update clusters set conditions = '[]'::jsonb where id = 'c0'`.execute(db);
    const differs = await replay({ databaseUrl: infra.database.url, nats: infra.nats, checkOnly: true });
    if (!differs.comparison.compared) throw new Error("not compared");
    expect(differs.comparison.tables.filter((t) => !t.equal).map((t) => t.table)).toEqual(["clusters"]);
    // …and the swap puts back what the log says, exactly as live had folded it.
    expect((await replay({ databaseUrl: infra.database.url, nats: infra.nats })).swapped).toBe(true);
    expect(await getCluster(db, DEFAULT_SCHEMA, "f0")).toEqual(f0);
    expect(await getCluster(db, DEFAULT_SCHEMA, "c0")).toEqual(c0);
  });

  it("swaps under read load: no request fails, and reads see the data after", async () => {
    const p = await startLive();
    await writeLog(6);
    await caughtUp();
    const base = p.api!.url;
    let requests = 0;
    const failures: string[] = [];
    let reading = true;
    const reader = async (path: string) => {
      while (reading) {
        const res = await fetch(`${base}${path}`).catch((err: Error) => ({
          status: 0,
          text: async () => err.message,
        }));
        requests++;
        if (res.status !== 200) failures.push(`${path}: ${res.status} ${await res.text()}`);
        // A breath between requests: load, not a busy loop starving the replay sharing this process.
        await new Promise((r) => setTimeout(r, 2));
      }
    };
    const readers = [
      reader("/clusters?limit=100"),
      reader("/clusters/c2"),
      reader("/clusters/c5"),
      reader("/readyz"),
    ];
    // Writes go on during the replay too: the swap takes them over.
    let writing = true;
    const writer = (async () => {
      for (let i = 0; writing; i++) {
        await infra.writer.append(cluster(`w${i}`), [requested(`w${i}`)], { commandId: `cmd-w${i}` });
        await new Promise((r) => setTimeout(r, 5));
      }
    })();
    endTraffic = async () => {
      writing = false;
      await writer;
      reading = false;
      await Promise.all(readers);
    };
    await new Promise((r) => setTimeout(r, 200));
    let result: Awaited<ReturnType<typeof replay>>;
    try {
      result = await replay({ databaseUrl: infra.database.url, nats: infra.nats, batchSize: 25 });
      await new Promise((r) => setTimeout(r, 200));
    } finally {
      await endTraffic();
      endTraffic = undefined;
    }

    expect(result.swapped).toBe(true);
    expect(failures).toEqual([]);
    expect(requests).toBeGreaterThan(20);
    await caughtUp();
    const res = await fetch(`${base}/clusters/c2`);
    // Every event of its history (a commit may hold two).
    const version = everyClusterEventCommits("c2").flatMap((c) => c.events).length;
    expect(await res.json()).toMatchObject({ id: "c2", state: "Deleted", version });
    const list = (await (await fetch(`${base}/clusters?limit=500`)).json()) as { items: unknown[] };
    expect(list.items.length).toBe(
      6 + infra.writer.appended.filter((a) => /^w[0-9]+$/.test(a.event.aggregate.id)).length,
    );
  });

  it("the live cluster read, a prepared statement, reads the swapped-in schema (not the renamed old one)", async () => {
    const p = await startLive();
    await writeLog(2);
    await caughtUp();
    const base = p.api!.url;
    const read = async () => (await (await fetch(`${base}/clusters/c1`)).json()) as { name: string };
    // Prepared on several of the API pool's connections, concurrently.
    for (const body of await Promise.all(Array.from({ length: 8 }, read))) expect(body.name).toBe("c1");
    const result = await replay({ databaseUrl: infra.database.url, nats: infra.nats, keepOld: true });
    expect(result.swapped).toBe(true);
    expect(result.oldSchema).toBeDefined();
    // The old schema stays, under its new name: a plan still bound to its table would read this.
    await sql`update ${sql.table(`${result.oldSchema}.clusters`)} set name = 'stale' where id = 'c1'`.execute(
      db,
    );
    for (const body of await Promise.all(Array.from({ length: 16 }, read))) expect(body.name).toBe("c1");
    await sql`update ${sql.table(`${DEFAULT_SCHEMA}.clusters`)} set name = 'fresh' where id = 'c1'`.execute(
      db,
    );
    for (const body of await Promise.all(Array.from({ length: 16 }, read))) expect(body.name).toBe("fresh");
  });

  it("the live cluster read survives a column type changed under its prepared statement (a newer replica's migration)", async () => {
    const p = await startLive();
    await writeLog(1);
    await caughtUp();
    const base = p.api!.url;
    const read = async () => {
      const res = await fetch(`${base}/clusters/c0`);
      return { status: res.status, body: (await res.json()) as { name: string } };
    };
    for (const r of await Promise.all(Array.from({ length: 8 }, read))) expect(r.status).toBe(200);
    // text → varchar changes the result type: every connection that prepared it refuses the old plan.
    await sql`alter table ${sql.table(`${DEFAULT_SCHEMA}.clusters`)} alter column name type varchar(200)`.execute(
      db,
    );
    for (const r of await Promise.all(Array.from({ length: 16 }, read)))
      expect(r).toMatchObject({ status: 200, body: { name: "c0" } });
  });

  it("resumes an interrupted rebuild from its own checkpoint instead of starting over", async () => {
    await startLive();
    await writeLog(6);
    await caughtUp();
    const abort = new AbortController();
    let batches = 0;
    const first = replay({
      databaseUrl: infra.database.url,
      nats: infra.nats,
      batchSize: 20,
      signal: abort.signal,
      onProgress: () => {
        if (++batches === 3) abort.abort();
      },
    });
    await expect(first).rejects.toBeInstanceOf(ReplayAbortedError);
    const stoppedAt = await readCheckpoint(db, "cairn_rebuild_1", "projector");
    expect(stoppedAt).toBeGreaterThanOrEqual(60);
    expect(stoppedAt).toBeLessThan(infra.writer.lastSequence);

    const resumed = await replay({ databaseUrl: infra.database.url, nats: infra.nats, batchSize: 20 });
    expect(resumed.resumedFrom).toBe(stoppedAt);
    expect(resumed.rebuildSchema).toBe("cairn_rebuild_1");
    // Only what was left was applied this time.
    expect(resumed.commits).toBe(infra.writer.lastSequence - stoppedAt);
    expect(resumed.comparison).toMatchObject({ compared: true, equal: true });
    expect(resumed.swapped).toBe(true);
  });

  it("resumes a rebuild whose process died between two flushes: the index rows past its checkpoint are trimmed and redone", async () => {
    await startLive();
    await writeLog(6);
    await caughtUp();
    // The replay's own connection holds the replay lock: ending that backend is the crash
    // (nothing of the replay runs after it: no flush, no rollback of what was committed).
    // Of this test's database only: pg_locks is the server's, and a replay of another test
    // on the same Postgres holds the same key (a concurrent run's replay was ended by it).
    const killReplayBackend = () =>
      sql`select pg_terminate_backend(pid) from pg_locks
          where locktype = 'advisory' and granted
            and database = (select oid from pg_database where datname = current_database())
            and classid = ${Math.floor(REPLAY_LOCK_KEY / 2 ** 32)}::bigint::oid
            and objid = ${REPLAY_LOCK_KEY % 2 ** 32}::bigint::oid`.execute(db);
    let batches = 0;
    let killed: Promise<unknown> | undefined;
    const first = replay({
      databaseUrl: infra.database.url,
      nats: infra.nats,
      batchSize: 20,
      flushEveryEvents: 50,
      onProgress: () => {
        if (++batches === 4) killed = killReplayBackend();
      },
    });
    await expect(first).rejects.toThrow();
    await killed;
    const stoppedAt = await readCheckpoint(db, "cairn_rebuild_1", "projector");
    // A flush happened (the checkpoint moved), and the index holds rows it does not cover.
    expect(stoppedAt).toBeGreaterThan(0);
    const past = await sql<{ n: number }>`
      select count(*)::int as n from cairn_rebuild_1.event_index where sequence > ${stoppedAt}`.execute(db);
    expect(past.rows[0]?.n).toBeGreaterThan(0);
    // The read-model rows are the checkpoint's, not the last batch's: no cluster row is newer.
    const newer = await sql<{ n: number }>`
      select count(*)::int as n from cairn_rebuild_1.clusters where last_sequence > ${stoppedAt}`.execute(db);
    expect(newer.rows[0]?.n).toBe(0);

    const resumed = await replay({ databaseUrl: infra.database.url, nats: infra.nats, batchSize: 20 });
    expect(resumed.resumedFrom).toBe(stoppedAt);
    expect(resumed.rebuildSchema).toBe("cairn_rebuild_1");
    expect(resumed.commits).toBe(infra.writer.lastSequence - stoppedAt);
    // Equal row counts and hashes: no index row twice, no row missing.
    expect(resumed.comparison).toMatchObject({ compared: true, equal: true });
    expect(resumed.swapped).toBe(true);
  });

  it("answers a replay request on the bus (cairn.admin.projector.replay)", async () => {
    await startLive();
    await writeLog(2);
    await caughtUp();
    const ask = async (body: unknown) =>
      (
        await infra.nats.nc.request(REPLAY_SUBJECT, JSON.stringify(body), { timeout: 30_000 })
      ).json<ReplayReply>();

    const check = await ask({ checkOnly: true });
    expect(check).toMatchObject({ ok: true, result: { swapped: false, comparison: { equal: true } } });
    expect(await ask({ checkOnly: "yes" })).toMatchObject({ ok: false, error: "BadRequest" });
    const swap = await ask({});
    expect(swap).toMatchObject({
      ok: true,
      result: { swapped: true, checkpoint: infra.writer.lastSequence },
    });
  });

  it("rebuilds a log that repeats a position as live does (the later row wins)", async () => {
    await startLive();
    await writeLog(2);
    // A commit that reuses position 1 of c0, as a hand-made publish could.
    const again = anEnvelope(cluster("c0"), 1, deletionRequested(), { commandId: "cmd-again" });
    await infra.nats.js.publish(
      eventSubject(cluster("c0")),
      JSON.stringify({ commitId: "again", aggregate: cluster("c0"), events: [again] }),
    );
    await eventually(async () => (await liveCheckpoint()) >= infra.writer.lastSequence + 1);
    const result = await replay({ databaseUrl: infra.database.url, nats: infra.nats, batchSize: 10 });
    expect(result.comparison).toMatchObject({ compared: true, equal: true });
    const row = await sql<{ type: string }>`
      select type from event_index
      where aggregate_type = 'cluster' and aggregate_id = 'c0' and position = 1`.execute(db);
    expect(row.rows.map((r) => r.type)).toEqual(["cluster.deletion-requested"]);
  });
});
