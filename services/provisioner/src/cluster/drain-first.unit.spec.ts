import type { EventOfAggregate, KubeEvent, NodeopEvent } from "@cairn/events";
import { anEvent } from "@cairn/events/testing";
import { describe, expect, it } from "vitest";
import { foldDrain, foldRegistered } from "./drain-first.ts";

const nodeRef = { type: "nodeop" as const, id: "c1=i-0aaaaaaaaaaaaaaa1" };
const node = "i-0aaaaaaaaaaaaaaa1";
const ASKED = "drain-cmd";
let position = 0;
/** A nodeop event, answering `commandId` when given. */
const op = (e: NodeopEvent, commandId?: string): EventOfAggregate<"nodeop"> => {
  const env = anEvent<NodeopEvent>(e, ++position, nodeRef);
  return { ...env, meta: { ...env.meta, ...(commandId ? { commandId } : {}) } };
};
const requested = (commandId: string) =>
  op(
    { type: "nodeop.drain-requested", data: { clusterId: "c1", node, reason: "surplus", by: "provisioner" } },
    commandId,
  );
const drained = (commandId?: string) =>
  op({ type: "nodeop.drained", data: { clusterId: "c1", node, by: "provisioner", evicted: 3 } }, commandId);
const drainFailed = (reason: string) =>
  op({
    type: "nodeop.drain-failed",
    data: { clusterId: "c1", node, reason, blocking: [], remediation: "relax the PDB", leftCordoned: true },
  });
const start = { asked: false };

describe("foldDrain: where a drain the provisioner asked for stands", () => {
  it("given nothing from node-ops yet, it is pending (not asked)", () => {
    expect(foldDrain(start, [], ASKED)).toEqual({ asked: false });
  });
  it("given an earlier drain's outcome (another command), it is still pending", () => {
    expect(foldDrain(start, [requested("older"), drained("older")], ASKED)).toEqual({ asked: false });
  });
  it("given the request and then its drained event, it is drained", () => {
    expect(foldDrain(start, [requested(ASKED), drained()], ASKED)).toEqual({
      asked: true,
      outcome: { status: "drained" },
    });
  });
  it("given the request and a drain-failed, it failed with node-ops' reason", () => {
    expect(
      foldDrain(start, [requested(ASKED), drainFailed("a PDB never allowed it")], ASKED).outcome,
    ).toEqual({
      status: "failed",
      reason: "a PDB never allowed it",
    });
  });
  it("given node-ops refused the command, it failed with the refusal's reason", () => {
    const refused = op(
      {
        type: "nodeop.rejected",
        data: { commandId: ASKED, commandType: "node.drain", code: "conflict", reason: "the node is gone" },
      },
      ASKED,
    );
    expect(foldDrain(start, [refused], ASKED).outcome).toEqual({
      status: "failed",
      reason: "the node is gone",
    });
  });
  it("folded look by look (what is new each time), it gives what one fold of the whole history gives", () => {
    const history = [requested("older"), drained("older"), requested(ASKED), drainFailed("no"), drained()];
    const whole = foldDrain(start, history, ASKED);
    let seen = foldDrain(start, history.slice(0, 2), ASKED);
    expect(seen.outcome).toBeUndefined();
    seen = foldDrain(seen, history.slice(2, 3), ASKED);
    expect(seen).toEqual({ asked: true });
    seen = foldDrain(seen, history.slice(3), ASKED);
    expect(seen).toEqual(whole);
    expect(whole.outcome).toEqual({ status: "failed", reason: "no" });
  });
});

describe("foldRegistered: whether a node is in the cluster's API", () => {
  const kubeRef = { type: "kube" as const, id: "c1" };
  const fact = (e: KubeEvent, p: number) => anEvent<KubeEvent>(e, p, kubeRef);
  const registered = fact(
    { type: "kube.node-registered", data: { node, role: "agent", labels: {}, taints: [] } },
    1,
  );
  const removed = fact({ type: "kube.node-removed", data: { node } }, 2);
  it("registered, then removed, then registered again, look by look", () => {
    expect(foldRegistered(false, [registered], node)).toBe(true);
    expect(foldRegistered(true, [removed], node)).toBe(false);
    expect(foldRegistered(false, [registered, removed, registered], node)).toBe(true);
  });
  it("another node's facts change nothing", () => {
    expect(foldRegistered(false, [registered], "i-0bbbbbbbbbbbbbbb2")).toBe(false);
  });
});
