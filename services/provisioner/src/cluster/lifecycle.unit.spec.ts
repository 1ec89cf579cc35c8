import {
  CLUSTER_REMEDIATIONS,
  type ClusterCommand,
  type ClusterEvent,
  clusterSpec,
  type Decision,
  type EventEnvelope,
  exampleClusterCreate,
  isRejection,
} from "@cairn/events";
import { aCommand, anEvent, deciderSpec } from "@cairn/events/testing";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { type ClusterState, clusterDecider, plannedSlots } from "./decider.ts";
import { validationProblem } from "./reactor.ts";

const isRejectionFree = <E>(d: Decision<E>): d is readonly E[] => !isRejection(d);

const ref = { type: "cluster" as const, id: "demo-1" };
const spec = clusterSpec.parse(exampleClusterCreate("demo-1").data);
const cluster = deciderSpec(clusterDecider, ref);
const requested: ClusterEvent = { type: "cluster.requested", data: { spec } };
const slots = plannedSlots(spec);
const server = { instanceType: "t3.medium", availabilityZone: undefined, capacityType: "on-demand" as const };
const spotLarge = { instanceType: "t3.large", availabilityZone: undefined, capacityType: "spot" as const };
const spotA = { instanceType: "t3a.large", availabilityZone: undefined, capacityType: "spot" as const };
const launchReq = (
  slot: number,
  pool: string,
  ordinal: number,
  role: "server" | "agent",
  attempt: number,
  placement: object,
  batch?: { firstSlot: number; count: number },
) =>
  ({
    type: "cluster.instance-launch-requested",
    data: { slot, pool, ordinal, role, attempt, placement, ...(batch ? { batch } : {}) },
  }) as ClusterEvent;
/** The two workers share one RunInstances (consecutive slots, one pool, placement and attempt). */
const workersBatch = { firstSlot: 1000, count: 2 };
const started: ClusterEvent[] = [
  { type: "cluster.provisioning-started", data: { slots } },
  launchReq(0, "servers", 0, "server", 1, server),
  launchReq(1000, "workers", 0, "agent", 1, spotLarge, workersBatch),
  launchReq(1001, "workers", 1, "agent", 1, spotLarge, workersBatch),
];
const launched = (slot: number, attempt = 1): ClusterEvent => ({
  type: "cluster.instance-launched",
  data: { slot, attempt, instanceId: `i-${slot}` },
});
const running = (slot: number): ClusterEvent => ({
  type: "cluster.instance-running",
  data: { slot, instanceId: `i-${slot}` },
});
const provisioned = [
  requested,
  ...started,
  launched(0),
  launched(1000),
  launched(1001),
  running(0),
  running(1000),
  running(1001),
];
const cmd = (type: string, data: object) =>
  ({ type, data: { clusterId: "demo-1", ...data } }) as ClusterCommand;

