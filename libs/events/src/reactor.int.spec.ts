import { headers as natsHeaders } from "@nats-io/transport-node";
import { trace } from "@opentelemetry/api";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { catalogue } from "./catalogue/index.ts";
import { CommandHandler } from "./command-handler.ts";
import { connectNats, type Nats } from "./connection.ts";
import { PermanentError, RetryLaterError, TransientError } from "./errors.ts";
import { EventStore } from "./event-store.ts";
import { newId } from "./ids.ts";
import { type ReactingEvent, startReactor } from "./reactor.ts";
import { dlqSubject, eventSubject, Headers, Streams } from "./subjects.ts";
import { appendAsOwner, recordClusterRequested } from "./testing/cluster-history.ts";
import { startJetStream, type TestJetStream } from "./testing/jetstream.ts";
import { useTestTracing } from "./testing/tracing.ts";
import { until } from "./testing/until.ts";
import { workAttributes } from "./trace.ts";

let js: TestJetStream;
let nats: Nats;
let store: EventStore;

beforeAll(async () => {
  js = await startJetStream();
  nats = js.nats;
  store = new EventStore({ js: nats.js, jsm: nats.jsm, catalogue, onUnreadable: () => {} });
});
afterAll(async () => {
  await js?.dispose();
});

/** Every dead letter of EVT, read off the DLQ stream. */
async function deadLetters(): Promise<{ sequence: number; reason: string; consumer: string }[]> {
  const info = await nats.jsm.streams.info("DLQ");
  const out: { sequence: number; reason: string; consumer: string }[] = [];
  for (let seq = info.state.first_seq; seq <= info.state.last_seq && info.state.messages > 0; seq++) {
    const m = await nats.jsm.streams.getMessage("DLQ", { seq }).catch(() => undefined);
    if (!m || m.subject !== dlqSubject(Streams.events)) continue;
    out.push({
      sequence: Number(m.header.get(Headers.dlqSequence)),
      reason: m.header.get(Headers.dlqReason),
      consumer: m.header.get(Headers.dlqConsumer),
    });
  }
  return out;
}

