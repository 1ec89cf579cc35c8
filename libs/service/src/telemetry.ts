/**
 * OpenTelemetry tracing for a Cairn process. Import and call this first (before modules that
 * create tracers), so every span is recorded by the SDK rather than by the API's no-op default.
 *
 * Always registers a tracer provider, the W3C trace-context (+ baggage) propagator and the
 * AsyncLocalStorage context manager, so trace ids exist and cross NATS headers even when no
 * collector runs. Spans are exported only when an OTLP endpoint is given.
 */
import { setSpansExported } from "@cairn/events";
import { context, logs, propagation, trace } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { CompositePropagator, W3CBaggagePropagator, W3CTraceContextPropagator } from "@opentelemetry/core";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http";
import { B3InjectEncoding, B3Propagator } from "@opentelemetry/propagator-b3";
import {
  defaultResource,
  detectResources,
  envDetector,
  hostDetector,
  processDetector,
  resourceFromAttributes,
} from "@opentelemetry/resources";
import {
  AlwaysOffSampler,
  AlwaysOnSampler,
  BatchSpanProcessor,
  NoopSpanProcessor,
  ParentBasedSampler,
  type Sampler,
  type SpanProcessor,
  TraceIdRatioBasedSampler,
  TracerProvider,
} from "@opentelemetry/sdk-trace";
import { ATTR_SERVICE_NAME } from "@opentelemetry/semantic-conventions";

export interface TelemetryOptions {
  /** `service.name` on every span. */
  serviceName: string;
  /** OTLP/HTTP base URL (OTEL_EXPORTER_OTLP_ENDPOINT), e.g. `http://localhost:4318`. */
  otlpEndpoint?: string | undefined;
  /** Upper bound on `shutdown()` (flushing to a dead collector must not hold up exit). Default 5 000 ms. */
  shutdownTimeoutMs?: number;
  /** How long finished spans wait to be exported in a batch (OTEL_BSP_SCHEDULE_DELAY). Default 5 000 ms. */
  exportDelayMs?: number | undefined;
}

export interface Telemetry {
  /**
   * Flushes pending spans (at most `shutdownTimeoutMs`) and unregisters the SDK.
   * Idempotent (same promise); never rejects.
   */
  shutdown(): Promise<void>;
}

let current: Telemetry | undefined;

/** `<endpoint>/v1/traces`, tolerating a trailing slash on the endpoint. */
export function tracesUrl(otlpEndpoint: string): string {
  return `${otlpEndpoint.replace(/\/+$/, "")}/v1/traces`;
}

/** Resolves when `p` settles or after `ms`, whichever comes first; the timer never holds the process. */
async function withDeadline(p: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, ms);
    timer.unref();
  });
  try {
    await Promise.race([p.then(() => undefined), deadline]);
  } finally {
    clearTimeout(timer);
  }
}

/** OTEL_TRACES_SAMPLER (and _ARG), as NodeSDK read them; undefined: the provider's default. */
export function samplerFromEnv(env: NodeJS.ProcessEnv = process.env): Sampler | undefined {
  const arg = Number(env.OTEL_TRACES_SAMPLER_ARG);
  const ratio = env.OTEL_TRACES_SAMPLER_ARG && arg >= 0 && arg <= 1 ? arg : 1;
  switch (env.OTEL_TRACES_SAMPLER?.trim()) {
    case "always_on":
      return new AlwaysOnSampler();
    case "always_off":
      return new AlwaysOffSampler();
    case "parentbased_always_on":
      return new ParentBasedSampler({ root: new AlwaysOnSampler() });
    case "parentbased_always_off":
      return new ParentBasedSampler({ root: new AlwaysOffSampler() });
    case "traceidratio":
      return new TraceIdRatioBasedSampler(ratio);
    case "parentbased_traceidratio":
      return new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(ratio) });
    default:
      return undefined;
  }
}

/**
 * OTEL_PROPAGATORS, as NodeSDK read it (tracecontext, baggage, b3, b3multi; `none`: none);
 * unset: W3C tracecontext + baggage. null: register no propagator.
 */
