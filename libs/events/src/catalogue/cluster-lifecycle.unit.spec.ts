import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  CLUSTER_LIMITS,
  type ClusterEvent,
  clusterEvents,
  clusterSpec,
  placeOfSlot,
  plannedSlots,
  poolOfSlot,
  roleOfSlot,
  SERVER_POOL,
  slotOf,
} from "./cluster.ts";
import {
  CLUSTER_TRANSITIONS,
  type ClusterStatus,
  clusterSpecAfter,
  clusterTransition,
  instancesReady,
  type SlotStatus,
  slotMoveOf,
} from "./cluster-lifecycle.ts";
import { exampleClusterCreate } from "./examples.ts";

const spec = clusterSpec.parse(exampleClusterCreate("demo-1").data);
const requested: ClusterEvent = { type: "cluster.requested", data: { spec } };
const provisioning: ClusterEvent[] = [
  requested,
  { type: "cluster.validation-started", data: {} },
  { type: "cluster.validated", data: { imageId: "ami-0abc12345def67890", architecture: "x86_64" } },
  { type: "cluster.provisioning-started", data: { slots: plannedSlots(spec) } },
];
const ev = (type: string, data: object = {}) => ({ type, data }) as ClusterEvent;

/** The status after the events, from no cluster, as both folds compute it. */
function statusOf(events: readonly ClusterEvent[]): ClusterStatus | undefined {
  let status: ClusterStatus | undefined;
  for (const e of events) status = clusterTransition(status, e) ?? status;
  return status;
}

/** The slots after the events, as both folds move them. */
function slotsOf(events: readonly ClusterEvent[]): Record<number, SlotStatus> {
  const slots: Record<number, SlotStatus> = {};
  for (const e of events) {
    const move = slotMoveOf(e);
    if (!move) continue;
    if (move.status) slots[move.slot] = move.status;
    else delete slots[move.slot];
  }
  return slots;
}

describe("the cluster lifecycle", () => {
  it("names a transition, or none, for every cluster event of the catalogue", () => {
    const types = clusterEvents.map((d) => d.type).sort();
    expect(Object.keys(CLUSTER_TRANSITIONS).sort()).toEqual(types);
  });

  it("knows no cluster before it is requested", () => {
    expect(
      statusOf([ev("cluster.provisioning-started", { slots: [] }), ev("cluster.ready")]),
    ).toBeUndefined();
    expect(statusOf([requested])).toBe("Pending");
  });

  it("walks Pending → Validating → Provisioning → Configuring → Ready", () => {
    expect(statusOf(provisioning.slice(0, 2))).toBe("Validating");
    // Validated moves nothing: provisioning-started follows in the same decision.
    expect(statusOf(provisioning.slice(0, 3))).toBe("Validating");
    expect(statusOf(provisioning)).toBe("Provisioning");
    const ready = [...provisioning, ev("cluster.instances-ready", { count: 3 })];
    expect(statusOf(ready)).toBe("Configuring");
    expect(statusOf([...ready, ev("cluster.ready", { nodes: 3, k3sVersion: spec.k3sVersion })])).toBe(
      "Ready",
    );
  });

  it("keeps Deleting, Deleted and Recovering when the instances are reported ready", () => {
    const late = ev("cluster.instances-ready", { count: 3 });
    expect(statusOf([...provisioning, ev("cluster.deletion-requested"), late])).toBe("Deleting");
    expect(statusOf([...provisioning, ev("cluster.deleted", { terminated: [] }), late])).toBe("Deleted");
    expect(statusOf([...provisioning, ev("cluster.recovering", { reason: "node lost" }), late])).toBe(
      "Recovering",
    );
  });

  it("makes a Ready cluster Recovering on a node replacement, and no other", () => {
    const replace = ev("cluster.node-replacement-requested", { slot: 0, instanceId: "i-1", reason: "lost" });
    const ready = [...provisioning, ev("cluster.instances-ready", { count: 3 }), ev("cluster.ready")];
    expect(statusOf([...ready, replace])).toBe("Recovering");
    expect(statusOf([...provisioning, replace])).toBe("Provisioning");
    expect(statusOf([...ready, ev("cluster.degraded", { reason: "x" }), replace])).toBe("Degraded");
  });

  it("moves to Scaling, RollingBack, Failed and back to Provisioning on a retry", () => {
    const scaling = [...provisioning, ev("cluster.scale-requested", { pool: "workers", from: 2, to: 4 })];
    expect(statusOf(scaling)).toBe("Scaling");
    // An undone scale changes the spec only; the cluster stays Scaling until its instances run.
    expect(statusOf([...scaling, ev("cluster.scale-failed", { reason: "x", spec })])).toBe("Scaling");
    expect(statusOf([...provisioning, ev("cluster.rollback-requested", { toVersion: 1, spec })])).toBe(
      "RollingBack",
    );
    const failed = [...provisioning, ev("cluster.failed", { reason: "no capacity" })];
    expect(statusOf(failed)).toBe("Failed");
    expect(statusOf([...failed, ev("cluster.retry-requested")])).toBe("Provisioning");
  });

  it("moves nothing on a rejection or an event type it does not know yet", () => {
    expect(clusterTransition("Ready", ev("cluster.rejected", { command: "cluster.scale" }))).toBeUndefined();
    expect(clusterTransition("Ready", ev("cluster.from-the-future"))).toBeUndefined();
    expect(clusterTransition("Ready", ev("constructor"))).toBeUndefined();
  });

  it("moves a slot launching → launched → running → terminating → gone", () => {
    const placement = { instanceType: "t3.large", capacityType: "spot" as const };
    const launch = ev("cluster.instance-launch-requested", {
      slot: 1000,
      pool: "workers",
      ordinal: 0,
      role: "agent",
      attempt: 1,
      placement,
    });
    const steps = [
      launch,
      ev("cluster.instance-launched", { slot: 1000, attempt: 1, instanceId: "i-1" }),
      ev("cluster.instance-running", { slot: 1000, instanceId: "i-1" }),
      ev("cluster.instance-termination-requested", { slot: 1000, instanceId: "i-1" }),
      ev("cluster.instance-terminated", { slot: 1000 }),
    ];
    const seen = steps.map((_, i) => slotsOf(steps.slice(0, i + 1))[1000]);
    expect(seen).toEqual(["launching", "launched", "running", "terminating", undefined]);
    expect(slotMoveOf(ev("cluster.instances-ready", { count: 1 }))).toBeUndefined();
  });

  it("has the instances ready when there are slots and every one runs", () => {
    expect(instancesReady(["running", "running"])).toBe(true);
    expect(instancesReady([])).toBe(false);
    expect(instancesReady(["running", "launched"])).toBe(false);
    expect(instancesReady(["running", "terminating"])).toBe(false);
  });

  it("follows the spec through scales, pool updates, upgrades and rollbacks", () => {
    const scaled = clusterSpecAfter(spec, ev("cluster.scale-requested", { pool: "workers", from: 2, to: 5 }));
    expect(scaled.pools.find((p) => p.name === "workers")?.count).toBe(5);
    expect(scaled.servers).toEqual(spec.servers);
    const upgraded = clusterSpecAfter(
      scaled,
      ev("cluster.k3s-upgraded", { from: spec.k3sVersion, to: "v1.32.0+k3s1" }),
    );
    expect(upgraded.k3sVersion).toBe("v1.32.0+k3s1");
    const labelled = clusterSpecAfter(
      upgraded,
      ev("cluster.pool-updated", { pool: "workers", labels: { tier: "batch" }, taints: [] }),
    );
    expect(labelled.pools.find((p) => p.name === "workers")?.labels).toEqual({ tier: "batch" });
    expect(clusterSpecAfter(labelled, ev("cluster.rollback-requested", { toVersion: 1, spec }))).toBe(spec);
    // An event that does not change the spec hands back the same object (no history entry).
    expect(clusterSpecAfter(labelled, ev("cluster.ready", { nodes: 3, k3sVersion: "v1.32.0+k3s1" }))).toBe(
      labelled,
    );
  });
});

