/**
 * Which slots share a RunInstances: the pure batching of a decision's launch requests
 * (given-when-then on the decider, and the rule as a property).
 */
import {
  type ClusterCommand,
  type ClusterEvent,
  clusterSpec,
  exampleClusterCreate,
  isRejection,
  MAX_LAUNCH_BATCH,
} from "@cairn/events";
import { deciderSpec } from "@cairn/events/testing";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { clusterDecider } from "./decider.ts";
import { batchLaunches, batchOf } from "./launch-batches.ts";

const ref = { type: "cluster" as const, id: "big-1" };
const base = clusterSpec.parse(exampleClusterCreate("big-1").data);
const cluster = deciderSpec(clusterDecider, ref);
const cmd = (type: string, data: object) =>
  ({ type, data: { clusterId: "big-1", ...data } }) as ClusterCommand;
type Launch = Extract<ClusterEvent, { type: "cluster.instance-launch-requested" }>;
const launchesOf = (d: unknown): Launch["data"][] =>
  isRejection(d as never)
    ? []
    : (d as ClusterEvent[])
        .filter((e): e is Launch => e.type === "cluster.instance-launch-requested")
        .map((e) => e.data);
const batchesOf = (ls: readonly Launch["data"][]) => [
  ...new Map(ls.map((l) => [JSON.stringify(batchOf(l)), batchOf(l)])).values(),
];

const withWorkers = (count: number) => ({
  ...base,
  pools: [{ ...base.pools[0]!, count }],
});
const requested = (count: number): ClusterEvent => ({
  type: "cluster.requested",
  data: { spec: withWorkers(count) },
});

describe("launch batches (decider)", () => {
  it("a pool of 250 nodes is launched by 3 calls of at most 100; the server by its own", () => {
    const d = cluster.given([requested(250)]).when(cmd("cluster.start-provisioning", {})).decision;
    const launches = launchesOf(d);
    expect(launches).toHaveLength(251);
    expect(batchesOf(launches)).toEqual([
      { firstSlot: 0, count: 1 },
      { firstSlot: 1000, count: 100 },
      { firstSlot: 1100, count: 100 },
      { firstSlot: 1200, count: 50 },
    ]);
    // The server alone carries no batch: launched as a slot always was (its own token).
    expect(launches[0]?.batch).toBeUndefined();
  });

  it("a batch EC2 refused moves to the next placement together: one commit, one batch", () => {
    const given = cluster.given([requested(3)]);
    const started = given.when(cmd("cluster.start-provisioning", {})).decision as ClusterEvent[];
    const failure = (slot: number) => ({
      slot,
      attempt: 1,
      code: "InsufficientInstanceCapacity",
      reason: "none",
      capacity: true,
    });
    const d = cluster
      .given([requested(3), ...started])
      .when(
        cmd("cluster.record-launch-failures", { failures: [failure(1000), failure(1001), failure(1002)] }),
      ).decision as ClusterEvent[];
    expect(d.filter((e) => e.type === "cluster.instance-launch-failed")).toHaveLength(3);
    const next = launchesOf(d);
    expect(next.map((l) => [l.slot, l.attempt, l.placement.instanceType])).toEqual([
      [1000, 2, "t3a.large"],
      [1001, 2, "t3a.large"],
      [1002, 2, "t3a.large"],
    ]);
    expect(batchesOf(next)).toEqual([{ firstSlot: 1000, count: 3 }]);
  });

  it("failures of every placement fail the cluster once, however many slots failed together", () => {
    const spec = { ...withWorkers(2), pools: [{ ...withWorkers(2).pools[0]!, instanceTypes: ["t3.large"] }] };
    const events: ClusterEvent[] = [{ type: "cluster.requested", data: { spec } }];
    const started = cluster.given(events).when(cmd("cluster.start-provisioning", {}))
      .decision as ClusterEvent[];
    const f = (slot: number) => ({
      slot,
      attempt: 1,
      code: "InsufficientInstanceCapacity",
      reason: "x",
      capacity: true,
    });
    const d = cluster
      .given([...events, ...started])
      .when(cmd("cluster.record-launch-failures", { failures: [f(1000), f(1001)] }))
      .decision as ClusterEvent[];
    expect(d.map((e) => e.type)).toEqual([
      "cluster.instance-launch-failed",
      "cluster.failed",
      "cluster.instance-launch-failed",
    ]);
  });

  it("slot numbers that come back at other attempts are not batched with fresh ones", () => {
    // 2 → 1 → 3: slot 1001 comes back at attempt 2, slot 1002 is new (attempt 1).
    const given = [requested(2)];
    const s1 = cluster.given(given).when(cmd("cluster.start-provisioning", {})).decision as ClusterEvent[];
    const h1 = [...given, ...s1];
    const down = cluster.given(h1).when(cmd("cluster.scale", { pool: "workers", count: 1 }))
      .decision as ClusterEvent[];
    const h2 = [
      ...h1,
      ...down,
      { type: "cluster.instance-terminated", data: { slot: 1001 } } as ClusterEvent,
    ];
    const up = cluster.given(h2).when(cmd("cluster.scale", { pool: "workers", count: 3 })).decision;
    const launches = launchesOf(up);
    expect(launches.map((l) => [l.slot, l.attempt, l.batch])).toEqual([
      [1001, 2, undefined],
      [1002, 1, undefined],
    ]);
  });
});

describe("batchLaunches (property)", () => {
  const placementArb = fc.record({
    instanceType: fc.constantFrom("t3.large", "t3a.large"),
    capacityType: fc.constantFrom("spot" as const, "on-demand" as const),
  });
  const launchArb = fc.record({
    slot: fc.integer({ min: 1000, max: 1040 }),
    attempt: fc.integer({ min: 1, max: 2 }),
    placement: placementArb,
  });
  it("each batch is consecutive slots sharing pool, role, attempt and placement, at most `max`; nothing else changes", () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(launchArb, { selector: (l) => l.slot, maxLength: 40 }),
        fc.integer({ min: 1, max: 8 }),
        (ls, max) => {
          const events: ClusterEvent[] = [
            { type: "cluster.scale-requested", data: { pool: "workers", from: 0, to: ls.length } },
            ...ls.map(
              (l): ClusterEvent => ({
                type: "cluster.instance-launch-requested",
                data: { ...l, pool: "workers", ordinal: l.slot - 1000, role: "agent" },
              }),
            ),
          ];
          const out = batchLaunches(events, max);
          // Same events in the same order, only `batch` added.
          expect(out.map((e) => ({ ...e, data: { ...e.data, batch: undefined } }))).toEqual(
            events.map((e) => ({ ...e, data: { ...e.data, batch: undefined } })),
          );
          const launches = out.filter((e): e is Launch => e.type === "cluster.instance-launch-requested");
          const bySlot = new Map(launches.map((e) => [e.data.slot, e.data]));
          for (const l of launches.map((e) => e.data)) {
            const b = batchOf(l);
            expect(b.count).toBeLessThanOrEqual(Math.max(max, 1));
            if (!l.batch) continue;
            expect(b.count).toBeGreaterThan(1);
            // Every member of its batch is there, names the same batch, and shares the call's parameters.
            for (let n = b.firstSlot; n < b.firstSlot + b.count; n++) {
              const m = bySlot.get(n);
              expect(m?.batch).toEqual(b);
              expect([m?.attempt, m?.placement]).toEqual([l.attempt, l.placement]);
            }
          }
        },
      ),
    );
  });
  it("the catalogue's bound is what the decider uses", () => {
    expect(MAX_LAUNCH_BATCH).toBe(100);
  });
});