export function propagatorFromEnv(env: NodeJS.ProcessEnv = process.env): CompositePropagator | null {
  const names = env.OTEL_PROPAGATORS?.split(",")
    .map((n) => n.trim())
    .filter(Boolean) ?? ["tracecontext", "baggage"];
  if (names.includes("none")) return null;
  const made = {
    tracecontext: () => new W3CTraceContextPropagator(),
    baggage: () => new W3CBaggagePropagator(),
    b3: () => new B3Propagator(),
    b3multi: () => new B3Propagator({ injectEncoding: B3InjectEncoding.MULTI_HEADER }),
  } as const;
  const propagators = [...new Set(names)].flatMap((n) => (n in made ? [made[n as keyof typeof made]()] : []));
  return new CompositePropagator({ propagators });
}

/**
 * Starts tracing for this process. Calling it again while started returns the running instance
 * unchanged (its options are ignored): a process has one tracer provider. After `shutdown()` a
 * new call starts afresh. Never throws on a missing or unreachable collector: export failures are
 * the exporter's to report (via `diag`), not the service's.
 * @example
 * const telemetry = startTelemetry({ serviceName: "provisioner", otlpEndpoint: config.OTEL_EXPORTER_OTLP_ENDPOINT });
 * shutdown.onShutdown("telemetry", () => telemetry.shutdown());
 */
export function startTelemetry(opts: TelemetryOptions): Telemetry {
  if (current) return current;

  // A tracer provider with no span processor would drop every span at birth; the no-op
  // processor keeps ids and sampling alive when nothing is exported.
  const spanProcessors: SpanProcessor[] = opts.otlpEndpoint
    ? [
        new BatchSpanProcessor({
          exporter: new OTLPTraceExporter({ url: tracesUrl(opts.otlpEndpoint), timeoutMillis: 5_000 }),
          // The SDK no longer reads OTEL_BSP_* itself; the harness passes it on.
          ...(opts.exportDelayMs !== undefined ? { scheduledDelayMillis: opts.exportDelayMs } : {}),
        }),
      ]
    : [new NoopSpanProcessor()];

  // What NodeSDK.start() registered for us, without NodeSDK: it imports every exporter
  // (gRPC, protobuf, Zipkin, the metrics and logs SDKs) to pick from OTEL_* variables, ~20 MB
  // of RSS in each process (docs/benchmarks.md, load) for parts Cairn never starts: metrics
  // are Prometheus (metrics.ts), logs are pino on stdout, spans go over OTLP/HTTP or nowhere.
  // The same three globals: a tracer provider, the AsyncLocalStorage context manager, and the
  // W3C tracecontext + baggage propagator.
  // The OTEL_* variables NodeSDK honoured (docs/service.md) are read here the same way.
  const disabled = /^(true|1)$/i.test(process.env.OTEL_SDK_DISABLED?.trim() ?? "");
  const sampler = samplerFromEnv();
  const provider = new TracerProvider({
    resource: defaultResource()
      .merge(detectResources({ detectors: [envDetector, hostDetector, processDetector] }))
      .merge(resourceFromAttributes({ [ATTR_SERVICE_NAME]: opts.serviceName })),
    spanProcessors,
    ...(sampler ? { sampler } : {}),
  });
  if (!disabled) {
    const contextManager = new AsyncLocalStorageContextManager();
    contextManager.enable();
    context.setGlobalContextManager(contextManager);
    const propagator = propagatorFromEnv();
    if (propagator) propagation.setGlobalPropagator(propagator);
    trace.setGlobalTracerProvider(provider);
  }
  const sdk = { shutdown: () => provider.shutdown() };
  // Spans made only to be exported are not made when nothing exports them (@cairn/events),
  // and with the default sampler the others are light: ids and trace flags, no SDK span.
  setSpansExported(!!opts.otlpEndpoint && !disabled, { lightSpans: !disabled && sampler === undefined });

  let stopping: Promise<void> | undefined;
  const handle: Telemetry = {
    shutdown() {
      stopping ??= withDeadline(sdk.shutdown(), opts.shutdownTimeoutMs ?? 5_000)
        .catch(() => {
          // Contract: never rejects. A flush that fails at exit has nowhere better to go.
        })
        .finally(() => {
          // Unregister the globals so a later startTelemetry() (tests) can register again.
          trace.disable();
          context.disable();
          propagation.disable();
          logs.disable();
          setSpansExported(true);
          if (current === handle) current = undefined;
        });
      return stopping;
    },
  };
  current = handle;
  return handle;
}
