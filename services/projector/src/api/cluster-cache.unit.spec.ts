/**
 * The cluster cache's rules (cluster-cache.ts): it answers only at a point of the log every
 * announced batch up to which it saw whole and in order, and only with what Postgres held at
 * that point or what the announcements changed since.
 */
import { describe, expect, it } from "vitest";
import type { Change } from "../changes.ts";
import type { ClusterRow } from "../projections/clusters.ts";
import type { InstallRow } from "../projections/installs.ts";
import type { SessionRow } from "../projections/sessions.ts";
import type { StepDurationRow } from "../projections/step-durations.ts";
import { ClusterCache, type ClusterInputs, parseAnnouncedDurations } from "./cluster-cache.ts";

const row = (id: string, lastSequence: number) =>
  ({ id, lastSequence, state: "Ready" }) as unknown as ClusterRow;
const inputs = (id: string, seq: number): ClusterInputs => ({
  row: row(id, seq),
  install: undefined,
  sessions: [],
  durations: [],
});
const clusterChange = (id: string, seq: number): Change => ({
  resource: "clusters",
  id,
  sequence: seq,
  row: row(id, seq),
});
const batch = (from: number, to: number, part = 1, parts = 1) => ({ from, to, part, parts });
/** A cache at watermark `w` holding `c1` as read at `w`. */
function cacheAt(w: number): ClusterCache {
  const cache = new ClusterCache();
  cache.announced(batch(w - 1, w), []);
  expect(cache.fill(cache.ticket(), w, "c1", inputs("c1", w))).toBe(true);
  return cache;
}

