import { Kvm } from "@nats-io/kv";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CommandHandler } from "./command-handler.ts";
import { EventStore } from "./event-store.ts";
import {
  COMMIT_CHUNK,
  COMMIT_CHUNKS,
  RecentCommits,
  type SnapshotRecord,
  SnapshotStore,
} from "./snapshots.ts";
import { Buckets } from "./subjects.ts";
import { counterCatalogue, counterDecider, increment } from "./testing/counter.ts";
import { startJetStream, type TestJetStream } from "./testing/jetstream.ts";
import { until } from "./testing/until.ts";

let js: TestJetStream;
let store: EventStore;
let snapshots: SnapshotStore;

beforeAll(async () => {
  js = await startJetStream();
  store = new EventStore({ js: js.nats.js, jsm: js.nats.jsm, catalogue: counterCatalogue });
  snapshots = await SnapshotStore.open(js.nats.js);
});
afterAll(async () => {
  await js?.dispose();
});

/** The counter, opted in to snapshots at schema `version`. */
const snapshotting = (version = 1) => ({ ...counterDecider, snapshot: { version } });
const handler = (
  o: { version?: number; every?: number; snapshots?: SnapshotStore | false; coalesceMs?: number } = {},
) =>
  new CommandHandler({
    decider: snapshotting(o.version),
    store,
    catalogue: counterCatalogue,
    snapshotEvery: o.every ?? 5,
    ...(o.coalesceMs !== undefined ? { snapshotCoalesceMs: o.coalesceMs } : {}),
    ...(o.snapshots === false ? {} : { snapshots: o.snapshots ?? snapshots }),
  });
const ref = (id: string) => ({ type: "workload" as const, id });
/** What folding the whole log from scratch says (no snapshot at all). */
const truth = async (id: string) => {
  const r = await handler({ snapshots: false }).read(ref(id));
  return { state: r.state, version: r.version, lastSequence: r.lastSequence };
};
const snapshotOf = async (id: string) => await snapshots.get(ref(id));

