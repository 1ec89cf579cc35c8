/**
 * W3C trace context through NATS: injected into message headers and event meta on
 * every publish, extracted on every consume, so one trace follows a command through
 * every hop. Spans follow the OpenTelemetry messaging conventions: span names and
 * `messaging.destination.template` use subject templates (`evt.cluster.{id}`), never
 * raw ids, so they group well.
 */

import { randomFillSync } from "node:crypto";
import type { MsgHdrs } from "@nats-io/transport-node";
import {
  type Attributes,
  type Context,
  context,
  createContextKey,
  isSpanContextValid,
  type Link,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  type SpanOptions,
  SpanStatusCode,
  TraceFlags,
  type Tracer,
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
  /** The command that started the chain (the lifecycle's creating command, for its whole trace). */
  correlationId: "cairn.correlation.id",
  eventId: "cairn.event.id",
  eventTypes: "cairn.event.types",
  sequence: "cairn.stream.sequence",
} as const;

/**
 * What a piece of work is about (its aggregate, its command), carried in the context so
 * that every span started inside it — an EC2, SSM or Kubernetes client span three calls
 * down — says so too, without each adapter being told. Set by the runtime where it learns
 * them (a parsed command, a reacted-to event); read by every span helper.
 */
const WORK_ATTRIBUTES = createContextKey("cairn.work-attributes");

/** The work attributes of a context (none outside any command or reaction). */
export function workAttributes(ctx: Context = context.active()): Attributes {
  const a = ctx.getValue(WORK_ATTRIBUTES);
  return a && typeof a === "object" ? (a as Attributes) : {};
}

/** The attributes that say what work is about; a span's others (a sequence, a message id) stay its own. */
const WORK_KEYS: ReadonlySet<string> = new Set([
  SpanAttributes.aggregateType,
  SpanAttributes.aggregateId,
  SpanAttributes.commandId,
  SpanAttributes.commandType,
  SpanAttributes.correlationId,
  SpanAttributes.eventId,
  SpanAttributes.eventTypes,
]);

/** A context whose work attributes are its own plus those of `attributes` (later ones win). */
export function withWorkAttributes(attributes: Attributes, ctx: Context = context.active()): Context {
  const work = Object.entries(attributes).filter(([k, v]) => WORK_KEYS.has(k) && v !== undefined);
  if (work.length === 0) return ctx;
  return ctx.setValue(WORK_ATTRIBUTES, { ...workAttributes(ctx), ...Object.fromEntries(work) });
}

/**
 * A context whose work is `attributes` alone: new work (a command being decided) is about
 * its own aggregate and command, not about the event whose reaction sent it.
 */
export function asNewWork(attributes: Attributes, ctx: Context = context.active()): Context {
  return withWorkAttributes(attributes, ctx.deleteValue(WORK_ATTRIBUTES));
}

/**
 * Runs `fn` with `attributes` added to the work attributes, and to the span active now
 * (the command's or the reaction's own span), so the span and everything under it carry
 * the aggregate id and the command id.
 * @example await inWork({ [SpanAttributes.aggregateId]: "demo-1", [SpanAttributes.commandId]: id }, () => react(e));
 */
export function inWork<T>(attributes: Attributes, fn: () => T): T {
  const ctx = withWorkAttributes(attributes);
  trace.getSpan(ctx)?.setAttributes(workAttributes(ctx));
  return context.with(ctx, fn);
}

/** The work attributes of an event: its aggregate, its command and the chain's first command. */
export function eventWorkAttributes(e: {
  readonly id: string;
  readonly type: string;
  readonly aggregate: { readonly type: string; readonly id: string };
  readonly meta: { readonly commandId?: string | undefined; readonly correlationId?: string | undefined };
}): Attributes {
  return {
    [SpanAttributes.aggregateType]: e.aggregate.type,
    [SpanAttributes.aggregateId]: e.aggregate.id,
    [SpanAttributes.eventId]: e.id,
    [SpanAttributes.eventTypes]: e.type,
    ...(e.meta.commandId ? { [SpanAttributes.commandId]: e.meta.commandId } : {}),
    ...(e.meta.correlationId ? { [SpanAttributes.correlationId]: e.meta.correlationId } : {}),
  };
}

const PROBE = ROOT_CONTEXT.setValue(createContextKey("cairn.context-probe"), true);
const probeIsActive = () => context.active() === PROBE;

/**
 * Whether a context manager is installed (telemetry is set up): without one, `context.with`
 * runs its callback in the root context and what a context carries is never read, so work
 * that only builds contexts for spans and trace propagation can be skipped. Asked each time
 * (one `context.with`), since telemetry may be set up after a caller was made.
 */
export function contextPropagates(): boolean {
  return context.with(PROBE, probeIsActive);
}

let exported = true;

/**
 * Whether finished spans go anywhere. `startTelemetry` (@cairn/service) sets it false when it
 * registers no exporter (no `OTEL_EXPORTER_OTLP_ENDPOINT`) and true again at its shutdown;
 * true by default, so a test's own tracer provider sees every span. A span whose only use
 * is to be exported (the projector's span per commit applied: nothing reads its ids) is
 * not made when false — at 500 commits/s they were spans made and dropped.
 */
export function spansExported(): boolean {
  return exported;
}

let light = false;

/**
 * Set by the process's telemetry start-up: see {@link spansExported}. `lightSpans` (only
 * meaningful when not exported): the registered provider samples as the default sampler
 * does (parent-based, always on), so {@link tracer}'s spans may be made light.
 */
export function setSpansExported(value: boolean, o: { lightSpans?: boolean } = {}): void {
  exported = value;
  light = !value && o.lightSpans === true;
}

