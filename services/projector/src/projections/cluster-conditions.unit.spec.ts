/**
 * Given a cluster's events, then its conditions, health and failure: what the API shows
 * a person (docs/projector.md, "Conditions, health and failure").
 */
import { CLUSTER_REMEDIATIONS } from "@cairn/events";
import { describe, expect, it } from "vitest";
import {
  anEnvelope,
  aSpec,
  cluster,
  deletionRequested,
  requested,
  scaleRequested,
} from "../testing/fixtures.ts";
import { CLUSTER_CONDITION_TYPES, type ClusterCondition } from "./cluster-conditions.ts";
import { type ClusterRow, foldCluster } from "./clusters.ts";

const c1 = cluster("c1");
const T = (s: number) => new Date(Date.UTC(2026, 10, 22, 8, 0, s)).toISOString();

/** The row after these events, one second apart from T(1). */
function given(...events: { type: string; data: unknown }[]): ClusterRow {
  const row = foldCluster(
    events.map((e, i) => ({ event: anEnvelope(c1, i + 1, e, { time: T(i + 1) }), sequence: 10 + i })),
  );
  if (!row) throw new Error("no row");
  return row;
}
const cond = (row: ClusterRow, type: ClusterCondition["type"]) => row.conditions.find((c) => c.type === type);

const placement = { instanceType: "t3.large", capacityType: "spot" };
const launch = (slot: number, attempt = 1) => ({
  type: "cluster.instance-launch-requested",
  data: { slot, pool: "workers", ordinal: slot % 1000, role: "agent", attempt, placement },
});
const started = { type: "cluster.provisioning-started", data: { slots: [] } };
const validated = {
  type: "cluster.validated",
  data: { imageId: "ami-0ca1a00000000c0de", architecture: "x86_64" },
};
const running = (slot: number) => [
  { type: "cluster.instance-launched", data: { slot, attempt: 1, instanceId: `i-${slot}` } },
  { type: "cluster.instance-running", data: { slot, instanceId: `i-${slot}` } },
];
const tagLimit = {
  type: "cluster.instance-launch-failed",
  data: {
    slot: 1000,
    attempt: 1,
    placement,
    code: "TagLimitExceeded",
    reason: "EC2 refused RunInstances: The maximum number of tags (50) for resource has been reached",
    remediation: "remove tags from the spec",
    capacity: false,
  },
};