describe("provisioning", () => {
  it("plans one slot per server and per pool node, and requests each launch at its first placement", () => {
    expect(slots.map((s) => s.slot)).toEqual([0, 1000, 1001]);
    cluster.given([requested]).when(cmd("cluster.start-provisioning", {})).then(started);
  });
  it("starting twice changes nothing", () => {
    cluster
      .given([requested, ...started])
      .when(cmd("cluster.start-provisioning", {}))
      .then([]);
  });
  it("records a launch of the current attempt, and ignores a stale one", () => {
    cluster
      .given([requested, ...started])
      .when(cmd("cluster.record-launch", { slot: 1000, attempt: 1, instanceId: "i-1000" }))
      .then([launched(1000)]);
    cluster
      .given([requested, ...started])
      .when(cmd("cluster.record-launch", { slot: 1000, attempt: 2, instanceId: "i-x" }))
      .then([]);
  });
  it("records many slots' launches in one commit: each once, stale ones left out", () => {
    cluster
      .given([requested, ...started, launched(0)])
      .when(
        cmd("cluster.record-launches", {
          launches: [
            { slot: 0, attempt: 1, instanceId: "i-0" },
            { slot: 1000, attempt: 1, instanceId: "i-1000" },
            { slot: 1000, attempt: 1, instanceId: "i-1000" },
            { slot: 1001, attempt: 2, instanceId: "i-x" },
            { slot: 1002, attempt: 1, instanceId: "i-y" },
          ],
        }),
      )
      .then([launched(1000)]);
  });
  it("records many slots running in one commit, and the instances ready after the last", () => {
    const agent = (slot: number) => ({
      type: "cluster.instance-running" as const,
      data: { slot, instanceId: `i-${slot}`, role: "agent", pool: "workers", capacityType: "spot" },
    });
    const before = [requested, ...started, launched(0), launched(1000), launched(1001), running(0)];
    cluster
      .given(before)
      .when(
        cmd("cluster.record-running-instances", {
          instances: [
            { slot: 0, instanceId: "i-0" },
            { slot: 1000, instanceId: "i-1000" },
            { slot: 1001, instanceId: "i-1001" },
            { slot: 1001, instanceId: "i-1001" },
          ],
        }),
      )
      .then([
        agent(1000),
        agent(1001),
        { type: "cluster.instances-ready", data: { count: 3 } },
      ] as ClusterEvent[]);
    cluster
      .given(before)
      .when(cmd("cluster.record-running-instances", { instances: [{ slot: 1000, instanceId: "i-1000" }] }))
      .then([agent(1000)] as ClusterEvent[]);
  });
  it("the last slot running makes the instances ready (Configuring)", () => {
    const before = [
      requested,
      ...started,
      launched(0),
      launched(1000),
      launched(1001),
      running(0),
      running(1000),
    ];
    cluster
      .given(before)
      .when(cmd("cluster.record-running", { slot: 1001, instanceId: "i-1001", privateIp: "10.0.1.7" }))
      .then([
        // What the installer joins the node as: its role, pool and capacity type.
        {
          type: "cluster.instance-running",
          data: {
            slot: 1001,
            instanceId: "i-1001",
            role: "agent",
            pool: "workers",
            capacityType: "spot",
            privateIp: "10.0.1.7",
          },
        },
        { type: "cluster.instances-ready", data: { count: 3 } },
      ]);
    expect(
      cluster.given([...before, running(1001), { type: "cluster.instances-ready", data: { count: 3 } }]).state
        .status,
    ).toBe("Configuring");
  });
  it("a capacity failure moves the slot to the next instance type", () => {
    cluster
      .given([requested, ...started])
      .when(
        cmd("cluster.record-launch-failure", {
          slot: 1000,
          attempt: 1,
          code: "InsufficientInstanceCapacity",
          reason: "none",
          capacity: true,
        }),
      )
      .then([
        {
          type: "cluster.instance-launch-failed",
          data: {
            slot: 1000,
            attempt: 1,
            placement: spotLarge,
            code: "InsufficientInstanceCapacity",
            reason: "none",
            capacity: true,
          },
        },
        launchReq(1000, "workers", 0, "agent", 2, spotA),
      ]);
  });
  it("when every placement ran out, the cluster fails with a remediation", () => {
    const firstFailure: ClusterEvent = {
      type: "cluster.instance-launch-failed",
      data: {
        slot: 1000,
        attempt: 1,
        placement: spotLarge,
        code: "InsufficientInstanceCapacity",
        reason: "none",
        capacity: true,
      },
    };
    const { decision } = cluster
      .given([requested, ...started, firstFailure, launchReq(1000, "workers", 0, "agent", 2, spotA)])
      .when(
        cmd("cluster.record-launch-failure", {
          slot: 1000,
          attempt: 2,
          code: "InsufficientInstanceCapacity",
          reason: "none",
          capacity: true,
        }),
      );
    expect(isRejectionFree(decision) && decision.map((e) => e.type)).toEqual([
      "cluster.instance-launch-failed",
      "cluster.failed",
    ]);
    expect(isRejectionFree(decision) && JSON.stringify(decision[1])).toContain("fallbackToOnDemand");
  });
  it("an instance lost while booting is relaunched at the same placement", () => {
    const { decision } = cluster.given([requested, ...started, launched(1000)]).when(
      cmd("cluster.record-launch-failure", {
        slot: 1000,
        attempt: 1,
        code: "instance-lost",
        reason: "terminated while pending",
        capacity: false,
      }),
    );
    expect(isRejectionFree(decision) && decision[1]).toEqual(
      launchReq(1000, "workers", 0, "agent", 2, spotLarge),
    );
  });
  it("a permanent failure fails the cluster with the hint that names the fix", () => {
    const { decision } = cluster.given([requested, ...started]).when(
      cmd("cluster.record-launch-failure", {
        slot: 0,
        attempt: 1,
        code: "InvalidAMIID.NotFound",
        reason: "no such AMI",
        remediation: "build or copy the Cairn AMI",
        capacity: false,
      }),
    );
    expect(isRejectionFree(decision) && decision[1]).toEqual({
      type: "cluster.failed",
      data: {
        reason: "slot 0 could not be launched: no such AMI",
        remediation: "build or copy the Cairn AMI",
        code: "launch-failed",
      },
    });
  });
});

