import { describe, expect, it } from "vitest";
import { bootPollDelay } from "./reactor.ts";

describe("bootPollDelay: when a launched instance is looked at again", () => {
  it("not before the first look: no instance runs sooner", () => {
    expect(bootPollDelay(0, 10_000, 1_000, 15_000)).toBe(10_000);
    expect(bootPollDelay(4_000, 10_000, 1_000, 15_000)).toBe(6_000);
  });
  it("then every 5% of the time waited, within [pollMs, maxPollMs]", () => {
    expect(bootPollDelay(10_000, 10_000, 1_000, 15_000)).toBe(1_000);
    expect(bootPollDelay(40_000, 10_000, 1_000, 15_000)).toBe(2_000);
    expect(bootPollDelay(3_600_000, 0, 1_000, 15_000)).toBe(15_000);
  });
});
