import { validate, version } from "uuid";
import { describe, expect, it } from "vitest";
import { newId } from "./ids.ts";

describe("newId", () => {
  it("makes RFC 9562 version-7 UUIDs, all different, in the order they were made", () => {
    // More than one pool of random bytes (256 ids) and, at this speed, many ids per millisecond.
    const ids = Array.from({ length: 5_000 }, () => newId());
    for (const id of ids.slice(0, 300)) {
      expect(validate(id)).toBe(true);
      expect(version(id)).toBe(7);
    }
    expect(new Set(ids).size).toBe(ids.length);
    expect([...ids].sort()).toEqual(ids);
  });

  it("carries the time it was made in its first 48 bits", () => {
    const before = Date.now();
    const id = newId();
    const ms = Number.parseInt(id.replace(/-/g, "").slice(0, 12), 16);
    expect(ms).toBeGreaterThanOrEqual(before);
    expect(ms).toBeLessThanOrEqual(Date.now() + 1);
  });
});
