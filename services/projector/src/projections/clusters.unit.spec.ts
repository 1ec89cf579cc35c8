import { describe, expect, it } from "vitest";
import {
  anEnvelope,
  aSpec,
  aTraceparent,
  cluster,
  deletionRequested,
  rejected,
  requested,
  rollbackRequested,
  scaleRequested,
} from "../testing/fixtures.ts";
import { initialConditions } from "./cluster-conditions.ts";
import { lifecycleProgress } from "./cluster-progress.ts";
import { applyClusterEvent, type ClusterRow, foldCluster } from "./clusters.ts";

const c1 = cluster("c1");

/** Given these events (folded), when this one arrives, then the row is… */
function given(...events: { type: string; data: unknown }[]): ClusterRow | undefined {
  return foldCluster(events.map((e, i) => ({ event: anEnvelope(c1, i + 1, e), sequence: 10 + i })));
}

describe("applyClusterEvent", () => {
  it("follows the installer's verdicts: Configuring → Ready → Degraded → Recovering → Ready", () => {
    const states = [
      { type: "cluster.instances-ready", data: { count: 1 } },
      { type: "cluster.ready", data: { nodes: 1, k3sVersion: "v1.31.4+k3s1" } },
      { type: "cluster.degraded", data: { reason: "node-ready on i-1: NotReady" } },
      { type: "cluster.recovering", data: { reason: "restart-k3s on i-1" } },
      // A replacement's instances ready again: still Recovering until the installer says Ready.
      { type: "cluster.instances-ready", data: { count: 1 } },
      { type: "cluster.ready", data: { nodes: 1, k3sVersion: "v1.31.4+k3s1" } },
    ].map((_, i, all) => given(requested("c1", aSpec("c1")), ...all.slice(0, i + 1))?.state);
    expect(states).toEqual(["Configuring", "Ready", "Degraded", "Recovering", "Recovering", "Ready"]);
  });

  it("requested → Pending with the spec, name and region", () => {
    const spec = aSpec("c1", { region: "us-east-2" });
    const tp = aTraceparent();
    const row = applyClusterEvent(
      undefined,
      anEnvelope(c1, 1, requested("c1", spec), { traceparent: tp }),
      7,
    );
    expect(row).toEqual({
      id: "c1",
      name: "c1",
      region: "us-east-2",
      state: "Pending",
      spec,
      version: 1,
      traceId: tp.split("-")[1],
      createdAt: "2026-01-01T00:00:01.000Z",
      updatedAt: "2026-01-01T00:00:01.000Z",
      lastEventType: "cluster.requested",
      lastSequence: 7,
      progress: { operation: "pending", nodes: {} },
      conditions: initialConditions("2026-01-01T00:00:01.000Z"),
      health: "Progressing",
      failure: null,
    });
  });

  it("keeps progress: where each slot is, and Configuring is an operation of its own (K3s to install)", () => {
    const launch = (slot: number) => ({
      type: "cluster.instance-launch-requested",
      data: {
        slot,
        pool: "workers",
        ordinal: slot,
        role: "agent",
        attempt: 1,
        placement: { instanceType: "t3.large", capacityType: "spot" },
      },
    });
    const row = given(
      requested("c1", aSpec("c1")),
      { type: "cluster.provisioning-started", data: { slots: [] } },
      launch(1000),
      launch(1001),
      { type: "cluster.instance-launched", data: { slot: 1000, attempt: 1, instanceId: "i-1" } },
      { type: "cluster.instance-running", data: { slot: 1000, instanceId: "i-1" } },
    );
    expect(row?.progress).toEqual({
      operation: "provisioning",
      nodes: { 1000: "running", 1001: "launching" },
    });
    // aSpec wants a server and two workers: three steps a node, one instance running.
    expect(row && lifecycleProgress(row, undefined)).toMatchObject({
      operation: "provisioning",
      done: 1,
      total: 9,
      percent: 11,
      step: "1 of 9 steps: 1 of 3 instances running",
    });
    const ready = given(
      requested("c1", aSpec("c1")),
      { type: "cluster.provisioning-started", data: { slots: [] } },
      launch(1000),
      { type: "cluster.instance-launched", data: { slot: 1000, attempt: 1, instanceId: "i-1" } },
      { type: "cluster.instance-running", data: { slot: 1000, instanceId: "i-1" } },
      { type: "cluster.instances-ready", data: { count: 1 } },
    );
    // Every instance runs, nothing of K3s yet: Configuring, not 100 %.
    expect(ready?.state).toBe("Configuring");
    expect(ready && lifecycleProgress(ready, undefined)).toMatchObject({
      operation: "configuring",
      percent: 11,
    });
  });

  it("scale-requested → Scaling, the pool's count becomes `to`, other pools untouched", () => {
    const spec = aSpec("c1", {
      pools: [
        {
          name: "workers",
          capacityType: "spot",
          instanceTypes: ["t3.large"],
          count: 2,
          labels: {},
          taints: [],
          fallbackToOnDemand: false,
        },
        {
          name: "gpu",
          capacityType: "on-demand",
          instanceTypes: ["g5.xlarge"],
          count: 1,
          labels: {},
          taints: [],
          fallbackToOnDemand: false,
        },
      ],
    });
    const before = given(requested("c1", spec))!;
    const after = applyClusterEvent(before, anEnvelope(c1, 2, scaleRequested("workers", 2, 5)), 11);
    expect(after.state).toBe("Scaling");
    expect(after.spec.pools.map((p) => [p.name, p.count])).toEqual([
      ["workers", 5],
      ["gpu", 1],
    ]);
    expect(after.version).toBe(2);
    expect(after.lastSequence).toBe(11);
    expect(after.createdAt).toBe(before.createdAt);
    expect(before.spec.pools[0]?.count).toBe(2); // the given row is not mutated
  });

  it("rejected → state and spec unchanged, version + 1", () => {
    const before = given(requested("c1"), scaleRequested("workers", 2, 3))!;
    const after = applyClusterEvent(
      before,
      anEnvelope(c1, 3, rejected("cmd-9", "cluster.scale", "conflict", "already scaling")),
      12,
    );
    expect(after.state).toBe("Scaling");
    expect(after.spec).toEqual(before.spec);
    expect(after.version).toBe(before.version + 1);
    expect(after.lastEventType).toBe("cluster.rejected");
  });

  it("a rejection keeps the trace of what the cluster did, not the refused command's (found by test/fuzz)", () => {
    const lifecycle = aTraceparent();
    const before = applyClusterEvent(
      undefined,
      anEnvelope(c1, 1, requested("c1"), { traceparent: lifecycle }),
      10,
    )!;
    const refused = aTraceparent();
    const after = applyClusterEvent(
      before,
      anEnvelope(c1, 2, rejected("cmd-9", "cluster.rollback", "invalid", "cannot roll back to 99"), {
        traceparent: refused,
      }),
      11,
    );
    expect(after.traceId).toBe(lifecycle.split("-")[1]);
    expect(after.version).toBe(2);
    // Anything that did something moves it, as before.
    const scale = aTraceparent();
    expect(
      applyClusterEvent(after, anEnvelope(c1, 3, scaleRequested("workers", 2, 3), { traceparent: scale }), 12)
        .traceId,
    ).toBe(scale.split("-")[1]);
  });

  it("follows the lifecycle: Provisioning → Configuring → Deleting → Deleted, and Failed", () => {
    const started = { type: "cluster.provisioning-started", data: { slots: [] } };
    const ready = { type: "cluster.instances-ready", data: { count: 3 } };
    expect(given(requested("c1", aSpec("c1")), started)?.state).toBe("Provisioning");
    expect(given(requested("c1", aSpec("c1")), started, ready)?.state).toBe("Configuring");
    expect(given(requested("c1", aSpec("c1")), started, deletionRequested(), ready)?.state).toBe("Deleting");
    expect(
      given(requested("c1", aSpec("c1")), deletionRequested(), {
        type: "cluster.deleted",
        data: { terminated: [] },
      })?.state,
    ).toBe("Deleted");
    expect(
      given(requested("c1", aSpec("c1")), started, { type: "cluster.failed", data: { reason: "r" } })?.state,
    ).toBe("Failed");
  });

  it("deletion-requested → Deleting", () => {
    const after = applyClusterEvent(given(requested("c1"))!, anEnvelope(c1, 2, deletionRequested()), 11);
    expect(after.state).toBe("Deleting");
    expect(after.version).toBe(2);
  });

  it("rollback-requested → RollingBack with the old spec", () => {
    const old = aSpec("c1");
    const before = given(requested("c1", old), scaleRequested("workers", 2, 9))!;
    const after = applyClusterEvent(before, anEnvelope(c1, 3, rollbackRequested(1, old)), 12);
    expect(after.state).toBe("RollingBack");
    expect(after.spec).toEqual(old);
  });

  it("keeps the previous trace when an event carries none", () => {
    const tp = aTraceparent();
    const before = applyClusterEvent(undefined, anEnvelope(c1, 1, requested("c1"), { traceparent: tp }), 1)!;
    const after = applyClusterEvent(before, anEnvelope(c1, 2, deletionRequested()), 2);
    expect(after.traceId).toBe(tp.split("-")[1]);
  });

  it("an event at or before the row's version changes nothing (redelivery)", () => {
    const before = given(requested("c1"), scaleRequested("workers", 2, 4))!;
    expect(applyClusterEvent(before, anEnvelope(c1, 2, scaleRequested("workers", 2, 4)), 99)).toBe(before);
  });

  it("events of a cluster that was never requested make no row", () => {
    const e = anEnvelope(c1, 1, rejected("cmd-1", "cluster.scale", "not-found", "no cluster c1"));
    expect(applyClusterEvent(undefined, e, 1)).toBeUndefined();
    // …and the version of a later requested still counts that rejection.
    expect(applyClusterEvent(undefined, anEnvelope(c1, 2, requested("c1")), 2)?.version).toBe(2);
  });

  it("refuses events of another aggregate", () => {
    const e = anEnvelope({ type: "session", id: "s1" }, 1, { type: "session.rejected", data: {} });
    expect(() => applyClusterEvent(undefined, e, 1)).toThrow(/session/);
  });
});
