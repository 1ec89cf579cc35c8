import { describe, expect, it } from "vitest";
import { WaitingCommits } from "./reactor.ts";

const commit = (n: number, tag = "c") => ({
  commitId: `${tag}${n}`,
  events: Array.from({ length: n }, (_, i) => i),
});

describe("WaitingCommits", () => {
  it("hands a kept commit back once, only for the same message id and size", () => {
    const w = new WaitingCommits<number>();
    const c = commit(3);
    w.keep(7, "m-7", 100, c);
    expect(w.take(7, "m-7", 100)).toBe(c);
    expect(w.take(7, "m-7", 100)).toBeUndefined();
    w.keep(7, "m-7", 100, c);
    // A stream made anew: the same sequence, another message.
    expect(w.take(7, "m-other", 100)).toBeUndefined();
    w.keep(7, "m-7", 100, c);
    expect(w.take(7, "m-7", 101)).toBeUndefined();
    expect(w.size).toBe(0);
  });

  it("keeps at most maxEvents events, the oldest commits going first", () => {
    const w = new WaitingCommits<number>(10);
    w.keep(1, "a", 1, commit(4, "a"));
    w.keep(2, "b", 1, commit(4, "b"));
    w.keep(3, "c", 1, commit(4, "c"));
    expect(w.take(1, "a", 1)).toBeUndefined();
    expect(w.take(2, "b", 1)?.commitId).toBe("b4");
    expect(w.take(3, "c", 1)?.commitId).toBe("c4");
    // One larger than the bound is not kept at all.
    w.keep(4, "d", 1, commit(11, "d"));
    expect(w.size).toBe(0);
  });
});