describe("cluster conditions", () => {
  it("a new cluster carries every condition, Ready False, nothing failed", () => {
    const row = given(requested("c1", aSpec("c1")));
    expect(row.conditions.map((c) => c.type)).toEqual([...CLUSTER_CONDITION_TYPES]);
    expect(cond(row, "Ready")).toEqual({
      type: "Ready",
      status: "False",
      reason: "Pending",
      message: "the cluster is accepted and about to be checked",
      lastTransitionTime: T(1),
    });
    expect(row.health).toBe("Progressing");
    expect(row.failure).toBeNull();
  });

  it("a launch EC2 refuses for good: Failed, with EC2's reason and the hint, in conditions, health and failure", () => {
    const row = given(requested("c1", aSpec("c1")), validated, started, launch(1000), tagLimit, {
      type: "cluster.failed",
      data: {
        reason: `slot 1000 could not be launched: ${tagLimit.data.reason}`,
        remediation: "remove tags from the spec",
        code: "launch-failed",
      },
    });
    expect(row.state).toBe("Failed");
    expect(row.health).toBe("Failed");
    expect(row.failure).toEqual({
      reason: `slot 1000 could not be launched: ${tagLimit.data.reason}`,
      remediation: "remove tags from the spec",
      code: "launch-failed",
      since: T(6),
    });
    expect(cond(row, "Failed")).toMatchObject({
      status: "True",
      reason: "LaunchFailed",
      lastTransitionTime: T(6),
    });
    expect(cond(row, "Ready")).toMatchObject({
      status: "False",
      reason: "Failed",
      message: row.failure?.reason,
    });
    expect(cond(row, "Provisioned")).toMatchObject({ status: "False", reason: "LaunchFailed" });
    expect(cond(row, "Validated")).toMatchObject({
      status: "True",
      reason: "ImageFound",
      lastTransitionTime: T(2),
    });
  });

  it("a failure recorded before events carried a code or a hint still says what kind and what to do", () => {
    const row = given(requested("c1", aSpec("c1")), started, launch(1000), {
      type: "cluster.failed",
      data: { reason: "slot 1000 could not be launched: i-1 went terminated before it ran" },
    });
    expect(row.failure).toMatchObject({
      code: "launch-failed",
      remediation: CLUSTER_REMEDIATIONS["launch-failed"],
    });
    const validating = given(
      requested("c1", aSpec("c1")),
      { type: "cluster.validation-started", data: {} },
      { type: "cluster.failed", data: { reason: "the AMI ami-1 does not exist in eu-west-1" } },
    );
    expect(validating.failure).toMatchObject({
      code: "validation-failed",
      remediation: CLUSTER_REMEDIATIONS["validation-failed"],
    });
    expect(cond(validating, "Validated")).toMatchObject({ status: "False", reason: "ValidationFailed" });
  });

  it("a retry clears the failure; the Failed condition says so and keeps its own transition time", () => {
    const failed = {
      type: "cluster.failed",
      data: { reason: "no capacity left for slot 1000", code: "no-capacity" },
    };
    const row = given(requested("c1", aSpec("c1")), started, launch(1000), failed, {
      type: "cluster.retry-requested",
      data: {},
    });
    expect(row.state).toBe("Provisioning");
    expect(row.failure).toBeNull();
    expect(row.health).toBe("Progressing");
    expect(cond(row, "Failed")).toMatchObject({
      status: "False",
      reason: "Retrying",
      lastTransitionTime: T(5),
    });
  });

  it("Provisioned counts the instances, then holds; Installed waits for K3s; Ready only at cluster.ready", () => {
    const row = given(requested("c1", aSpec("c1")), started, launch(0), launch(1000), ...running(0));
    expect(cond(row, "Provisioned")).toMatchObject({
      status: "False",
      reason: "Provisioning",
      message: "1 of 2 instances running",
      // False since the cluster was requested: a new reason is not a transition.
      lastTransitionTime: T(1),
    });
    const configuring = given(requested("c1", aSpec("c1")), started, launch(0), ...running(0), {
      type: "cluster.instances-ready",
      data: { count: 1 },
    });
    expect(configuring.state).toBe("Configuring");
    expect(cond(configuring, "Provisioned")).toMatchObject({ status: "True", reason: "InstancesRunning" });
    expect(cond(configuring, "Installed")).toMatchObject({ status: "False", reason: "Installing" });
    expect(cond(configuring, "Ready")).toMatchObject({ status: "False", reason: "Configuring" });
    const ready = given(
      requested("c1", aSpec("c1")),
      started,
      launch(0),
      ...running(0),
      { type: "cluster.instances-ready", data: { count: 1 } },
      { type: "cluster.ready", data: { nodes: 1, k3sVersion: "v1.31.4+k3s1" } },
    );
    expect(ready.health).toBe("Healthy");
    expect(cond(ready, "Ready")).toEqual({
      type: "Ready",
      status: "True",
      reason: "Ready",
      message: "K3s v1.31.4+k3s1 on 1 node, every one Ready",
      lastTransitionTime: T(7),
    });
    expect(cond(ready, "Installed")).toMatchObject({ status: "True", reason: "K3sReady" });
    expect(cond(ready, "Degraded")).toMatchObject({ status: "False", reason: "HealthChecksPass" });
  });

  it("Degraded and Recovering carry the reason and a hint, and Ready again clears them", () => {
    const base = [
      requested("c1", aSpec("c1")),
      { type: "cluster.instances-ready", data: { count: 1 } },
      { type: "cluster.ready", data: { nodes: 1, k3sVersion: "v1.31.4+k3s1" } },
    ];
    const degraded = given(...base, {
      type: "cluster.degraded",
      data: { reason: "node-ready on i-1: NotReady" },
    });
    expect(degraded.health).toBe("Degraded");
    expect(degraded.failure).toEqual({
      reason: "node-ready on i-1: NotReady",
      remediation: CLUSTER_REMEDIATIONS.degraded,
      code: "degraded",
      since: T(4),
    });
    expect(cond(degraded, "Degraded")).toMatchObject({ status: "True", reason: "HealthCheckFailing" });
    const recovering = given(
      ...base,
      { type: "cluster.degraded", data: { reason: "node-ready on i-1: NotReady" } },
      {
        type: "cluster.recovering",
        data: { reason: "restart-k3s (attempt 1) on i-1: NotReady", remediation: "wait" },
      },
    );
    expect(recovering.health).toBe("Recovering");
    expect(recovering.failure).toMatchObject({ code: "recovering", remediation: "wait" });
    // Still degraded: the status did not change, so neither did its transition time.
    expect(cond(recovering, "Degraded")).toMatchObject({
      status: "True",
      reason: "Recovering",
      lastTransitionTime: T(4),
    });
    const healed = given(
      ...base,
      { type: "cluster.degraded", data: { reason: "x" } },
      { type: "cluster.ready", data: { nodes: 1, k3sVersion: "v1.31.4+k3s1" } },
    );
    expect(healed.failure).toBeNull();
    expect(cond(healed, "Degraded")).toMatchObject({ status: "False", lastTransitionTime: T(5) });
  });

  it("a node replaced in a Ready cluster makes it Recovering, saying which and why", () => {
    const row = given(
      requested("c1", aSpec("c1")),
      { type: "cluster.instances-ready", data: { count: 1 } },
      { type: "cluster.ready", data: { nodes: 1, k3sVersion: "v1.31.4+k3s1" } },
      {
        type: "cluster.node-replacement-requested",
        data: { slot: 1000, instanceId: "i-1", reason: "not Ready in 10 min" },
      },
    );
    expect(row.state).toBe("Recovering");
    expect(row.failure).toMatchObject({
      code: "recovering",
      reason: "replacing the instance of slot 1000 (i-1): not Ready in 10 min",
    });
  });

  it("a scale that failed says so in Provisioned with the hint; deletion in Deleting", () => {
    const spec = aSpec("c1");
    const row = given(requested("c1", spec), scaleRequested("workers", 2, 9), {
      type: "cluster.scale-failed",
      data: { reason: "no capacity left for slot 1008", spec },
    });
    expect(cond(row, "Provisioned")).toMatchObject({ status: "False", reason: "ScaleFailed" });
    expect(cond(row, "Provisioned")?.message).toContain(CLUSTER_REMEDIATIONS["scale-failed"]);
    const deleted = given(requested("c1", spec), deletionRequested(), {
      type: "cluster.deleted",
      data: { terminated: ["i-1", "i-2"] },
    });
    expect(deleted.health).toBe("Unknown");
    expect(cond(deleted, "Deleting")).toMatchObject({
      status: "False",
      reason: "Deleted",
      message: "2 instances terminated",
      lastTransitionTime: T(3),
    });
    expect(cond(deleted, "Ready")).toMatchObject({ status: "False", reason: "Deleted" });
  });

  it("a row projected before conditions existed gets them as its events come", () => {
    const legacy = { ...given(requested("c1", aSpec("c1"))), conditions: [], failure: null };
    const row = foldCluster(
      [
        {
          event: anEnvelope(c1, 2, { type: "cluster.failed", data: { reason: "r" } }, { time: T(9) }),
          sequence: 20,
        },
      ],
      legacy,
    );
    expect(row?.conditions.map((c) => c.type)).toEqual(["Ready", "Provisioned", "Failed"]);
    expect(row?.failure).toMatchObject({ reason: "r", code: "launch-failed" });
  });
});
