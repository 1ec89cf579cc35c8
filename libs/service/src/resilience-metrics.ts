/**
 * Outside calls as metrics and log lines: what `Resilience` reports for every system
 * (EC2, SSM, Kubernetes, SQS) — each call's outcome, each retry, each breaker state
 * change, each call not sent — becomes Prometheus series on the service's /metrics,
 * beside the default observer's log lines. Labels: `service` is the system (`ec2`, `ssm`,
 * `kubernetes`, `sqs`), `region` its region (for Kubernetes: the cluster id, whose API
 * server is its own).
 */
import { counter, gauge, histogram } from "./metrics.ts";
import {
  type BreakerState,
  type LoggerLike,
  loggingObserver,
  type ResilienceObserver,
} from "./resilience.ts";

/** The breaker gauge's values. */
export const BREAKER_LEVEL: Readonly<Record<BreakerState, number>> = {
  closed: 0,
  "half-open": 1,
  open: 2,
  isolated: 3,
};

/** The metric names (docs/runbooks.md "A breaker is open" reads them). */
export const RESILIENCE_METRICS = {
  calls: "cairn_cloud_calls_total",
  retries: "cairn_cloud_call_retries_total",
  rejected: "cairn_cloud_calls_rejected_total",
  breakerState: "cairn_cloud_breaker_state",
  breakerTransitions: "cairn_cloud_breaker_transitions_total",
  duration: "cairn_cloud_call_duration_seconds",
} as const;

/**
 * Metrics (and, given a logger, the default log lines) of every outside call. The
 * metrics live in the process registry, so any number of observers share them.
 */
export function resilienceMetricsObserver(logger?: LoggerLike): ResilienceObserver {
  const M = RESILIENCE_METRICS;
  const calls = counter(M.calls, "Outside calls by outcome, after all tries", [
    "service",
    "region",
    "operation",
    "outcome",
  ]);
  const retries = counter(M.retries, "Outside call tries retried after a transient failure", [
    "service",
    "region",
    "operation",
  ]);
  const rejected = counter(
    M.rejected,
    "Outside calls not sent: breaker-open (failing fast) or bulkhead-full (too many in flight and queued)",
    ["service", "region", "reason"],
  );
  const breaker = gauge(
    M.breakerState,
    "Circuit breaker per service and region: 0 closed, 1 half-open, 2 open, 3 isolated",
    ["service", "region"],
  );
  const transitions = counter(M.breakerTransitions, "Circuit breaker state changes, by the state entered", [
    "service",
    "region",
    "state",
  ]);
  const duration = histogram(M.duration, "Outside call time, all tries included", ["service", "operation"]);
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
    onRejected: (e) => {
      rejected.inc({ service: e.service, region: e.region, reason: e.reason });
      log?.onRejected?.(e);
    },
    onBreakerStateChange: (e) => {
      breaker.set({ service: e.service, region: e.region }, BREAKER_LEVEL[e.state]);
      transitions.inc({ service: e.service, region: e.region, state: e.state });
      log?.onBreakerStateChange?.(e);
    },
  };
}
