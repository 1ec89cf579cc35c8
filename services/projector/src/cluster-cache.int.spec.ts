/**
 * The cluster cache of an `api` replica (api/cluster-cache.ts), against real NATS and
 * Postgres, beside a replica in role `all` that projects and reads Postgres for every answer:
 * the same bytes from memory as from Postgres, a change readable from memory once this
 * replica's live stream sent it, `atLeastSequence` beyond what it saw read from Postgres, and
 * a commit that was never announced (its projector killed in between) shown within two polls.
 */
import { sql } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openDatabase } from "./db/database.ts";
import { type Projector, startProjector } from "./projector.ts";
import { cluster, requested, scaleRequested } from "./testing/fixtures.ts";
import { eventually, type Infra, startInfra } from "./testing/infra.ts";

let infra: Infra;
let apiReplica: Projector | undefined;
let projecting: Projector | undefined;

beforeAll(async () => {
  infra = await startInfra();
}, 30_000);
afterAll(async () => {
  await apiReplica?.stop();
  await projecting?.stop();
  await infra?.dispose();
});

/** The answer, its sequence and where it came from (Server-Timing `src`). */
async function read(url: string) {
  const r = await fetch(url);
  const text = await r.text();
  const timing = r.headers.get("server-timing") ?? "";
  // The route's own time, then where its live view came from.
  expect(timing).toMatch(/^app;dur=\d+\.\d\d, src;desc=(mem|pg)$/);
  const src = /src;desc=(\w+)/.exec(timing)?.[1];
  return {
    status: r.status,
    text,
    src,
    sequence: r.status === 200 ? (JSON.parse(text) as { sequence: number }).sequence : undefined,
    state: r.status === 200 ? (JSON.parse(text) as { state: string }).state : undefined,
  };
}

/** The cache's fills so far, from a replica's /metrics (the counter is this process's: only api replicas fill). */
async function fills(apiUrl: string): Promise<number> {
  const text = await (await fetch(`${apiUrl}/metrics`)).text();
  return Number(/^cairn_projector_cluster_cache_total\{outcome="fill"\} (\d+)/m.exec(text)?.[1] ?? 0);
}

/** The answer without its ETA (a time from each read's own clock). */
const withoutEta = (text: string) => {
  const v = JSON.parse(text) as { progress: Record<string, unknown> };
  const { eta: _eta, etaSeconds: _s, ...progress } = v.progress;
  return { ...v, progress };
};