describe("the reactor runtime", () => {
  it("hands events over typed: data is read by narrowing on type, with no cast", async () => {
    const seen: string[] = [];
    const r = await startReactor({
      nats,
      name: "typed-test",
      aggregate: "cluster",
      types: ["cluster.requested"],
      react: async (e) => {
        // Compiles only because `e` is narrowed to the event's own data type.
        if (e.type === "cluster.requested") seen.push(`${e.aggregate.id}:${e.data.spec.region}`);
      },
    });
    await recordClusterRequested(store, "typed-1");
    await until("typed event", () => seen.length === 1);
    await r.stop();
    expect(seen).toEqual(["typed-1:eu-west-1"]);
  });

  it("garbage on an aggregate's subject is one dead letter with a reason, met by two reactors, and blocks nothing", async () => {
    const id = "poisoned-1";
    const seen: Record<string, string[]> = { a: [], b: [] };
    const start = (k: "a" | "b") =>
      startReactor({
        nats,
        name: `poison-${k}`,
        aggregate: "cluster",
        react: async (e: ReactingEvent<"cluster">) => {
          if (e.aggregate.id === id) seen[k]!.push(e.type);
        },
      });
    const [a, b] = [await start("a"), await start("b")];
    await recordClusterRequested(store, id);
    const subject = eventSubject({ type: "cluster", id });
    await nats.js.publish(subject, "not json at all");
    await nats.js.publish(subject, new Uint8Array([0, 159, 146, 150]));
    await nats.js.publish(subject, JSON.stringify({ hello: "world" }));
    // A real commit of another aggregate, published on this one's subject.
    const other = await store.load({ type: "cluster", id });
    await nats.js.publish(
      subject,
      JSON.stringify({ ...other, commitId: "x", aggregate: { type: "cluster", id: "elsewhere" } }),
    );
    // A whole, well-formed commit of another cluster, copied onto this one's subject: it
    // must never fold a stranger's history into this cluster.
    const stranger = await nats.jsm.streams.getMessage(Streams.events, {
      last_by_subj: eventSubject({ type: "cluster", id: "typed-1" }),
    });
    await nats.js.publish(subject, stranger!.data);
    // The aggregate goes on: a later commit is read and reacted to by both.
    await appendAsOwner(store, { type: "cluster", id }, "cluster.deletion-requested", {});
    await until("both reactors past the garbage", () =>
      seen.a!.includes("cluster.deletion-requested") && seen.b!.includes("cluster.deletion-requested")
        ? true
        : undefined,
    );
    await until("five dead letters", async () => (await deadLetters()).length >= 5);
    await a.stop();
    await b.stop();
    const letters = await deadLetters();
    expect(letters).toHaveLength(5);
    expect(new Set(letters.map((l) => l.sequence)).size).toBe(5);
    for (const l of letters) expect(l.reason).toMatch(/SchemaError/);
    expect(letters.some((l) => /not JSON/.test(l.reason))).toBe(true);
    expect(letters.some((l) => /another aggregate/.test(l.reason))).toBe(true);
    expect(letters.some((l) => /not on its aggregate's subject/.test(l.reason))).toBe(true);
    // And the aggregate still loads: the garbage is skipped, the next append expects the right sequence.
    const history = await store.load({ type: "cluster", id });
    expect(history.events.map((e) => e.type)).toEqual(["cluster.requested", "cluster.deletion-requested"]);
    expect(history.lastSequence).toBe(await store.lastSequence({ type: "cluster", id }));
  });

  it("a dead letter keeps the original's own headers but not JetStream's publish directives", async () => {
    const id = "headers-1";
    await recordClusterRequested(store, id);
    const last = await store.lastSequence({ type: "cluster", id });
    const h = natsHeaders();
    h.set("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
    h.set(Headers.expectedLastSubjectSequence, String(last));
    h.set(Headers.msgId, "garbage-with-directives");
    await nats.js.publish(eventSubject({ type: "cluster", id }), "garbage", { headers: h });
    const r = await startReactor({ nats, name: "headers-test", aggregate: "cluster", react: async () => {} });
    await until("its dead letter", async () =>
      (await deadLetters()).some((l) => l.consumer === "headers-test") ? true : undefined,
    );
    await r.stop();
    const m = await nats.jsm.streams.getMessage("DLQ", { last_by_subj: dlqSubject(Streams.events) });
    expect(m?.header.get("traceparent")).toMatch(/^00-0af7/);
    expect(m?.header.get(Headers.expectedLastSubjectSequence)).toBe("");
  });

  it("an aggregate's commits run in order, but one that `ownChain` picks runs beside the earlier ones", async () => {
    /** One reactor: the first commit's reaction is held until released; which types it saw, and when. */
    const run = async (name: string, id: string, ownChain?: (types: readonly string[]) => boolean) => {
      let release = () => {};
      const held = new Promise<void>((resolve) => (release = resolve));
      const seen: string[] = [];
      const r = await startReactor({
        nats,
        name,
        aggregate: "cluster",
        ...(ownChain ? { ownChain } : {}),
        react: async (e) => {
          if (e.aggregate.id !== id) return;
          seen.push(`${e.type} started`);
          if (e.type === "cluster.requested") await held;
        },
      });
      await recordClusterRequested(store, id);
      await until(`${id} requested`, () => seen.length === 1);
      await appendAsOwner(store, { type: "cluster", id }, "cluster.validation-started", {});
      return { r, seen, release };
    };
    const own = await run("own-chain", "own-1", (types) => types.includes("cluster.validation-started"));
    await until("the second commit beside the held first", () => own.seen.length === 2);
    own.release();
    await own.r.stop();

    const ordered = await run("in-order", "ordered-1");
    await new Promise((r) => setTimeout(r, 500));
    // Behind the held first commit: not started.
    expect(ordered.seen).toEqual(["cluster.requested started"]);
    ordered.release();
    await until("the second commit after the first", () => ordered.seen.length === 2);
    await ordered.r.stop();
  });

  it("waits never count towards the failure budget; real failures do, and a real failure wins over a wait", async () => {
    const id = "budget-1";
    let calls = 0;
    const r = await startReactor({
      nats,
      name: "budget-test",
      aggregate: "cluster",
      types: ["cluster.requested"],
      failureBudget: 3,
      react: async (e) => {
        if (e.aggregate.id !== id) return;
        calls++;
        // Ten waits first: with deliveries counted, a budget of 3 would have dead-lettered it.
        if (calls <= 10) throw new RetryLaterError(5, "booting");
        throw new TransientError("EC2 is down", { remediation: "wait for EC2" });
      },
    });
    await recordClusterRequested(store, id);
    await until("its dead letter", async () =>
      (await deadLetters()).some((l) => l.consumer === "budget-test") ? true : undefined,
    );
    await r.stop();
    expect(calls).toBe(13);
    const letter = (await deadLetters()).find((l) => l.consumer === "budget-test")!;
    expect(letter.reason).toContain("failed 3 times");
    expect(letter.reason).toContain("(fix: wait for EC2)");
  });

  it("a commit handed back for a wait is read once: each delivery reacts to the same parsed events", async () => {
    const id = "waits-parsed-once-1";
    const seen: { data: object; deliveries: number }[] = [];
    const r = await startReactor({
      nats,
      name: "parsed-once-test",
      aggregate: "cluster",
      types: ["cluster.requested"],
      react: async (e) => {
        if (e.aggregate.id !== id) return;
        seen.push({ data: e.data, deliveries: e.deliveries });
        if (seen.length < 4) throw new RetryLaterError(5, "booting");
      },
    });
    await recordClusterRequested(store, id);
    await until("four deliveries", () => seen.length === 4);
    await r.stop();
    expect(seen.map((s) => s.deliveries)).toEqual([1, 2, 3, 4]);
    // Not parsed again at each delivery: the very same event data.
    for (const s of seen.slice(1)) expect(s.data).toBe(seen[0]!.data);
  });

  it("a commit whose events wait and fail settles as the failure; a permanent one is a dead letter at once", async () => {
    const id = "mixed-1";
    let calls = 0;
    const r = await startReactor({
      nats,
      name: "mixed-test",
      aggregate: "cluster",
      failureBudget: 50,
      react: async (e) => {
        if (e.aggregate.id !== id) return;
        calls++;
        if (e.type === "cluster.requested") throw new RetryLaterError(1, "waiting");
        throw new PermanentError("the AMI is gone", { remediation: "build the AMI" });
      },
    });
    // One commit, two events: one waits, one fails for good.
    const history = await store.load({ type: "cluster", id });
    const base = { version: 1, aggregate: { type: "cluster" as const, id }, time: new Date().toISOString() };
    const meta = { causationId: "c", correlationId: "c", actor: "test" };
    const spec = (await store.load({ type: "cluster", id: "typed-1" })).events[0]!.data;
    await store.append(
      {
        aggregate: { type: "cluster", id },
        causationId: newId(),
        events: [
          { ...base, id: newId(), type: "cluster.requested", position: 1, data: spec, meta },
          { ...base, id: newId(), type: "cluster.deletion-requested", position: 2, data: {}, meta },
        ],
      },
      history.lastSequence,
    );
    await until("its dead letter", async () =>
      (await deadLetters()).some((l) => l.consumer === "mixed-test") ? true : undefined,
    );
    await r.stop();
    expect(calls).toBe(2);
    expect((await deadLetters()).find((l) => l.consumer === "mixed-test")!.reason).toContain(
      "(fix: build the AMI)",
    );
  });

  it("an event whose process died is retried by another within seconds, not after 30", async () => {
    const id = "orphan-1";
    // A second connection plays the process that dies holding the event.
    const doomed = await connectNats(js.server.url);
    let took: (() => void) | undefined;
    const held = new Promise<void>((r) => (took = r));
    await startReactor({
      nats: doomed,
      name: "orphan-test",
      aggregate: "cluster",
      types: ["cluster.requested"],
      react: async (e) => {
        if (e.aggregate.id !== id) return;
        took?.();
        await new Promise(() => {}); // never finishes: the process dies first
      },
    });
    await recordClusterRequested(store, id);
    await held;
    const died = Date.now();
    await doomed.close(); // as a SIGKILL looks to the server: the connection is gone, nothing settled
    let retriedAt = 0;
    const survivor = await startReactor({
      nats,
      name: "orphan-test",
      aggregate: "cluster",
      types: ["cluster.requested"],
      react: async (e) => {
        if (e.aggregate.id === id && !retriedAt) retriedAt = Date.now();
      },
    });
    await until("retried by the survivor", () => retriedAt > 0 || undefined, 20_000);
    await survivor.stop();
    expect(retriedAt - died).toBeLessThan(8_000);
  });
});

describe("the reactor runtime's skips", () => {
  it("a commit holding nothing it wants is acked as it arrives, not after its aggregate's earlier commits", async () => {
    const id = "skip-early-1";
    let release = () => {};
    const blocked = new Promise<void>((r) => (release = r));
    let took = false;
    const r = await startReactor({
      nats,
      name: "skip-early-test",
      aggregate: "cluster",
      types: ["cluster.requested"],
      react: async (e) => {
        if (e.aggregate.id !== id) return;
        took = true;
        await blocked;
      },
    });
    try {
      await recordClusterRequested(store, id);
      await until("the reaction holds its commit", () => took || undefined);
      await appendAsOwner(store, { type: "cluster", id }, "cluster.deletion-requested", {});
      const last = (await nats.jsm.streams.info(Streams.events)).state.last_seq;
      // Delivered, and only the held commit still waits for its ack.
      await until(
        "the unwanted commit acked while the wanted one is held",
        async () => {
          const info = await nats.jsm.consumers.info(Streams.events, "skip-early-test");
          return (info.delivered.stream_seq >= last && info.num_ack_pending === 1) || undefined;
        },
        3_000,
      );
    } finally {
      release();
      await r.stop();
    }
  });
});

describe("the reactor runtime's spans", () => {
  it("a reaction's span names the aggregate and the command, and so does every span under it; an ignored commit has none", async () => {
    const tracing = useTestTracing();
    const id = "traced-react-1";
    const inside: Record<string, unknown>[] = [];
    const r = await startReactor({
      nats,
      name: "traced-test",
      aggregate: "cluster",
      types: ["cluster.deletion-requested"],
      react: async (e) => {
        if (e.aggregate.id !== id) return;
        inside.push(workAttributes());
        // An outside call under the reaction: a span of its own, which says what it is for.
        trace.getTracer("test").startActiveSpan("EC2.TerminateInstances", (span) => span.end());
      },
    });
    tracing.reset();
    await recordClusterRequested(store, id); // not a type it acts on
    await appendAsOwner(store, { type: "cluster", id }, "cluster.deletion-requested", {});
    await until("the reaction", () => inside.length === 1);
    await r.stop();
    // Its spans for this cluster's commits (the consumer reads the whole stream from the start).
    const mine = tracing
      .spans()
      .filter(
        (s) =>
          s.attributes["messaging.consumer.group.name"] === "traced-test" &&
          s.attributes["messaging.destination.name"] === eventSubject({ type: "cluster", id }),
      );
    // One span, for the commit it acted on: the ignored one was acknowledged unread, with no span.
    expect(mine).toHaveLength(1);
    expect(mine[0]!.attributes).toMatchObject({
      "cairn.aggregate.type": "cluster",
      "cairn.aggregate.id": id,
      "cairn.correlation.id": `fixture-${id}`,
      "cairn.event.types": "cluster.deletion-requested",
    });
    expect(inside[0]).toMatchObject({
      "cairn.aggregate.id": id,
      "cairn.event.types": "cluster.deletion-requested",
    });
    const call = tracing.spans().find((s) => s.name === "EC2.TerminateInstances")!;
    expect(call.parentSpanContext?.spanId).toBe(mine[0]!.spanContext().spanId);
  });
});

describe("the command handler with two writers (replicas)", () => {
  it("a decision that appends nothing is made on the log's state, not on a stale cache", async () => {
    // Two handlers over one aggregate play two replicas of its owning service.
    const { counterCatalogue, counterDecider } = await import("./testing/counter.ts");
    const s = new EventStore({ js: nats.js, jsm: nats.jsm, catalogue: counterCatalogue });
    const one = new CommandHandler({ decider: counterDecider, store: s, catalogue: counterCatalogue });
    const two = new CommandHandler({ decider: counterDecider, store: s, catalogue: counterCatalogue });
    const cmd = (type: string, data: object) => {
      const parsed = counterCatalogue.parseCommand({ id: newId(), type, data });
      if (!parsed.ok) throw parsed.error;
      return parsed.value;
    };
    const target = { type: "workload" as const, id: "replica-1" };
    await one.handle(cmd("workload.increment", { counterId: target.id, by: 2 }));
    expect((await two.read(target)).state.total).toBe(2); // two caches it at 2
    await one.handle(cmd("workload.increment", { counterId: target.id, by: 3 }));
    // two's cache still says 2; the log says 5. A read without atLeastSequence is fresh:
    expect((await two.read(target)).state.total).toBe(5);
    expect(two.stats.staleReads).toBeGreaterThan(0);
  });
});