describe("the slot numbering", () => {
  const ordinalOfPool = fc.integer({ min: 0, max: CLUSTER_LIMITS.maxPoolNodes });

  it("places a pool member's slot back at its pool and ordinal, and a server's at its ordinal", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: CLUSTER_LIMITS.maxPools - 1 }),
        ordinalOfPool,
        (poolIndex, ordinal) => {
          expect(placeOfSlot(slotOf(poolIndex, ordinal))).toEqual({ role: "agent", poolIndex, ordinal });
        },
      ),
    );
    fc.assert(
      fc.property(fc.integer({ min: 0, max: CLUSTER_LIMITS.maxServers - 1 }), (ordinal) => {
        expect(placeOfSlot(slotOf(undefined, ordinal))).toEqual({ role: "server", ordinal });
      }),
    );
  });

  it("gives every planned slot its own number, whose pool and role the number alone gives back", () => {
    const counts = fc.record({
      servers: fc.constantFrom(1, 3, 5, 7),
      pools: fc.array(ordinalOfPool, { maxLength: CLUSTER_LIMITS.maxPools }),
    });
    fc.assert(
      fc.property(counts, ({ servers, pools }) => {
        const s = {
          servers: { count: servers, instanceType: "t3.medium" },
          pools: pools.map((count, i) => ({ ...spec.pools[0], name: `pool-${i}`, count })),
        } as Parameters<typeof plannedSlots>[0];
        const slots = plannedSlots(s);
        expect(slots).toHaveLength(servers + pools.reduce((a, b) => a + b, 0));
        expect(new Set(slots.map((x) => x.slot)).size).toBe(slots.length);
        // Plain comparisons per slot, one expect per case: thousands of slots a case, and an
        // expect each made this property take seconds on a busy machine.
        const wrong = slots.filter((x) => {
          const place = placeOfSlot(x.slot);
          return (
            poolOfSlot(s, x.slot) !== x.pool ||
            roleOfSlot(x.slot) !== x.role ||
            place.ordinal !== x.ordinal ||
            slotOf(place.role === "server" ? undefined : place.poolIndex, place.ordinal) !== x.slot
          );
        });
        expect(wrong).toEqual([]);
      }),
      { numRuns: 50 },
    );
  });

  it("names the servers' pool for a server slot and no pool for an index the spec lacks", () => {
    expect(poolOfSlot(spec, 0)).toBe(SERVER_POOL);
    expect(poolOfSlot(spec, slotOf(0, 1))).toBe("workers");
    expect(poolOfSlot(spec, slotOf(spec.pools.length, 0))).toBeUndefined();
  });
});