describe("the cluster cache of an api replica", () => {
  it("a replica started over a read model answers a cluster's first read from memory, and a learnt step duration from memory", async () => {
    const p = await startProjector({
      nats: infra.nats,
      databaseUrl: infra.database.url,
      role: "all",
      api: { port: 0 },
    });
    let replica: Projector | undefined;
    try {
      const id = "cw-1";
      const placement = { instanceType: "t3.large", capacityType: "spot" };
      const slots = [0, 1000].map((slot) => ({
        slot,
        pool: slot ? "workers" : "servers",
        ordinal: slot ? 0 : 0,
        role: slot ? "agent" : "server",
      }));
      await infra.writer.append(cluster(id), [requested(id)]);
      await infra.writer.append(cluster(id), [{ type: "cluster.provisioning-started", data: { slots } }]);
      await infra.writer.append(
        cluster(id),
        slots.map((s) => ({
          type: "cluster.instance-launch-requested",
          data: { ...s, attempt: 1, placement },
        })),
      );
      let last = 0;
      for (const s of slots)
        last = (
          await infra.writer.append(cluster(id), [
            {
              type: "cluster.instance-launched",
              data: { slot: s.slot, attempt: 1, instanceId: `i-${s.slot}` },
            },
          ])
        ).sequence;
      const onProjecting = `${p.api!.url}/clusters/${id}`;
      await eventually(async () => ((await read(onProjecting)).sequence === last ? true : undefined), 30_000);

      // 1. A replica that starts (as after a restart or a SIGKILL: nothing in memory) warms
      // its cache from Postgres: the cluster's first read is from memory, the same bytes.
      const before = await fills(p.api!.url);
      replica = await startProjector({
        nats: infra.nats,
        databaseUrl: infra.database.url,
        role: "api",
        api: { port: 0 },
      });
      await eventually(async () => ((await fills(replica!.api!.url)) > before ? true : undefined), 30_000);
      const onReplica = `${replica.api!.url}/clusters/${id}`;
      const first = await read(onReplica);
      expect(first).toMatchObject({ src: "mem", sequence: last });
      expect(withoutEta(first.text)).toEqual(withoutEta((await read(onProjecting)).text));
      const etaBefore = (JSON.parse(first.text) as { progress: { etaSeconds: number } }).progress.etaSeconds;

      // 2. A node that moves teaches a step duration (instance-boot, from launched to running):
      // the batch announces it, so the replica keeps answering from memory, with the ETA
      // Postgres's durations give.
      const running = await infra.writer.append(cluster(id), [
        { type: "cluster.instance-running", data: { slot: 1000, instanceId: "i-1000" } },
      ]);
      const after = await eventually(async () => {
        const r = await read(onReplica);
        return r.sequence === running.sequence ? r : undefined;
      }, 30_000);
      const fromPostgres = await read(onProjecting);
      expect(after.src).toBe("mem");
      expect(withoutEta(after.text)).toEqual(withoutEta(fromPostgres.text));
      const eta = (t: string) => (JSON.parse(t) as { progress: { etaSeconds: number } }).progress.etaSeconds;
      expect(Math.abs(eta(after.text) - eta(fromPostgres.text))).toBeLessThanOrEqual(1);
      // The learnt boot (milliseconds here) replaced the 40 s default: the ETA moved.
      expect(eta(after.text)).toBeLessThan(etaBefore - 20);
    } finally {
      await replica?.stop();
      await p.stop();
    }
  }, 120_000);

  it("answers from memory what Postgres holds, fresh as its live stream, and never past a missed commit", async () => {
    const leaseTtlMs = 1_000;
    projecting = await startProjector({
      nats: infra.nats,
      databaseUrl: infra.database.url,
      role: "all",
      leaseTtlMs,
      api: { port: 0 },
    });
    apiReplica = await startProjector({
      nats: infra.nats,
      databaseUrl: infra.database.url,
      role: "api",
      leaseTtlMs,
      api: { port: 0, heartbeatMs: 50 },
    });
    const onReplica = `${apiReplica.api!.url}/clusters/cc-1`;
    const onProjecting = `${projecting.api!.url}/clusters/cc-1`;

    // 1. Read once from Postgres (at the point the announcements brought it to), then from memory.
    const created = await infra.writer.append(cluster("cc-1"), [requested("cc-1")]);
    const fromMemory = await eventually(async () => {
      const r = await read(onReplica);
      return r.src === "mem" && r.sequence === created.sequence ? r : undefined;
    }, 30_000);
    // The same bytes as the replica that reads Postgres for every answer.
    const fromPostgres = await read(onProjecting);
    expect(fromPostgres.src).toBe("pg");
    expect(fromMemory.text).toBe(fromPostgres.text);

    // 2. A change this replica's live stream sent is readable from its memory at once.
    const ctl = new AbortController();
    const res = await fetch(`${apiReplica.api!.url}/events/stream?resource=clusters&id=cc-1`, {
      signal: ctl.signal,
    });
    const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
    let text = "";
    const scaled = await infra.writer.append(cluster("cc-1"), [scaleRequested("workers", 2, 3)]);
    while (!text.includes(`"sequence":${scaled.sequence}`)) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`stream ended: ${text}`);
      text += value;
    }
    ctl.abort();
    const afterChange = await read(onReplica);
    expect(afterChange).toMatchObject({ src: "mem", sequence: scaled.sequence, state: "Scaling" });
    expect(afterChange.text).toBe((await read(onProjecting)).text);

    // 3. Fresher than this replica has seen: from Postgres.
    expect((await read(`${onReplica}?atLeastSequence=${scaled.sequence}`)).src).toBe("mem");
    expect((await read(`${onReplica}?atLeastSequence=${scaled.sequence + 1000}`)).src).toBe("pg");

    // 4. A commit that is never announced: the projecting replica is gone (as if killed between
    // its commit and its announcement) and the commit is written straight into Postgres.
    await projecting.stop();
    projecting = undefined;
    expect((await read(onReplica)).src).toBe("mem");
    const db = openDatabase(infra.database.url, { max: 1 });
    try {
      const next = scaled.sequence + 1;
      await db.transaction().execute(async (trx) => {
        await sql`update cairn.clusters set state = 'Deleting', last_sequence = ${next} where id = 'cc-1'`.execute(
          trx,
        );
        await sql`update cairn.projector_checkpoint set last_sequence = ${next} where name = 'projector'`.execute(
          trx,
        );
      });
      // Two polls (500 ms each) at most: then from Postgres.
      const seen = await eventually(async () => {
        const r = await read(onReplica);
        return r.state === "Deleting" ? r : undefined;
      }, 30_000);
      expect(seen).toMatchObject({ src: "pg", sequence: next });
    } finally {
      await db.destroy();
    }
  }, 120_000);
});
