import { describe, expect, it } from "vitest";
import { RetryLaterError, settlementOf } from "./errors.ts";

describe("RetryLaterError", () => {
  it("is a wait with its delay and reason, and captures no stack (one per booting instance per look)", () => {
    const limit = Error.stackTraceLimit;
    const err = new RetryLaterError(12.6, "i-0123 is not running yet");
    expect(err.delayMs).toBe(13);
    expect(err.message).toBe("i-0123 is not running yet");
    expect(err.name).toBe("RetryLaterError");
    expect(err).toBeInstanceOf(Error);
    expect(settlementOf(err)).toEqual({ kind: "wait", delayMs: 13, reason: "i-0123 is not running yet" });
    // No frame below the header line: the stack was not captured.
    expect(err.stack?.split("\n").filter((l) => l.trim().startsWith("at "))).toEqual([]);
    // Other errors still get theirs.
    expect(Error.stackTraceLimit).toBe(limit);
    expect(new Error("x").stack).toMatch(/\n\s+at /);
  });
});
