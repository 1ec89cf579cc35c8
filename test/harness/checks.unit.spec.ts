/**
 * The suites' duplicate and unrecorded-instance checks, on instances as DescribeInstances
 * shows batched launches: one ClientToken per RunInstances, the slot from the batch's
 * first slot (`cairn:slot`) plus the AmiLaunchIndex.
 */
import { describe, expect, it } from "vitest";
import {
  duplicateInstances,
  type SeenInstance,
  seenInstance,
  stepSendProblems,
  unrecordedInstances,
} from "./checks.ts";
import type { LoggedEvent } from "./stack.ts";

const tags = (slot: number, attempt = 1) => [
  { Key: "cairn:pool", Value: "workers" },
  { Key: "cairn:slot", Value: String(slot) },
  { Key: "cairn:attempt", Value: String(attempt) },
];
/** The instances of one RunInstances of `count` slots from `first`. */
const call = (token: string, reservation: string, first: number, count: number, state = "running") =>
  Array.from({ length: count }, (_, k) =>
    seenInstance(
      {
        InstanceId: `i-${token}-${reservation}-${k}`,
        State: { Name: state },
        ClientToken: token,
        AmiLaunchIndex: k,
        Tags: tags(first),
      },
      reservation,
    ),
  );

describe("duplicateInstances", () => {
  it("reads each instance's slot as the batch's first slot plus its AmiLaunchIndex", () => {
    const batch = call("t1", "r-1", 1000, 3);
    expect(batch.map((i) => i.slot)).toEqual(["1000", "1001", "1002"]);
    expect(duplicateInstances([...batch, ...call("t2", "r-2", 1003, 2)])).toEqual([]);
  });
  it("finds a second reservation for one ClientToken: the batch launched twice", () => {
    const problems = duplicateInstances([...call("t1", "r-1", 1000, 2), ...call("t1", "r-2", 1000, 2)]);
    expect(problems.some((p) => p.includes("2 RunInstances reservations for ClientToken t1"))).toBe(true);
    expect(problems.some((p) => p.includes("slot workers/1001/attempt 1"))).toBe(true);
  });
  it("finds two instances for one slot and attempt from two calls (overlapping batches)", () => {
    const problems = duplicateInstances([...call("t1", "r-1", 1000, 3), ...call("t2", "r-2", 1002, 2)]);
    expect(problems).toEqual([expect.stringContaining("2 instances for slot workers/1002/attempt 1")]);
  });
});

describe("unrecordedInstances", () => {
  const ev = (type: string, data: object) => ({ type, data }) as unknown as LoggedEvent;
  const requested = (slot: number, attempt = 1) => ev("cluster.instance-launch-requested", { slot, attempt });
  it("an instance no launch record names is a problem, unless its slot's attempt was superseded and it is gone", () => {
    const [a, b] = call("t1", "r-1", 1000, 2) as [SeenInstance, SeenInstance];
    const log = [
      requested(1000),
      requested(1001),
      ev("cluster.instance-launched", { instanceId: a.instanceId }),
    ];
    // 1001 launched by the batch, never recorded, still running: a problem.
    expect(unrecordedInstances([a, b], log)).toHaveLength(1);
    // Its slot scaled away before the call and the instance terminated: none.
    const terminated = { ...b, state: "terminated" };
    const scaledAway = [...log, ev("cluster.instance-termination-requested", { slot: 1001 })];
    expect(unrecordedInstances([a, terminated], scaledAway)).toEqual([]);
    // Terminated, but its slot was never superseded: still a problem (launched behind the log's back).
    expect(unrecordedInstances([a, terminated], log)).toHaveLength(1);
  });
});

describe("stepSendProblems", () => {
  const ev = (seq: number, type: string, data: Record<string, unknown>): LoggedEvent =>
    ({
      seq,
      at: seq,
      id: `e${seq}`,
      type,
      position: seq,
      aggregate: { type: "install", id: "c1" },
      data,
      meta: {},
    }) as unknown as LoggedEvent;
  const join = (commandId: string, status: string) => ({
    commandId,
    instanceId: "i-1",
    comment: "cairn k3s-agent-join slot=1002 attempt=1 cluster=c1",
    status,
  });

  it("a command no install.step-sent records is a problem", () => {
    expect(stepSendProblems("c1", [join("cmd-1", "Success")], [])).toEqual([
      "SSM command cmd-1 (cairn k3s-agent-join slot=1002 attempt=1 cluster=c1, Success) was sent but no install.step-sent records it",
    ]);
  });

  it("unless its node was removed and the installer cancelled it (the record came after the removal)", () => {
    const removed = [ev(7, "install.node-removed", { slot: 1002, instanceId: "i-1", node: "i-1" })];
    expect(stepSendProblems("c1", [join("cmd-1", "Cancelled")], removed)).toEqual([]);
    // Not cancelled: it ran on, unrecorded.
    expect(stepSendProblems("c1", [join("cmd-1", "Success")], removed)).toHaveLength(1);
    // Cancelled, but the node is still the install's: a lost record.
    expect(stepSendProblems("c1", [join("cmd-1", "Cancelled")], [])).toHaveLength(1);
  });
});
