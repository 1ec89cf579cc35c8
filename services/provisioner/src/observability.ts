/**
 * Cloud calls as metrics and log lines: what the EC2 adapter's resilience layer reports
 * (every call's outcome, each retry, each breaker state change) becomes Prometheus
 * series on the service's /metrics, beside the adapter's own log lines.
 */
import {
  type BreakerState,
  counter,
  gauge,
  histogram,
  type Logger,
  loggingObserver,
  type ResilienceObserver,
} from "@cairn/service";

const BREAKER_LEVEL: Record<BreakerState, number> = { closed: 0, "half-open": 1, open: 2, isolated: 3 };

export function cloudMetricsObserver(logger?: Logger): ResilienceObserver {
  const calls = counter("cairn_cloud_calls_total", "Cloud API calls by outcome, after all tries", [
    "service",
    "region",
    "operation",
    "outcome",
  ]);
  const retries = counter(
    "cairn_cloud_call_retries_total",
    "Cloud API tries retried after a transient failure",
    ["service", "region", "operation"],
  );
  const breaker = gauge(
    "cairn_cloud_breaker_state",
    "Circuit breaker per service and region: 0 closed, 1 half-open, 2 open, 3 isolated",
    ["service", "region"],
  );
  const duration = histogram("cairn_cloud_call_duration_seconds", "Cloud API call time, all tries included", [
    "service",
    "operation",
  ]);
  const log = logger ? loggingObserver(logger) : undefined;
  return {
    onCall: (e) => {
      calls.inc({ service: e.service, region: e.region, operation: e.operation, outcome: e.outcome });
      duration.observe({ service: e.service, operation: e.operation }, e.durationMs / 1000);
      log?.onCall?.(e);
    },
    onRetry: (e) => {
      retries.inc({ service: e.service, region: e.region, operation: e.operation });
      log?.onRetry?.(e);
    },
    onBreakerStateChange: (e) => {
      breaker.set({ service: e.service, region: e.region }, BREAKER_LEVEL[e.state]);
      log?.onBreakerStateChange?.(e);
    },
  };
}
