import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CommandHandler } from "./command-handler.ts";
import { EventStore, type LoadOptions } from "./event-store.ts";
import { createLook } from "./look.ts";
import { counterCatalogue, counterDecider, increment } from "./testing/counter.ts";
import { startJetStream, type TestJetStream } from "./testing/jetstream.ts";

let js: TestJetStream;
let store: EventStore;

beforeAll(async () => {
  js = await startJetStream();
  store = new EventStore({ js: js.nats.js, jsm: js.nats.jsm, catalogue: counterCatalogue });
});
afterAll(async () => {
  await js?.dispose();
});

const ref = (id: string) => ({ type: "workload" as const, id });

/** The real store, recording what each load was asked for and how many events it read. */
function recording() {
  const loads: { after: number; events: number }[] = [];
  const spy = Object.create(store) as EventStore;
  spy.load = async (a, opts: LoadOptions = {}) => {
    const h = await store.load(a, opts);
    loads.push({ after: opts.afterSequence ?? 0, events: h.events.length });
    return h;
  };
  spy.lastSequence = (a) => store.lastSequence(a);
  spy.append = (c, e) => store.append(c, e);
  spy.commitAt = (a, s) => store.commitAt(a, s);
  return { spy, loads };
}

describe("createLook", () => {
  it("folds only the commits after the last one it saw, and none when nothing changed", async () => {
    const writer = new CommandHandler({ decider: counterDecider, store, catalogue: counterCatalogue });
    for (let i = 1; i <= 20; i++) await writer.handle(increment("l1", i));
    const { spy, loads } = recording();
    const total = createLook<number>({
      store: spy,
      empty: () => 0,
      evolve: (n, e) => (e.type === "workload.incremented" ? n + (e.data as { by: number }).by : n),
    });
    const first = await total.of(ref("l1"));
    expect(first.view).toBe(210);
    expect(loads).toEqual([{ after: 0, events: 20 }]);

    expect((await total.of(ref("l1"))).view).toBe(210);
    expect(loads).toHaveLength(1);
    // Already past the sequence asked for: not even the last sequence is read.
    expect((await total.of(ref("l1"), first.lastSequence)).lastSequence).toBe(first.lastSequence);

    await writer.handle(increment("l1", 5));
    await writer.handle(increment("l1", 6));
    expect((await total.of(ref("l1"))).view).toBe(221);
    expect(loads[1]).toEqual({ after: first.lastSequence, events: 2 });
    // An aggregate with no events: the empty view, nothing read.
    expect(await total.of(ref("none"))).toEqual({ view: 0, lastSequence: 0 });
  });
});

describe("createLook, looks that overlap", () => {
  it("share one read: the 50 facts of one commit looking at once load the history once", async () => {
    const writer = new CommandHandler({ decider: counterDecider, store, catalogue: counterCatalogue });
    for (let i = 1; i <= 20; i++) await writer.handle(increment("l3", i));
    const { spy, loads } = recording();
    const total = createLook<number>({
      store: spy,
      empty: () => 0,
      evolve: (n, e) => (e.type === "workload.incremented" ? n + (e.data as { by: number }).by : n),
    });
    // As the log has it now, and at least as fresh as its last commit: one read serves all.
    const last = await store.lastSequence(ref("l3"));
    const seen = await Promise.all([
      ...Array.from({ length: 25 }, () => total.of(ref("l3"))),
      ...Array.from({ length: 25 }, () => total.of(ref("l3"), last)),
    ]);
    expect(seen.map((s) => s.view)).toEqual(Array(50).fill(210));
    expect(loads).toEqual([{ after: 0, events: 20 }]);

    // A look that needs more than the read in flight set out for reads again.
    await writer.handle(increment("l3", 5));
    const next = await store.lastSequence(ref("l3"));
    await writer.handle(increment("l3", 6));
    const [a, b] = await Promise.all([total.of(ref("l3"), next), total.of(ref("l3"))]);
    expect([a.view, b.view].every((v) => v === 215 || v === 221)).toBe(true);
    expect((await total.of(ref("l3"))).view).toBe(221);
  });

  it("fold a read of many events through `evolveAll` when it is given", async () => {
    const writer = new CommandHandler({ decider: counterDecider, store, catalogue: counterCatalogue });
    for (let i = 1; i <= 10; i++) await writer.handle(increment("l4", i));
    const batches: number[] = [];
    const by = (e: { type: string; data: unknown }) =>
      e.type === "workload.incremented" ? (e.data as { by: number }).by : 0;
    const total = createLook<number>({
      store,
      empty: () => 0,
      evolve: (n, e) => n + by(e),
      evolveAll: (n, es) => {
        batches.push(es.length);
        return es.reduce((m, e) => m + by(e), n);
      },
    });
    expect((await total.of(ref("l4"))).view).toBe(55);
    expect(batches).toEqual([10]);
  });
});

