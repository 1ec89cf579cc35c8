/**
 * @cairn/service: the process harness every Cairn service shares — configuration, logging,
 * tracing, metrics, health endpoints, graceful shutdown and leader leases.
 * Load order in a service's main: startTelemetry() first, then everything else.
 */
export * from "./client-spans.ts";
export * from "./config.ts";
export * from "./heap.ts";
export * from "./http.ts";
export * from "./leader-lease.ts";
export * from "./log-keys.ts";
export * from "./logger.ts";
export * from "./metrics.ts";
export * from "./postgres-tls.ts";
export * from "./resilience.ts";
export * from "./resilience-metrics.ts";
export * from "./run-service.ts";
export * from "./shutdown.ts";
export * from "./supervised.ts";
export * from "./telemetry.ts";
