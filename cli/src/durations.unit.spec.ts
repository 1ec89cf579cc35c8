import { describe, expect, it } from "vitest";
import { age, humanDuration, parseDuration } from "./durations.ts";

describe("durations", () => {
  it("parses seconds and durations with units", () => {
    expect(parseDuration("90")).toBe(90);
    expect(parseDuration("90s")).toBe(90);
    expect(parseDuration("5m")).toBe(300);
    expect(parseDuration("1h30m")).toBe(5400);
    expect(parseDuration("2d")).toBe(172_800);
    expect(parseDuration("1.5m")).toBe(90);
  });

  it("refuses what is not a positive duration, naming the flag", () => {
    for (const bad of ["", "0", "-5", "5x", "m", "5 m", "soon"])
      expect(() => parseDuration(bad, "--timeout"), bad).toThrow(/invalid --timeout/);
  });

  it("shows ages as kubectl does", () => {
    expect(humanDuration(42_000)).toBe("42s");
    expect(humanDuration(119_000)).toBe("119s");
    expect(humanDuration(330_000)).toBe("5m30s");
    expect(humanDuration(600_000)).toBe("10m");
    expect(humanDuration(4 * 3_600_000 + 5 * 60_000)).toBe("4h5m");
    expect(humanDuration(20 * 3_600_000)).toBe("20h");
    expect(humanDuration(3 * 86_400_000 + 2 * 3_600_000)).toBe("3d2h");
    expect(humanDuration(100 * 86_400_000)).toBe("100d");
    expect(humanDuration(800 * 86_400_000)).toBe("2y");
    expect(humanDuration(-5)).toBe("0s");
  });

  it("ages an ISO time against now", () => {
    const now = new Date("2025-01-31T12:00:00Z");
    expect(age("2025-01-31T11:59:00Z", now)).toBe("60s");
    expect(age(null, now)).toBe("<none>");
  });
});
