/**
 * A batch's fold copies a cluster row (and its slot record) once at most, not once per
 * event, and counts the running instances without walking every slot per event: each
 * was O(nodes) per event, O(nodes²) per cluster, and with slot numbers from 1000 up V8
 * backs a copied slot record with a ~1,000-entry array whatever the node count (8 kB
 * copied and walked per event: docs/projector.md "Live apply, fifth pass"). Judged by
 * counting copies and walks, not by time. The rows it was given stay as they were, and
 * the rows it makes equal the pure fold's, event by event.
 */
import { describe, expect, it } from "vitest";
import { emptyLoadedRows, foldBatch, foldInto, type SequencedEvent } from "./apply-events.ts";
import { slotWalks } from "./projections/cluster-conditions.ts";
import { type ClusterRow, foldCluster, slotCopies } from "./projections/clusters.ts";
import { anEnvelope, cluster, deletionRequested, requested } from "./testing/fixtures.ts";

const placement = { instanceType: "t3.large", capacityType: "spot" };

/** A cluster of `nodes` workers (slots 1000 up) requested, then each instance launched and running. */
function life(id: string, nodes: number): SequencedEvent[] {
  const slots = Array.from({ length: nodes }, (_, i) => ({
    slot: 1000 + i,
    pool: "workers",
    ordinal: i,
    role: "agent",
  }));
  const es: { type: string; data: unknown }[] = [
    requested(id),
    { type: "cluster.provisioning-started", data: { slots } },
    ...slots.map((s) => ({
      type: "cluster.instance-launch-requested",
      data: { ...s, attempt: 1, placement },
    })),
    ...slots.map((s) => ({
      type: "cluster.instance-launched",
      data: { slot: s.slot, attempt: 1, instanceId: `i-${s.slot}` },
    })),
    ...slots.map((s) => ({
      type: "cluster.instance-running",
      data: { slot: s.slot, instanceId: `i-${s.slot}` },
    })),
    { type: "cluster.instances-ready", data: { count: nodes } },
    ...slots.map((s) => ({
      type: "cluster.instance-termination-requested",
      data: { slot: s.slot, instanceId: `i-${s.slot}` },
    })),
    deletionRequested(),
  ];
  return es.map((e, i) => ({
    event: anEnvelope(cluster(id), i + 1, e, { time: new Date(Date.UTC(2026, 0, 1, 0, 0, i)).toISOString() }),
    sequence: 100 + i,
  }));
}

/** What folding `events` copied and walked of slot records. */
function counting<T>(f: () => T): { result: T; copies: number; walks: number } {
  const c0 = slotCopies.count;
  const w0 = slotWalks.count;
  const result = f();
  return { result, copies: slotCopies.count - c0, walks: slotWalks.count - w0 };
}

/** The row as Postgres gives it back (a fresh object), frozen all through. */
const asRead = (row: ClusterRow): ClusterRow => deepFreeze(JSON.parse(JSON.stringify(row)));
function deepFreeze<T>(v: T): T {
  if (v !== null && typeof v === "object") {
    for (const x of Object.values(v)) deepFreeze(x);
    Object.freeze(v);
  }
  return v;
}

const json = (v: unknown) => JSON.parse(JSON.stringify(v));
const pure = (events: readonly SequencedEvent[], initial?: ClusterRow) => foldCluster(events, initial);

describe("a batch's fold of a many-node cluster", () => {
  for (const nodes of [20, 600]) {
    it(`copies and walks its slots a bounded number of times, not per event (${nodes} nodes)`, () => {
      const events = life("c1", nodes);
      // The whole life in one batch: the row is the batch's from `cluster.requested` on.
      const whole = counting(() => {
        const clusters = new Map<string, ClusterRow>();
        foldInto(events, clusters, new Map());
        return clusters.get("c1")!;
      });
      expect(whole.copies).toBeLessThanOrEqual(1);
      expect(whole.walks).toBeLessThanOrEqual(1);
      expect(json(whole.result)).toEqual(json(pure(events)));

      // Across two batches, the second starting from a row kept (the rebuild) or read (live).
      const cut = 2 + nodes; // requested, provisioning started, every launch requested
      const first = pure(events.slice(0, cut))!;
      const rest = events.slice(cut);
      const kept = counting(() => {
        const clusters = new Map([["c1", asRead(first)]]);
        foldInto(rest, clusters, new Map()); // frozen: a change in place would throw
        return clusters.get("c1")!;
      });
      expect(kept.copies).toBeLessThanOrEqual(1);
      expect(kept.walks).toBeLessThanOrEqual(1);
      expect(json(kept.result)).toEqual(json(pure(events)));

      // The live batch's own reads are changed in place: no copy at all.
      const live = counting(() => {
        const loaded = emptyLoadedRows();
        loaded.clusters.set("c1", json(first));
        const folded = foldBatch(rest, loaded);
        return folded.clusters[0]!;
      });
      expect(live.copies).toBe(0);
      expect(live.walks).toBeLessThanOrEqual(1);
      expect(json(live.result)).toEqual(json(pure(events)));
    });
  }

  it("leaves the rows it was given as they were, and counts as the pure fold does at every step", () => {
    const events = life("c2", 5);
    const cut = 8;
    const before = pure(events.slice(0, cut))!;
    const snapshot = json(before);
    for (let end = cut + 1; end <= events.length; end++) {
      const clusters = new Map([["c2", before]]);
      const { clusters: changed } = foldInto(events.slice(cut, end), clusters, new Map());
      expect(json(changed[0])).toEqual(json(pure(events.slice(0, end))));
      expect(json(before)).toEqual(snapshot);
    }
  });

  it("reports a row changed in place as changed once, and an event already folded as no change", () => {
    const events = life("c3", 3);
    const clusters = new Map<string, ClusterRow>();
    const once = foldInto(events.slice(0, 6), clusters, new Map());
    expect(once.clusters).toHaveLength(1);
    // The same events again (a redelivery): nothing changes.
    const again = foldInto(events.slice(0, 6), clusters, new Map());
    expect(again.clusters).toHaveLength(0);
    const next = foldInto(events.slice(4, 9), clusters, new Map());
    expect(next.clusters).toHaveLength(1);
    expect(next.clusters[0]!.version).toBe(9);
  });
});
