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
  // deciderSpec decides at 2026-01-01T00:00:00Z.
  const drainRequested = (deadline = "2026-01-01T00:10:00.000Z"): NodeopEvent => ({
    type: "nodeop.drain-requested",
    data: { clusterId, node, reason, by, deadline },
  });
  const progress = (evicted: number, remaining: number, blockedBy?: string[]): NodeopEvent => ({
    type: "nodeop.drain-progress",
    data: { clusterId, node, evicted, remaining, ...(blockedBy ? { blockedBy } : {}) },
  });
  const drainFailed: NodeopEvent = {
    type: "nodeop.drain-failed",
    data: {
      clusterId,
      node,
      reason: "timed out",
      blocking: [{ pod: "default/web-1", pdb: "web-pdb" }],
      remediation: "relax web-pdb",
      leftCordoned: true,
    },
  };
  const drained: NodeopEvent = { type: "nodeop.drained", data: { clusterId, node, by, evicted: 3 } };

  it("requests a drain with a deadline of now + 10 minutes by default", () => {
    spec.given([]).when(cmd("node.drain", { reason })).then([drainRequested()]);
  });
  it("the deadline follows timeoutSeconds", () => {
    spec
      .given([])
      .when(cmd("node.drain", { reason, timeoutSeconds: 2 }))
      .then([drainRequested("2026-01-01T00:00:02.000Z")]);
  });
  it("passes the grace period on", () => {
    spec
      .given([])
      .when(cmd("node.drain", { reason, gracePeriodSeconds: 0 }))
      .then([
        { ...drainRequested(), data: { ...drainRequested().data, gracePeriodSeconds: 0 } } as NodeopEvent,
      ]);
  });
  it("drain implies cordon: the node is held cordoned by the drain's actor, and stays so once drained", () => {
    spec
      .given([drainRequested(), drained])
      .when(uncordon())
      .then([uncordonRequested(false)]);
    // A drained node is cordoned by Cairn: a new cordon has nothing to do.
    spec.given([drainRequested(), drained]).when(cordon).then([]);
  });
  it("is refused while another operation is in flight, and blocks others while it runs", () => {
    spec
      .given([cordonRequested])
      .when(cmd("node.drain", { reason }))
      .thenRejected("conflict", "an operation is in progress");
    spec.given([drainRequested()]).when(cordon).thenRejected("conflict", "(drain requested by alice)");
    spec
      .given([drainRequested()])
      .when(cmd("node.drain", { reason }))
      .thenRejected("conflict", "an operation is in progress");
  });
  it("records progress only when it changed", () => {
    spec
      .given([drainRequested()])
      .when(cmd("node.record-drain-progress", { evicted: 1, remaining: 2, blockedBy: ["web-pdb"] }))
      .then([progress(1, 2, ["web-pdb"])]);
    spec
      .given([drainRequested(), progress(1, 2, ["web-pdb"])])
      .when(cmd("node.record-drain-progress", { evicted: 1, remaining: 2, blockedBy: ["web-pdb"] }))
      .then([]);
    spec
      .given([drainRequested(), progress(1, 2, ["web-pdb"])])
      .when(cmd("node.record-drain-progress", { evicted: 2, remaining: 1 }))
      .then([progress(2, 1)]);
  });
  it("records drained and failed only while a drain is in flight", () => {
    spec
      .given([drainRequested()])
      .when(cmd("node.record-drained", { by, evicted: 3 }))
      .then([drained]);
    spec
      .given([drainRequested(), drained])
      .when(cmd("node.record-drained", { by, evicted: 3 }))
      .then([]);
    spec
      .given([drainRequested()])
      .when(cmd("node.record-drain-failure", drainFailed.data))
      .then([drainFailed]);
    spec.given([]).when(cmd("node.record-drain-failure", drainFailed.data)).then([]);
    spec
      .given([drainRequested()])
      .when(cmd("node.record-drain-progress", { evicted: 0, remaining: 0 }))
      .then([progress(0, 0)]);
  });
  it("a failed drain leaves the node cordoned by Cairn (a new drain may start)", () => {
    spec.given([drainRequested(), drainFailed]).when(cordon).then([]);
    spec.given([drainRequested(), drainFailed]).when(cmd("node.drain", { reason })).then([drainRequested()]);
    spec
      .given([
        drainRequested(),
        { ...drainFailed, data: { ...drainFailed.data, leftCordoned: false } } as NodeopEvent,
      ])
      .when(cordon)
      .then([cordonRequested]);
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

// A node command must name a node its cluster has (known-nodes.ts): `observed` is what the
// handler's observe port read of the cluster just before deciding.
describe("the named node must be the cluster's", () => {
  const seen = (nodes: string[], removed: string[] = []) => ({ observed: { nodes, removed } });
  it("a node the facts hold: decided as always", () => {
    spec
      .given([])
      .when(cordon, seen([node, "ip-10-0-1-6.ec2.internal"]))
      .then([cordonRequested]);
  });
  it("a node the cluster does not have: refused at once, naming the nodes it has", () => {
    spec
      .given([])
      .when(cordon, seen(["ip-10-0-1-7.ec2.internal", "ip-10-0-1-6.ec2.internal"]))
      .thenRejected(
        "not-found",
        `cluster ${clusterId} has no node ${node}; its nodes: ip-10-0-1-6.ec2.internal, ip-10-0-1-7.ec2.internal`,
      );
    for (const c of [
      cmd("node.drain", { reason }),
      uncordon(true),
      cmd("node.label", { labels: { tier: "gpu" } }),
      cmd("node.taint", { taints: [{ key: "gpu", effect: "NoSchedule" }] }),
    ])
      spec
        .given([])
        .when(c, seen(["ip-10-0-1-6.ec2.internal"]))
        .thenRejected("not-found", "has no node");
  });
  it("a node that left the cluster: refused, saying it left", () => {
    spec
      .given([cordonRequested, cordoned])
      .when(uncordon(), seen(["ip-10-0-1-6.ec2.internal"], [node]))
      .thenRejected("not-found", `node ${node} left cluster ${clusterId}`);
  });
  it("facts that know no node: only a cluster never created, or deleted, is refused", () => {
    spec
      .given([])
      .when(cordon, { observed: { nodes: [], removed: [], cluster: "absent" } })
      .thenRejected("not-found", `cluster ${clusterId} does not exist`);
    spec
      .given([])
      .when(cordon, { observed: { nodes: [], removed: [], cluster: "Deleted" } })
      .thenRejected("not-found", "is Deleted");
    // Not watched yet (or facts off in this process): node-ops cannot tell, and goes on.
    spec
      .given([])
      .when(cordon, { observed: { nodes: [], removed: [], cluster: "Configuring" } })
      .then([cordonRequested]);
  });
  it("node-ops' own records are not checked (they are about nodes it already acted on)", () => {
    spec
      .given([cordonRequested])
      .when(cmd("node.record-cordoned", { reason, by }), seen(["ip-10-0-1-6.ec2.internal"]))
      .then([cordoned]);
  });
});
