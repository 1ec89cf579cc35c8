import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { Placement } from "../ports.ts";
import { nextPlacement, type PlacementChoices, placementKey, placementOrder } from "./placement.ts";

const choices: fc.Arbitrary<PlacementChoices> = fc.record({
  instanceTypes: fc.array(fc.constantFrom("t3.large", "t3a.large", "m5.large", "m6i.large", "c5.xlarge"), {
    minLength: 1,
    maxLength: 5,
  }),
  availabilityZones: fc.array(fc.constantFrom("eu-west-1a", "eu-west-1b", "eu-west-1c"), { maxLength: 3 }),
  capacityType: fc.constantFrom("spot" as const, "on-demand" as const),
  fallbackToOnDemand: fc.boolean(),
});

/** Some of a pool's combinations (and some from elsewhere) that already failed. */
const withFailures = choices.chain((c) =>
  fc.tuple(
    fc.constant(c),
    fc.subarray(placementOrder(c)),
    fc.array(
      fc.record({
        instanceType: fc.constantFrom("t3.large", "x1.32xlarge"),
        availabilityZone: fc.constantFrom(undefined, "eu-west-1a", "us-east-1a"),
        capacityType: fc.constantFrom("spot" as const, "on-demand" as const),
      }),
      { maxLength: 3 },
    ),
  ),
);

describe("nextPlacement", () => {
  it("never returns a combination that failed", () => {
    fc.assert(
      fc.property(withFailures, ([c, failed, foreign]) => {
        const all = [...failed, ...foreign];
        const next = nextPlacement(c, all);
        if (next) expect(all.map(placementKey)).not.toContain(placementKey(next));
      }),
    );
  });

  it("tries every combination exactly once, then is exhausted (always terminates)", () => {
    fc.assert(
      fc.property(choices, (c) => {
        const failed: Placement[] = [];
        const total = placementOrder(c).length;
        for (let step = 0; step <= total; step++) {
          const next = nextPlacement(c, failed);
          if (!next) break;
          failed.push(next);
        }
        expect(nextPlacement(c, failed)).toBeUndefined();
        const keys = failed.map(placementKey);
        expect(new Set(keys).size).toBe(keys.length);
        expect(new Set(keys)).toEqual(new Set(placementOrder(c).map(placementKey)));
      }),
    );
  });

  it("on-demand only after every spot combination, and only when the pool allows it", () => {
    fc.assert(
      fc.property(withFailures, ([c, failed]) => {
        const next = nextPlacement(c, failed);
        if (!next) return;
        if (c.capacityType === "on-demand") expect(next.capacityType).toBe("on-demand");
        if (c.capacityType === "spot" && !c.fallbackToOnDemand) expect(next.capacityType).toBe("spot");
        if (next.capacityType === "on-demand" && c.capacityType === "spot") {
          const spots = placementOrder(c).filter((p) => p.capacityType === "spot");
          const failedKeys = new Set(failed.map(placementKey));
          expect(spots.every((p) => failedKeys.has(placementKey(p)))).toBe(true);
        }
      }),
    );
  });

  it("goes to the next type in the same zone, then the next zone, then on-demand", () => {
    const pool: PlacementChoices = {
      instanceTypes: ["t3.large", "t3a.large"],
      availabilityZones: ["eu-west-1a", "eu-west-1b"],
      capacityType: "spot",
      fallbackToOnDemand: true,
    };
    const order: string[] = [];
    const failed: Placement[] = [];
    for (let p = nextPlacement(pool, failed); p; p = nextPlacement(pool, failed)) {
      order.push(placementKey(p));
      failed.push(p);
    }
    expect(order).toEqual([
      "spot/eu-west-1a/t3.large",
      "spot/eu-west-1a/t3a.large",
      "spot/eu-west-1b/t3.large",
      "spot/eu-west-1b/t3a.large",
      "on-demand/eu-west-1a/t3.large",
      "on-demand/eu-west-1a/t3a.large",
      "on-demand/eu-west-1b/t3.large",
      "on-demand/eu-west-1b/t3a.large",
    ]);
  });

  it("without zones, lets EC2 pick the zone once per type", () => {
    const pool: PlacementChoices = {
      instanceTypes: ["t3.large", "t3a.large"],
      availabilityZones: [],
      capacityType: "on-demand",
      fallbackToOnDemand: false,
    };
    expect(placementOrder(pool)).toEqual([
      { instanceType: "t3.large", availabilityZone: undefined, capacityType: "on-demand" },
      { instanceType: "t3a.large", availabilityZone: undefined, capacityType: "on-demand" },
    ]);
  });
});
