/**
 * The compact stored form of a cluster's conditions: what `expandConditions` reads back
 * is exactly what `compactConditions` was given, for any conditions; and the form is
 * smaller where the rows spend their bytes (initial conditions, repeated times).
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  CLUSTER_CONDITION_TYPES,
  type ClusterCondition,
  initialConditions,
} from "../projections/cluster-conditions.ts";
import { foldCluster } from "../projections/clusters.ts";
import { anEnvelope, cluster, requested } from "../testing/fixtures.ts";
import { compactConditions, expandConditions } from "./stored-conditions.ts";

const T0 = "2026-01-01T00:00:00.000Z";
const times = fc.constantFrom(T0, "2026-01-01T00:00:01.000Z", "2026-01-02T10:00:00.123Z");
const initial = initialConditions("");
/** A condition: often one of the initial ones (what the compact form shortens), else anything. */
const aCondition: fc.Arbitrary<ClusterCondition> = fc.oneof(
  fc
    .record({ i: fc.constantFrom(...initial), t: times })
    .map(({ i, t }) => ({ ...i, lastTransitionTime: t })),
  fc.record({
    type: fc.constantFrom(...CLUSTER_CONDITION_TYPES),
    status: fc.constantFrom("True", "False", "Unknown") as fc.Arbitrary<ClusterCondition["status"]>,
    // Strings a reason or message may be, the initial ones and JSON-looking ones included.
    reason: fc.oneof(fc.string(), fc.constantFrom(...initial.map((c) => c.reason), "null", "[]")),
    message: fc.oneof(fc.string(), fc.constantFrom(...initial.map((c) => c.message))),
    lastTransitionTime: times,
  }),
);

describe("the stored conditions", () => {
  it("read back equal to what was written, for any conditions (through JSON, as Postgres keeps them)", () => {
    fc.assert(
      fc.property(fc.array(aCondition, { maxLength: 9 }), (conditions) => {
        const stored = JSON.parse(JSON.stringify(compactConditions(conditions)));
        expect(expandConditions(stored)).toEqual(conditions);
      }),
      { numRuns: 500 },
    );
  }, 30_000);

  it("shorten initial conditions and repeated times; a fresh cluster's are a seventh of their objects", () => {
    const conditions = initialConditions(T0);
    expect(compactConditions(conditions)).toEqual([
      ["Ready", T0],
      ["Validated"],
      ["Provisioned"],
      ["Installed"],
      ["Degraded"],
      ["Failed"],
      ["Deleting"],
    ]);
    const row = foldCluster([
      { event: anEnvelope(cluster("s1"), 1, requested("s1"), { time: T0 }), sequence: 1 },
    ]);
    const objects = JSON.stringify(row!.conditions).length;
    expect(JSON.stringify(compactConditions(row!.conditions)).length).toBeLessThan(objects / 7);
  });

  it("read the older form (condition objects) as it is, and refuse what is neither", () => {
    const old = initialConditions(T0);
    expect(expandConditions(JSON.parse(JSON.stringify(old)))).toEqual(old);
    expect(() => expandConditions({ Ready: "True" })).toThrow(/not an array/);
    expect(() => expandConditions([["Failed"]])).toThrow(/no time/);
  });
});