/**
 * Random ids for light spans, hex from a pool of random bytes filled 4 KiB at a time (the
 * SDK's id generator fills a buffer from `Math.random` per id; either is unguessable enough
 * for a trace id, which is no secret).
 */
const idPool = Buffer.allocUnsafe(4096);
let idAt = idPool.length;
function randomHex(bytes: number): string {
  for (;;) {
    if (idAt + bytes > idPool.length) {
      randomFillSync(idPool);
      idAt = 0;
    }
    const start = idAt;
    idAt += bytes;
    // All zeros is no id (invalid in W3C trace context): another draw.
    for (let i = start; i < idAt; i++) if (idPool[i] !== 0) return idPool.toString("hex", start, idAt);
  }
}

/**
 * A span nothing will ever see but its ids: made with no SDK span behind it (no attributes,
 * clock readings, span processor or sampler call — a tenth of the provisioner's and of the
 * API's CPU per command at 500 commands/s, docs/benchmarks.md "cmdcpu"), with what the
 * default sampler would give it: the parent's trace id and flags, or a new sampled trace.
 * What it carries on — the `traceparent` of every message and event, the trace id of every
 * log line — is as before.
 */
function lightSpan(ctx: Context): Span {
  const parent = trace.getSpanContext(ctx);
  const inTrace = parent !== undefined && isSpanContextValid(parent);
  return trace.wrapSpanContext({
    traceId: inTrace ? parent.traceId : randomHex(16),
    spanId: randomHex(8),
    traceFlags: inTrace ? parent.traceFlags : TraceFlags.SAMPLED,
    ...(inTrace && parent.traceState ? { traceState: parent.traceState } : {}),
  });
}

const lightTracer: Tracer = {
  startSpan: (_name: string, _options?: SpanOptions, ctx: Context = context.active()) => lightSpan(ctx),
  startActiveSpan<F extends (span: Span) => unknown>(name: string, ...rest: unknown[]): ReturnType<F> {
    const fn = rest.at(-1) as F;
    const ctx = rest.length >= 3 ? (rest[1] as Context) : context.active();
    const span = lightSpan(ctx);
    void name;
    return context.with(trace.setSpan(ctx, span), () => fn(span)) as ReturnType<F>;
  },
};

/** Whether {@link tracer} makes light spans (nothing exports them): see {@link lightSpan}. */
export function spansLight(): boolean {
  return light;
}

/**
 * Cairn's tracer: the registered provider's, or — when the process exports no spans and
 * samples by default (`setSpansExported`) — one that makes light spans.
 */
export function tracer(): Tracer {
  return light ? lightTracer : trace.getTracer("cairn");
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
  const parent = withWorkAttributes(opts.attributes ?? {}, opts.parent ?? context.active());
  const span = light
    ? lightSpan(parent)
    : tracer().startSpan(
        `${opts.operation} ${opts.template}`,
        {
          kind: opts.kind,
          links: opts.links ?? [],
          attributes: {
            ...workAttributes(parent),
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
 * A messaging span for work that runs no code of its own under it (one publish): started
 * and handed back, with the `traceparent` the message must carry, instead of run around a
 * callback. Its attributes — the same as {@link inMessagingSpan}'s — are built only when the
 * span records: with no tracer (or a sampled-out trace) a publish pays for no attribute
 * objects, contexts or callbacks (bench/event-store). A sampler therefore sees the span's
 * name and kind, not its attributes. The caller ends the span.
 */
export function startMessagingSpan(opts: {
  operation: "send" | "publish" | "process" | "receive" | "settle";
  template: string;
  destination: string;
  kind: SpanKind;
  parent?: Context;
  attributes?: () => Attributes;
}): { span: Span; traceparent: string | undefined } {
  const parent = opts.parent ?? context.active();
  const span = tracer().startSpan(`${opts.operation} ${opts.template}`, { kind: opts.kind }, parent);
  if (span.isRecording()) {
    const own = opts.attributes?.() ?? {};
    span.setAttributes({
      ...workAttributes(withWorkAttributes(own, parent)),
      [SpanAttributes.messagingSystem]: "nats",
      [SpanAttributes.operationType]: opts.operation,
      [SpanAttributes.operationName]: opts.operation,
      [SpanAttributes.destination]: opts.destination,
      [SpanAttributes.destinationTemplate]: opts.template,
      ...own,
    });
  }
  // No valid span context (no tracer, no trace to continue): nothing to propagate.
  const traceparent = isSpanContextValid(span.spanContext())
    ? traceparentOf(trace.setSpan(parent, span))
    : undefined;
  return { span, traceparent };
}

/** Marks a span failed with `err` (an exception event and an error status). */
export function recordFailure(span: Span, err: unknown): void {
  if (!span.isRecording()) return;
  span.recordException(err instanceof Error ? err : new Error(String(err)));
  span.setStatus({ code: SpanStatusCode.ERROR, message: describeError(err) });
}

/** The work attributes of a command: its target aggregate, itself, and the chain's first command. */
export function commandWorkAttributes(c: {
  readonly target: { readonly type: string; readonly id: string };
  readonly commandId: string;
  readonly commandType: string;
  readonly correlationId?: string | undefined;
}): Attributes {
  return {
    [SpanAttributes.aggregateType]: c.target.type,
    [SpanAttributes.aggregateId]: c.target.id,
    [SpanAttributes.commandId]: c.commandId,
    [SpanAttributes.commandType]: c.commandType,
    [SpanAttributes.correlationId]: c.correlationId ?? c.commandId,
  };
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
  // What the surrounding work was about (the reaction that started a loop long ago) is not
  // what this is about: it names its own.
  const parent = asNewWork(attributes ?? {}, contextFromTraceparent(traceparent));
  const span = tracer().startSpan(
    name,
    { kind: SpanKind.INTERNAL, attributes: workAttributes(parent) },
    parent,
  );
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
