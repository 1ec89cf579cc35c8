import { describe, expect, it } from "vitest";
import { type ClassifiedFailure, Resilience, SERVICE_SETTINGS } from "./resilience.ts";

const site = (service: string) => ({ service, region: "r1", operation: "Op" });
const failure = (o: Partial<ClassifiedFailure> & { failure: "transient" | "permanent" }): ClassifiedFailure =>
  Object.assign(new Error(o.failure), o);
const asIs = (e: unknown) => e as ClassifiedFailure;

describe("Resilience: each system's own settings", () => {
  it("SSM, Kubernetes and SQS have their own breakers and bulkheads; overrides go field by field", () => {
    const r = new Resilience({
      breaker: { halfOpenAfterMs: 10 },
      services: { ssm: { bulkhead: { maxConcurrent: 1 } } },
    });
    expect(SERVICE_SETTINGS.ssm).toEqual({
      breaker: { consecutiveFailures: 3, halfOpenAfterMs: 45_000 },
      bulkhead: { maxConcurrent: 3, maxQueued: 1_000 },
    });
    expect(r.settingsOf("ssm")).toEqual({
      breaker: { consecutiveFailures: 3, halfOpenAfterMs: 10 },
      bulkhead: { maxConcurrent: 1, maxQueued: 1_000 },
    });
    expect(r.settingsOf("kubernetes").breaker.consecutiveFailures).toBe(5);
    expect(r.settingsOf("something-else")).toEqual({
      breaker: { consecutiveFailures: 3, halfOpenAfterMs: 10 },
      bulkhead: { maxConcurrent: 5, maxQueued: 1_000 },
    });
  });
});

describe("Resilience: what is retried", () => {
  const fast = { policies: { default: { tries: 3, baseDelayMs: 1, maxDelayMs: 5_000 } } };

  it("a transient CairnError-shaped failure is retried; a permanent one is not", async () => {
    const r = new Resilience(fast);
    let tries = 0;
    await expect(
      r.run(
        site("x"),
        "default",
        async () => {
          tries++;
          throw failure({ failure: "permanent" });
        },
        asIs,
      ),
    ).rejects.toThrow("permanent");
    expect(tries).toBe(1);
    tries = 0;
    await expect(
      r.run(
        site("x"),
        "default",
        async () => {
          if (++tries < 3) throw failure({ failure: "transient" });
          return "ok";
        },
        asIs,
      ),
    ).resolves.toBe("ok");
    expect(tries).toBe(3);
  });

  it("retryCall: false is transient for the work but not retried as a call, nor counted by the breaker", async () => {
    const r = new Resilience({ ...fast, breaker: { consecutiveFailures: 1 } });
    let tries = 0;
    for (let i = 0; i < 3; i++)
      await expect(
        r.run(
          site("x"),
          "default",
          async () => {
            tries++;
            throw failure({ failure: "transient", retryCall: false });
          },
          asIs,
        ),
      ).rejects.toThrow("transient");
    expect(tries).toBe(3);
    expect(r.breakerState("x", "r1")).toBe("closed");
  });

  it("a Retry-After is honoured: the next try waits at least that long (capped at maxDelayMs)", async () => {
    const delays: number[] = [];
    const r = new Resilience({
      policies: { default: { tries: 2, baseDelayMs: 1, maxDelayMs: 1_000 } },
      random: () => 0,
      observer: { onRetry: (e) => delays.push(e.delayMs) },
    });
    let tries = 0;
    const started = Date.now();
    await r.run(
      site("x"),
      "default",
      async () => {
        if (++tries === 1) throw failure({ failure: "transient", retryAfterMs: 120 });
        return "ok";
      },
      asIs,
    );
    expect(delays).toEqual([120]);
    expect(Date.now() - started).toBeGreaterThanOrEqual(100);
  });

  it("a call refused by the open breaker is reported as rejected", async () => {
    const rejected: string[] = [];
    const r = new Resilience({
      policies: { default: { tries: 1 } },
      breaker: { consecutiveFailures: 1, halfOpenAfterMs: 60_000 },
      observer: { onRejected: (e) => rejected.push(`${e.service}/${e.region}/${e.reason}`) },
    });
    const boom = async () => {
      throw failure({ failure: "transient" });
    };
    await expect(r.run(site("x"), "default", boom, asIs)).rejects.toThrow("transient");
    await expect(
      r.run(site("x"), "default", boom, (e) =>
        Object.assign(new Error("open"), { cause: e, failure: "transient" as const }),
      ),
    ).rejects.toThrow("open");
    expect(rejected).toEqual(["x/r1/breaker-open"]);
  });
});
