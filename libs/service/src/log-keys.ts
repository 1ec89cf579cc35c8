/**
 * Attribute keys shared by log lines and span attributes, so one name finds a thing in both
 * (`jq 'select(.aggregate_id == "demo-1")'` and a Jaeger tag search use the same key).
 * Spell them through this object; never as string literals.
 */
export const LogKeys = {
  traceId: "trace_id",
  spanId: "span_id",
  service: "service",
  aggregateType: "aggregate_type",
  aggregateId: "aggregate_id",
  commandId: "command_id",
  commandType: "command_type",
  eventId: "event_id",
  eventType: "event_type",
  correlationId: "correlation_id",
  causationId: "causation_id",
  stream: "stream",
  consumer: "consumer",
  subject: "subject",
  sequence: "sequence",
  deliveries: "deliveries",
  lease: "lease",
  holder: "holder",
  reason: "reason",
  closer: "closer",
  signal: "signal",
  durationMs: "duration_ms",
} as const;

export type LogKey = (typeof LogKeys)[keyof typeof LogKeys];
