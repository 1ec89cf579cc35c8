import { registry } from "@cairn/service";
import { describe, expect, it } from "vitest";
import { cloudMetricsObserver } from "./observability.ts";

describe("cloud metrics", () => {
  it("counts calls and retries and shows the breaker state per service and region", async () => {
    const o = cloudMetricsObserver();
    const site = { service: "ec2", region: "eu-west-1", operation: "RunInstances" };
    o.onRetry?.({ ...site, attempt: 1, delayMs: 10, error: new Error("throttled") });
    o.onCall?.({ ...site, policy: "aws", outcome: "ok", tries: 2, durationMs: 42 });
    o.onBreakerStateChange?.({ service: "ec2", region: "eu-west-1", state: "open" });
    const text = await registry.metrics();
    expect(text).toMatch(
      /cairn_cloud_call_retries_total\{service="ec2",region="eu-west-1",operation="RunInstances"\} 1/,
    );
    expect(text).toMatch(
      /cairn_cloud_calls_total\{service="ec2",region="eu-west-1",operation="RunInstances",outcome="ok"\} 1/,
    );
    expect(text).toMatch(/cairn_cloud_breaker_state\{service="ec2",region="eu-west-1"\} 2/);
  });
});
