import { headers as natsHeaders } from "@nats-io/transport-node";
import { describe, expect, it } from "vitest";
import { SchemaError } from "./catalogue/define.ts";
import { OwnCommits, ownCommits } from "./own-commits.ts";
import { readCommit } from "./reactor.ts";
import { Headers } from "./subjects.ts";

describe("OwnCommits", () => {
  it("knows a commit only by its id and its exact text", () => {
    const own = new OwnCommits(1_000);
    own.remember("c1", '{"a":1}');
    expect(own.wrote("c1", '{"a":1}')).toBe(true);
    expect(own.wrote("c1", '{"a":2}')).toBe(false);
    expect(own.wrote("c2", '{"a":1}')).toBe(false);
    expect(own.wrote(undefined, '{"a":1}')).toBe(false);
    expect(own.stats).toEqual({ hits: 1, misses: 1 });
  });
  it("keeps the latest text of an id (a commit retried after a conflict)", () => {
    const own = new OwnCommits(1_000);
    own.remember("c1", "first");
    own.remember("c1", "second");
    expect(own.wrote("c1", "first")).toBe(false);
    expect(own.wrote("c1", "second")).toBe(true);
    expect(own.chars).toBe("second".length);
  });
  it("forgets the oldest texts past its bound, and never holds one larger than it", () => {
    const own = new OwnCommits(10);
    own.remember("c1", "aaaa");
    own.remember("c2", "bbbb");
    own.remember("c3", "cccc");
    expect(own.wrote("c1", "aaaa")).toBe(false);
    expect(own.wrote("c2", "bbbb")).toBe(true);
    expect(own.wrote("c3", "cccc")).toBe(true);
    own.remember("big", "x".repeat(11));
    expect(own.wrote("big", "x".repeat(11))).toBe(false);
    expect(own.chars).toBeLessThanOrEqual(10);
  });
});

describe("OwnCommits' age bound", () => {
  it("forgets a text older than maxAgeMs, at the next remember or forgetOld, well under its character bound", () => {
    let now = 0;
    const own = new OwnCommits(1_000_000, { maxAgeMs: 60_000, now: () => now });
    own.remember("c1", "aaaa");
    now = 30_000;
    own.remember("c2", "bbbb");
    now = 61_000;
    own.remember("c3", "cccc");
    expect(own.wrote("c1", "aaaa")).toBe(false);
    expect(own.wrote("c2", "bbbb")).toBe(true);
    now = 200_000;
    own.forgetOld();
    expect(own.chars).toBe(0);
    expect(own.wrote("c3", "cccc")).toBe(false);
  });
});

describe("readCommit and this process's own commits", () => {
  // An envelope whose data its schema refuses (instances-ready needs a count): what only a
  // data check catches, so the two paths can be told apart.
  const body = (commitId: string) =>
    JSON.stringify({
      commitId,
      aggregate: { type: "cluster", id: "own-1" },
      events: [
        {
          id: "0193a0c2-0000-7000-8000-0000000000a1",
          type: "cluster.instances-ready",
          version: 1,
          aggregate: { type: "cluster", id: "own-1" },
          position: 1,
          time: "2026-12-04T08:00:00.000Z",
          data: { count: "three" },
          meta: {
            commandId: "0193a0c2-0000-7000-8000-0000000000a2",
            causationId: "0193a0c2-0000-7000-8000-0000000000a2",
            correlationId: "0193a0c2-0000-7000-8000-0000000000a2",
            actor: "test",
          },
        },
      ],
    });
  const msg = (commitId: string, text: string) => {
    const h = natsHeaders();
    h.set(Headers.msgId, commitId);
    return { subject: "evt.cluster.own-1", seq: 7, data: new TextEncoder().encode(text), headers: h };
  };

  it("checks every event's data of a commit it did not write", () => {
    const id = "own-commit-not-mine";
    expect(() => readCommit(msg(id, body(id)), "cluster")).toThrow(SchemaError);
  });
  it("takes the data of a commit it wrote, exactly as written, as checked when built", () => {
    const id = "own-commit-mine";
    ownCommits.remember(id, body(id));
    expect(readCommit(msg(id, body(id)), "cluster").events[0]?.data).toEqual({ count: "three" });
  });
  it("checks it again when the text differs in any character, or carries no id", () => {
    const id = "own-commit-changed";
    ownCommits.remember(id, body(id));
    expect(() => readCommit(msg(id, body(id).replace('"three"', '"thre3"')), "cluster")).toThrow(SchemaError);
    const { headers: _h, ...noHeaders } = msg(id, body(id));
    expect(() => readCommit(noHeaders, "cluster")).toThrow(SchemaError);
  });
});