describe("scaling a provisioned cluster", () => {
  it("up: launches the new slots", () => {
    cluster
      .given(provisioned)
      .when(cmd("cluster.scale", { pool: "workers", count: 3 }))
      .then([
        { type: "cluster.scale-requested", data: { pool: "workers", from: 2, to: 3 } },
        launchReq(1002, "workers", 2, "agent", 1, spotLarge),
      ]);
  });
  it("down: terminates the surplus slots, highest first, and is Configuring again once they are gone", () => {
    cluster
      .given(provisioned)
      .when(cmd("cluster.scale", { pool: "workers", count: 1 }))
      .then([
        { type: "cluster.scale-requested", data: { pool: "workers", from: 2, to: 1 } },
        { type: "cluster.instance-termination-requested", data: { slot: 1001, instanceId: "i-1001" } },
      ]);
    const down: ClusterEvent[] = [
      { type: "cluster.scale-requested", data: { pool: "workers", from: 2, to: 1 } },
      { type: "cluster.instance-termination-requested", data: { slot: 1001, instanceId: "i-1001" } },
    ];
    cluster
      .given([...provisioned, ...down])
      .when(cmd("cluster.record-terminated", { slots: [1001] }))
      .then([
        { type: "cluster.instance-terminated", data: { slot: 1001 } },
        { type: "cluster.instances-ready", data: { count: 2 } },
      ]);
  });
  it("rollback to the first version terminates what a scale-up added", () => {
    const up: ClusterEvent[] = [
      { type: "cluster.scale-requested", data: { pool: "workers", from: 2, to: 3 } },
      launchReq(1002, "workers", 2, "agent", 1, spotLarge),
    ];
    const { decision } = cluster
      .given([...provisioned, ...up])
      .when(cmd("cluster.rollback", { toVersion: 1 }));
    expect(isRejectionFree(decision) && decision.map((e) => e.type)).toEqual([
      "cluster.rollback-requested",
      "cluster.instance-termination-requested",
    ]);
  });
});

describe("deletion", () => {
  it("finishes only while Deleting", () => {
    cluster
      .given(provisioned)
      .when(cmd("cluster.finish-deletion", { terminated: [] }))
      .then([]);
    cluster
      .given([...provisioned, { type: "cluster.deletion-requested", data: {} }])
      .when(cmd("cluster.finish-deletion", { terminated: ["i-0"] }))
      .then([{ type: "cluster.deleted", data: { terminated: ["i-0"] } }]);
  });
});

