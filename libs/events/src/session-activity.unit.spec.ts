import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { activityAt } from "./session-activity.ts";

const bytes = (s: string) => new TextEncoder().encode(s);
/** What the value means, read the slow way. */
const parsed = (s: string) => {
  try {
    const v = JSON.parse(s);
    return typeof v?.at === "number" && Number.isFinite(v.at) ? v.at : undefined;
  } catch {
    return undefined;
  }
};

describe("activityAt: the bucket value's `at`, read from its bytes", () => {
  it("reads every value as written here exactly as JSON.parse does", () => {
    fc.assert(
      fc.property(fc.nat({ max: Number.MAX_SAFE_INTEGER }), fc.nat(), (at, connections) => {
        expect(activityAt(bytes(JSON.stringify({ at, connections })))).toBe(at);
      }),
    );
  });

  it("leaves anything else to JSON.parse, and agrees with it", () => {
    for (const s of [
      '{"at":1.5,"connections":1}',
      '{"at":1e3}',
      '{"at":-5,"connections":1}',
      '{"at":17}',
      '{"at":,"connections":1}',
      '{"at":"1","connections":1}',
      '{"connections":1,"at":12}',
      '{"at": 12}',
      '{"at":1234567890123456789,"connections":1}',
      '{"at":12',
      "",
      "nope",
    ])
      expect(activityAt(bytes(s)), s).toBe(parsed(s));
    fc.assert(
      fc.property(fc.string(), (s) => {
        expect(activityAt(bytes(s))).toBe(parsed(s));
      }),
    );
  });
});
