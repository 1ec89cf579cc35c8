import { describe, expect, it } from "vitest";
import { GroupCommit } from "./group-commit.ts";

/** A group commit whose flushes are recorded, each taking a few ms (an append). */
const recorder = (options?: { gather?: "turn" }) => {
  const flushes: number[][] = [];
  const g = new GroupCommit<number, number>(async (_key, items) => {
    flushes.push(items);
    await new Promise((r) => setTimeout(r, 5));
    return items.length;
  }, options);
  return { g, flushes };
};

describe("GroupCommit", () => {
  it("by default flushes the first item at once, and what arrives meanwhile together in the next", async () => {
    const { g, flushes } = recorder();
    await Promise.all([1, 2, 3, 4].map((i) => g.add("c", i)));
    expect(flushes).toEqual([[1], [2, 3, 4]]);
  });

  it("gather 'turn': the items added in one turn (a commit's reactions, side by side) go out in one flush", async () => {
    const { g, flushes } = recorder({ gather: "turn" });
    // Added in one turn, some after a few microtask hops (a cached read before the record).
    const outcomes = await Promise.all(
      [1, 2, 3, 4].map(async (i) => {
        for (let hop = 0; hop < i; hop++) await Promise.resolve();
        return await g.add("c", i);
      }),
    );
    expect(flushes).toEqual([[1, 2, 3, 4]]);
    // Every caller waits for the flush that carried its item.
    expect(outcomes).toEqual([4, 4, 4, 4]);
    // Keys stay apart; a later item after an idle key is a new flush.
    await Promise.all([g.add("c", 5), g.add("d", 6)]);
    expect(flushes).toEqual([[1, 2, 3, 4], [5], [6]]);
  });

  it("gather 'turn': a failed flush fails every caller it carried", async () => {
    const g = new GroupCommit<number, number>(
      async () => {
        throw new Error("append failed");
      },
      { gather: "turn" },
    );
    const results = await Promise.allSettled([g.add("c", 1), g.add("c", 2)]);
    expect(results.map((r) => r.status)).toEqual(["rejected", "rejected"]);
  });
});
