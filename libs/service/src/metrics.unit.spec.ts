import { describe, expect, it } from "vitest";
import { counter, gauge, histogram, MetricConflictError, registry } from "./metrics.ts";

describe("metrics", () => {
  it("registers default process metrics", async () => {
    expect(await registry.metrics()).toContain("process_cpu_user_seconds_total");
  });

  it("helpers are idempotent by name", async () => {
    const a = counter("test_requests_total", "Requests", ["outcome"]);
    const b = counter("test_requests_total", "Requests", ["outcome"]);
    expect(b).toBe(a);
    a.inc({ outcome: "ok" });
    b.inc({ outcome: "ok" });
    expect(await registry.getSingleMetricAsString("test_requests_total")).toContain(
      'test_requests_total{outcome="ok"} 2',
    );
    expect(gauge("test_depth", "Depth")).toBe(gauge("test_depth", "Depth"));
    expect(histogram("test_seconds", "Time", [], [0.1, 1])).toBe(histogram("test_seconds", "Time"));
  });

  it("refuses a name reused with another type or other labels", () => {
    counter("test_conflict_total", "x", ["a"]);
    expect(() => gauge("test_conflict_total", "x", ["a"])).toThrow(MetricConflictError);
    expect(() => counter("test_conflict_total", "x", ["b"])).toThrow(/labels \[a\], not \[b\]/);
  });
});
