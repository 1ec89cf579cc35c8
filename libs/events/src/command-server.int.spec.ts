import { headers as natsHeaders } from "@nats-io/transport-node";
import { context, trace } from "@opentelemetry/api";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CommandBus } from "./command-bus.ts";
import { CommandHandler } from "./command-handler.ts";
import { serveCommands, serveStrayCommands } from "./command-server.ts";
import type { Nats } from "./connection.ts";
import type { RunningConsumer } from "./consumer-runner.ts";
import { EventStore } from "./event-store.ts";
import { newId } from "./ids.ts";
import { DLQ_STREAM } from "./streams.ts";
import { Headers } from "./subjects.ts";
import { counterCatalogue, counterDecider } from "./testing/counter.ts";
import { startJetStream, type TestJetStream } from "./testing/jetstream.ts";
import { useTestTracing } from "./testing/tracing.ts";
import { traceIdOf } from "./trace.ts";

const tracing = useTestTracing();
let js: TestJetStream;
let nats: Nats;
let store: EventStore;
let running: RunningConsumer;
let bus: CommandBus;
const outcomes = new Map<string, string>();

beforeAll(async () => {
  js = await startJetStream();
  ({ nats } = js);
  store = new EventStore({ js: nats.js, jsm: nats.jsm, catalogue: counterCatalogue });
  bus = new CommandBus({ js: nats.js, catalogue: counterCatalogue });
  running = await serveCommands({
    js: nats.js,
    jsm: nats.jsm,
    catalogue: counterCatalogue,
    commandPrefix: "workload",
    handler: new CommandHandler({ decider: counterDecider, store, catalogue: counterCatalogue }),
    onOutcome: (id, o) => id && outcomes.set(id, o.status),
  });
});
afterAll(async () => {
  await running?.stop();
  await js?.dispose();
});

async function until<T>(
  what: string,
  f: () => Promise<T | undefined> | T | undefined,
  ms = 15_000,
): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
const version = async (id: string) => (await store.load({ type: "workload", id })).version;

async function deadLetters(): Promise<{ reason: string; subject: string; body: string }[]> {
  const info = await nats.jsm.streams.info(DLQ_STREAM);
  const out = [];
  for (let seq = info.state.first_seq; seq <= info.state.last_seq && info.state.messages > 0; seq++) {
    const m = await nats.jsm.streams.getMessage(DLQ_STREAM, { seq });
    if (!m) continue;
    out.push({
      reason: m.header.get(Headers.dlqReason),
      subject: m.header.get(Headers.dlqSubject),
      body: m.string(),
    });
  }
  return out;
}

