import { type NodeopCommand, type NodeopEvent, nodeAggregateId } from "@cairn/events";
import { deciderSpec } from "@cairn/events/testing";
import { describe, expect, it } from "vitest";
import { nodeopDecider } from "./decider.ts";
import { interruptionDrainSeconds } from "./interruption.ts";

const clusterId = "demo-1";
const node = "i-0123456789abcdef0";
const spec = deciderSpec(nodeopDecider, { type: "nodeop", id: nodeAggregateId(clusterId, node) });
// deciderSpec decides at 2026-01-01T00:00:00Z as actor "alice".
const by = "alice";

const notice = {
  clusterId,
  node,
  instanceId: node,
  region: "eu-west-1",
  noticeId: "evt-1",
  noticeTime: "2026-01-01T00:00:00.000Z",
  terminationTime: "2026-01-01T00:02:00.000Z",
};
const cmd = (type: NodeopCommand["type"], data: object = {}) =>
  ({ type, data: { clusterId, node, ...data } }) as NodeopCommand;
const recordInterruption = (data: object = {}) => cmd("node.record-interruption", { ...notice, ...data });
const noticed = (data: object = {}): NodeopEvent =>
  ({ type: "nodeop.interruption-noticed", data: { ...notice, ...data } }) as NodeopEvent;
const interruptionDrain: NodeopEvent = {
  type: "nodeop.drain-requested",
  data: {
    clusterId,
    node,
    reason: `spot interruption: instance ${node} is reclaimed at 2026-01-01T00:02:00.000Z`,
    by,
    // 120 s of notice less the 15 s margin, from the decision.
    deadline: "2026-01-01T00:01:45.000Z",
  },
};
const userDrain: NodeopEvent = {
  type: "nodeop.drain-requested",
  data: { clusterId, node, reason: "kernel patch", by, deadline: "2026-01-01T00:10:00.000Z" },
};
const cordonRequested: NodeopEvent = {
  type: "nodeop.cordon-requested",
  data: { clusterId, node, reason: "maintenance", by },
};
const drained: NodeopEvent = { type: "nodeop.drained", data: { clusterId, node, by, evicted: 3 } };
const deleted: NodeopEvent = {
  type: "nodeop.node-deleted",
  data: { clusterId, node, reason: "its spot instance was reclaimed" },
};

describe("spot interruption notice", () => {
  it("records the notice and drains at once, the deadline a margin before the termination", () => {
    spec.given([]).when(recordInterruption()).then([noticed(), interruptionDrain]);
  });
  it("the same notice again (a redelivered message) records nothing", () => {
    spec.given([noticed(), interruptionDrain]).when(recordInterruption()).then([]);
    spec.given([noticed(), interruptionDrain, drained]).when(recordInterruption()).then([]);
  });
  it("a drain already in flight goes on: only the notice is recorded", () => {
    spec.given([userDrain]).when(recordInterruption()).then([noticed()]);
  });
  it("supersedes a cordon in flight (a drain implies the cordon)", () => {
    spec.given([cordonRequested]).when(recordInterruption()).then([noticed(), interruptionDrain]);
  });
  it("the drain's budget never drops below 10 s", () => {
    expect(interruptionDrainSeconds(notice.noticeTime, "2026-01-01T00:00:05.000Z")).toBe(10);
    expect(interruptionDrainSeconds(notice.noticeTime, notice.terminationTime)).toBe(105);
  });
});

describe("the Node deleted after the reclaim", () => {
  const recordDeleted = cmd("node.record-deleted", { reason: "its spot instance was reclaimed" });
  it("an interrupted node: recorded once", () => {
    spec.given([noticed(), interruptionDrain, drained]).when(recordDeleted).then([deleted]);
    spec.given([noticed(), interruptionDrain, drained, deleted]).when(recordDeleted).then([]);
  });
  it("a node retired by the provisioner (not interrupted): recorded once too", () => {
    spec.given([userDrain, drained]).when(recordDeleted).then([deleted]);
    spec.given([userDrain, drained, deleted]).when(recordDeleted).then([]);
  });
  it("the interruption outlives the operations that rebuild the state (drained, uncordoned)", () => {
    const s = [noticed(), interruptionDrain, drained].reduce(
      (st, e, i) => nodeopDecider.evolve(st, { ...e, position: i + 1 } as never),
      nodeopDecider.initialState(),
    );
    expect(s.interruption).toEqual({
      noticeId: "evt-1",
      instanceId: node,
      terminationTime: notice.terminationTime,
    });
    expect(s.inFlight).toBeUndefined();
    expect(s.cordoned?.reason).toContain("spot interruption");
  });
});
