import { describe, expect, it } from "vitest";
import { ChangeFeed } from "../changes.ts";
import type { SessionRow } from "../projections/sessions.ts";
import { type SessionFacts, sessionDirectory } from "./session-directory.ts";

/** A read model of facts by id, counting its reads; `gate` holds reads until released. */
function readModel(rows: Record<string, SessionFacts>) {
  const reads: string[] = [];
  let gate: Promise<void> = Promise.resolve();
  return {
    rows,
    reads,
    hold() {
      let release!: () => void;
      gate = new Promise((r) => (release = r));
      return release;
    },
    read: async (id: string) => {
      reads.push(id);
      const snapshot = rows[id];
      await gate;
      return snapshot;
    },
  };
}

const change = (id: string, facts: SessionFacts) => ({
  resource: "sessions" as const,
  id,
  sequence: facts.lastSequence,
  row: {
    id,
    user: facts.user,
    state: facts.state,
    lastSequence: facts.lastSequence,
  } as unknown as SessionRow,
});

describe("the session directory (what a heartbeat needs, without Postgres)", () => {
  it("reads a session once, then answers from memory; callers at the same time share the read", async () => {
    const db = readModel({ "s-1": { user: "alice", state: "Running", lastSequence: 3 } });
    const d = sessionDirectory({ changes: new ChangeFeed(), read: db.read });
    const [a, b] = await Promise.all([d.lookup("s-1"), d.lookup("s-1")]);
    expect(a).toEqual({ user: "alice", state: "Running", lastSequence: 3 });
    expect(b).toBe(a);
    expect(d.lookup("s-1")).toBe(a); // synchronous now
    expect(db.reads).toEqual(["s-1"]);
  });

  it("follows the read model's changes: a session that ends is 409 on its next heartbeat, with no read", async () => {
    const feed = new ChangeFeed();
    const db = readModel({ "s-1": { user: "alice", state: "Running", lastSequence: 3 } });
    const d = sessionDirectory({ changes: feed, read: db.read });
    await d.lookup("s-1");
    feed.publish([change("s-1", { user: "alice", state: "Terminated", lastSequence: 9 })]);
    expect(d.lookup("s-1")).toMatchObject({ state: "Terminated" });
    // A session announced before anyone asked is known at once.
    feed.publish([change("s-2", { user: "bob", state: "Starting", lastSequence: 11 })]);
    expect(d.lookup("s-2")).toMatchObject({ user: "bob" });
    expect(db.reads).toEqual(["s-1"]);
  });

  it("a slow read never overwrites a later change", async () => {
    const feed = new ChangeFeed();
    const db = readModel({ "s-1": { user: "alice", state: "Running", lastSequence: 3 } });
    const d = sessionDirectory({ changes: feed, read: db.read });
    const release = db.hold();
    const pending = d.lookup("s-1");
    feed.publish([change("s-1", { user: "alice", state: "Failed", lastSequence: 5 })]);
    release();
    expect(await pending).toMatchObject({ state: "Failed", lastSequence: 5 });
    expect(d.lookup("s-1")).toMatchObject({ state: "Failed" });
  });

  it("an unknown session is remembered a moment (a storm costs one read a second), then asked again", async () => {
    let clock = 0;
    const db = readModel({});
    const d = sessionDirectory({
      changes: new ChangeFeed(),
      read: db.read,
      now: () => clock,
      absentMs: 1_000,
    });
    expect(await d.lookup("s-9")).toBeUndefined();
    for (let i = 0; i < 100; i++) expect(d.lookup("s-9")).toBeUndefined();
    expect(db.reads).toEqual(["s-9"]);
    db.rows["s-9"] = { user: "alice", state: "Pending", lastSequence: 1 };
    clock += 1_001;
    expect(await d.lookup("s-9")).toMatchObject({ state: "Pending" });
    expect(db.reads).toEqual(["s-9", "s-9"]);
  });

  it("re-reads a known session behind the answer once it is old (a change lost on the wire heals)", async () => {
    let clock = 0;
    const db = readModel({ "s-1": { user: "alice", state: "Running", lastSequence: 3 } });
    const d = sessionDirectory({
      changes: new ChangeFeed(),
      read: db.read,
      now: () => clock,
      refreshMs: 30_000,
    });
    await d.lookup("s-1");
    db.rows["s-1"] = { user: "alice", state: "Terminated", lastSequence: 8 };
    clock += 30_001;
    // Answered from memory at once; the read goes behind it.
    expect(d.lookup("s-1")).toMatchObject({ state: "Running" });
    await new Promise((r) => setTimeout(r, 0));
    expect(d.lookup("s-1")).toMatchObject({ state: "Terminated" });
    expect(db.reads).toEqual(["s-1", "s-1"]);
  });

  it("is filled at start with the live sessions in one query (a restart does not read them one by one)", async () => {
    const feed = new ChangeFeed();
    const db = readModel({});
    let asked: number | undefined;
    let fill!: (rows: [string, SessionFacts][]) => void;
    const d = sessionDirectory({
      changes: feed,
      read: db.read,
      capacity: 1_000,
      prefill: (limit) => {
        asked = limit;
        return new Promise((r) => (fill = r));
      },
    });
    expect(asked).toBe(1_000);
    // A change that came first, later than the query's row, is kept.
    feed.publish([change("s-2", { user: "bob", state: "Hibernated", lastSequence: 20 })]);
    fill([
      ["s-1", { user: "alice", state: "Running", lastSequence: 4 }],
      ["s-2", { user: "bob", state: "Running", lastSequence: 7 }],
    ]);
    await new Promise((r) => setTimeout(r, 0));
    expect(d.lookup("s-1")).toMatchObject({ user: "alice", state: "Running" });
    expect(d.lookup("s-2")).toMatchObject({ state: "Hibernated", lastSequence: 20 });
    expect(db.reads).toEqual([]);
  });

  it("holds at most `capacity` sessions, the least recently filled going first", async () => {
    const feed = new ChangeFeed();
    const db = readModel({});
    const d = sessionDirectory({ changes: feed, read: db.read, capacity: 2 });
    for (const [i, id] of ["a", "b", "c"].entries())
      feed.publish([change(id, { user: "u", state: "Running", lastSequence: i + 1 })]);
    expect(d.lookup("c")).toMatchObject({ lastSequence: 3 });
    expect(d.lookup("b")).toMatchObject({ lastSequence: 2 });
    expect(await d.lookup("a")).toBeUndefined(); // evicted: read again (and absent in this read model)
    expect(db.reads).toEqual(["a"]);
  });
});
