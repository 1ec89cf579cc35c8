import { proportionalPollDelay } from "@cairn/events";
import { describe, expect, it } from "vitest";
import { FIRST_BOOT_POLL_MS } from "./reactor.ts";

// The reactor's polls of a booting instance on AWS: `proportionalPollDelay` with the first
// look at FIRST_BOOT_POLL_MS, then within [pollMs, maxPollMs] (defaults 1 s and 15 s).
const boot = { firstMs: FIRST_BOOT_POLL_MS, minMs: 1_000, maxMs: 15_000 };

describe("when a launched instance is looked at again", () => {
  it("not before the first look: no instance runs sooner", () => {
    expect(proportionalPollDelay(0, boot)).toBe(10_000);
    expect(proportionalPollDelay(4_000, boot)).toBe(6_000);
  });
  it("then every 5% of the time waited, within [pollMs, maxPollMs]", () => {
    expect(proportionalPollDelay(10_000, boot)).toBe(1_000);
    expect(proportionalPollDelay(40_000, boot)).toBe(2_000);
    expect(proportionalPollDelay(3_600_000, { ...boot, firstMs: 0 })).toBe(15_000);
  });
});