describe("ClusterCache", () => {
  it("serves nothing before it knows a point of the log, then only what a read at that point filled", () => {
    const cache = new ClusterCache();
    expect(cache.fill(cache.ticket(), 10, "c1", inputs("c1", 10))).toBe(false);
    expect(cache.get("c1")).toBeUndefined();
    cache.announced(batch(5, 10), [clusterChange("c9", 10)]);
    expect(cache.watermark).toBe(10);
    // Read at an earlier point of the log: not kept.
    expect(cache.fill(cache.ticket(), 9, "c1", inputs("c1", 9))).toBe(false);
    expect(cache.get("c1")).toBeUndefined();
    expect(cache.fill(cache.ticket(), 10, "c1", inputs("c1", 10))).toBe(true);
    expect(cache.get("c1")?.row.lastSequence).toBe(10);
    // A later one is: the announcements of (10, 12] are on their way; an older row they
    // carry does not replace it.
    expect(cache.fill(cache.ticket(), 12, "c2", inputs("c2", 12))).toBe(true);
    cache.announced(batch(10, 12), [clusterChange("c2", 11), clusterChange("c1", 11)]);
    expect(cache.get("c2")?.row.lastSequence).toBe(12);
    expect(cache.get("c1")?.row.lastSequence).toBe(11);
    // c9 changed, but was never read: not held (no install, no sessions to go with it).
    expect(cache.get("c9")).toBeUndefined();
  });

  it("follows the announced batches that follow one another, and answers nothing while one is half received", () => {
    const cache = cacheAt(10);
    cache.announced(batch(10, 14, 1, 2), [clusterChange("c2", 12)]);
    expect(cache.get("c1")).toBeUndefined();
    expect(cache.fill(cache.ticket(), 10, "c2", inputs("c2", 10))).toBe(false);
    cache.announced(batch(10, 14, 2, 2), [clusterChange("c1", 14)]);
    expect(cache.watermark).toBe(14);
    expect(cache.get("c1")?.row.lastSequence).toBe(14);
    // A batch with no rows moves the watermark too.
    cache.announced(batch(14, 15), []);
    expect(cache.get("c1")?.row.lastSequence).toBe(14);
    expect(cache.watermark).toBe(15);
  });

  it("empties on a batch that does not follow, a part out of order, or an announcement without its range", () => {
    const gap = cacheAt(10);
    gap.announced(batch(11, 12), []);
    expect(gap.get("c1")).toBeUndefined();
    expect(gap.size).toBe(0);
    expect(gap.watermark).toBe(12);

    const outOfOrder = cacheAt(10);
    outOfOrder.announced(batch(10, 14, 2, 2), [clusterChange("c1", 14)]);
    expect(outOfOrder.size).toBe(0);
    expect(outOfOrder.watermark).toBeUndefined();
    // Waits for a whole batch: then at its end.
    outOfOrder.announced(batch(14, 16), []);
    expect(outOfOrder.watermark).toBe(16);

    const unfinished = cacheAt(10);
    unfinished.announced(batch(10, 14, 1, 2), []);
    unfinished.announced(batch(14, 15, 1, 1), []);
    expect(unfinished.size).toBe(0);
    expect(unfinished.watermark).toBe(15);

    const old = cacheAt(10);
    old.announced(undefined, [clusterChange("c1", 11)]);
    expect(old.get("c1")).toBeUndefined();
    expect(old.watermark).toBeUndefined();
    expect(old.counts.resets).toBe(1);
  });

  it("drops what a change may move but does not carry: a session's cluster counts, the durations on a node's change", () => {
    const sessions = cacheAt(10);
    sessions.announced(batch(10, 11), [
      { resource: "sessions", id: "s1", sequence: 11, row: { clusterId: "c1" } as unknown as SessionRow },
    ]);
    expect(sessions.get("c1")).toBeUndefined();

    const nodes = cacheAt(10);
    nodes.announced(batch(10, 11), [{ resource: "nodes", id: "n1", sequence: 11, row: {} as never }]);
    expect(nodes.get("c1")).toBeUndefined();
    // The next read at the watermark brings the durations back.
    expect(nodes.fill(nodes.ticket(), 11, "c2", inputs("c2", 11))).toBe(true);
    expect(nodes.get("c1")?.row.lastSequence).toBe(10);

    const install = cacheAt(10);
    const installRow = { clusterId: "c1", lastSequence: 11 } as unknown as InstallRow;
    install.announced(batch(10, 11), [{ resource: "installs", id: "c1", sequence: 11, row: installRow }]);
    expect(install.get("c1")?.install).toBe(installRow);
  });

  it("takes the step durations a batch announces, by kind, never an older one, and keeps its durations at a node's change then", () => {
    const d = (kind: string, meanMs: number, lastSequence: number) =>
      ({
        kind,
        samples: 1,
        meanMs,
        lastMs: meanMs,
        updatedAt: "2026-01-01T00:00:00.000Z",
        lastSequence,
      }) as StepDurationRow;
    const cache = new ClusterCache();
    cache.announced(batch(9, 10), [], []);
    expect(
      cache.fill(cache.ticket(), 10, "c1", {
        ...inputs("c1", 10),
        durations: [d("instance-boot", 40_000, 0), d("node-ready", 5, 8)],
      }),
    ).toBe(true);
    const node = { resource: "nodes", id: "n1", sequence: 11, row: {} as never } as const;
    // The header on every part, the rows on the last: nothing dropped, the new mean taken.
    cache.announced(batch(10, 12, 1, 2), [node], []);
    cache.announced(batch(10, 12, 2, 2), [node], [d("instance-boot", 120, 12)]);
    const held = cache.get("c1")?.durations;
    expect(held).toBeDefined();
    expect(Object.fromEntries(held!.map((x) => [x.kind, x.meanMs]))).toEqual({
      "instance-boot": 120,
      "node-ready": 5,
    });
    // A slower read (at 12, but its durations older per kind) does not take one back; a new kind is added.
    expect(
      cache.fill(cache.ticket(), 12, "c2", {
        ...inputs("c2", 12),
        durations: [d("instance-boot", 40_000, 0), d("node-ready", 7, 12), d("k3s-agent-join", 9, 12)],
      }),
    ).toBe(true);
    expect(Object.fromEntries(cache.get("c2")!.durations.map((x) => [x.kind, x.meanMs]))).toEqual({
      "instance-boot": 120,
      "node-ready": 7,
      "k3s-agent-join": 9,
    });
    // From a projector that does not announce them: a node's change drops them (as before).
    cache.announced(batch(12, 13), [node]);
    expect(cache.get("c1")).toBeUndefined();
  });

  it("reads the durations header: absent or unreadable is undefined (a node's change drops them), [] is none", () => {
    expect(parseAnnouncedDurations(undefined)).toBeUndefined();
    expect(parseAnnouncedDurations("[]")).toEqual([]);
    expect(parseAnnouncedDurations("not json")).toBeUndefined();
    expect(parseAnnouncedDurations('[{"kind":"instance-boot"}]')).toBeUndefined();
    const row = { kind: "instance-boot", samples: 2, meanMs: 3, lastMs: 4, updatedAt: "t", lastSequence: 5 };
    expect(parseAnnouncedDurations(JSON.stringify([row]))).toEqual([row]);
  });

  it("keeps an entry it holds when a slower read fills it again", () => {
    const cache = cacheAt(10);
    cache.announced(batch(10, 11), [clusterChange("c1", 11)]);
    expect(cache.fill(cache.ticket(), 11, "c1", inputs("c1", 10))).toBe(true);
    expect(cache.get("c1")?.row.lastSequence).toBe(11);
  });

  it("warms once it knows its watermark, and again after each reset, never twice at once", async () => {
    const calls: number[] = [];
    let release: () => void = () => {};
    const cache = new ClusterCache({
      warm: async (c) => {
        calls.push(c.watermark!);
        // What a page read at the watermark keeps.
        c.fill(c.ticket(), c.watermark, "w1", inputs("w1", c.watermark!));
        await new Promise<void>((r) => (release = r));
      },
    });
    expect(calls).toEqual([]);
    cache.polled({ checkpoint: 20, table: "1" }, 0);
    expect(calls).toEqual([20]);
    expect(cache.get("w1")?.row.lastSequence).toBe(20);
    cache.announced(batch(20, 21), []);
    expect(calls).toEqual([20]);
    // A batch missed while it runs: empty; the next whole batch gives a watermark, and once
    // the running warm-up ends, another begins.
    cache.announced(batch(25, 26), []);
    expect(cache.size).toBe(0);
    expect(calls).toEqual([20]);
    release();
    await new Promise((r) => setImmediate(r));
    expect(calls).toEqual([20, 26]);
    release();
    await new Promise((r) => setImmediate(r));
    cache.announced(batch(26, 27), []);
    expect(calls).toEqual([20, 26]);
  });

  it("keeps no read that began before the cache was emptied, and answers `atLeastSequence` only from that far", () => {
    const cache = cacheAt(10);
    const ticket = cache.ticket();
    cache.announced(batch(12, 13), []);
    expect(cache.watermark).toBe(13);
    expect(cache.fill(ticket, 13, "c1", inputs("c1", 13))).toBe(false);
    expect(cache.fill(cache.ticket(), 13, "c1", inputs("c1", 13))).toBe(true);
    expect(cache.get("c1", 13)).toBeDefined();
    expect(cache.get("c1", 14)).toBeUndefined();
  });

  it("empties when Postgres stays ahead of the announcements for resetAfterMs, or the clusters table is another", () => {
    const cache = cacheAt(10);
    cache.polled({ checkpoint: 10, table: "1" }, 0);
    cache.polled({ checkpoint: 12, table: "1" }, 500);
    // The announcement arrives in time: nothing lost.
    cache.announced(batch(10, 12), []);
    cache.polled({ checkpoint: 13, table: "1" }, 1_000);
    cache.polled({ checkpoint: 14, table: "1" }, 2_500);
    expect(cache.get("c1")).toBeDefined();
    // It does not arrive: 2 s after Postgres had 13, the cache still at 12.
    cache.polled({ checkpoint: 14, table: "1" }, 3_000);
    expect(cache.get("c1")).toBeUndefined();
    expect(cache.watermark).toBeUndefined();
    // Empty, it starts again at Postgres's checkpoint.
    cache.polled({ checkpoint: 14, table: "1" }, 3_500);
    expect(cache.watermark).toBe(14);
    expect(cache.fill(cache.ticket(), 14, "c1", inputs("c1", 14))).toBe(true);
    cache.polled({ checkpoint: 14, table: "2" }, 4_000);
    expect(cache.get("c1")).toBeUndefined();
  });

  it("holds at most maxEntries, the oldest filled dropped first", () => {
    const cache = new ClusterCache({ maxEntries: 2 });
    cache.announced(batch(0, 1), []);
    for (const id of ["a", "b", "c"]) cache.fill(cache.ticket(), 1, id, inputs(id, 1));
    expect(cache.size).toBe(2);
    expect(cache.get("a")).toBeUndefined();
    expect(cache.get("c")).toBeDefined();
  });
});