describe("command server", () => {
  it("a malformed message lands in the DLQ with its reason, and the consumer keeps going", async () => {
    await nats.js.publish("cmd.workload.increment", "{not json", { msgID: "bad-1" });
    await nats.js.publish(
      "cmd.workload.increment",
      JSON.stringify({ type: "workload.increment", data: {} }),
      { msgID: "bad-2" },
    );
    await nats.js.publish(
      "cmd.workload.explode",
      JSON.stringify({ id: newId(), type: "workload.explode", data: {} }),
      { msgID: "bad-3" },
    );
    const good = await bus.send({ type: "workload.increment", data: { counterId: "after-poison", by: 2 } });
    await until("the good command", () => outcomes.get(good.commandId) === "accepted");
    const dead = await until("three dead letters", async () => {
      const d = await deadLetters();
      return d.length >= 3 ? d : undefined;
    });
    expect(dead.map((d) => d.reason)).toEqual([
      expect.stringContaining("the command is not JSON"),
      expect.stringContaining("not a command envelope: id:"),
      expect.stringContaining('unknown command type "workload.explode"'),
    ]);
    expect(dead[0]?.body).toBe("{not json");
    expect(await version("after-poison")).toBe(1);
  });

  it("invalid data with a known target becomes a rejected event there", async () => {
    const id = newId();
    await nats.js.publish(
      "cmd.workload.increment",
      JSON.stringify({
        id,
        type: "workload.increment",
        data: { counterId: "r1", by: -5 },
        meta: { actor: "bob" },
      }),
      { msgID: id },
    );
    await until("the rejection", () => outcomes.get(id) === "rejected");
    const h = await store.load({ type: "workload", id: "r1" });
    expect(h.events[0]).toMatchObject({
      type: "workload.rejected",
      data: { commandId: id, code: "invalid", reason: expect.stringContaining("by:") },
      meta: { actor: "bob", commandId: id },
    });
  });

  it("an internal command is refused from outside: by the bus at once, over NATS as a rejection", async () => {
    await expect(bus.send({ type: "workload.reset", data: { counterId: "i1" } })).rejects.toThrow(/internal/);
    const id = newId();
    await nats.js.publish(
      "cmd.workload.reset",
      JSON.stringify({ id, type: "workload.reset", data: { counterId: "i1" } }),
      {
        msgID: id,
      },
    );
    await until("the refusal", () => outcomes.get(id) === "rejected");
    const h = await store.load({ type: "workload", id: "i1" });
    expect(h.events[0]?.data).toMatchObject({
      commandId: id,
      reason: expect.stringContaining("is internal"),
    });
  });

  it("a command on another command's subject is a dead letter, not decided there (found by test/fuzz)", async () => {
    // Valid, or invalid with a readable target: either would have been decided (or refused
    // on the target's subject) by whoever serves the subject it was published on.
    const valid = newId();
    const invalid = newId();
    await nats.js.publish(
      "cmd.workload.reset",
      JSON.stringify({ id: valid, type: "workload.increment", data: { counterId: "m1", by: 1 } }),
      { msgID: valid },
    );
    await nats.js.publish(
      "cmd.workload.increment.again",
      JSON.stringify({ id: invalid, type: "workload.increment", data: { counterId: "m1", by: -1 } }),
      { msgID: invalid },
    );
    await until("both dead-lettered", () =>
      outcomes.get(valid) === "dead-letter" && outcomes.get(invalid) === "dead-letter" ? true : undefined,
    );
    const reasons = (await deadLetters()).map((d) => `${d.subject}: ${d.reason}`);
    expect(reasons).toContain(
      "cmd.workload.reset: SchemaError: a workload.increment command is sent on cmd.workload.increment, not on cmd.workload.reset",
    );
    expect(reasons).toContain(
      "cmd.workload.increment.again: SchemaError: a workload.increment command is sent on cmd.workload.increment, not on cmd.workload.increment.again",
    );
    expect(await version("m1")).toBe(0);
  });

  it("what lands on a command subject nobody serves is a dead letter saying so (found by test/fuzz)", async () => {
    const strays = await serveStrayCommands({ js: nats.js, jsm: nats.jsm });
    try {
      const served = newId();
      for (const subject of ["cmd.kube.observe-node", "cmd.bogus.verb", "cmd.cluster"])
        await nats.js.publish(subject, JSON.stringify({ id: newId(), type: "x.y", data: {} }));
      await bus.send({ id: served, type: "workload.increment", data: { counterId: "s1", by: 1 } });
      const letters = await until("the strays dead-lettered", async () => {
        const all = (await deadLetters()).filter((d) => /no service serves/.test(d.reason));
        return all.length >= 3 ? all : undefined;
      });
      expect(letters.map((d) => d.subject).sort()).toEqual([
        "cmd.bogus.verb",
        "cmd.cluster",
        "cmd.kube.observe-node",
      ]);
      expect(letters[0]?.reason).toMatch(
        /a command is sent on cmd.<family>.<verb>, the family one of cluster, /,
      );
      // The served command is its owner's: decided once, and never dead-lettered.
      await until("the served command decided", () => outcomes.get(served) === "accepted");
      expect(await version("s1")).toBe(1);
      const info = await until("the stray consumer caught up", async () => {
        const i = await nats.jsm.consumers.info("CMD", "projector-stray-commands");
        return i.num_pending === 0 && i.num_ack_pending === 0 ? i : undefined;
      });
      expect(info.config.filter_subject).toBe("cmd.>");
      expect((await deadLetters()).filter((d) => /no service serves/.test(d.reason))).toHaveLength(3);
    } finally {
      await strays.stop();
    }
  });

  it("commands are decided side by side, and one aggregate's in the order they were sent", async () => {
    // Sent in one go, interleaved over three aggregates: the server takes many at once.
    const sent = await Promise.all(
      Array.from({ length: 60 }, (_, i) =>
        bus.send({ type: "workload.increment", data: { counterId: `o${i % 3}`, by: i + 1 } }),
      ),
    );
    await until(
      "every command",
      () => sent.every((c) => outcomes.get(c.commandId) === "accepted") || undefined,
    );
    for (let k = 0; k < 3; k++) {
      const h = await store.load({ type: "workload", id: `o${k}` });
      const want = Array.from({ length: 20 }, (_, j) => 3 * j + k + 1);
      expect(h.events.map((e) => (e.data as { by: number }).by)).toEqual(want);
    }
  });

  it("a duplicate command id changes nothing", async () => {
    const id = newId();
    const first = await bus.send({ id, type: "workload.increment", data: { counterId: "d1", by: 1 } });
    const second = await bus.send({ id, type: "workload.increment", data: { counterId: "d1", by: 1 } });
    expect(second.duplicate).toBe(true);
    expect(second.sequence).toBe(first.sequence);
    await until("the command", () => outcomes.get(id) === "accepted");
    // Past the bus's dedupe (a re-publish with a new msg id but the same command id).
    await nats.js.publish(
      "cmd.workload.increment",
      JSON.stringify({ id, type: "workload.increment", data: { counterId: "d1", by: 1 } }),
    );
    await until("the redelivery", () => outcomes.get(id) === "duplicate");
    expect(await version("d1")).toBe(1);
  });

  it("one trace id from the send, through the decision, into the commit", async () => {
    tracing.reset();
    const root = trace.getTracer("test").startSpan("user action");
    const sent = await context.with(trace.setSpan(context.active(), root), () =>
      bus.send({ type: "workload.increment", data: { counterId: "t1", by: 1 } }),
    );
    root.end();
    expect(sent.traceId).toBe(root.spanContext().traceId);
    await until("the command", () => outcomes.get(sent.commandId) === "accepted");
    const h = await store.load({ type: "workload", id: "t1" });
    expect(traceIdOf(h.events[0]?.meta.traceparent)).toBe(sent.traceId);
    // The commit's message header carries it too.
    const m = await nats.jsm.streams.getMessage("EVT", { last_by_subj: "evt.workload.t1" });
    expect(traceIdOf(m?.header.get(Headers.traceparent))).toBe(sent.traceId);
    const spans = await until("spans", () => {
      const s = tracing.spans().filter((x) => x.spanContext().traceId === sent.traceId);
      return s.length >= 4 ? s : undefined;
    });
    expect(spans.map((s) => s.name)).toEqual(
      expect.arrayContaining([
        "user action",
        "send cmd.workload.increment",
        "process cmd.workload.increment",
        "publish evt.workload.{id}",
      ]),
    );
    const process = spans.find((s) => s.name.startsWith("process "));
    expect(process?.attributes["messaging.system"]).toBe("nats");
    expect(process?.attributes["messaging.destination.template"]).toBe("cmd.workload.increment");
  });

  it("a later command on the aggregate starts its own trace linked to the lifecycle", async () => {
    const first = await bus.send({ type: "workload.increment", data: { counterId: "l1", by: 1 } });
    await until("first", () => outcomes.get(first.commandId) === "accepted");
    const second = await bus.send({ type: "workload.increment", data: { counterId: "l1", by: 1 } });
    await until("second", () => outcomes.get(second.commandId) === "accepted");
    expect(second.traceId).not.toBe(first.traceId);
    const h = await store.load({ type: "workload", id: "l1" });
    expect(traceIdOf(h.events[1]?.meta.traceparent)).toBe(second.traceId);
    expect(h.events[1]?.meta.links?.map(traceIdOf)).toEqual([first.traceId]);
  });

  it("a publisher that puts the trace only in the envelope is followed", async () => {
    const id = newId();
    const tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    const h = natsHeaders();
    await nats.js.publish(
      "cmd.workload.increment",
      JSON.stringify({
        id,
        type: "workload.increment",
        data: { counterId: "e1", by: 1 },
        meta: { actor: "script", traceparent: tp },
      }),
      { msgID: id, headers: h },
    );
    await until("the command", () => outcomes.get(id) === "accepted");
    const hist = await store.load({ type: "workload", id: "e1" });
    expect(traceIdOf(hist.events[0]?.meta.traceparent)).toBe("0af7651916cd43dd8448eb211c80319c");
  });
});
