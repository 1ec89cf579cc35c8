import { describe, expect, it } from "vitest";
import { orderedAnnouncements } from "./projection.ts";

describe("orderedAnnouncements", () => {
  it("runs a small batch's announcement at once, and a busy one's after the turn", async () => {
    const a = orderedAnnouncements();
    const seen: string[] = [];
    a.inOrder(true, () => seen.push("small"));
    expect(seen).toEqual(["small"]);
    a.inOrder(false, () => seen.push("busy"));
    expect(seen).toEqual(["small"]);
    await new Promise((r) => setImmediate(r));
    expect(seen).toEqual(["small", "busy"]);
  });

  it("never lets a small batch overtake a busy one deferred before it", async () => {
    const a = orderedAnnouncements();
    const seen: number[] = [];
    a.inOrder(false, () => seen.push(1));
    a.inOrder(true, () => seen.push(2));
    a.inOrder(false, () => seen.push(3));
    expect(seen).toEqual([]);
    await new Promise((r) => setImmediate(r));
    expect(seen).toEqual([1, 2, 3]);
    // Once none is deferred, at once again.
    a.inOrder(true, () => seen.push(4));
    expect(seen).toEqual([1, 2, 3, 4]);
  });
});
