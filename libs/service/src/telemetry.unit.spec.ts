import { spansExported } from "@cairn/events";
import { context, propagation, trace } from "@opentelemetry/api";
import { describe, expect, it } from "vitest";
import { propagatorFromEnv, samplerFromEnv, startTelemetry, tracesUrl } from "./telemetry.ts";

describe("startTelemetry", () => {
  it("records spans with real ids and injects W3C traceparent, without a collector", async () => {
    const t = startTelemetry({ serviceName: "telemetry-test" });
    try {
      const headers: Record<string, string> = {};
      const traceId = trace.getTracer("t").startActiveSpan("s", (span) => {
        propagation.inject(context.active(), headers);
        span.end();
        return span.spanContext().traceId;
      });
      expect(traceId).toMatch(/^[0-9a-f]{32}$/);
      expect(traceId).not.toMatch(/^0+$/);
      expect(headers.traceparent).toMatch(new RegExp(`^00-${traceId}-[0-9a-f]{16}-01$`));
    } finally {
      await t.shutdown();
    }
  });

  it("says spans are not exported without an endpoint, and are with one; true again after shutdown", async () => {
    const a = startTelemetry({ serviceName: "no-exporter" });
    expect(spansExported()).toBe(false);
    await a.shutdown();
    expect(spansExported()).toBe(true);
    const b = startTelemetry({
      serviceName: "exporter",
      otlpEndpoint: "http://127.0.0.1:1/",
      shutdownTimeoutMs: 300,
    });
    expect(spansExported()).toBe(true);
    await b.shutdown();
  });

  it("can be called twice, and started again after shutdown", async () => {
    const a = startTelemetry({ serviceName: "one" });
    const b = startTelemetry({ serviceName: "two" });
    expect(b).toBe(a);
    await a.shutdown();
    await b.shutdown();
    // Port 1 refuses connections: the flush cannot succeed, and shutdown must not wait for it.
    const c = startTelemetry({
      serviceName: "three",
      otlpEndpoint: "http://127.0.0.1:1/",
      shutdownTimeoutMs: 300,
    });
    expect(c).not.toBe(a);
    const span = trace.getTracer("t").startSpan("after-restart");
    expect(span.spanContext().traceId).not.toMatch(/^0+$/);
    span.end();
    const started = Date.now();
    await c.shutdown();
    expect(Date.now() - started).toBeLessThan(2_000);
  });

  it("sends spans to <endpoint>/v1/traces", () => {
    expect(tracesUrl("http://localhost:4318")).toBe("http://localhost:4318/v1/traces");
    expect(tracesUrl("http://localhost:4318/")).toBe("http://localhost:4318/v1/traces");
  });
});

describe("the OTEL_* variables NodeSDK honoured (docs/service.md)", () => {
  it("OTEL_TRACES_SAMPLER picks the sampler, with its ratio", () => {
    expect(samplerFromEnv({})).toBeUndefined();
    expect(samplerFromEnv({ OTEL_TRACES_SAMPLER: "always_off" })?.toString()).toBe("AlwaysOffSampler");
    expect(
      samplerFromEnv({
        OTEL_TRACES_SAMPLER: "parentbased_traceidratio",
        OTEL_TRACES_SAMPLER_ARG: "0.25",
      })?.toString(),
    ).toContain("TraceIdRatioBased{0.25}");
  });

  it("OTEL_PROPAGATORS picks the propagators; none registers none", () => {
    expect(propagatorFromEnv({})?.fields()).toEqual(expect.arrayContaining(["traceparent", "baggage"]));
    expect(propagatorFromEnv({ OTEL_PROPAGATORS: "b3multi" })?.fields()).toContain("x-b3-traceid");
    expect(propagatorFromEnv({ OTEL_PROPAGATORS: "tracecontext" })?.fields()).not.toContain("baggage");
    expect(propagatorFromEnv({ OTEL_PROPAGATORS: "none" })).toBeNull();
  });
});
