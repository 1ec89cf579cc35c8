import { describe, expect, it } from "vitest";
import { type Change, ChangeFeed } from "./changes.ts";

const change = (id: string) => ({ resource: "clusters", id, sequence: 1, row: {} }) as unknown as Change;

describe("ChangeFeed", () => {
  it("fans out in order and stops after unsubscribe", () => {
    const feed = new ChangeFeed();
    const got: string[] = [];
    const off = feed.subscribe((c) => got.push(c.id));
    feed.publish([change("a"), change("b")]);
    off();
    feed.publish([change("c")]);
    expect(got).toEqual(["a", "b"]);
    expect(feed.listenerCount).toBe(0);
  });

  it("drops a listener that throws, reports it, and keeps serving the others", () => {
    const errors: unknown[] = [];
    const feed = new ChangeFeed((err) => errors.push(err));
    const got: string[] = [];
    feed.subscribe(() => {
      throw new Error("broken");
    });
    feed.subscribe((c) => got.push(c.id));
    feed.publish([change("a"), change("b")]);
    expect(got).toEqual(["a", "b"]);
    expect(errors).toHaveLength(1);
    expect(feed.listenerCount).toBe(1);
  });
});
