/**
 * Cloud calls as metrics and log lines: what the EC2 adapter's resilience layer reports
 * becomes Prometheus series on the service's /metrics (libs/service's
 * resilience-metrics.ts, shared by every service and outside system).
 */
import { type Logger, type ResilienceObserver, resilienceMetricsObserver } from "@cairn/service";

export function cloudMetricsObserver(logger?: Logger): ResilienceObserver {
  return resilienceMetricsObserver(logger);
}
