import { context, trace } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { InMemorySpanExporter, SimpleSpanProcessor, TracerProvider } from "@opentelemetry/sdk-trace";
import { afterEach, describe, expect, it } from "vitest";
import {
  contextPropagates,
  inMessagingSpan,
  SpanKind,
  setSpansExported,
  startMessagingSpan,
  traceIdOf,
  traceparentOf,
} from "./trace.ts";

afterEach(() => {
  setSpansExported(true);
  context.disable();
  trace.disable();
});

describe("contextPropagates", () => {
  it("is false until a context manager is installed, and follows it being installed and removed", () => {
    expect(contextPropagates()).toBe(false);
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
    expect(contextPropagates()).toBe(true);
    context.disable();
    expect(contextPropagates()).toBe(false);
  });
});

describe("startMessagingSpan", () => {
  const opts = {
    operation: "publish" as const,
    template: "evt.workload.{id}",
    destination: "evt.workload.w1",
    kind: SpanKind.PRODUCER,
  };

  it("with no tracer and no trace to continue: no traceparent, and its attributes are never built", () => {
    let built = 0;
    const { span, traceparent } = startMessagingSpan({ ...opts, attributes: () => ({ n: ++built }) });
    span.end();
    expect(traceparent).toBeUndefined();
    expect(built).toBe(0);
  });

  it("with no tracer inside a remote trace: the traceparent continues that trace", () => {
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
    const remote = trace.setSpanContext(context.active(), {
      traceId: "0af7651916cd43dd8448eb211c80319c",
      spanId: "b7ad6b7169203331",
      traceFlags: 1,
      isRemote: true,
    });
    const { span, traceparent } = context.with(remote, () => startMessagingSpan(opts));
    span.end();
    expect(traceparent).toBe("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
  });
});

describe("spans nothing exports (no exporter, the default sampler)", () => {
  const opts = {
    operation: "send" as const,
    template: "cmd.workload.increment",
    destination: "cmd.workload.increment",
    kind: SpanKind.PRODUCER,
  };
  /** A real provider, as startTelemetry registers it, whose spans a test can see. */
  const provider = () => {
    const exporter = new InMemorySpanExporter();
    const p = new TracerProvider({ spanProcessors: [new SimpleSpanProcessor({ exporter })] });
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
    trace.setGlobalTracerProvider(p);
    return exporter;
  };

  it("are made light: not recording, their attributes never built, yet with ids of their own that continue the trace", async () => {
    const exporter = provider();
    setSpansExported(false, { lightSpans: true });
    let built = 0;
    const remote = trace.setSpanContext(context.active(), {
      traceId: "0af7651916cd43dd8448eb211c80319c",
      spanId: "b7ad6b7169203331",
      traceFlags: 1,
      isRemote: true,
    });
    // Inside a trace: the same trace id, a span id of its own, the parent's flags.
    const inside = await context.with(remote, () =>
      inMessagingSpan(opts, async (span) => ({ recording: span.isRecording(), tp: traceparentOf() })),
    );
    expect(inside.recording).toBe(false);
    expect(inside.tp).toMatch(/^00-0af7651916cd43dd8448eb211c80319c-[0-9a-f]{16}-01$/);
    expect(inside.tp).not.toContain("b7ad6b7169203331");
    const published = startMessagingSpan({ ...opts, attributes: () => ({ n: ++built }) });
    published.span.end();
    expect(built).toBe(0);
    // No trace to continue: a new one, sampled, as the default sampler starts it.
    const root = await inMessagingSpan(opts, async () => traceparentOf());
    expect(root).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
    expect(traceIdOf(root)).not.toMatch(/^0+$/);
    // A parent that is not sampled: its children are not either.
    const unsampled = trace.setSpanContext(context.active(), {
      traceId: "1af7651916cd43dd8448eb211c80319c",
      spanId: "c7ad6b7169203331",
      traceFlags: 0,
      isRemote: true,
    });
    expect(await context.with(unsampled, () => inMessagingSpan(opts, async () => traceparentOf()))).toMatch(
      /^00-1af7651916cd43dd8448eb211c80319c-[0-9a-f]{16}-00$/,
    );
    expect(exporter.getFinishedSpans()).toHaveLength(0);
    // Exported again: real spans, recorded.
    setSpansExported(true);
    await inMessagingSpan(opts, async (span) => expect(span.isRecording()).toBe(true));
    expect(exporter.getFinishedSpans().map((s) => s.name)).toEqual(["send cmd.workload.increment"]);
  });
});
