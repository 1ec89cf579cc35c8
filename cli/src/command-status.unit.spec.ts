import { describe, expect, it } from "vitest";
import { lookCounts, viewShows } from "./command-status.ts";

const answered = (sequence?: number) => ({
  commandId: "c",
  status: "accepted" as const,
  ...(sequence !== undefined ? { sequence } : {}),
});

describe("a view counts for a command only at or past the command's commit", () => {
  it("compares the view's sequence with the command's", () => {
    expect(viewShows({ sequence: 41 }, answered(42))).toBe(false);
    expect(viewShows({ sequence: 42 }, answered(42))).toBe(true);
    expect(viewShows({ sequence: 43 }, answered(42))).toBe(true);
  });

  it("nothing to show: no view, or the command not answered yet", () => {
    expect(viewShows(undefined, answered(42))).toBe(false);
    expect(viewShows({ sequence: 50 }, undefined)).toBe(false);
  });

  it("an API without sequences (older than this contract) cannot be told apart: the view counts", () => {
    expect(viewShows({}, answered(42))).toBe(true);
    expect(viewShows({ sequence: 1 }, answered())).toBe(true);
  });

  it("an unanswered command counts only after its no-op grace, an answered one only by sequence", () => {
    expect(lookCounts({ sequence: 5 }, undefined, false)).toBe(false);
    expect(lookCounts({ sequence: 5 }, undefined, true)).toBe(true);
    expect(lookCounts({ sequence: 5 }, answered(6), true)).toBe(false);
    expect(lookCounts({ sequence: 6 }, answered(6), false)).toBe(true);
  });
});
