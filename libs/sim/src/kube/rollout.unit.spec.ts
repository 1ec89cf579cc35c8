import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { type ReplicaSetScale, rollingStep } from "./rollout.ts";

const p = { want: 4, maxSurge: 1, maxUnavailable: 1 };
const rs = (replicas: number, available = replicas): ReplicaSetScale => ({ replicas, available });

describe("rollingStep (RollingUpdate, rolling.go)", () => {
  it("given 4 old available and a new template, when it steps, then the new one surges to 1 and the old drops to 3", () => {
    expect(rollingStep(p, rs(0), [rs(4)])).toEqual({ fresh: 1, old: [3] });
  });

  it("given the new pod not yet available, when it steps again, then the new one fills the surge and the old waits", () => {
    expect(rollingStep(p, rs(1, 0), [rs(3)])).toEqual({ fresh: 2, old: [3] });
    expect(rollingStep(p, rs(2, 0), [rs(3)])).toEqual({ fresh: 2, old: [3] });
  });

  it("given new pods available, when it steps, then old ones go as far as availability allows", () => {
    expect(rollingStep(p, rs(2, 2), [rs(3)])).toEqual({ fresh: 2, old: [1] });
  });

  it("given an old ReplicaSet with unavailable pods, when it steps, then those go first, within the budget", () => {
    // 5 pods asked, 3 must stay available; the new one has 1 unavailable: 1 may go, the broken one.
    expect(rollingStep(p, rs(1, 0), [rs(2, 2), rs(2, 1)])).toEqual({ fresh: 1, old: [2, 1] });
  });

  it("given a scale down with no rollout, when it steps, then the new one follows replicas", () => {
    expect(rollingStep({ ...p, want: 2 }, rs(4), [])).toEqual({ fresh: 2, old: [] });
    expect(rollingStep({ ...p, want: 6 }, rs(4), [])).toEqual({ fresh: 6, old: [] });
  });

  const arb = fc
    .record({
      want: fc.integer({ min: 0, max: 12 }),
      maxSurge: fc.integer({ min: 0, max: 4 }),
      maxUnavailable: fc.integer({ min: 0, max: 4 }),
      fresh: fc.integer({ min: 0, max: 12 }),
      old: fc.array(fc.integer({ min: 0, max: 12 }), { maxLength: 3 }),
      ready: fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { minLength: 4, maxLength: 4 }),
    })
    .map((x) => {
      const maxUnavailable = x.maxSurge === 0 && x.maxUnavailable === 0 ? 1 : x.maxUnavailable;
      const avail = (n: number, i: number) => Math.floor(n * x.ready[i]!);
      return {
        params: { want: x.want, maxSurge: x.maxSurge, maxUnavailable },
        fresh: rs(x.fresh, avail(x.fresh, 0)),
        old: x.old.map((n, i) => rs(n, avail(n, i + 1))),
      };
    });

  it("never asks for more pods than replicas + maxSurge (when it was within them), nor the new one past replicas", () => {
    fc.assert(
      fc.property(arb, ({ params, fresh, old }) => {
        const before = fresh.replicas + old.reduce((a, o) => a + o.replicas, 0);
        const after = rollingStep(params, fresh, old);
        const total = after.fresh + after.old.reduce((a, b) => a + b, 0);
        if (before <= params.want + params.maxSurge)
          expect(total).toBeLessThanOrEqual(params.want + params.maxSurge);
        expect(after.fresh).toBeLessThanOrEqual(Math.max(params.want, 0));
        for (const [i, n] of after.old.entries()) expect(n).toBeLessThanOrEqual(old[i]!.replicas);
      }),
    );
  });

  it("never takes availability below replicas − maxUnavailable (or below what there was)", () => {
    fc.assert(
      fc.property(arb, ({ params, fresh, old }) => {
        const after = rollingStep(params, fresh, old);
        // Scaling down removes unavailable pods first, so what stays available is bounded below.
        const available =
          fresh.available + old.reduce((a, o, i) => a + Math.min(o.available, after.old[i]!), 0);
        const before = fresh.available + old.reduce((a, o) => a + o.available, 0);
        expect(available).toBeGreaterThanOrEqual(Math.min(before, params.want - params.maxUnavailable));
      }),
    );
  });

  it("finishes: stepping while every asked pod becomes available ends with replicas new pods and no old ones", () => {
    fc.assert(
      fc.property(arb, ({ params, old }) => {
        let fresh = rs(0);
        let olds = old.map((o) => rs(o.replicas));
        for (let i = 0; i < 50; i++) {
          const next = rollingStep(params, fresh, olds);
          fresh = rs(next.fresh);
          olds = next.old.map((n) => rs(n));
        }
        expect(fresh.replicas).toBe(params.want);
        expect(olds.every((o) => o.replicas === 0)).toBe(true);
      }),
    );
  });
});