describe("invariants (property)", () => {
  // Any interleaving of user commands and reactor records.
  const anyCommand = fc.oneof(
    fc.integer({ min: 0, max: 6 }).map((count) => cmd("cluster.scale", { pool: "workers", count })),
    fc.constant(cmd("cluster.start-provisioning", {})),
    fc.constant(cmd("cluster.delete", {})),
    fc.constant(cmd("cluster.rollback", { toVersion: 1 })),
    fc
      .record({
        slot: fc.constantFrom(0, 1000, 1001, 1002, 1003, 1004, 1005),
        attempt: fc.integer({ min: 1, max: 3 }),
      })
      .map((d) => cmd("cluster.record-launch", { ...d, instanceId: `i-${d.slot}` })),
    fc
      .constantFrom(0, 1000, 1001, 1002, 1003)
      .map((slot) => cmd("cluster.record-running", { slot, instanceId: `i-${slot}` })),
    fc
      .array(
        fc.record({
          slot: fc.constantFrom(0, 1000, 1001, 1002, 1003),
          attempt: fc.integer({ min: 1, max: 3 }),
        }),
        { minLength: 1, maxLength: 4 },
      )
      .map((ls) =>
        cmd("cluster.record-launches", { launches: ls.map((l) => ({ ...l, instanceId: `i-${l.slot}` })) }),
      ),
    fc.array(fc.constantFrom(0, 1000, 1001, 1002, 1003), { minLength: 1, maxLength: 4 }).map((ss) =>
      cmd("cluster.record-running-instances", {
        instances: ss.map((slot) => ({ slot, instanceId: `i-${slot}` })),
      }),
    ),
    fc
      .record({
        slot: fc.constantFrom(0, 1000, 1001, 1002),
        attempt: fc.integer({ min: 1, max: 3 }),
        capacity: fc.boolean(),
      })
      .map((d) =>
        cmd("cluster.record-launch-failure", {
          ...d,
          code: d.capacity ? "InsufficientInstanceCapacity" : "instance-lost",
          reason: "r",
        }),
      ),
    fc
      .array(fc.constantFrom(1000, 1001, 1002, 1003, 1004, 1005), { minLength: 1, maxLength: 3 })
      .map((s) => cmd("cluster.record-terminated", { slots: s })),
  );

  it("never more live slots than the spec asks for; a deleted cluster never launches", () => {
    fc.assert(
      fc.property(fc.array(anyCommand, { maxLength: 40 }), (commands) => {
        let state: ClusterState = clusterDecider.evolve(
          clusterDecider.initialState(),
          anEvent(requested, 1, ref),
        );
        let version = 1;
        for (const c of commands) {
          const decision = clusterDecider.decide(aCommand(c), state, {
            now: new Date(0),
            version,
            observed: { liveSessions: [] },
          });
          if (!isRejectionFree(decision)) continue;
          for (const e of decision) {
            if (state.status === "Deleting" || state.status === "Deleted") {
              expect(e.type).not.toBe("cluster.instance-launch-requested");
            }
            state = clusterDecider.evolve(state, anEvent(e, ++version, ref));
          }
          if (state.status === "Absent") continue;
          const live = Object.values(state.slots).filter((s) => s.status !== "terminating");
          const wanted = plannedSlots(state.spec).length;
          expect(live.length).toBeLessThanOrEqual(wanted);
        }
      }),
      { numRuns: 300 },
    );
  });

  it("the state is plain JSON (snapshot: { version }): after a round trip through JSON every decision and fold is the same", () => {
    const ctx = (version: number) => ({ now: new Date(0), version, observed: { liveSessions: [] } });
    fc.assert(
      fc.property(fc.array(anyCommand, { maxLength: 40 }), anyCommand, (commands, next) => {
        let state: ClusterState = clusterDecider.evolve(
          clusterDecider.initialState(),
          anEvent(requested, 1, ref),
        );
        let version = 1;
        for (const c of commands) {
          const decision = clusterDecider.decide(aCommand(c), state, ctx(version));
          if (!isRejectionFree(decision)) continue;
          for (const e of decision) state = clusterDecider.evolve(state, anEvent(e, ++version, ref));
        }
        const restored = JSON.parse(JSON.stringify(state)) as ClusterState;
        expect(restored).toEqual(state);
        const live = clusterDecider.decide(aCommand(next), state, ctx(version));
        expect(clusterDecider.decide(aCommand(next), restored, ctx(version))).toEqual(live);
        if (isRejectionFree(live)) {
          // The events as read back from the log (fresh objects each time, as after a load).
          const fold = (s: ClusterState) =>
            (JSON.parse(JSON.stringify(live)) as typeof live).reduce(
              (acc, e, i) => clusterDecider.evolve(acc, anEvent(e, version + i + 1, ref)),
              s,
            );
          expect(JSON.parse(JSON.stringify(fold(restored)))).toEqual(JSON.parse(JSON.stringify(fold(state))));
        }
      }),
      { numRuns: 300 },
    );
  });

  it("evolveAll folds a commit (and a whole history) exactly as evolve one event at a time, and never changes the state it starts from", () => {
    const ctx = (version: number) => ({ now: new Date(0), version, observed: { liveSessions: [] } });
    const deepFreeze = <T>(x: T): T => {
      if (x && typeof x === "object" && !Object.isFrozen(x)) {
        Object.freeze(x);
        for (const v of Object.values(x)) deepFreeze(v);
      }
      return x;
    };
    const evolveAll = clusterDecider.evolveAll!;
    fc.assert(
      fc.property(fc.array(anyCommand, { maxLength: 40 }), (commands) => {
        const first = anEvent(requested, 1, ref);
        let state: ClusterState = clusterDecider.evolve(clusterDecider.initialState(), first);
        const history: EventEnvelope<ClusterEvent>[] = [first];
        let version = 1;
        for (const c of commands) {
          const decision = clusterDecider.decide(aCommand(c), state, ctx(version));
          if (!isRejectionFree(decision) || decision.length === 0) continue;
          const commit = decision.map((e) => anEvent(e, ++version, ref));
          history.push(...commit);
          // A frozen state: writing into any of its maps would throw.
          const before = JSON.stringify(deepFreeze(state));
          const one = commit.reduce((s, e) => clusterDecider.evolve(s, e), state);
          const all = evolveAll(state, commit);
          expect(all).toEqual(one);
          expect(JSON.stringify(state)).toBe(before);
          state = all;
        }
        expect(evolveAll(clusterDecider.initialState(), history)).toEqual(state);
      }),
      { numRuns: 300 },
    );
  });
});

