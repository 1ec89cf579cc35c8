import type { EventOfAggregate, WorkloadEvent } from "@cairn/events";
import { describe, expect, it } from "vitest";
import { indexWorkload } from "./moves.ts";
import type { WorkloadState } from "./workload.decider.ts";

const template = { image: "ghcr.io/acme/ide:1", cpu: "1", memory: "2Gi", storage: "10Gi" };
const of = (sessionId: string, e: WorkloadEvent) =>
  ({ ...e, aggregate: { type: "workload", id: sessionId } }) as unknown as EventOfAggregate<"workload">;
const life = (sessionId: string): WorkloadEvent[] => {
  const key = { sessionId, clusterId: "demo-1" };
  return [
    { type: "workload.starting", data: { ...key, user: "alice", template, attempt: 1 } },
    {
      type: "workload.started",
      data: { ...key, deployment: `session-${sessionId}`, volumeClaim: `session-${sessionId}` },
    },
    { type: "workload.running", data: { ...key, node: "n1", pod: `session-${sessionId}-x` } },
  ] as WorkloadEvent[];
};
const gone = (sessionId: string): WorkloadEvent[] => {
  const key = { sessionId, clusterId: "demo-1" };
  return [
    { type: "workload.deleting", data: { ...key, attempt: 1, releaseVolume: true } },
    { type: "workload.deleted", data: { ...key, volumeReleased: true } },
  ] as WorkloadEvent[];
};

describe("the moves' workload index", () => {
  it("holds the Running workloads, and forgets a deleted one entirely", () => {
    const states = new Map<string, WorkloadState>();
    const running = new Map<string, WorkloadState>();
    for (const id of ["s-1", "s-2", "s-3"])
      for (const e of life(id)) indexWorkload(states, running, of(id, e));
    expect([...running.keys()].sort()).toEqual(["s-1", "s-2", "s-3"]);
    expect(running.get("s-1")).toMatchObject({ phase: "Running", node: "n1" });

    for (const e of gone("s-2")) indexWorkload(states, running, of("s-2", e));
    expect([...running.keys()].sort()).toEqual(["s-1", "s-3"]);
    // Gone from the states too: the index does not grow with every session there ever was.
    expect([...states.keys()].sort()).toEqual(["s-1", "s-3"]);
  });

  it("keeps a stopped workload's state: it may start again, from its attempt", () => {
    const states = new Map<string, WorkloadState>();
    const running = new Map<string, WorkloadState>();
    for (const e of life("s-1")) indexWorkload(states, running, of("s-1", e));
    const key = { sessionId: "s-1", clusterId: "demo-1" };
    indexWorkload(
      states,
      running,
      of("s-1", { type: "workload.stopping", data: { ...key, attempt: 2 } } as WorkloadEvent),
    );
    indexWorkload(states, running, of("s-1", { type: "workload.stopped", data: key } as WorkloadEvent));
    expect(running.size).toBe(0);
    expect(states.get("s-1")).toMatchObject({ phase: "Stopped", attempt: 2 });
  });
});
