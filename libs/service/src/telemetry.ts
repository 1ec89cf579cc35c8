/**
 * OpenTelemetry tracing for a Cairn process. Import and call this first (before modules that
 * create tracers), so every span is recorded by the SDK rather than by the API's no-op default.
 *
 * Always registers a tracer provider, the W3C trace-context (+ baggage) propagator and the
 * AsyncLocalStorage context manager, so trace ids exist and cross NATS headers even when no
 * collector runs. Spans are exported only when an OTLP endpoint is given.
 */
import { context, logs, propagation, trace } from "@opentelemetry/api";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http";
import { defaultResource, resourceFromAttributes } from "@opentelemetry/resources";
import { NodeSDK } from "@opentelemetry/sdk-node";
import { BatchSpanProcessor, NoopSpanProcessor, type SpanProcessor } from "@opentelemetry/sdk-trace";
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

  // NodeSDK registers a tracer provider only if it has at least one span processor; the no-op
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

  const sdk = new NodeSDK({
    serviceName: opts.serviceName,
    resource: defaultResource().merge(resourceFromAttributes({ [ATTR_SERVICE_NAME]: opts.serviceName })),
    spanProcessors,
    // Metrics are Prometheus (metrics.ts) and logs are pino on stdout: the SDK must not start
    // its own OTLP metric/log exporters from OTEL_* defaults.
    metricReaders: [],
    logRecordProcessors: [],
    // contextManager and textMapPropagator left unset: NodeSDK then installs the
    // AsyncLocalStorageContextManager and W3C tracecontext+baggage (unless OTEL_PROPAGATORS says otherwise).
  });
  sdk.start();

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
          if (current === handle) current = undefined;
        });
      return stopping;
    },
  };
  current = handle;
  return handle;
}
