import type { WorkloadCommand, WorkloadEvent } from "@cairn/events";
import { deciderSpec } from "@cairn/events/testing";
import { describe, it } from "vitest";
import { workloadDecider } from "./workload.decider.ts";

const sessionId = "s-1";
const clusterId = "demo-1";
const key = { sessionId, clusterId };
const template = { image: "ghcr.io/acme/ide:1", cpu: "1", memory: "2Gi", storage: "10Gi" };
const spec = deciderSpec(workloadDecider, { type: "workload", id: sessionId });

const cmd = (type: WorkloadCommand["type"], data: object = {}) =>
  ({ type, data: { ...key, ...data } }) as WorkloadCommand;
const start = cmd("workload.start", { user: "alice", template });
const stop = cmd("workload.stop");
const del = (releaseVolume: boolean) => cmd("workload.delete", { releaseVolume });

const starting = (attempt: number): WorkloadEvent => ({
  type: "workload.starting",
  data: { ...key, user: "alice", template, attempt },
});
const stopping = (attempt: number): WorkloadEvent => ({
  type: "workload.stopping",
  data: { ...key, attempt },
});
const deleting = (attempt: number, releaseVolume = true): WorkloadEvent => ({
  type: "workload.deleting",
  data: { ...key, attempt, releaseVolume },
});
const names = { deployment: "session-s-1", volumeClaim: "session-s-1" };
const started: WorkloadEvent = { type: "workload.started", data: { ...key, ...names } };
const running = (node = "n1", pod = "session-s-1-abc-x1"): WorkloadEvent => ({
  type: "workload.running",
  data: { ...key, node, pod },
});
const stopped: WorkloadEvent = { type: "workload.stopped", data: key };
const deleted = (volumeReleased: boolean): WorkloadEvent => ({
  type: "workload.deleted",
  data: { ...key, volumeReleased },
});
const noCapacity = {
  operation: "start" as const,
  kind: "no-capacity" as const,
  reason: "0/3 nodes are available: 3 Insufficient cpu.",
  remediation: "add a node",
};
const upAt = (attempt: number) => [starting(attempt), started, running()];

describe("start", () => {
  it("opens the first attempt with what to run", () => {
    spec
      .given([])
      .when(start)
      .then([starting(1)]);
  });
  it("a start while starting or running changes nothing (a resend)", () => {
    spec
      .given([starting(1)])
      .when(start)
      .then([]);
    spec
      .given([starting(1), started])
      .when(start)
      .then([]);
    spec.given(upAt(1)).when(start).then([]);
  });
  it("a wake: a stopped workload starts again as the next attempt", () => {
    spec
      .given([...upAt(1), stopping(2), stopped])
      .when(start)
      .then([starting(3)]);
  });
  it("a start while stopping wins over the stop (the stop's late record changes nothing)", () => {
    spec
      .given([...upAt(1), stopping(2)])
      .when(start)
      .then([starting(3)]);
    spec
      .given([...upAt(1), stopping(2), starting(3)])
      .when(cmd("workload.record-stopped", { attempt: 2 }))
      .then([]);
  });
  it("is refused once deleted or being deleted", () => {
    spec
      .given([deleting(1)])
      .when(start)
      .thenRejected("conflict", "the workload of session s-1 is being deleted: it cannot start again");
    spec
      .given([deleting(1), deleted(true)])
      .when(start)
      .thenRejected("conflict", "the workload of session s-1 is deleted: it cannot start again");
  });
  it("is refused for another cluster than its own", () => {
    spec
      .given([starting(1)])
      .when({ ...start, data: { ...start.data, clusterId: "demo-2" } } as WorkloadCommand)
      .thenRejected("conflict", "the workload of session s-1 is in cluster demo-1, not demo-2");
  });
});