describe("snapshots", () => {
  it("a cold load starts from the snapshot and folds only the commits after it", async () => {
    const w = handler();
    for (let i = 1; i <= 12; i++) await w.handle(increment("s1", i));
    await until("the snapshot", async () => ((await snapshotOf("s1"))?.version ?? 0) >= 10);
    const snap = (await snapshotOf("s1"))!;
    expect(snap).toMatchObject({ schema: 1, aggregate: ref("s1"), version: 10, state: { total: 55 } });

    const cold = handler();
    const r = await cold.read(ref("s1"));
    expect(cold.stats.snapshotsUsed).toBe(1);
    expect({ state: r.state, version: r.version, lastSequence: r.lastSequence }).toEqual(await truth("s1"));
    expect(r.state).toEqual({ total: 78 });
  });

  it("a new aggregate (no commit yet) is decided on without asking for its snapshot", async () => {
    const asked: string[] = [];
    const counting = Object.create(snapshots) as SnapshotStore;
    counting.get = async (a) => {
      asked.push(a.id);
      return await snapshots.get(a);
    };
    const w = handler({ snapshots: counting });
    expect((await w.handle(increment("s-new", 1))).status).toBe("accepted");
    expect(asked).toEqual([]);
    // One with commits (not cached here) is asked for it.
    expect((await handler({ snapshots: counting }).read(ref("s-new"))).version).toBe(1);
    expect(asked).toEqual(["s-new"]);
  });

  it("remembers the commits a snapshot covers: a command handled before is a duplicate", async () => {
    const w = handler({ every: 3 });
    const first = increment("s2", 7);
    await w.handle(first);
    for (let i = 0; i < 5; i++) await w.handle(increment("s2", 1));
    await until("the snapshot", async () => ((await snapshotOf("s2"))?.version ?? 0) >= 6);
    const cold = handler({ every: 3 });
    // Loaded first (a command on an aggregate not cached is decided as a new one, and the
    // log's dedupe would answer this one): the commit ids are the snapshot's.
    await cold.read({ type: "workload", id: "s2" });
    expect((await cold.handle(first)).status).toBe("duplicate");
    expect(cold.stats.snapshotsUsed).toBe(1);
    expect((await truth("s2")).state).toEqual({ total: 12 });
  });

  it("a snapshot the log does not confirm is never used: another subject's commit, a wrong commit id, a sequence past the end", async () => {
    const w = handler();
    for (let i = 0; i < 6; i++) await w.handle(increment("s3", 1));
    const other = await handler({ snapshots: false }).handle(increment("s3-other", 1));
    const own = (await snapshotOf("s3")) ?? (await until("the snapshot", () => snapshotOf("s3")));
    const forged = (over: Partial<SnapshotRecord>): SnapshotRecord => ({
      ...own,
      state: { total: 999_999 },
      ...over,
    });
    const cases: SnapshotRecord[] = [
      // A commit at that sequence, but on another aggregate's subject.
      forged({ sequence: (other as { sequence: number }).sequence }),
      // The right sequence on the right subject, but not the commit the snapshot names.
      forged({ commitId: "f".repeat(32) }),
      // A sequence the log has not reached.
      forged({ sequence: 1_000_000 }),
    ];
    for (const record of cases) {
      await snapshots.put(record);
      const cold = handler();
      const r = await cold.read(ref("s3"));
      expect(cold.stats.snapshotsIgnored).toBe(1);
      expect(cold.stats.snapshotsUsed).toBe(0);
      expect(r.state).toEqual({ total: 6 });
    }
    // The confirmed one is used again.
    await snapshots.put(own);
    const cold = handler();
    expect((await cold.read(ref("s3"))).state).toEqual({ total: 6 });
    expect(cold.stats.snapshotsUsed).toBe(1);
  });

  it("a snapshot of another schema version is never read", async () => {
    const w = handler({ version: 1 });
    for (let i = 0; i < 6; i++) await w.handle(increment("s4", 2));
    await until("the snapshot", async () => (await snapshotOf("s4"))?.schema === 1);
    // Same sequence and commit, another meaning of the state: a new decider version must not trust it.
    await snapshots.put({ ...(await snapshotOf("s4"))!, state: { total: -1 } });
    const bumped = handler({ version: 2 });
    expect((await bumped.read(ref("s4"))).state).toEqual({ total: 12 });
    expect(bumped.stats).toMatchObject({ snapshotsIgnored: 1, snapshotsUsed: 0 });
    // It writes its own version behind the fold; version 1 readers now ignore that one.
    await until("the snapshot", async () => (await snapshotOf("s4"))?.schema === 2);
    const old = handler({ version: 1 });
    expect((await old.read(ref("s4"))).state).toEqual({ total: 12 });
    expect(old.stats.snapshotsIgnored).toBe(1);
  });

  it("two replicas deciding on one aggregate both write snapshots; a cold load agrees with the log", async () => {
    const a = handler({ every: 3 });
    const b = handler({ every: 3 });
    await Promise.all(
      Array.from({ length: 40 }, (_, i) => (i % 2 === 0 ? a : b).handle(increment("s5", (i % 5) + 1))),
    );
    expect(a.stats.snapshotsWritten + b.stats.snapshotsWritten).toBeGreaterThan(0);
    await until("both replicas wrote", () => a.stats.snapshotsWritten > 0 && b.stats.snapshotsWritten > 0);
    const expected = await truth("s5");
    expect(expected.state).toEqual({ total: 120 });
    expect(expected.version).toBe(40);
    const cold = handler({ every: 3 });
    const r = await cold.read(ref("s5"));
    expect(cold.stats.snapshotsUsed).toBe(1);
    expect({ state: r.state, version: r.version, lastSequence: r.lastSequence }).toEqual(expected);
  });

  it("snapshots due within snapshotCoalesceMs are one write, of the latest state; a cold load agrees with the log", async () => {
    // Long enough for the 11 commands on a loaded machine: the window opens at the 2nd.
    const w = handler({ every: 2, coalesceMs: 3_000 });
    const t0 = Date.now();
    // 11 events: due at 2, 4, … 10 — five snapshots written at once without coalescing.
    for (let i = 1; i <= 11; i++) await w.handle(increment("s7", 1));
    if (Date.now() - t0 < 2_500) expect(w.stats.snapshotsWritten).toBe(0);
    await until("the coalesced snapshot", () => w.stats.snapshotsWritten > 0);
    await new Promise((r) => setTimeout(r, 600));
    expect(w.stats.snapshotsWritten).toBe(1);
    expect(await snapshotOf("s7")).toMatchObject({ version: 11, state: { total: 11 } });
    const cold = handler();
    const r = await cold.read(ref("s7"));
    expect(cold.stats.snapshotsUsed).toBe(1);
    expect({ state: r.state, version: r.version, lastSequence: r.lastSequence }).toEqual(await truth("s7"));
  });

  it("a snapshot still waiting when the service stops is not written (cancelSnapshots)", async () => {
    const w = handler({ every: 2, coalesceMs: 200 });
    for (let i = 1; i <= 3; i++) await w.handle(increment("s8", 1));
    w.cancelSnapshots();
    await new Promise((r) => setTimeout(r, 400));
    expect(w.stats.snapshotsWritten).toBe(0);
    expect(await snapshotOf("s8")).toBeUndefined();
  });

  it("without the bucket a handler folds from the log, and says why", async () => {
    const missing: unknown[] = [];
    const w = handler({ snapshots: false });
    for (let i = 0; i < 3; i++) await w.handle(increment("s6", 1));
    const broken = Object.assign(Object.create(SnapshotStore.prototype) as SnapshotStore, {
      get: async () => {
        throw new Error("bucket gone");
      },
      put: async () => {},
    });
    const h = new CommandHandler({
      decider: snapshotting(),
      store,
      catalogue: counterCatalogue,
      snapshots: broken,
      onSnapshotError: (err) => missing.push(err),
    });
    expect((await h.read(ref("s6"))).state).toEqual({ total: 3 });
    expect(missing).toHaveLength(1);
  });

  it("ensureStreams made the bucket in the shape Kvm opens (history 1)", async () => {
    const kv = await new Kvm(js.nats.js).open(Buckets.snapshots);
    expect((await kv.status()).history).toBe(1);
  });
});

