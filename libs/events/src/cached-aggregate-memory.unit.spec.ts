/**
 * What one cached aggregate keeps besides its state, and the state's template: a service
 * at 20,000 sessions keeps tens of thousands of them (a command handler's cache, the
 * session index, node-ops' workloads), so bytes per aggregate are the per-session memory.
 *  - a commit id is a flat 32-character string (not a slice of the 64-digit digest, which
 *    kept the digest alive: ~80 bytes more per id);
 *  - RecentCommits of a few ids is an array, a Set past 16 (~120 bytes less each);
 *  - equal session templates fold to one shared frozen object.
 * Heap per item from `process.memoryUsage().heapUsed` after full collections, items kept alive.
 */
import { createHash } from "node:crypto";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { describe, expect, it } from "vitest";
import { type SessionTemplate, SHARED_TEMPLATES_MAX, sharedTemplate } from "./catalogue/session.ts";
import { commitIdFor } from "./event-store.ts";
import { COMMIT_CHUNK, RecentCommits } from "./snapshots.ts";

setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;

/** Heap bytes per item that `make` builds, the items kept alive while measured. */
function bytesPer<T>(n: number, make: (i: number) => T): number {
  gc();
  gc();
  const before = process.memoryUsage().heapUsed;
  const kept = Array.from({ length: n }, (_, i) => make(i));
  gc();
  gc();
  const after = process.memoryUsage().heapUsed;
  expect(kept.length).toBe(n);
  return (after - before) / n;
}

describe("commitIdFor", () => {
  it("is the first 32 hex digits of sha256(cause|type|id), as ever", () => {
    const want = createHash("sha256").update("cmd-1|session|s-1").digest("hex").slice(0, 32);
    expect(commitIdFor("cmd-1", { type: "session", id: "s-1" })).toBe(want);
  });

  it("keeps no more than a flat string's bytes per id kept (a slice kept its 64-digit digest)", () => {
    // A flat one-byte string of 32 characters is 44–48 bytes; a sliced one 20–32 plus its parent's ~80.
    const perId = bytesPer(20_000, (i) => commitIdFor(`cause-${i}`, { type: "session", id: `s-${i}` }));
    // The array's slot (4–8 bytes) is counted too.
    expect(perId).toBeLessThan(64);
  });
});

describe("RecentCommits", () => {
  const ids = (n: number, p = "c") => Array.from({ length: n }, (_, i) => `${p}-${i}`);

  it("answers has/size/toJSON alike below, at and past the array's 16 ids, and across a sealed chunk", () => {
    for (const n of [0, 1, 15, 16, 17, 40, COMMIT_CHUNK + 5]) {
      const r = new RecentCommits();
      for (const id of ids(n)) r.add(id);
      // Adding an id of the open chunk again changes nothing (the handler adds each commit once;
      // an id in a sealed chunk is not looked for on add, as ever).
      if (n < COMMIT_CHUNK) for (const id of ids(n)) r.add(id);
      expect(r.size).toBe(n);
      for (const id of ids(n)) expect(r.has(id)).toBe(true);
      expect(r.has("c-missing")).toBe(false);
      const back = RecentCommits.fromJSON(r.toJSON());
      expect(back.size).toBe(n);
      expect(back.toJSON()).toEqual(r.toJSON());
      for (const id of ids(n)) expect(back.has(id)).toBe(true);
    }
  });

  it("keeps an aggregate's few recent commits in ~100 bytes, not a Set's ~230", () => {
    const shared = ids(3, "shared"); // the ids themselves are not what is measured
    const per = bytesPer(20_000, () => new RecentCommits().add(shared[0]!).add(shared[1]!).add(shared[2]!));
    expect(per).toBeLessThan(150);
  });
});

describe("sharedTemplate", () => {
  const t = (image: string): SessionTemplate => ({ image, cpu: "100m", memory: "256Mi", storage: "1Gi" });

  it("gives one frozen object, equal field for field, for equal templates", () => {
    const a = sharedTemplate(JSON.parse(JSON.stringify(t("ghcr.io/acme/ide:1"))));
    const b = sharedTemplate(JSON.parse(JSON.stringify(t("ghcr.io/acme/ide:1"))));
    expect(a).toBe(b);
    expect(a).toEqual(t("ghcr.io/acme/ide:1"));
    expect(Object.isFrozen(a)).toBe(true);
    expect(sharedTemplate(t("ghcr.io/acme/ide:2"))).not.toBe(a);
    expect(sharedTemplate({ ...t("x"), cpu: "1" })).not.toBe(sharedTemplate(t("x")));
  });

  it("is bounded: past its distinct templates, a template comes back as given", () => {
    for (let i = 0; i < SHARED_TEMPLATES_MAX + 10; i++) sharedTemplate(t(`bounded-${i}`));
    const late = t("bounded-late");
    expect(sharedTemplate(late)).toBe(late);
  });
});
