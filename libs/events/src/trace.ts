/**
 * W3C trace context through NATS: injected into message headers and event meta on
 * every publish, extracted on every consume, so one trace follows a command through
 * every hop. Spans follow the OpenTelemetry messaging conventions: span names and
 * `messaging.destination.template` use subject templates (`evt.cluster.{id}`), never
 * raw ids, so they group well.
 */

import type { MsgHdrs } from "@nats-io/transport-node";
import {
  type Attributes,
  type Context,
  context,
  isSpanContextValid,
  type Link,
  type Span,
  SpanKind,
  SpanStatusCode,
  trace,
} from "@opentelemetry/api";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import { describeError } from "./errors.ts";
import { Headers } from "./subjects.ts";

const propagator = new W3CTraceContextPropagator();

/** Attribute keys, shared so spans, logs and tests agree. */
export const SpanAttributes = {
  messagingSystem: "messaging.system",
  operationType: "messaging.operation.type",
  operationName: "messaging.operation.name",
  destination: "messaging.destination.name",
  destinationTemplate: "messaging.destination.template",
  messageId: "messaging.message.id",
  consumerGroup: "messaging.consumer.group.name",
  batchCount: "messaging.batch.message_count",
  aggregateType: "cairn.aggregate.type",
  aggregateId: "cairn.aggregate.id",
  commandId: "cairn.command.id",
  commandType: "cairn.command.type",
  eventTypes: "cairn.event.types",
  sequence: "cairn.stream.sequence",
} as const;

export function tracer() {
  return trace.getTracer("cairn");
}

type Carrier = Record<string, string>;

/** The `traceparent` of a context's span, if it has a valid one. */
export function traceparentOf(ctx: Context = context.active()): string | undefined {
  const carrier: Carrier = {};
  propagator.inject(ctx, carrier, { set: (c, k, v) => (c[k] = v) });
  return carrier.traceparent;
}

/** The trace id inside a `traceparent`. */
export function traceIdOf(tp: string | undefined): string | undefined {
  return tp?.split("-")[1];
}

/** A context whose remote parent is the given traceparent (or the current one if absent/invalid). */
export function contextFromTraceparent(tp: string | undefined, base: Context = context.active()): Context {
  if (!tp) return base;
  return propagator.extract(base, { traceparent: tp } as Carrier, {
    get: (c, k) => c[k],
    keys: (c) => Object.keys(c),
  });
}

/** Writes the context's trace into NATS headers. Returns the traceparent written. */
export function injectTrace(headers: MsgHdrs, ctx: Context = context.active()): string | undefined {
  const tp = traceparentOf(ctx);
  if (tp) headers.set(Headers.traceparent, tp);
  return tp;
}

/** Reads a trace from NATS headers into a context (falls back to `fallbackTraceparent`). */
export function extractTrace(headers: MsgHdrs | undefined, fallbackTraceparent?: string): Context {
  const tp = headers?.get(Headers.traceparent) || fallbackTraceparent;
  return contextFromTraceparent(tp || undefined, context.active());
}

/** A span link to another trace (the lifecycle trace of an aggregate). */
export function linkTo(tp: string | undefined): Link[] {
  if (!tp) return [];
  const sc = trace.getSpanContext(contextFromTraceparent(tp));
  return sc && isSpanContextValid(sc) ? [{ context: sc }] : [];
}

/**
 * Runs `fn` inside a messaging span named `<operation> <template>` and ends it;
 * records an exception and error status if `fn` throws (and rethrows).
 */
export async function inMessagingSpan<T>(
  opts: {
    operation: "send" | "publish" | "process" | "receive" | "settle";
    template: string;
    destination: string;
    kind: SpanKind;
    parent?: Context;
    links?: Link[];
    attributes?: Attributes;
  },
  fn: (span: Span, ctx: Context) => Promise<T>,
): Promise<T> {
  const parent = opts.parent ?? context.active();
  const span = tracer().startSpan(
    `${opts.operation} ${opts.template}`,
    {
      kind: opts.kind,
      links: opts.links ?? [],
      attributes: {
        [SpanAttributes.messagingSystem]: "nats",
        [SpanAttributes.operationType]: opts.operation,
        [SpanAttributes.operationName]: opts.operation,
        [SpanAttributes.destination]: opts.destination,
        [SpanAttributes.destinationTemplate]: opts.template,
        ...opts.attributes,
      },
    },
    parent,
  );
  const ctx = trace.setSpan(parent, span);
  try {
    return await context.with(ctx, () => fn(span, ctx));
  } catch (err) {
    span.recordException(err instanceof Error ? err : new Error(String(err)));
    span.setStatus({ code: SpanStatusCode.ERROR, message: describeError(err) });
    throw err;
  } finally {
    span.end();
  }
}

/**
 * Runs `fn` in an internal span (named `name`) whose parent is `traceparent`, an
 * aggregate's lifecycle trace, or the current context when it has none: work that
 * resumes on its own (a watch re-started after a restart or a lease change) continues
 * the lifecycle instead of starting an unlinked root. What `fn` commits carries it.
 */
export async function continueTrace<T>(
  traceparent: string | undefined,
  name: string,
  fn: () => Promise<T>,
  attributes?: Attributes,
): Promise<T> {
  const parent = contextFromTraceparent(traceparent);
  const span = tracer().startSpan(name, { kind: SpanKind.INTERNAL, attributes: attributes ?? {} }, parent);
  try {
    return await context.with(trace.setSpan(parent, span), fn);
  } catch (err) {
    span.recordException(err instanceof Error ? err : new Error(String(err)));
    span.setStatus({ code: SpanStatusCode.ERROR, message: describeError(err) });
    throw err;
  } finally {
    span.end();
  }
}

export { SpanKind };

/** `evt.cluster.{id}` for `evt.cluster.demo-1`; `cmd.*` subjects are already templates. */
export function subjectTemplate(subject: string): string {
  const parts = subject.split(".");
  if (parts[0] === "evt" && parts.length === 3) return `evt.${parts[1]}.{id}`;
  return subject;
}
