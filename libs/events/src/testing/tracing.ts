import { context, propagation, trace } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import {
  InMemorySpanExporter,
  type ReadableSpan,
  SimpleSpanProcessor,
  TracerProvider,
} from "@opentelemetry/sdk-trace";

export interface TestTracing {
  /** Spans ended so far in this process. */
  spans(): ReadableSpan[];
  reset(): void;
}

const KEY = Symbol.for("cairn.testTracing");

/**
 * Registers a real tracer provider with an in-memory exporter (once per process), so
 * tests see real trace ids and can assert on spans. Services use libs/service's
 * telemetry instead.
 */
export function useTestTracing(): TestTracing {
  const g = globalThis as unknown as Record<symbol, TestTracing | undefined>;
  const existing = g[KEY];
  if (existing) return existing;
  const exporter = new InMemorySpanExporter();
  const provider = new TracerProvider({ spanProcessors: [new SimpleSpanProcessor({ exporter })] });
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  trace.setGlobalTracerProvider(provider);
  const t: TestTracing = { spans: () => exporter.getFinishedSpans(), reset: () => exporter.reset() };
  g[KEY] = t;
  return t;
}