describe("slot numbers that come back", () => {
  it("continue from their highest attempt, so no ClientToken is used twice", () => {
    const down: ClusterEvent[] = [
      { type: "cluster.scale-requested", data: { pool: "workers", from: 2, to: 1 } },
      { type: "cluster.instance-termination-requested", data: { slot: 1001, instanceId: "i-1001" } },
      { type: "cluster.instance-terminated", data: { slot: 1001 } },
    ];
    cluster
      .given([...provisioned, ...down])
      .when(cmd("cluster.scale", { pool: "workers", count: 2 }))
      .then([
        { type: "cluster.scale-requested", data: { pool: "workers", from: 1, to: 2 } },
        launchReq(1001, "workers", 1, "agent", 2, spotLarge),
      ]);
  });
});

describe("a scale that cannot complete", () => {
  it("is undone: back to the last good spec, terminating what it added", () => {
    const up: ClusterEvent[] = [
      { type: "cluster.scale-requested", data: { pool: "workers", from: 2, to: 3 } },
      launchReq(1002, "workers", 2, "agent", 1, spotLarge),
    ];
    const { decision } = cluster.given([...provisioned, ...up]).when(
      cmd("cluster.record-launch-failure", {
        slot: 1002,
        attempt: 1,
        code: "InvalidParameterValue",
        reason: "bad",
        capacity: false,
      }),
    );
    expect(isRejectionFree(decision) && decision.map((e) => e.type)).toEqual([
      "cluster.instance-launch-failed",
      "cluster.scale-failed",
      "cluster.instance-termination-requested",
    ]);
    const undone = isRejectionFree(decision) ? decision[1] : undefined;
    expect(undone?.type === "cluster.scale-failed" && undone.data.spec.pools[0]?.count).toBe(2);
  });
});

