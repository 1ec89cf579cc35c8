/** The event store's publish span, with a real tracer: what it says and what the commit carries. */
import { context, SpanStatusCode, trace } from "@opentelemetry/api";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConcurrencyConflictError } from "./errors.ts";
import { EventStore } from "./event-store.ts";
import { newId } from "./ids.ts";
import { Headers } from "./subjects.ts";
import { counterCatalogue } from "./testing/counter.ts";
import { startJetStream, type TestJetStream } from "./testing/jetstream.ts";
import { useTestTracing } from "./testing/tracing.ts";
import { SpanAttributes } from "./trace.ts";

const tracing = useTestTracing();
let js: TestJetStream;
let store: EventStore;
beforeAll(async () => {
  js = await startJetStream();
  store = new EventStore({ js: js.nats.js, jsm: js.nats.jsm, catalogue: counterCatalogue });
});
afterAll(async () => {
  await js?.dispose();
});

const agg = { type: "workload" as const, id: "traced-1" };
const event = (position: number) => ({
  id: newId(),
  type: "workload.incremented",
  version: 2,
  aggregate: agg,
  position,
  time: new Date().toISOString(),
  data: { by: 1 },
  meta: { causationId: `c${position}`, correlationId: "c", actor: "test" },
});

describe("event store under a tracer", () => {
  it("the commit's traceparent names its publish span, which says what was written and where", async () => {
    tracing.reset();
    const root = trace.getTracer("test").startSpan("decide");
    const r = await context.with(trace.setSpan(context.active(), root), () =>
      store.append({ aggregate: agg, causationId: "c1", events: [event(1)] }, 0),
    );
    root.end();
    const span = tracing.spans().find((s) => s.name === "publish evt.workload.{id}");
    expect(span?.parentSpanContext?.spanId).toBe(root.spanContext().spanId);
    expect(span?.attributes).toMatchObject({
      [SpanAttributes.messagingSystem]: "nats",
      [SpanAttributes.destination]: "evt.workload.traced-1",
      [SpanAttributes.destinationTemplate]: "evt.workload.{id}",
      [SpanAttributes.messageId]: r.commitId,
      [SpanAttributes.aggregateId]: "traced-1",
      [SpanAttributes.eventTypes]: "workload.incremented",
      [SpanAttributes.sequence]: r.sequence,
    });
    const m = await js.nats.jsm.streams.getMessage("EVT", { seq: r.sequence });
    const tp = m?.header.get(Headers.traceparent);
    expect(tp?.split("-")[1]).toBe(root.spanContext().traceId);
    expect(tp?.split("-")[2]).toBe(span?.spanContext().spanId);
  });

  it("a conflict ends the span as an error", async () => {
    tracing.reset();
    await expect(
      store.append({ aggregate: agg, causationId: "c2", events: [event(2)] }, 0),
    ).rejects.toBeInstanceOf(ConcurrencyConflictError);
    const span = tracing.spans().find((s) => s.name === "publish evt.workload.{id}");
    expect(span?.status.code).toBe(SpanStatusCode.ERROR);
  });
});
