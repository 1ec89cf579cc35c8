import { describe, expect, it } from "vitest";
import { waitDelay } from "./reactor.ts";

describe("waitDelay: when a running step is looked at again", () => {
  it("not before its first look: nothing can be seen earlier", () => {
    expect(waitDelay(0, 48_000, 1_000, 15_000)).toBe(48_000);
    expect(waitDelay(40_000, 48_000, 1_000, 15_000)).toBe(8_000);
  });
  it("then every 5% of the time waited, so a result is seen at most ~5% late", () => {
    expect(waitDelay(60_000, 48_000, 1_000, 15_000)).toBe(3_000);
    expect(waitDelay(100_000, 0, 1_000, 15_000)).toBe(5_000);
  });
  it("never more often than pollMs, never less often than maxPollMs", () => {
    expect(waitDelay(2_000, 0, 1_000, 15_000)).toBe(1_000);
    expect(waitDelay(3_600_000, 0, 1_000, 15_000)).toBe(15_000);
  });
});
