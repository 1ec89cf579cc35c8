import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  CAIRN_TAGS,
  CLIENT_TOKEN_MAX_LENGTH,
  cairnTags,
  launchBatchToken,
  launchToken,
  ownerOf,
} from "./ports.ts";

const clusterId = fc.string({ minLength: 1, maxLength: 128, unit: "binary" });
const ordinal = fc.nat({ max: 10_000 });

describe("launchToken", () => {
  it("is deterministic: the same slot attempt after a crash is the same launch", () => {
    fc.assert(
      fc.property(clusterId, ordinal, ordinal, (c, s, a) => {
        expect(launchToken(c, s, a)).toBe(launchToken(c, s, a));
      }),
    );
    // Pinned: changing the derivation would relaunch every slot whose launch is in flight.
    expect(launchToken("demo-1", 0, 0)).toBe("cairn-28b56e5a96274314fbed8551edf9aaff483e2b47");
  });

  it("is a valid EC2 ClientToken: at most 64 printable ASCII characters", () => {
    fc.assert(
      fc.property(clusterId, fc.nat(), fc.nat(), (c, s, a) => {
        const t = launchToken(c, s, a);
        expect(t.length).toBeLessThanOrEqual(CLIENT_TOKEN_MAX_LENGTH);
        expect(t).toMatch(/^[\x20-\x7e]+$/);
      }),
    );
  });

  it("is distinct per (cluster, slot, attempt)", () => {
    fc.assert(
      fc.property(fc.tuple(clusterId, ordinal, ordinal), fc.tuple(clusterId, ordinal, ordinal), (x, y) => {
        fc.pre(x[0] !== y[0] || x[1] !== y[1] || x[2] !== y[2]);
        expect(launchToken(...x)).not.toBe(launchToken(...y));
      }),
    );
    // Ambiguous concatenations stay apart.
    const seen = new Set([
      launchToken("a", 1, 23),
      launchToken("a", 12, 3),
      launchToken("a1", 2, 3),
      launchToken("a-1", 2, 3),
      launchToken("a", 1, 2),
      launchToken("a", 2, 1),
    ]);
    expect(seen.size).toBe(6);
  });

  it("refuses what is not a slot attempt", () => {
    expect(() => launchToken("", 0, 0)).toThrow(RangeError);
    expect(() => launchToken("demo", -1, 0)).toThrow(RangeError);
    expect(() => launchToken("demo", 0, 1.5)).toThrow(RangeError);
  });
});

describe("cairnTags / ownerOf", () => {
  const req = { clusterId: "demo-1", pool: "workers", slot: 3, role: "agent" as const, attempt: 2 };

  it("puts every Cairn tag on, Name included, after the user's sorted tags", () => {
    const tags = cairnTags({ ...req, tags: { team: "data", cost: "lab" } });
    expect(tags).toEqual([
      ["cost", "lab"],
      ["team", "data"],
      [CAIRN_TAGS.cluster, "demo-1"],
      [CAIRN_TAGS.pool, "workers"],
      [CAIRN_TAGS.slot, "3"],
      [CAIRN_TAGS.role, "agent"],
      [CAIRN_TAGS.attempt, "2"],
      [CAIRN_TAGS.name, "demo-1-workers-3"],
    ]);
  });

  it("a user tag cannot pose as Cairn's", () => {
    const tags = new Map(
      cairnTags({ ...req, tags: { "cairn:cluster": "other", "cairn:extra": "x", Name: "mine" } }),
    );
    expect(tags.get(CAIRN_TAGS.cluster)).toBe("demo-1");
    expect(tags.get(CAIRN_TAGS.name)).toBe("demo-1-workers-3");
    expect(tags.has("cairn:extra")).toBe(false);
  });

  it("reads the owner back from the tags", () => {
    expect(ownerOf(Object.fromEntries(cairnTags(req)))).toEqual(req);
  });

  it("a batch's instances share their tags: each is the first slot plus its AmiLaunchIndex", () => {
    const tags = Object.fromEntries(cairnTags({ ...req, slot: 1000, count: 100 }));
    expect(tags[CAIRN_TAGS.name]).toBe("demo-1-workers-1000-1099");
    expect(ownerOf(tags, 0)?.slot).toBe(1000);
    expect(ownerOf(tags, 99)).toEqual({ ...req, slot: 1099 });
    expect(ownerOf(tags, -1)).toBeUndefined();
    expect(ownerOf(tags, 1.5)).toBeUndefined();
  });

  it("has no owner when a tag is missing or malformed", () => {
    const tags = Object.fromEntries(cairnTags(req));
    expect(ownerOf({ ...tags, [CAIRN_TAGS.slot]: "x" })).toBeUndefined();
    expect(ownerOf({ ...tags, [CAIRN_TAGS.role]: "worker" })).toBeUndefined();
    const { [CAIRN_TAGS.attempt]: _, ...withoutAttempt } = tags;
    expect(ownerOf(withoutAttempt)).toBeUndefined();
  });
});

describe("launchBatchToken", () => {
  it("is a slot's own token for a batch of one (a launch recorded before batches is the same launch)", () => {
    expect(launchBatchToken("demo-1", 1000, 1, 1)).toBe(launchToken("demo-1", 1000, 1));
  });
  it("is deterministic, EC2-sized, and distinct for every (first slot, attempt, count)", () => {
    const t = launchBatchToken("demo-1", 1000, 1, 100);
    expect(launchBatchToken("demo-1", 1000, 1, 100)).toBe(t);
    expect(t.length).toBeLessThanOrEqual(CLIENT_TOKEN_MAX_LENGTH);
    const others = [
      launchBatchToken("demo-1", 1000, 1, 99),
      launchBatchToken("demo-1", 1000, 2, 100),
      launchBatchToken("demo-1", 1001, 1, 100),
      launchBatchToken("demo-2", 1000, 1, 100),
      launchToken("demo-1", 1000, 1),
    ];
    expect(new Set([t, ...others]).size).toBe(6);
    expect(() => launchBatchToken("demo-1", 1000, 1, 0)).toThrow(RangeError);
  });
});
