import { type NodeopCommand, type NodeopEvent, nodeAggregateId, nodeopLimitId } from "@cairn/events";
import { deciderSpec } from "@cairn/events/testing";
import { describe, expect, it } from "vitest";
import { goneReason, limitFor } from "./admission.ts";
import { nodeopDecider } from "./decider.ts";

const clusterId = "demo-1";
const ledger = deciderSpec(nodeopDecider, { type: "nodeop", id: nodeopLimitId(clusterId) });
const nodeB = deciderSpec(nodeopDecider, { type: "nodeop", id: nodeAggregateId(clusterId, "node-b") });

const admit = (node: string, limit = 1, force = false) =>
  ({ type: "node.admit-disruption", data: { clusterId, node, limit, force } }) as NodeopCommand;
const admitted = (node: string, holders: string[], limit = 1, forced = false): NodeopEvent => ({
  type: "nodeop.disruption-admitted",
  data: { clusterId, node, limit, forced, holders },
});
const release = (node: string, reason?: string) =>
  ({
    type: "node.release-disruption",
    data: { clusterId, node, ...(reason ? { reason } : {}) },
  }) as NodeopCommand;
const released = (node: string, reason?: string): NodeopEvent => ({
  type: "nodeop.disruption-released",
  data: { clusterId, node, ...(reason ? { reason } : {}) },
});

describe("the cluster's disruption ledger", () => {
  it("admits a node while fewer than the limit are held", () => {
    ledger
      .given([])
      .when(admit("node-a"))
      .then([admitted("node-a", ["node-a"])]);
    ledger
      .given([admitted("node-a", ["node-a"], 2)])
      .when(admit("node-b", 2))
      .then([admitted("node-b", ["node-a", "node-b"], 2)]);
  });
  it("refuses past the limit, naming the holders; force goes past it", () => {
    ledger
      .given([admitted("node-a", ["node-a"])])
      .when(admit("node-b"))
      .thenRejected(
        "conflict",
        "cluster demo-1 already has 1 node(s) cordoned or draining by Cairn (limit 1): node-a",
      );
    ledger
      .given([admitted("node-a", ["node-a"])])
      .when(admit("node-b", 1, true))
      .then([admitted("node-b", ["node-a", "node-b"], 1, true)]);
  });
  it("a node holding its place is admitted again without a new event", () => {
    ledger
      .given([admitted("node-a", ["node-a"])])
      .when(admit("node-a"))
      .then([]);
  });
  it("a release frees the place; releasing a node that holds none changes nothing", () => {
    ledger
      .given([admitted("node-a", ["node-a"]), released("node-a")])
      .when(admit("node-b"))
      .then([admitted("node-b", ["node-b"])]);
    ledger
      .given([admitted("node-a", ["node-a"])])
      .when(release("node-a"))
      .then([released("node-a")]);
    ledger.given([]).when(release("node-a")).then([]);
  });
  it("a holder that is gone (a drained node, still cordoned, whose Node was deleted) is released, saying why", () => {
    const why = "its Node was deleted: its instance node-a was terminated by the provisioner (surplus)";
    ledger
      .given([admitted("node-a", ["node-a"])])
      .when(release("node-a", why))
      .then([released("node-a", why)]);
    // Its place is free for the next node.
    ledger
      .given([admitted("node-a", ["node-a"]), released("node-a", why)])
      .when(admit("node-b"))
      .then([admitted("node-b", ["node-b"])]);
  });
  it("a gone holder released twice (a redelivery, a second replica, the eager and the lazy path) is released once", () => {
    const why = "node node-a left the cluster's API (its Node was deleted)";
    ledger
      .given([admitted("node-a", ["node-a"]), released("node-a", why)])
      .when(release("node-a", "its Node was deleted: reclaimed"))
      .then([]);
    // …and a late one does not free the place of another node.
    ledger
      .given([admitted("node-a", ["node-a"]), released("node-a", why), admitted("node-b", ["node-b"])])
      .when(release("node-a", why))
      .then([]);
  });
});

describe("goneReason", () => {
  const none = { removed: [] };
  it("a holder whose node aggregate says deleted, or whose Node left the API, is gone", () => {
    expect(goneReason("node-a", none, { deleted: true, cordoned: { by: "provisioner", reason: "r" } })).toBe(
      "node node-a was deleted (its instance is gone)",
    );
    expect(goneReason("node-a", { removed: ["node-a"] }, { cordoned: { by: "alice", reason: "r" } })).toBe(
      "node node-a left the cluster's API (its Node was deleted)",
    );
  });
  it("a holder still there (cordoned, draining, or not yet seen by the facts) is not", () => {
    expect(goneReason("node-a", none, { cordoned: { by: "alice", reason: "r" } })).toBeUndefined();
    expect(goneReason("node-a", { removed: ["node-b"] }, {})).toBeUndefined();
  });
});

describe("a node waiting for the limit", () => {
  const waiting = {
    type: "node.record-waiting",
    data: { clusterId, node: "node-b", limit: 1, waitingFor: ["node-a"] },
  };
  it("records what its cordon or drain waits for", () => {
    nodeB
      .given([
        { type: "nodeop.cordon-requested", data: { clusterId, node: "node-b", reason: "r", by: "alice" } },
      ])
      .when(waiting as NodeopCommand)
      .then([
        {
          type: "nodeop.waiting",
          data: { clusterId, node: "node-b", operation: "cordon", limit: 1, waitingFor: ["node-a"] },
        },
      ]);
  });
  it("records the same wait once; a new holder set is recorded again", () => {
    const requested = {
      type: "nodeop.cordon-requested",
      data: { clusterId, node: "node-b", reason: "r", by: "alice" },
    } as const;
    const recorded = {
      type: "nodeop.waiting",
      data: { clusterId, node: "node-b", operation: "cordon", limit: 1, waitingFor: ["node-a"] },
    } as const;
    nodeB
      .given([requested, recorded] as never)
      .when(waiting as NodeopCommand)
      .then([]);
    nodeB
      .given([requested, recorded] as never)
      .when({ ...waiting, data: { ...waiting.data, waitingFor: ["node-c"] } } as NodeopCommand)
      .then([{ ...recorded, data: { ...recorded.data, waitingFor: ["node-c"] } }] as never);
  });
  it("records nothing when no cordon or drain is in flight", () => {
    nodeB
      .given([])
      .when(waiting as NodeopCommand)
      .then([]);
  });
  it("a forced cordon says so in its request", () => {
    nodeB
      .given([])
      .when({
        type: "node.cordon",
        data: { clusterId, node: "node-b", reason: "r", force: true },
      } as NodeopCommand)
      .then([
        {
          type: "nodeop.cordon-requested",
          data: { clusterId, node: "node-b", reason: "r", by: "alice", force: true },
        },
      ]);
  });
});

describe("limitFor", () => {
  it("10% of the nodes, at least 1, unless a maximum is configured", () => {
    expect([limitFor(0, {}), limitFor(3, {}), limitFor(25, {}), limitFor(100, {})]).toEqual([1, 1, 2, 10]);
    expect(limitFor(25, { max: 5 })).toBe(5);
    expect(limitFor(25, { fraction: 0.5 })).toBe(12);
  });
});
