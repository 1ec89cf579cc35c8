import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { type PlacementInput, planPlacement, policyOf, targetSplit } from "./placement.ts";

const input = fc.record({
  total: fc.integer({ min: 0, max: 200 }),
  policy: fc.record({
    spotPercentage: fc.integer({ min: 0, max: 100 }),
    minOnDemand: fc.integer({ min: 0, max: 50 }),
  }),
  current: fc.record({ spot: fc.integer({ min: 0, max: 200 }), onDemand: fc.integer({ min: 0, max: 200 }) }),
  spotAvailable: fc.boolean(),
  lastChangeAt: fc.option(fc.integer({ min: 0, max: 1_000_000 }), { nil: undefined }),
  now: fc.integer({ min: 0, max: 2_000_000 }),
  cooldownMs: fc.integer({ min: 0, max: 600_000 }),
});
const floorOf = (i: PlacementInput) => Math.min(i.policy.minOnDemand, i.total);

describe("the target", () => {
  it("S = min(⌊T·P/100⌋, T − M)", () => {
    expect(targetSplit(10, { spotPercentage: 70, minOnDemand: 2 })).toEqual({ spot: 7, onDemand: 3 });
    expect(targetSplit(10, { spotPercentage: 90, minOnDemand: 3 })).toEqual({ spot: 7, onDemand: 3 });
    expect(targetSplit(5, { spotPercentage: 50, minOnDemand: 0 })).toEqual({ spot: 2, onDemand: 3 });
    expect(targetSplit(2, { spotPercentage: 100, minOnDemand: 5 })).toEqual({ spot: 0, onDemand: 2 });
    expect(targetSplit(10, { spotPercentage: 70, minOnDemand: 2 }, false)).toEqual({ spot: 0, onDemand: 10 });
  });
  it("reads the opt-in annotations; invalid values opt out", () => {
    expect(policyOf({ "cairn.dev/spot-percentage": "70", "cairn.dev/min-on-demand": "2" })).toEqual({
      spotPercentage: 70,
      minOnDemand: 2,
    });
    expect(policyOf({ "cairn.dev/spot-percentage": "70" })).toEqual({ spotPercentage: 70, minOnDemand: 0 });
    expect(policyOf({})).toBeUndefined();
    expect(policyOf({ "cairn.dev/spot-percentage": "170" })).toBeUndefined();
    expect(policyOf({ "cairn.dev/spot-percentage": "50", "cairn.dev/min-on-demand": "-1" })).toBeUndefined();
  });
});

describe("the plan (properties)", () => {
  it("never asks for on-demand below the floor min(M, T) once it has acted", () => {
    fc.assert(
      fc.property(input, (i) => {
        const step = planPlacement(i);
        // A step never lowers on-demand below the floor; from below the floor it raises it.
        if (step.kind === "change") expect(step.split.onDemand).toBeGreaterThanOrEqual(floorOf(i));
        if (step.split.onDemand < i.current.onDemand)
          expect(step.split.onDemand).toBeGreaterThanOrEqual(floorOf(i));
      }),
    );
  });
  it("scales up on-demand first: spot grows only when on-demand is at its target already", () => {
    fc.assert(
      fc.property(input, (i) => {
        const step = planPlacement(i);
        if (step.split.spot > i.current.spot)
          expect(i.current.onDemand).toBeGreaterThanOrEqual(
            targetSplit(i.total, i.policy, i.spotAvailable).onDemand,
          );
      }),
    );
  });
  it("scales down spot first: on-demand shrinks only once spot is at its target", () => {
    fc.assert(
      fc.property(input, (i) => {
        const step = planPlacement(i);
        if (step.split.onDemand < i.current.onDemand)
          expect(i.current.spot).toBe(targetSplit(i.total, i.policy, i.spotAvailable).spot);
      }),
    );
  });
  it("one side at a time, and moves towards spot only after the cooldown", () => {
    fc.assert(
      fc.property(input, (i) => {
        const step = planPlacement(i);
        const changed = [step.split.spot !== i.current.spot, step.split.onDemand !== i.current.onDemand];
        expect(changed.filter(Boolean).length).toBeLessThanOrEqual(1);
        const towardSpot = step.split.spot > i.current.spot || step.split.onDemand < i.current.onDemand;
        if (towardSpot && i.lastChangeAt !== undefined)
          expect(i.now).toBeGreaterThanOrEqual(i.lastChangeAt + i.cooldownMs);
      }),
    );
  });
  it("reaches the target in at most four steps when the cooldown is over", () => {
    fc.assert(
      fc.property(input, (i) => {
        let current = i.current;
        for (let n = 0; n < 4; n++) current = planPlacement({ ...i, current, lastChangeAt: undefined }).split;
        expect(current).toEqual(targetSplit(i.total, i.policy, i.spotAvailable));
      }),
    );
  });
});

describe("spot capacity vanishes", () => {
  it("everything goes on-demand at once (no cooldown), then back to the split after the cooldown", () => {
    const base = {
      total: 10,
      policy: { spotPercentage: 70, minOnDemand: 2 },
      cooldownMs: 60_000,
    };
    const lost = planPlacement({
      ...base,
      current: { spot: 7, onDemand: 3 },
      spotAvailable: false,
      lastChangeAt: 0,
      now: 1,
    });
    expect(lost).toMatchObject({ kind: "change", split: { spot: 7, onDemand: 10 } });
    const shed = planPlacement({
      ...base,
      current: lost.split,
      spotAvailable: false,
      lastChangeAt: 1,
      now: 2,
    });
    expect(shed).toMatchObject({ kind: "change", split: { spot: 0, onDemand: 10 } });
    const back = { ...base, current: shed.split, spotAvailable: true, lastChangeAt: 2 };
    expect(planPlacement({ ...back, now: 30_000 })).toMatchObject({ kind: "wait" });
    expect(planPlacement({ ...back, now: 60_002 })).toMatchObject({
      kind: "change",
      split: { spot: 7, onDemand: 10 },
    });
  });
});