describe("the command handler reads only what another writer appended since its cached state", () => {
  it("a stale read and a conflict fold the new commits onto the cached state", async () => {
    const { spy, loads } = recording();
    const a = new CommandHandler({ decider: counterDecider, store: spy, catalogue: counterCatalogue });
    const b = new CommandHandler({ decider: counterDecider, store, catalogue: counterCatalogue });
    for (let i = 0; i < 10; i++) await a.handle(increment("l2", 1));
    const seen = (await a.read(ref("l2"))).lastSequence;
    for (let i = 0; i < 3; i++) await b.handle(increment("l2", 10));
    loads.length = 0;
    // Stale read: the cached state plus b's three commits.
    const stale = await a.read(ref("l2"));
    expect(stale.state).toEqual({ total: 40 });
    expect(loads).toEqual([{ after: seen, events: 3 }]);

    // Conflict: b writes again; a's append fails, it reads b's one commit and decides again.
    await b.handle(increment("l2", 100));
    loads.length = 0;
    expect((await a.handle(increment("l2", 1))).status).toBe("accepted");
    expect(a.stats.conflicts).toBe(1);
    expect(loads).toEqual([{ after: stale.lastSequence, events: 1 }]);
    const fresh = new CommandHandler({ decider: counterDecider, store, catalogue: counterCatalogue });
    expect((await fresh.read(ref("l2"))).state).toEqual({ total: 141 });
  });

  it("reads that overlap share one load: the 50 facts of one commit, cold and then behind", async () => {
    const writer = new CommandHandler({ decider: counterDecider, store, catalogue: counterCatalogue });
    for (let i = 0; i < 20; i++) await writer.handle(increment("l5", 1));
    const { spy, loads } = recording();
    const reader = new CommandHandler({ decider: counterDecider, store: spy, catalogue: counterCatalogue });
    const at = await store.lastSequence(ref("l5"));
    // Cold: one load of the history serves all 50, with and without a sequence to reach.
    const cold = await Promise.all([
      ...Array.from({ length: 25 }, () => reader.read(ref("l5"), { atLeastSequence: at })),
      ...Array.from({ length: 25 }, () => reader.read(ref("l5"))),
    ]);
    expect(cold.map((r) => r.state)).toEqual(Array(50).fill({ total: 20 }));
    expect(loads).toEqual([{ after: 0, events: 20 }]);

    // Behind: another writer's two commits, read by 50 at once as a reactor reads (at least
    // the commit it reacts to): one load of the two.
    await writer.handle(increment("l5", 5));
    await writer.handle(increment("l5", 5));
    const now = await store.lastSequence(ref("l5"));
    loads.length = 0;
    const behind = await Promise.all(
      Array.from({ length: 50 }, () => reader.read(ref("l5"), { atLeastSequence: now })),
    );
    expect(behind.every((r) => r.lastSequence === now && r.state.total === 30)).toBe(true);
    expect(loads).toEqual([{ after: at, events: 2 }]);

    // A read that needs more than the load in flight reaches loads again, and gets it.
    await writer.handle(increment("l5", 1));
    const first = await store.lastSequence(ref("l5"));
    const slow = reader.read(ref("l5"), { atLeastSequence: first });
    await writer.handle(increment("l5", 1));
    const last = await store.lastSequence(ref("l5"));
    const [a, b] = await Promise.all([slow, reader.read(ref("l5"), { atLeastSequence: last })]);
    expect(a.lastSequence).toBeGreaterThanOrEqual(first);
    expect(b.lastSequence).toBe(last);
    expect(b.state.total).toBe(32);
  });
});