describe("RecentCommits", () => {
  it("keeps the newest chunks only, and round-trips through a snapshot", () => {
    const r = new RecentCommits();
    const total = COMMIT_CHUNK * (COMMIT_CHUNKS + 2);
    for (let i = 0; i < total; i++) r.add(`c${i}`);
    expect(r.size).toBeLessThanOrEqual(COMMIT_CHUNK * COMMIT_CHUNKS);
    expect(r.size).toBeGreaterThan(COMMIT_CHUNK * (COMMIT_CHUNKS - 1));
    expect(r.has(`c${total - 1}`)).toBe(true);
    expect(r.has("c0")).toBe(false);
    const back = RecentCommits.fromJSON(JSON.parse(JSON.stringify(r)));
    expect(back.size).toBe(r.size);
    expect(back.has(`c${total - 1}`)).toBe(true);
    // An id in a sealed (older) chunk, read back as text.
    const older = `c${total - COMMIT_CHUNK * 5}`;
    expect(r.has(older)).toBe(true);
    expect(back.has(older)).toBe(true);
    // Whole ids only: "c1" was dropped, though "c10240"… are kept.
    expect(back.has("c1")).toBe(false);
    expect(back.has(`c${total - 1}`.slice(0, -1))).toBe(false);
    expect(RecentCommits.fromJSON(new RecentCommits().toJSON()).size).toBe(0);
  });
});
