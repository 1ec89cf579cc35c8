import { allCommandDefinitions } from "@cairn/events";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { validOf } from "./zod-arbitrary.ts";

describe("validOf: arbitraries from the catalogue's command schemas", () => {
  it.each(allCommandDefinitions.map((d) => [d.type, d] as const))(
    "%s: every value generated parses",
    (_, def) => {
      const samples = fc.sample(validOf(def.schema), { numRuns: 40, seed: 7 });
      expect(samples).toHaveLength(40);
      for (const s of samples) expect(def.schema.safeParse(s).error?.issues).toBeUndefined();
    },
  );

  it("walks what the catalogue uses and refuses what it does not know", async () => {
    const { z } = await import("zod");
    expect(() => validOf(z.map(z.string(), z.string()))).toThrow(/zod kind map is not supported/);
  });
});
