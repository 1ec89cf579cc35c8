import { afterEach, describe, expect, it } from "vitest";
import { ChangeFeed } from "../changes.ts";
import type { SessionRow } from "../projections/sessions.ts";
import { type SessionDirectory, type SessionFacts, sessionDirectory } from "./session-directory.ts";

/** A read model of facts by id that counts what it is asked; `hold()` keeps single reads waiting. */
function readModel(rows: Record<string, SessionFacts> = {}) {
  const asked: string[] = [];
  let gate: Promise<void> = Promise.resolve();
  let down = false;
  const live = (s: SessionFacts) => s.state !== "Terminated" && s.state !== "Failed";
  return {
    rows,
    asked,
    /** The read model is unreachable until `up()`. */
    down: () => (down = true),
    up: () => (down = false),
    hold() {
      let release!: () => void;
      gate = new Promise((r) => (release = r));
      return release;
    },
    source: {
      read: async (id: string) => {
        asked.push(`read ${id}`);
        const snapshot = rows[id];
        await gate;
        return snapshot;
      },
      live: async (limit: number) => {
        asked.push("live");
        if (down) throw new Error("Postgres away");
        const all = Object.entries(rows);
        return {
          rows: all.filter(([, f]) => live(f)).slice(0, limit),
          high: Math.max(0, ...all.map(([, f]) => f.lastSequence)),
        };
      },
      changedSince: async (after: number, limit: number) => {
        if (down) throw new Error("Postgres away");
        return Object.entries(rows)
          .filter(([, f]) => f.lastSequence > after)
          .sort(([, a], [, b]) => a.lastSequence - b.lastSequence)
          .slice(0, limit);
      },
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
const tick = (ms = 0) => new Promise((r) => setTimeout(r, ms));

const open: SessionDirectory[] = [];
const directory = (o: Parameters<typeof sessionDirectory>[0]) => {
  const d = sessionDirectory(o);
  open.push(d);
  return d;
};
afterEach(() => {
  for (const d of open.splice(0)) d.stop();
});

describe("the session directory (what a heartbeat needs, without Postgres)", () => {
  it("is filled at start with the live sessions in one query: no session is read one by one", async () => {
    const db = readModel({
      "s-1": { user: "alice", state: "Running", lastSequence: 3 },
      "s-2": { user: "bob", state: "Terminated", lastSequence: 5 },
    });
    const d = directory({ changes: new ChangeFeed(), source: db.source });
    await tick();
    expect(d.lookup("s-1")).toEqual({ user: "alice", state: "Running", lastSequence: 3 });
    expect(db.asked).toEqual(["live"]);
    // A session over at start is read on first use (a heartbeat for it is a 409).
    expect(await d.lookup("s-2")).toMatchObject({ state: "Terminated" });
    expect(db.asked).toEqual(["live", "read s-2"]);
  });

  it("reads a session it does not hold once; callers at the same time share the read", async () => {
    const db = readModel();
    const d = directory({ changes: new ChangeFeed(), source: db.source });
    await tick();
    db.rows["s-1"] = { user: "alice", state: "Running", lastSequence: 3 };
    const [a, b] = await Promise.all([d.lookup("s-1"), d.lookup("s-1")]);
    expect(a).toEqual({ user: "alice", state: "Running", lastSequence: 3 });
    expect(b).toBe(a);
    expect(d.lookup("s-1")).toBe(a); // synchronous now
    expect(db.asked).toEqual(["live", "read s-1"]);
  });

  it("follows the read model's changes at once: a session that ends is 409 on its next heartbeat, with no read", async () => {
    const feed = new ChangeFeed();
    const db = readModel({ "s-1": { user: "alice", state: "Running", lastSequence: 3 } });
    const d = directory({ changes: feed, source: db.source, pollMs: 60_000 });
    await tick();
    feed.publish([change("s-1", { user: "alice", state: "Terminated", lastSequence: 9 })]);
    expect(d.lookup("s-1")).toMatchObject({ state: "Terminated" });
    feed.publish([change("s-3", { user: "bob", state: "Starting", lastSequence: 11 })]);
    expect(d.lookup("s-3")).toMatchObject({ user: "bob" });
    expect(db.asked).toEqual(["live"]);
  });

  it("a change lost on the wire heals at the next poll: the rows changed since it last asked", async () => {
    const db = readModel({ "s-1": { user: "alice", state: "Running", lastSequence: 3 } });
    const d = directory({ changes: new ChangeFeed(), source: db.source, pollMs: 5 });
    await tick();
    expect(d.lookup("s-1")).toMatchObject({ state: "Running" });
    // Projected, but its announcement never arrived.
    db.rows["s-1"] = { user: "alice", state: "Failed", lastSequence: 8 };
    db.rows["s-4"] = { user: "carol", state: "Pending", lastSequence: 9 };
    await tick(30);
    expect(d.lookup("s-1")).toMatchObject({ state: "Failed" });
    expect(d.lookup("s-4")).toMatchObject({ user: "carol" });
    expect(db.asked).toEqual(["live"]);
  });

  it("a slow read never overwrites a later change", async () => {
    const feed = new ChangeFeed();
    const db = readModel();
    const d = directory({ changes: feed, source: db.source, pollMs: 60_000 });
    await tick();
    db.rows["s-1"] = { user: "alice", state: "Running", lastSequence: 3 };
    const release = db.hold();
    const pending = d.lookup("s-1");
    feed.publish([change("s-1", { user: "alice", state: "Failed", lastSequence: 5 })]);
    release();
    expect(await pending).toMatchObject({ state: "Failed", lastSequence: 5 });
    expect(d.lookup("s-1")).toMatchObject({ state: "Failed" });
  });

  it("an unknown session is remembered a moment (a storm costs one read a second), then asked again", async () => {
    let clock = 0;
    const db = readModel();
    const d = directory({
      changes: new ChangeFeed(),
      source: db.source,
      now: () => clock,
      absentMs: 1_000,
      pollMs: 60_000,
    });
    await tick();
    expect(await d.lookup("s-9")).toBeUndefined();
    for (let i = 0; i < 100; i++) expect(d.lookup("s-9")).toBeUndefined();
    expect(db.asked).toEqual(["live", "read s-9"]);
    db.rows["s-9"] = { user: "alice", state: "Pending", lastSequence: 1 };
    clock += 1_001;
    expect(await d.lookup("s-9")).toMatchObject({ state: "Pending" });
    expect(db.asked).toEqual(["live", "read s-9", "read s-9"]);
  });

  it("Postgres away at start: sessions are read one by one, and the start's query is tried again", async () => {
    const db = readModel({ "s-1": { user: "alice", state: "Running", lastSequence: 3 } });
    db.down();
    const d = directory({ changes: new ChangeFeed(), source: db.source, pollMs: 5 });
    await tick();
    expect(await d.lookup("s-1")).toMatchObject({ user: "alice" });
    db.rows["s-2"] = { user: "bob", state: "Running", lastSequence: 4 };
    db.up();
    await tick(30);
    expect(d.lookup("s-2")).toMatchObject({ user: "bob" });
    expect(db.asked.filter((a) => a === "live").length).toBeGreaterThan(1);
  });

  it("holds at most `capacity` sessions, the least recently filled going first", async () => {
    const feed = new ChangeFeed();
    const db = readModel();
    const d = directory({ changes: feed, source: db.source, capacity: 2, pollMs: 60_000 });
    await tick();
    for (const [i, id] of ["a", "b", "c"].entries())
      feed.publish([change(id, { user: "u", state: "Running", lastSequence: i + 1 })]);
    expect(d.lookup("c")).toMatchObject({ lastSequence: 3 });
    expect(d.lookup("b")).toMatchObject({ lastSequence: 2 });
    expect(await d.lookup("a")).toBeUndefined(); // evicted: read again (and absent in this read model)
    expect(db.asked).toEqual(["live", "read a"]);
  });
});
