import { describe, expect, it } from "vitest";
import { evictionDecision, PDB_VIOLATION, pdbCounts, scaledValue } from "./pdb.ts";

const healthy = (n: number, controller?: string) =>
  Array.from({ length: n }, () => ({
    ready: true,
    terminating: false,
    ...(controller ? { controller } : {}),
  }));
const noScale = () => 0;

describe("scaledValue", () => {
  it("reads integers and percentages, rounding as asked", () => {
    expect(scaledValue(3, 10, true)).toBe(3);
    expect(scaledValue("25%", 10, true)).toBe(3);
    expect(scaledValue("25%", 10, false)).toBe(2);
    expect(scaledValue("7", 10, false)).toBe(7);
    expect(() => scaledValue("x%", 10, true)).toThrow();
  });
});

describe("pdbCounts", () => {
  it("minAvailable as an integer: expected is the pod count", () => {
    expect(pdbCounts({ minAvailable: 2 }, healthy(3), noScale)).toEqual({
      expectedPods: 3,
      desiredHealthy: 2,
      currentHealthy: 3,
      disruptionsAllowed: 1,
    });
    expect(pdbCounts({ minAvailable: 3 }, healthy(3), noScale).disruptionsAllowed).toBe(0);
  });
  it("terminating and unready pods are not healthy", () => {
    const pods = [...healthy(2), { ready: true, terminating: true }, { ready: false, terminating: false }];
    expect(pdbCounts({ minAvailable: 1 }, pods, noScale)).toEqual({
      expectedPods: 4,
      desiredHealthy: 1,
      currentHealthy: 2,
      disruptionsAllowed: 1,
    });
  });
  it("maxUnavailable and percentages use the controllers' scale", () => {
    const pods = healthy(3, "default/web");
    const scale = (c: string) => (c === "default/web" ? 4 : 0);
    expect(pdbCounts({ maxUnavailable: 1 }, pods, scale)).toEqual({
      expectedPods: 4,
      desiredHealthy: 3,
      currentHealthy: 3,
      disruptionsAllowed: 0,
    });
    expect(pdbCounts({ maxUnavailable: "50%" }, pods, scale)).toEqual({
      expectedPods: 4,
      desiredHealthy: 2,
      currentHealthy: 3,
      disruptionsAllowed: 1,
    });
    expect(pdbCounts({ minAvailable: "50%" }, pods, scale)).toEqual({
      expectedPods: 4,
      desiredHealthy: 2,
      currentHealthy: 3,
      disruptionsAllowed: 1,
    });
  });
  it("pods without a controller are unmanaged: a maxUnavailable or percentage budget expects none and allows nothing", () => {
    // The disruption controller's getExpectedScale skips them (UnmanagedPods), so the
    // eviction answers "needs 0 healthy pods and has 1 currently", as kube-apiserver does.
    expect(pdbCounts({ maxUnavailable: 1 }, healthy(1), noScale)).toEqual({
      expectedPods: 0,
      desiredHealthy: 0,
      currentHealthy: 1,
      disruptionsAllowed: 0,
    });
    expect(pdbCounts({ minAvailable: "50%" }, healthy(2), noScale).disruptionsAllowed).toBe(0);
    // An integer minAvailable counts them.
    expect(pdbCounts({ minAvailable: 1 }, healthy(2), noScale).disruptionsAllowed).toBe(1);
  });
  it("allows nothing without expected pods", () => {
    expect(pdbCounts({ minAvailable: 0 }, [], noScale).disruptionsAllowed).toBe(0);
    expect(pdbCounts({}, healthy(2), noScale).disruptionsAllowed).toBe(0);
  });
});

describe("evictionDecision", () => {
  const running = { phase: "Running", ready: true, terminating: false };
  const budget = (disruptionsAllowed: number, currentHealthy = 2, desiredHealthy = 2) => ({
    name: "db",
    counts: { expectedPods: 2, desiredHealthy, currentHealthy, disruptionsAllowed },
    generation: 1,
    observedGeneration: 1,
  });
  it("allows without budgets, refuses at zero disruptions with the API's message", () => {
    expect(evictionDecision(running, [])).toEqual({ allowed: true });
    expect(evictionDecision(running, [budget(1, 3)])).toEqual({ allowed: true });
    expect(evictionDecision(running, [budget(0)])).toEqual({
      allowed: false,
      code: 429,
      message: PDB_VIOLATION,
      cause: "The disruption budget db needs 2 healthy pods and has 2 currently",
      retryAfterSeconds: 0,
    });
  });
  it("refuses with Retry-After 10 while the disruption controller has not processed the budget", () => {
    expect(evictionDecision(running, [{ ...budget(5, 3), generation: 2, observedGeneration: 1 }])).toEqual({
      allowed: false,
      code: 429,
      message: PDB_VIOLATION,
      cause: "The disruption budget db is still being processed by the server.",
      retryAfterSeconds: 10,
    });
  });
  it("ignores budgets for pending, finished and terminating pods", () => {
    for (const pod of [
      { phase: "Pending", ready: false, terminating: false },
      { phase: "Succeeded", ready: false, terminating: false },
      { phase: "Running", ready: true, terminating: true },
    ]) {
      expect(evictionDecision(pod, [budget(0)])).toEqual({ allowed: true });
    }
  });
  it("lets an unready pod go when the budget is met, or with AlwaysAllow", () => {
    const unready = { phase: "Running", ready: false, terminating: false };
    expect(evictionDecision(unready, [budget(0, 2, 2)])).toEqual({ allowed: true });
    expect(evictionDecision(unready, [budget(0, 1, 2)]).allowed).toBe(false);
    expect(
      evictionDecision(unready, [{ ...budget(0, 1, 2), unhealthyPodEvictionPolicy: "AlwaysAllow" }]),
    ).toEqual({ allowed: true });
  });
  it("refuses a pod two budgets select", () => {
    expect(evictionDecision(running, [budget(1), budget(1)])).toMatchObject({ allowed: false, code: 500 });
  });
});
