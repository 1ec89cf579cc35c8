import { describe, expect, it } from "vitest";
import { lostInstanceVerdict } from "./lost-instance-follower.ts";

describe("lostInstanceVerdict", () => {
  it("terminated, shutting down or unknown to EC2: the slot is relaunched", () => {
    for (const s of ["terminated", "shutting-down", undefined])
      expect(lostInstanceVerdict(s)).toBe("replace");
  });
  it("stopped behind Cairn's back: reported, not replaced (its disk is still there)", () => {
    for (const s of ["stopped", "stopping"]) expect(lostInstanceVerdict(s)).toBe("report");
  });
  it("running or pending: not lost", () => {
    for (const s of ["running", "pending"]) expect(lostInstanceVerdict(s)).toBe("alive");
  });
});
