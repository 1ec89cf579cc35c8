import { type NodeopCommand, type NodeopEvent, nodeAggregateId } from "@cairn/events";
import { deciderSpec } from "@cairn/events/testing";
import { describe, expect, it } from "vitest";
import { nodeopDecider } from "./decider.ts";

const clusterId = "demo-1";
const node = "ip-10-0-1-5.ec2.internal";
const spec = deciderSpec(nodeopDecider, { type: "nodeop", id: nodeAggregateId(clusterId, node) });
// deciderSpec sends its commands as actor "alice".
const by = "alice";
const reason = "kernel patch";

const cmd = (type: NodeopCommand["type"], data: object = {}) =>
  ({ type, data: { clusterId, node, ...data } }) as NodeopCommand;
const cordon = cmd("node.cordon", { reason });
const uncordon = (force = false) => cmd("node.uncordon", { reason: "patched", force });

const cordonRequested: NodeopEvent = {
  type: "nodeop.cordon-requested",
  data: { clusterId, node, reason, by },
};
const cordoned: NodeopEvent = { type: "nodeop.cordoned", data: { clusterId, node, reason, by } };
const uncordonRequested = (forced = false): NodeopEvent => ({
  type: "nodeop.uncordon-requested",
  data: { clusterId, node, reason: "patched", by, forced },
});
const uncordoned: NodeopEvent = { type: "nodeop.uncordoned", data: { clusterId, node, by } };
const notFoundReason = `node ${node} not found in cluster ${clusterId}`;
const failed = (operation: "cordon" | "uncordon"): NodeopEvent => ({
  type: "nodeop.failed",
  data: { clusterId, node, operation, reason: notFoundReason },
});

describe("cordon", () => {
  it("requests a cordon, recording who asked and why", () => {
    spec.given([]).when(cordon).then([cordonRequested]);
  });
  it("a node Cairn already cordoned: nothing to do", () => {
    spec.given([cordonRequested, cordoned]).when(cordon).then([]);
  });
  it("is refused while another operation is in flight on the node", () => {
    spec
      .given([cordonRequested])
      .when(cordon)
      .thenRejected("conflict", `an operation is in progress on node ${node}`);
    spec
      .given([cordonRequested, cordoned, uncordonRequested()])
      .when(cordon)
      .thenRejected("conflict", `an operation is in progress on node ${node}`);
  });
  it("can cordon again after an uncordon or a failure", () => {
    spec
      .given([cordonRequested, cordoned, uncordonRequested(), uncordoned])
      .when(cordon)
      .then([cordonRequested]);
    spec
      .given([cordonRequested, failed("cordon")])
      .when(cordon)
      .then([cordonRequested]);
  });
});

describe("uncordon", () => {
  it("uncordons what Cairn cordoned", () => {
    spec
      .given([cordonRequested, cordoned])
      .when(uncordon())
      .then([uncordonRequested(false)]);
  });
  it("refuses a node Cairn did not cordon, saying who did and how to force it", () => {
    const r = spec.given([]).when(uncordon());
    r.thenRejected("conflict", "was not cordoned by Cairn");
    r.thenRejected("conflict", "force: true");
    spec
      .given([cordonRequested, cordoned, uncordonRequested(), uncordoned])
      .when(uncordon())
      .thenRejected("conflict", "outside Cairn");
  });
  it("with force: true it goes through, marked forced", () => {
    spec
      .given([])
      .when(uncordon(true))
      .then([uncordonRequested(true)]);
  });
  it("forcing what Cairn cordoned is not marked forced", () => {
    spec
      .given([cordonRequested, cordoned])
      .when(uncordon(true))
      .then([uncordonRequested(false)]);
  });
  it("is refused while another operation is in flight on the node", () => {
    spec
      .given([cordonRequested])
      .when(uncordon(true))
      .thenRejected("conflict", "an operation is in progress");
  });
});

describe("drain", () => {
  it("is refused honestly: it arrives with the next slice", () => {
    spec
      .given([])
      .when(cmd("node.drain", { reason }))
      .thenRejected("unsupported", "drain arrives with node-ops' next slice");
  });
});

describe("records", () => {
  it("a cordon recorded moves the node to cordoned by Cairn", () => {
    spec.given([cordonRequested]).when(cmd("node.record-cordoned", { reason, by })).then([cordoned]);
    expect(spec.given([cordonRequested, cordoned]).state).toEqual({ cordoned: { by, reason } });
  });
  it("an uncordon recorded clears the state", () => {
    spec
      .given([cordonRequested, cordoned, uncordonRequested()])
      .when(cmd("node.record-uncordoned", { by }))
      .then([uncordoned]);
    expect(spec.given([cordonRequested, cordoned, uncordonRequested(), uncordoned]).state).toEqual({});
  });
  it("a failure ends the operation and keeps what was true before", () => {
    spec
      .given([cordonRequested])
      .when(cmd("node.record-failure", { operation: "cordon", reason: notFoundReason }))
      .then([failed("cordon")]);
    expect(spec.given([cordonRequested, failed("cordon")]).state).toEqual({});
    expect(spec.given([cordonRequested, cordoned, uncordonRequested(), failed("uncordon")]).state).toEqual({
      cordoned: { by, reason },
    });
  });
  it("stale records change nothing", () => {
    spec.given([]).when(cmd("node.record-cordoned", { reason, by })).then([]);
    spec.given([cordonRequested, cordoned]).when(cmd("node.record-cordoned", { reason, by })).then([]);
    spec.given([cordonRequested]).when(cmd("node.record-uncordoned", { by })).then([]);
    spec
      .given([])
      .when(cmd("node.record-failure", { operation: "cordon", reason: "x" }))
      .then([]);
    spec
      .given([cordonRequested])
      .when(cmd("node.record-failure", { operation: "uncordon", reason: "x" }))
      .then([]);
  });
});
