import { context, trace } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { afterEach, describe, expect, it } from "vitest";
import { contextPropagates, SpanKind, startMessagingSpan } from "./trace.ts";

afterEach(() => {
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
