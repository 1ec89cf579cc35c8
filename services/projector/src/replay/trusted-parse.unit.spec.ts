import { catalogue } from "@cairn/events";
import { describe, expect, it } from "vitest";
import { everyEventAsAppended } from "../testing/every-event.ts";
import { aTraceparent } from "../testing/fixtures.ts";

/**
 * The replay reads the log with `parseCommitTrusted` (no per-event zod parse). It must
 * build exactly what the live projection's `parseCommit` builds from every commit a
 * writer could have appended, or the rebuild would differ from live.
 */
const commits = everyEventAsAppended((i) => ({
  commandId: `cmd-${i}`,
  ...(i % 2 === 0 ? { traceparent: aTraceparent() } : {}),
}));

describe("parseCommitTrusted (the replay's parse)", () => {
  it("yields what parseCommit yields on every event of the fixtures, as read off the wire", () => {
    const types = new Set(commits.flatMap((c) => c.events.map((e) => e.type)));
    expect(types.size).toBeGreaterThanOrEqual(25);
    for (const c of commits) {
      const wire = JSON.stringify(c);
      expect(catalogue.parseCommitTrusted(JSON.parse(wire))).toEqual(catalogue.parseCommit(JSON.parse(wire)));
    }
  });
  it("refuses what parseCommit refuses for its type, version or envelope", () => {
    const c = commits[0]!;
    const withEvent = (over: Record<string, unknown>) => ({ ...c, events: [{ ...c.events[0]!, ...over }] });
    for (const bad of [
      withEvent({ type: "cluster.exploded" }),
      withEvent({ version: 99 }),
      withEvent({ position: 0 }),
      withEvent({ meta: {} }),
      withEvent({ aggregate: { type: "cluster", id: "other" } }),
      { ...c, events: [] },
      { events: c.events },
      "not json at all",
    ]) {
      expect(() => catalogue.parseCommit(bad)).toThrow();
      expect(() => catalogue.parseCommitTrusted(bad)).toThrow();
    }
  });
});