describe("retry", () => {
  const failedCluster = [
    requested,
    ...started,
    {
      type: "cluster.instance-launch-failed",
      data: {
        slot: 0,
        attempt: 1,
        placement: server,
        code: "InvalidAMIID.NotFound",
        reason: "no AMI",
        capacity: false,
      },
    } as ClusterEvent,
    { type: "cluster.failed", data: { reason: "no AMI" } } as ClusterEvent,
  ];
  it("relaunches the slots that do not run, as new attempts from their first placement", () => {
    cluster
      .given(failedCluster)
      .when(cmd("cluster.retry", {}))
      .then([
        { type: "cluster.retry-requested", data: {} },
        launchReq(0, "servers", 0, "server", 2, server),
        launchReq(1000, "workers", 0, "agent", 2, spotLarge, workersBatch),
        launchReq(1001, "workers", 1, "agent", 2, spotLarge, workersBatch),
      ]);
  });
  it("is refused unless the cluster is Failed", () => {
    cluster
      .given(provisioned)
      .when(cmd("cluster.retry", {}))
      .thenRejected("conflict", "only a Failed cluster");
  });
});

describe("update-pool", () => {
  const taints = [{ key: "gpu", value: "true", effect: "NoSchedule" as const }];
  it("records the pool's new labels and taints; the same again changes nothing", () => {
    cluster
      .given(provisioned)
      .when(cmd("cluster.update-pool", { pool: "workers", labels: { tier: "batch" }, taints }))
      .then([{ type: "cluster.pool-updated", data: { pool: "workers", labels: { tier: "batch" }, taints } }]);
    const updated: ClusterEvent = {
      type: "cluster.pool-updated",
      data: { pool: "workers", labels: { tier: "batch" }, taints },
    };
    cluster
      .given([...provisioned, updated])
      .when(cmd("cluster.update-pool", { pool: "workers", taints }))
      .then([]);
  });
  it("refuses an unknown pool", () => {
    cluster
      .given(provisioned)
      .when(cmd("cluster.update-pool", { pool: "gpu", labels: {} }))
      .thenRejected("invalid", "no pool gpu");
  });
});

describe("a Failed cluster", () => {
  it("records a late launch failure but tries no further placement", () => {
    const failed: ClusterEvent[] = [requested, ...started, { type: "cluster.failed", data: { reason: "r" } }];
    const { decision } = cluster.given(failed).when(
      cmd("cluster.record-launch-failure", {
        slot: 1001,
        attempt: 1,
        code: "InsufficientInstanceCapacity",
        reason: "none",
        capacity: true,
      }),
    );
    expect(isRejectionFree(decision) && decision.map((e) => e.type)).toEqual([
      "cluster.instance-launch-failed",
    ]);
  });
});

