/**
 * The heartbeat bucket on real NATS JetStream: writes coalesced to the resolution, never
 * backwards whoever writes (two writers, clocks apart), and a missing bucket answered at
 * once instead of a request waiting out its timeout.
 */
import { jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { connectNats, type Nats } from "./connection.ts";
import {
  ActivityBucketMissing,
  ActivityNotRecorded,
  type SessionActivity,
  startSessionActivity,
} from "./session-activity.ts";
import { Buckets } from "./subjects.ts";
import { startJetStream, type TestJetStream } from "./testing/jetstream.ts";
import { until } from "./testing/until.ts";

let js: TestJetStream;
const opened: { activity: SessionActivity; nats: Nats }[] = [];

beforeEach(async () => {
  js = await startJetStream();
});
afterEach(async () => {
  for (const o of opened.splice(0)) {
    o.activity.stop();
    await o.nats.close();
  }
  await js.dispose();
});

/** A writer: its own connection (a replica), its own clock. */
async function writer(
  o: { resolutionMs?: number; now?: () => number; maxQueued?: number; noEcho?: boolean } = {},
) {
  const { noEcho, ...options } = o;
  const nats = await connectNats(js.server.url, { noEcho: noEcho ?? false });
  const activity = await startSessionActivity({ nc: nats.nc, ...options });
  opened.push({ activity, nats });
  return activity;
}
/** The bucket as the idle-detector makes it; `history` > 1 keeps earlier values to check their order. */
const createBucket = (history = 1) => new Kvm(js.nats.nc).create(Buckets.heartbeats, { history });
const bucket = async () => await new Kvm(js.nats.js).open(Buckets.heartbeats);
const stored = async (key: string) => {
  const e = await (await bucket()).get(key);
  return e ? { revision: e.revision, at: e.json<{ at: number }>().at } : undefined;
};
/** Every value of `key` the bucket stored, in the order it stored them. */
async function storedHistory(key: string) {
  const ats: number[] = [];
  for await (const e of await (await bucket()).history({ key })) ats.push(e.json<{ at: number }>().at);
  return ats;
}

describe("session activity", () => {
  it("on a connection that does not hear its own publishes (noEcho, as the API has it): its own writes known, the others' heard", async () => {
    await createBucket();
    let clock = 5_000_000;
    const quiet = await writer({ now: () => clock, noEcho: true });
    const other = await writer({ now: () => clock });
    await quiet.record("s-1", 1);
    expect(quiet.lastActivity("s-1")).toBe(5_000_000);
    expect(await quiet.load("s-1")).toBe(5_000_000);
    expect((await stored("s-1"))?.at).toBe(5_000_000);
    clock += 5_000;
    await other.record("s-1", 1);
    await until("the other's write heard", () => quiet.lastActivity("s-1") === 5_005_000);
    // And its next write goes on the other's revision without a lost compare-and-set.
    clock += 5_000;
    await quiet.record("s-1", 1);
    expect((await stored("s-1"))?.at).toBe(5_010_000);
    expect(quiet.counts.writes).toBe(2);
  });

  it("writes a session's activity at most once per resolution; a heartbeat within it is covered", async () => {
    await createBucket();
    let clock = 1_000_000;
    const a = await writer({ now: () => clock });
    await a.record("s-1", 2);
    expect(await stored("s-1")).toMatchObject({ at: 1_000_000 });
    clock += 999;
    expect(a.record("s-1", 1)).toBeUndefined();
    expect(a.lastActivity("s-1")).toBe(1_000_000);
    clock += 1;
    await a.record("s-1", 1);
    expect(await stored("s-1")).toMatchObject({ at: 1_001_000 });
    expect(a.counts).toMatchObject({ writes: 2, covered: 1 });
    // Heartbeats at once while a write is in flight wait for it: one write for all.
    clock += 5_000;
    const storm = Array.from({ length: 50 }, () => a.record("s-1", 1));
    await Promise.all(storm);
    expect(a.counts.writes).toBe(3);
    expect(await stored("s-1")).toMatchObject({ at: 1_006_000 });
  });

  it("never moves last activity backwards, whoever writes and whatever their clocks say", async () => {
    await createBucket(64);
    const base = 2_000_000;
    // Two replicas, b's clock 5 s behind a's; neither coalesces here.
    const a = await writer({ resolutionMs: 0 });
    const b = await writer({ resolutionMs: 0 });
    await a.record("s-2", 1, base);
    await b.record("s-2", 1, base + 1_000);
    // a's revision is stale (b wrote since): its compare-and-set fails, it reads b's, writes on top.
    await a.record("s-2", 1, base + 8_000);
    expect(a.counts.conflicts).toBeGreaterThanOrEqual(1);
    // b, behind: its earlier time never replaces a's later one.
    await b.record("s-2", 1, base + 3_000);
    expect(await stored("s-2")).toMatchObject({ at: base + 8_000 });
    // Racing, both at once, many times: the bucket ends at the latest, and never went back.
    const times = Array.from({ length: 40 }, (_, i) => base + 10_000 + i * 100);
    await Promise.all(
      times.map((t, i) => (i % 2 === 0 ? a : b).record("s-2", 1, i % 2 === 0 ? t : t - 5_000)),
    );
    const last = Math.max(
      ...times.filter((_, i) => i % 2 === 0),
      ...times.filter((_, i) => i % 2 === 1).map((t) => t - 5_000),
    );
    expect(await stored("s-2")).toMatchObject({ at: last });
    const history = await storedHistory("s-2");
    expect(history.length).toBeGreaterThan(3);
    expect(history.at(-1)).toBe(last);
    for (let i = 1; i < history.length; i++) expect(history[i]!).toBeGreaterThan(history[i - 1]!);
    // Every writer follows every write.
    await until("both know", () => a.lastActivity("s-2") === last && b.lastActivity("s-2") === last);
  });

  it("a missing bucket is answered at once (no request waits out its timeout); once created it is used", async () => {
    const a = await writer();
    const t0 = performance.now();
    await expect(a.record("s-3", 1)).rejects.toBeInstanceOf(ActivityBucketMissing);
    expect(await a.load("s-3")).toBeUndefined();
    expect(await a.load("s-4")).toBeUndefined();
    // A direct get on a missing stream is never answered: 2 s (here) or 10 s per read before.
    expect(performance.now() - t0).toBeLessThan(1_000);
    await createBucket();
    // It asks again at most once a second.
    await until(
      "written",
      async () =>
        (await a.record("s-3", 1)?.then(
          () => true,
          () => false,
        )) ?? true,
    );
    expect(await stored("s-3")).toBeDefined();
    expect(await a.load("s-3")).toBe((await stored("s-3"))!.at);
  });

  it("reads a session it has not seen once, and follows later writes", async () => {
    await createBucket();
    await (await bucket()).put("s-5", JSON.stringify({ at: 42, connections: 1 }));
    const a = await writer();
    expect(a.lastActivity("s-5")).toBeUndefined();
    expect(await a.load("s-5")).toBe(42);
    expect(await a.load("s-6")).toBeUndefined();
    const other = await writer();
    await other.record("s-6", 1, 77);
    await until("a follows", () => a.lastActivity("s-6") === 77);
    expect(await a.load("s-6")).toBe(77);
  });

  it("writes behind only while writing is proven: waits before the first write lands, after a failure, and past maxQueued", async () => {
    let clock = 5_000_000;
    const a = await writer({ now: () => clock, maxQueued: 2 });
    // No bucket: nothing has landed yet, so the caller waits and hears why.
    await expect(a.accept("s-7", 1)).rejects.toBeInstanceOf(ActivityBucketMissing);
    await createBucket();
    // Still unproven: the first write that lands is waited for (after the once-a-second re-ask).
    await until(
      "the first write landed",
      async () =>
        (await a.accept("s-7", 1)?.then(
          () => true,
          () => false,
        )) ?? false,
    );
    expect(await stored("s-7")).toMatchObject({ at: clock });
    // Proven: answered at once, the write on its way — and it lands.
    clock += 2_000;
    expect(a.accept("s-7", 1)).toBeUndefined();
    await until("written behind", async () => (await stored("s-7"))?.at === clock);
    // At most maxQueued on their way: the third of a burst waits for its own write.
    clock += 2_000;
    expect(a.accept("s-8", 1)).toBeUndefined();
    expect(a.accept("s-9", 1)).toBeUndefined();
    const third = a.accept("s-10", 1);
    expect(third).toBeInstanceOf(Promise);
    await third;
    await until(
      "the burst landed",
      async () => (await stored("s-8")) !== undefined && (await stored("s-9")) !== undefined,
    );
    // A failed write (the bucket deleted under it) makes the next callers wait again, and hear it.
    await (await jetstreamManager(js.nats.nc)).streams.delete(`KV_${Buckets.heartbeats}`);
    clock += 2_000;
    const lost = a.accept("s-7", 1);
    // The first one after the loss may still go behind (the loss is not known yet); it fails.
    await lost?.catch(() => {});
    await until("the loss is known", async () => {
      clock += 2_000;
      const w = a.accept("s-7", 1);
      // Not acked (the writers' own subscription on the subjects means no "no responders").
      return (
        w !== undefined &&
        (await w.then(
          () => false,
          (e: unknown) => e instanceof ActivityNotRecorded,
        ))
      );
    });
  });
});
