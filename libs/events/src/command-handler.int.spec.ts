import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CommandHandler } from "./command-handler.ts";
import type { Nats } from "./connection.ts";
import { type Decider, reject } from "./decider.ts";
import { EventStore } from "./event-store.ts";
import { newId } from "./ids.ts";
import {
  type CounterCommand,
  type CounterEvent,
  counterCatalogue,
  counterDecider,
} from "./testing/counter.ts";
import { startJetStream, type TestJetStream } from "./testing/jetstream.ts";

let js: TestJetStream;
let nats: Nats;
let store: EventStore;

beforeAll(async () => {
  js = await startJetStream();
  ({ nats } = js);
  store = new EventStore({ js: nats.js, jsm: nats.jsm, catalogue: counterCatalogue });
});
afterAll(async () => {
  await js?.dispose();
});

const writer = () => new CommandHandler({ decider: counterDecider, store, catalogue: counterCatalogue });
function increment(counterId: string, by: number, id = newId(), meta: Record<string, unknown> = {}) {
  const parsed = counterCatalogue.parseCommand({
    id,
    type: "workload.increment",
    data: { counterId, by },
    meta: { actor: "t", ...meta },
  });
  if (!parsed.ok) throw parsed.error;
  return parsed.value;
}
const total = async (id: string) => {
  const h = await store.load({ type: "workload", id });
  return {
    total: h.events.reduce(
      (s, e) => s + (e.type === "workload.incremented" ? (e.data as { by: number }).by : 0),
      0,
    ),
    positions: h.events.map((e) => e.position),
    commits: h.commitIds.size,
  };
};