describe("the installer's reports", () => {
  const configuring = [
    ...provisioned,
    { type: "cluster.instances-ready", data: { count: 3 } } as ClusterEvent,
  ];
  const ready: ClusterEvent = { type: "cluster.ready", data: { nodes: 3, k3sVersion: spec.k3sVersion } };
  it("K3s installed on a Configuring cluster makes it Ready", () => {
    cluster
      .given(configuring)
      .when(cmd("cluster.record-installed", { nodes: 3, k3sVersion: spec.k3sVersion }))
      .then([ready]);
  });
  it("an install report while more instances launch (Scaling) waits for the next one", () => {
    cluster
      .given([
        ...configuring,
        ready,
        { type: "cluster.scale-requested", data: { pool: "workers", from: 2, to: 3 } },
      ])
      .when(cmd("cluster.record-installed", { nodes: 3, k3sVersion: spec.k3sVersion }))
      .then([]);
  });
  it("an install that cannot go on fails the cluster, with the installer's hint", () => {
    cluster
      .given(configuring)
      .when(cmd("cluster.record-install-failure", { reason: "init failed", remediation: "read the output" }))
      .then([
        {
          type: "cluster.failed",
          data: {
            reason: "K3s could not be installed: init failed",
            remediation: "read the output",
            code: "install-failed",
          },
        },
      ]);
  });
  it("health: Ready → Degraded → Recovering → Ready", () => {
    const degraded: ClusterEvent = {
      type: "cluster.degraded",
      // No hint from the installer: the catalogue's, so a Degraded cluster always says what to do.
      data: { reason: "node-ready on i-1000: NotReady", remediation: CLUSTER_REMEDIATIONS.degraded },
    };
    const recovering: ClusterEvent = {
      type: "cluster.recovering",
      data: { reason: "restart-k3s on i-1000", remediation: CLUSTER_REMEDIATIONS.recovering },
    };
    cluster
      .given([...configuring, ready])
      .when(cmd("cluster.record-health", { health: "degraded", reason: "node-ready on i-1000: NotReady" }))
      .then([degraded]);
    cluster
      .given([...configuring, ready, degraded])
      .when(cmd("cluster.record-health", { health: "recovering", reason: "restart-k3s on i-1000" }))
      .then([recovering]);
    cluster
      .given([...configuring, ready, degraded, recovering])
      .when(cmd("cluster.record-health", { health: "healthy", reason: "every check passes" }))
      .then([ready]);
    // A cluster that is not Ready is not degraded by a check (it is being built or changed).
    cluster
      .given(configuring)
      .when(cmd("cluster.record-health", { health: "degraded", reason: "x" }))
      .then([]);
  });
  it("a node that never became Ready is replaced: a new attempt of its slot; stale reports change nothing", () => {
    const d = cluster
      .given([...configuring, ready])
      .when(cmd("cluster.replace-node", { slot: 1000, instanceId: "i-1000", reason: "not Ready in 10 min" }))
      .decision as ClusterEvent[];
    expect(d.map((e) => e.type)).toEqual([
      "cluster.node-replacement-requested",
      "cluster.instance-launch-requested",
    ]);
    expect(d[1]?.data).toMatchObject({ slot: 1000, attempt: 2 });
    expect(cluster.given([...configuring, ready, ...d]).state.status).toBe("Recovering");
    cluster
      .given([...configuring, ready])
      .when(cmd("cluster.replace-node", { slot: 1000, instanceId: "i-old", reason: "x" }))
      .then([]);
  });
});

describe("validation", () => {
  const validating: ClusterEvent = { type: "cluster.validation-started", data: {} };
  it("Pending → Validating; asking twice changes nothing", () => {
    cluster.given([requested]).when(cmd("cluster.start-validation", {})).then([validating]);
    cluster.given([requested, validating]).when(cmd("cluster.start-validation", {})).then([]);
    expect(cluster.given([requested, validating]).state.status).toBe("Validating");
  });
  it("a valid spec is provisioned at once", () => {
    cluster
      .given([requested, validating])
      .when(
        cmd("cluster.record-validation", {
          ok: true,
          imageId: "ami-0ca1a00000000c0de",
          architecture: "x86_64",
        }),
      )
      .then([
        { type: "cluster.validated", data: { imageId: "ami-0ca1a00000000c0de", architecture: "x86_64" } },
        ...started,
      ]);
  });
  it("an invalid one fails before anything is launched, with the fix", () => {
    cluster
      .given([requested, validating])
      .when(
        cmd("cluster.record-validation", {
          ok: false,
          imageId: "ami-00000000",
          reason: "the AMI ami-00000000 does not exist in eu-west-1",
          remediation: "copy it",
        }),
      )
      .then([
        {
          type: "cluster.failed",
          data: {
            reason: "the AMI ami-00000000 does not exist in eu-west-1",
            remediation: "copy it",
            code: "validation-failed",
          },
        },
      ]);
  });
  it("checks the image: there, available, and of the instance types' architecture", () => {
    const image = { imageId: "ami-1", architecture: "x86_64" as const, state: "available" };
    expect(validationProblem("eu-west-1", "ami-1", image, ["t3.large", "m5.xlarge"])).toBeUndefined();
    expect(validationProblem("eu-west-1", "ami-1", undefined, ["t3.large"])?.reason).toBe(
      "the AMI ami-1 does not exist in eu-west-1",
    );
    expect(
      validationProblem("eu-west-1", "ami-1", { ...image, state: "pending" }, ["t3.large"])?.reason,
    ).toContain("is pending");
    expect(
      validationProblem("eu-west-1", "ami-1", image, ["t3.large", "t4g.large", "c7gn.xlarge"])?.reason,
    ).toBe("the AMI ami-1 is x86_64, but t4g.large, c7gn.xlarge are arm64");
  });
});
