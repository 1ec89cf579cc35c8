import { type NodeopCommand, type NodeopEvent, nodeAggregateId } from "@cairn/events";
import { deciderSpec } from "@cairn/events/testing";
import { describe, it } from "vitest";
import { nodeopDecider } from "./decider.ts";

const clusterId = "demo-1";
const node = "ip-10-0-1-5.ec2.internal";
const spec = deciderSpec(nodeopDecider, { type: "nodeop", id: nodeAggregateId(clusterId, node) });
const by = "alice"; // deciderSpec's actor
const reason = "gpu workloads";
const none = { setLabels: {}, removeLabels: [], addTaints: [], removeTaints: [] };

const cmd = (type: NodeopCommand["type"], data: object) =>
  ({ type, data: { clusterId, node, reason, ...data } }) as NodeopCommand;
const requested = (operation: string, change: object, who = by, why = reason): NodeopEvent =>
  ({
    type: "nodeop.classification-requested",
    data: { clusterId, node, operation, by: who, reason: why, change: { ...none, ...change } },
  }) as NodeopEvent;
const applied = (operation: string, who = by): NodeopEvent =>
  ({ type: "nodeop.classification-applied", data: { clusterId, node, operation, by: who } }) as NodeopEvent;
const gpu = { key: "gpu", value: "true", effect: "NoSchedule" as const };

describe("label, unlabel, taint, untaint", () => {
  it("each is requested with the change it makes, who asked and why", () => {
    spec
      .given([])
      .when(cmd("node.label", { labels: { tier: "gold" } }))
      .then([requested("label", { setLabels: { tier: "gold" } })]);
    spec
      .given([])
      .when(cmd("node.unlabel", { keys: ["tier"] }))
      .then([requested("unlabel", { removeLabels: ["tier"] })]);
    spec
      .given([])
      .when(cmd("node.taint", { taints: [gpu] }))
      .then([requested("taint", { addTaints: [gpu] })]);
    spec
      .given([])
      .when(cmd("node.untaint", { taints: [{ key: "gpu", effect: "NoSchedule" }] }))
      .then([requested("untaint", { removeTaints: [{ key: "gpu", effect: "NoSchedule" }] })]);
  });

  it("refuses Cairn's own classification labels, naming them", () => {
    spec
      .given([])
      .when(cmd("node.label", { labels: { "cairn.dev/pool": "gpu", tier: "gold" } }))
      .thenRejected("invalid", "cairn.dev/pool is Cairn's own classification");
    spec
      .given([])
      .when(cmd("node.unlabel", { keys: ["cairn.dev/capacity-type", "cairn.dev/pool"] }))
      .thenRejected("invalid", "cairn.dev/capacity-type, cairn.dev/pool are Cairn's own classification");
  });

  it("is refused while another operation is in flight on the node, and accepted after it", () => {
    const cordonRequested: NodeopEvent = {
      type: "nodeop.cordon-requested",
      data: { clusterId, node, reason: "patch", by: "bob" },
    };
    spec
      .given([cordonRequested])
      .when(cmd("node.label", { labels: { a: "1" } }))
      .thenRejected("conflict", `an operation is in progress on node ${node} (cordon requested by bob)`);
    spec
      .given([requested("label", { setLabels: { a: "1" } })])
      .when(cmd("node.cordon", {}))
      .thenRejected("conflict", `an operation is in progress on node ${node} (label requested by alice)`);
    spec
      .given([requested("label", { setLabels: { a: "1" } }), applied("label")])
      .when(cmd("node.taint", { taints: [gpu] }))
      .then([requested("taint", { addTaints: [gpu] })]);
  });

  it("records applied or failed only for the operation in flight", () => {
    spec
      .given([requested("taint", { addTaints: [gpu] })])
      .when(cmd("node.record-classified", { operation: "taint", by }))
      .then([applied("taint")]);
    spec
      .given([requested("taint", { addTaints: [gpu] })])
      .when(
        cmd("node.record-classification-failure", {
          operation: "taint",
          reason: "node x not found",
          remediation: "check the node name",
        }),
      )
      .then([
        {
          type: "nodeop.classification-failed",
          data: {
            clusterId,
            node,
            operation: "taint",
            reason: "node x not found",
            remediation: "check the node name",
          },
        } as NodeopEvent,
      ]);
    // A stale or repeated record changes nothing.
    spec
      .given([])
      .when(cmd("node.record-classified", { operation: "taint", by }))
      .then([]);
    spec
      .given([requested("taint", { addTaints: [gpu] }), applied("taint")])
      .when(cmd("node.record-classified", { operation: "taint", by }))
      .then([]);
    spec
      .given([requested("label", { setLabels: { a: "1" } })])
      .when(cmd("node.record-classified", { operation: "taint", by }))
      .then([]);
  });

  it("keeps Cairn's cordon: a node labelled while cordoned is still Cairn's to uncordon", () => {
    const cordonRequested: NodeopEvent = {
      type: "nodeop.cordon-requested",
      data: { clusterId, node, reason: "patch", by: "bob" },
    };
    const cordoned: NodeopEvent = {
      type: "nodeop.cordoned",
      data: { clusterId, node, reason: "patch", by: "bob" },
    };
    spec
      .given([cordonRequested, cordoned, requested("label", { setLabels: { a: "1" } }), applied("label")])
      .when(cmd("node.uncordon", { force: false }))
      .then([
        {
          type: "nodeop.uncordon-requested",
          data: { clusterId, node, reason, by, forced: false },
        },
      ]);
  });
});

describe("restore (internal)", () => {
  it("may set the classification labels a public command may not", () => {
    const change = {
      setLabels: { "cairn.dev/pool": "workers", "cairn.dev/capacity-type": "spot" },
      removeLabels: [],
      addTaints: [],
      removeTaints: [],
    };
    spec
      .given([])
      .when(cmd("node.restore-classification", { change, reason: "restore pool classification" }))
      .then([requested("restore", change, by, "restore pool classification")]);
  });

  it("waits behind an operation in flight: nothing decided, nothing refused", () => {
    const change = {
      setLabels: { "cairn.dev/pool": "workers" },
      removeLabels: [],
      addTaints: [],
      removeTaints: [],
    };
    spec
      .given([requested("label", { setLabels: { a: "1" } })])
      .when(cmd("node.restore-classification", { change, reason: "restore pool classification" }))
      .then([]);
  });
});
