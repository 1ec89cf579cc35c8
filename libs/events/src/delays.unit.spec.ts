import { describe, expect, it } from "vitest";
import { exponentialDelay, fullJitterBackoff, proportionalPollDelay } from "./delays.ts";

describe("fullJitterBackoff: the delay before the n-th retry of a failure", () => {
  it("is random in [0, min(cap, base·2^(n-1))] (the JSDoc's example: 3rd retry, base 500 → [0, 2000])", () => {
    expect(fullJitterBackoff(500, 30_000, () => 0)(3)).toBe(0);
    expect(fullJitterBackoff(500, 30_000, () => 0.5)(3)).toBe(1_000);
    expect(fullJitterBackoff(500, 30_000, () => 0.9999)(3)).toBe(1_999);
  });
  it("never passes the cap, however many failures", () => {
    expect(fullJitterBackoff(500, 30_000, () => 0.9999)(40)).toBe(29_997);
  });
});

describe("exponentialDelay: the n-th look at work that is still waiting", () => {
  it("starts at base and doubles (the JSDoc's examples)", () => {
    expect(exponentialDelay(1, { baseMs: 200, capMs: 10_000 })).toBe(200);
    expect(exponentialDelay(4, { baseMs: 200, capMs: 10_000 })).toBe(1_600);
  });
  it("stops at the cap", () => {
    expect(exponentialDelay(7, { baseMs: 200, capMs: 10_000 })).toBe(10_000);
    expect(exponentialDelay(1_000, { baseMs: 200, capMs: 10_000 })).toBe(10_000);
  });
  it("treats a first delivery counted as 0 like the first", () => {
    expect(exponentialDelay(0, { baseMs: 200, capMs: 10_000 })).toBe(200);
  });
});

describe("proportionalPollDelay: when to look again at something that takes long", () => {
  const boot = { firstMs: 10_000, minMs: 1_000, maxMs: 15_000 };
  it("not before its first look: nothing can be seen earlier (the JSDoc's first example)", () => {
    expect(proportionalPollDelay(2_000, boot)).toBe(8_000);
    expect(proportionalPollDelay(0, { firstMs: 48_000, minMs: 1_000, maxMs: 15_000 })).toBe(48_000);
  });
  it("then every 5% of the time waited, so the end is seen at most ~5% late (the second example)", () => {
    expect(proportionalPollDelay(100_000, boot)).toBe(5_000);
    expect(proportionalPollDelay(60_000, { firstMs: 48_000, minMs: 1_000, maxMs: 15_000 })).toBe(3_000);
  });
  it("never more often than minMs, never less often than maxMs", () => {
    expect(proportionalPollDelay(2_000, { firstMs: 0, minMs: 1_000, maxMs: 15_000 })).toBe(1_000);
    expect(proportionalPollDelay(3_600_000, boot)).toBe(15_000);
  });
});