describe("command handler", () => {
  it("accepts, and a duplicate command id changes nothing", async () => {
    const h = writer();
    const cmd = increment("h1", 3);
    expect((await h.handle(cmd)).status).toBe("accepted");
    expect((await h.handle(cmd)).status).toBe("duplicate");
    // Another writer (cold cache, so it reads the log) sees it as done too.
    expect((await writer().handle(cmd)).status).toBe("duplicate");
    expect(await total("h1")).toEqual({ total: 3, positions: [1], commits: 1 });
  });

  it("a command on an aggregate it has not cached is decided on a new one, with no look at the log first; the append's expected sequence checks the guess", async () => {
    // Its own store, to count the looks at a subject's last commit (a JetStream API request each).
    const counted = new EventStore({ js: nats.js, jsm: nats.jsm, catalogue: counterCatalogue });
    let looks = 0;
    const look = counted.lastSequence.bind(counted);
    counted.lastSequence = (a) => {
      looks++;
      return look(a);
    };
    const h = () =>
      new CommandHandler({
        decider: counterDecider,
        store: counted,
        catalogue: counterCatalogue,
        // As the provisioner's: something to look at for some commands, nothing for these.
        observe: async () => undefined,
      });
    // A new aggregate: decided and appended (expected: no commit yet) without a look.
    const first = h();
    expect((await first.handle(increment("guess-1", 2))).status).toBe("accepted");
    expect(looks).toBe(0);
    expect(first.stats).toMatchObject({ guessedNew: 1, guessedNewWrong: 0, conflicts: 0 });
    // An aggregate that has commits, in a handler that has not cached it (another replica,
    // a restart): the guess is refused by the log, and the decision is made again on what
    // the log holds — no lost update, no double append, no conflict back-off.
    const second = h();
    expect((await second.handle(increment("guess-1", 3))).status).toBe("accepted");
    expect(second.stats).toMatchObject({ guessedNew: 1, guessedNewWrong: 1, conflicts: 0 });
    expect(await total("guess-1")).toEqual({ total: 5, positions: [1, 2], commits: 2 });
    // A rejection made on a wrong guess is not kept either: the log's state decides.
    const full = increment("guess-2", 1_000);
    await h().handle(full);
    for (let i = 0; i < 999; i++) await first.handle(increment("guess-2", 1_000));
    expect(await h().handle(increment("guess-2", 1))).toMatchObject({ status: "rejected", code: "invalid" });
    // A command already handled, sent again to a handler that has not cached its aggregate: a duplicate.
    expect((await h().handle(full)).status).toBe("duplicate");
    expect((await total("guess-2")).total).toBe(1_000_000);
  });

  it("a decision sees what `observe` read just before it, looked at again after a conflict", async () => {
    // A decider that refuses while the outside world says "closed".
    const gate: Decider<CounterCommand, CounterEvent, { total: number }, { open: boolean }> = {
      ...counterDecider,
      decide: (command, state, ctx) =>
        ctx.observed?.open === false
          ? reject("conflict", "closed")
          : counterDecider.decide(command, state, { now: ctx.now, version: ctx.version }),
    };
    let open = false;
    const looks: string[] = [];
    const h = new CommandHandler({
      decider: gate,
      store,
      catalogue: counterCatalogue,
      observe: async (command, target) => {
        looks.push(`${command.type} ${target.id}`);
        return { open };
      },
    });
    expect(await h.handle(increment("h-obs", 1))).toMatchObject({ status: "rejected", reason: "closed" });
    open = true;
    expect((await h.handle(increment("h-obs", 1))).status).toBe("accepted");
    expect(looks).toEqual(["workload.increment h-obs", "workload.increment h-obs"]);
    // A conflict (another writer appended behind this cache) decides again: it looks again.
    await writer().handle(increment("h-obs", 1));
    looks.length = 0;
    expect((await h.handle(increment("h-obs", 1))).status).toBe("accepted");
    expect(looks).toHaveLength(2);
    // A command already handled is answered without a look.
    const done = increment("h-obs", 1);
    await h.handle(done);
    looks.length = 0;
    expect((await h.handle(done)).status).toBe("duplicate");
    expect(looks).toEqual([]);
  });

  it("carries the lifecycles a command names (meta.links) into its events, with the aggregate's own, each once", async () => {
    const tp = (t: string, s = "1") => `00-${t.repeat(32)}-${s.repeat(16)}-01`;
    const own = tp("a");
    const other = tp("b");
    // The first command starts the aggregate's lifecycle on trace a, and names lifecycle b.
    await writer().handle(increment("links-1", 1, newId(), { traceparent: own, links: [other] }));
    // A later one on its own trace c names b again and a (its own lifecycle): b and a once each.
    await writer().handle(
      increment("links-1", 1, newId(), { traceparent: tp("c"), links: [other, tp("a", "2")] }),
    );
    const events = (await store.load({ type: "workload", id: "links-1" })).events;
    expect(events.map((e) => e.meta.links)).toEqual([[other], [own, other]]);
    // A link that is not a traceparent is refused at the boundary.
    const bad = counterCatalogue.parseCommand({
      id: newId(),
      type: "workload.increment",
      data: { counterId: "links-1", by: 1 },
      meta: { actor: "t", links: ["not-a-trace"] },
    });
    expect(bad.ok).toBe(false);
  });

  it("a rejection is an event naming the command and the reason", async () => {
    const h = writer();
    await h.handle(increment("h2", 1_000));
    const big = increment("h2", 1_000);
    for (let i = 0; i < 999; i++) await h.handle(increment("h2", 1_000));
    const outcome = await h.handle(big);
    expect(outcome).toMatchObject({ status: "rejected", code: "invalid" });
    const history = await store.load({ type: "workload", id: "h2" });
    const last = history.events.at(-1);
    expect(last?.type).toBe("workload.rejected");
    expect(last?.data).toMatchObject({
      commandId: big.command.id,
      commandType: "workload.increment",
      reason: "would pass 1000000",
    });
  });

  it("concurrent writers to one aggregate lose no update and never double-append (property)", async () => {
    let run = 0;
    let conflicts = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.array(fc.integer({ min: 1, max: 9 }), { minLength: 1, maxLength: 6 }), {
          minLength: 2,
          maxLength: 5,
        }),
        fc.boolean(),
        async (plan, redeliver) => {
          const id = `prop-${run++}`;
          // Each writer has its own cache, as separate service replicas would.
          const commands = plan.map((amounts) => amounts.map((by) => increment(id, by)));
          await Promise.all(
            commands.map(async (mine) => {
              const w = writer();
              for (const c of mine) await w.handle(c);
              conflicts += w.stats.conflicts;
              // A redelivery of everything this writer did must change nothing.
              if (redeliver) for (const c of mine) expect((await w.handle(c)).status).toBe("duplicate");
            }),
          );
          const expected = plan.flat().reduce((a, b) => a + b, 0);
          const n = plan.flat().length;
          const got = await total(id);
          expect(got.total).toBe(expected);
          expect(got.commits).toBe(n);
          expect(got.positions).toEqual(Array.from({ length: n }, (_, i) => i + 1));
        },
      ),
      { numRuns: 15 },
    );
    // The property only means something if writers really collided.
    expect(conflicts).toBeGreaterThan(0);
  });
});
