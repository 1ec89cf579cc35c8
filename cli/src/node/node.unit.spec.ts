import { describe, expect, it } from "vitest";
import { aggregateSubject, typeMatches } from "../commands/events.ts";
import { labelChanges, taintChanges } from "../commands/node.ts";
import { InvalidInputError } from "../errors.ts";
import { type NodeOpView, nodeOpVerdict } from "./outcome.ts";

const op = (over: Partial<NodeOpView> = {}): NodeOpView => ({
  id: "c-1=agent-1",
  clusterId: "c-1",
  node: "agent-1",
  operation: "drain",
  state: "in progress",
  by: "alice",
  reason: "kernel",
  drain: { evicted: 3, remaining: 2, blockedBy: ["web-pdb"], deadline: null },
  blocking: [],
  waiting: null,
  failure: null,
  cordoned: true,
  ...over,
});
const accepted = { commandId: "c", status: "accepted" as const };

describe("what --wait makes of a node operation", () => {
  it("a drain under way shows its counts and the budget that blocks it", () => {
    expect(nodeOpVerdict("drain", op(), accepted, false)).toMatchObject({
      kind: "waiting",
      state: "drain in progress",
      detail: "3 evicted, 2 to go, blocked by PodDisruptionBudget web-pdb",
      hint: expect.stringContaining("PodDisruptionBudget"),
    });
  });

  it("the row's last operation counts only once this command is answered, and only if it is this kind", () => {
    const done = op({ state: "done", operation: "cordon" });
    expect(nodeOpVerdict("cordon", done, undefined, false).kind).toBe("waiting");
    expect(nodeOpVerdict("cordon", done, accepted, false).kind).toBe("done");
    expect(nodeOpVerdict("cordon", done, undefined, true).kind).toBe("done");
    expect(nodeOpVerdict("drain", done, accepted, false).kind).toBe("waiting");
  });

  it("a row older than the command's commit does not count: the previous cordon's done is not this one's", () => {
    const cordon = { ...accepted, sequence: 100 };
    expect(
      nodeOpVerdict("cordon", op({ state: "done", operation: "cordon", sequence: 90 }), cordon, true).kind,
    ).toBe("waiting");
    expect(
      nodeOpVerdict("cordon", op({ state: "done", operation: "cordon", sequence: 101 }), cordon, false).kind,
    ).toBe("done");
  });

  it("fails with the failure's reason and remediation, or the refusal's", () => {
    expect(
      nodeOpVerdict(
        "drain",
        op({ state: "failed", failure: { reason: "timed out", remediation: "raise --drain-timeout" } }),
        accepted,
        false,
      ),
    ).toEqual({
      kind: "failed",
      message: "node/agent-1: drain failed: timed out",
      hint: "raise --drain-timeout",
    });
    expect(
      nodeOpVerdict(
        "cordon",
        op(),
        { commandId: "c", status: "rejected", code: "invalid", reason: "no" },
        false,
      ),
    ).toMatchObject({ kind: "failed", message: "node/agent-1: refused: no" });
  });
});

describe("kubectl's words for labels and taints", () => {
  it("sets key=value and removes key-", () => {
    expect(labelChanges(["env=prod", "team-", "empty="])).toEqual({
      set: { env: "prod", empty: "" },
      remove: ["team"],
    });
    expect(() => labelChanges(["=x"])).toThrow(InvalidInputError);
  });

  it("adds key[=value]:Effect and removes key:Effect-", () => {
    expect(taintChanges(["dedicated=gpu:NoSchedule", "spot:NoExecute-", "x:PreferNoSchedule"])).toEqual({
      add: [
        { key: "dedicated", value: "gpu", effect: "NoSchedule" },
        { key: "x", effect: "PreferNoSchedule" },
      ],
      remove: [{ key: "spot", effect: "NoExecute" }],
    });
    expect(() => taintChanges(["dedicated=gpu"])).toThrow(/invalid taint "dedicated=gpu"/);
  });
});

describe("events tail's filters", () => {
  it("--aggregate names a subject", () => {
    expect(aggregateSubject(undefined)).toBe("evt.>");
    expect(aggregateSubject("cluster")).toBe("evt.cluster.>");
    expect(aggregateSubject("session/s-1")).toBe("evt.session.s-1");
    expect(() => aggregateSubject("planet/x")).toThrow(/invalid --aggregate/);
  });

  it("--type matches exactly or by a prefix ending in *", () => {
    expect(typeMatches([], "cluster.ready")).toBe(true);
    expect(typeMatches(["cluster.ready"], "cluster.ready")).toBe(true);
    expect(typeMatches(["session.*"], "session.running")).toBe(true);
    expect(typeMatches(["session.*", "cluster.ready"], "cluster.failed")).toBe(false);
  });
});