describe("the reactor's records", () => {
  it("started, then running with its node and pod", () => {
    spec
      .given([starting(1)])
      .when(cmd("workload.record-started", { attempt: 1, ...names }))
      .then([started]);
    spec
      .given([starting(1), started])
      .when(cmd("workload.record-running", { attempt: 1, node: "n1", pod: "session-s-1-abc-x1" }))
      .then([running()]);
  });
  it("a record of a superseded attempt, or a second one, changes nothing", () => {
    spec
      .given([starting(1), stopping(2)])
      .when(cmd("workload.record-started", { attempt: 1, ...names }))
      .then([]);
    spec
      .given(upAt(1))
      .when(cmd("workload.record-running", { attempt: 1, node: "n2", pod: "p" }))
      .then([]);
  });
  it("a scheduling failure of a start is recorded with its reason and remediation", () => {
    spec
      .given([starting(1), started])
      .when(cmd("workload.record-failure", { attempt: 1, ...noCapacity }))
      .then([{ type: "workload.failed", data: { ...key, ...noCapacity } }]);
  });
  it("a failure naming another operation than the attempt's is stale", () => {
    spec
      .given([starting(1), started])
      .when(cmd("workload.record-failure", { attempt: 1, ...noCapacity, operation: "stop" }))
      .then([]);
  });
  it("a pod Ready on another node is a move; seen where it is recorded, it is none", () => {
    const moved = { attempt: 1, fromNode: "n1", toNode: "n2", pod: "p2", reason: "node n1 was drained" };
    spec
      .given(upAt(1))
      .when(cmd("workload.record-moved", moved))
      .then([
        {
          type: "workload.moved",
          data: { ...key, fromNode: "n1", toNode: "n2", pod: "p2", reason: "node n1 was drained" },
        },
      ]);
    spec
      .given([
        ...upAt(1),
        { type: "workload.moved", data: { ...key, fromNode: "n1", toNode: "n2", pod: "p2" } },
      ])
      .when(cmd("workload.record-moved", moved))
      .then([]);
    spec
      .given([starting(1), started])
      .when(cmd("workload.record-moved", moved))
      .then([]);
  });
});

describe("stop", () => {
  it("a running workload stops as the next attempt; its record says stopped", () => {
    spec
      .given(upAt(1))
      .when(stop)
      .then([stopping(2)]);
    spec
      .given([...upAt(1), stopping(2)])
      .when(cmd("workload.record-stopped", { attempt: 2 }))
      .then([stopped]);
  });
  it("stopping or stopped already: nothing to do", () => {
    spec
      .given([...upAt(1), stopping(2)])
      .when(stop)
      .then([]);
    spec
      .given([...upAt(1), stopping(2), stopped])
      .when(stop)
      .then([]);
  });
  it("nothing to stop, or deleted: refused", () => {
    spec.given([]).when(stop).thenRejected("not-found", "no workload for session s-1");
    spec
      .given([deleting(1)])
      .when(stop)
      .thenRejected("conflict", "the workload of session s-1 is deleted or being deleted");
  });
});

describe("delete", () => {
  it("from any state, with or without its volume; also when there was never anything", () => {
    spec
      .given([])
      .when(del(true))
      .then([deleting(1, true)]);
    spec
      .given(upAt(1))
      .when(del(false))
      .then([deleting(2, false)]);
    spec
      .given([...upAt(1), stopping(2), stopped])
      .when(del(true))
      .then([deleting(3, true)]);
  });
  it("a second delete changes nothing; the record says what went", () => {
    spec
      .given([deleting(1)])
      .when(del(true))
      .then([]);
    spec
      .given([deleting(1)])
      .when(cmd("workload.record-deleted", { attempt: 1, volumeReleased: true }))
      .then([deleted(true)]);
    spec
      .given([deleting(1), deleted(true)])
      .when(del(true))
      .then([]);
  });
  it("a delete supersedes a start waiting for its pod: its late running record changes nothing", () => {
    spec
      .given([starting(1), started, deleting(2)])
      .when(cmd("workload.record-running", { attempt: 1, node: "n1", pod: "p" }))
      .then([]);
  });
});
