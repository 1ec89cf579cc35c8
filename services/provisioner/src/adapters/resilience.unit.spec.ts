import { EC2ServiceException } from "@aws-sdk/client-ec2";
import {
  type BreakerState,
  backoffDelay,
  DEFAULT_BREAKER,
  DEFAULT_BULKHEAD,
  DEFAULT_POLICIES,
  type Logger,
  type LoggerLike,
  loggingObserver,
  Resilience,
  type ResilienceObserver,
  resolvePolicies,
} from "@cairn/service";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  BreakerOpenError,
  CallTimeoutError,
  classifyEc2Error,
  Ec2RequestError,
  ThrottlingError,
} from "./ec2-errors.ts";

const site = { service: "ec2", region: "eu-west-1", operation: "DescribeInstances" };
const classify = (e: unknown) => classifyEc2Error(e, site);
const throttled = () =>
  Object.assign(
    new EC2ServiceException({
      name: "RequestLimitExceeded",
      $fault: "server",
      $metadata: { httpStatusCode: 503 },
      message: "Request limit exceeded.",
    }),
    { Code: "RequestLimitExceeded" },
  );
const refused = () =>
  new EC2ServiceException({
    name: "InvalidParameterValue",
    $fault: "client",
    $metadata: { httpStatusCode: 400 },
    message: "no",
  });

/** Backoffs of a millisecond or two: tests never wait for real ones. */
const fast = {
  policies: {
    default: { baseDelayMs: 1, maxDelayMs: 2 },
    aws: { baseDelayMs: 1, maxDelayMs: 2 },
    critical: { baseDelayMs: 1, maxDelayMs: 2 },
  },
};

describe("policy configuration", () => {
  it("has the documented numbers", () => {
    expect(DEFAULT_POLICIES.default).toEqual({
      tries: 3,
      baseDelayMs: 1_000,
      maxDelayMs: 30_000,
      callTimeoutMs: 30_000,
    });
    expect(DEFAULT_POLICIES.aws).toEqual({
      tries: 5,
      baseDelayMs: 500,
      maxDelayMs: 64_000,
      callTimeoutMs: 30_000,
    });
    expect(DEFAULT_POLICIES.critical).toEqual({
      tries: 7,
      baseDelayMs: 2_000,
      maxDelayMs: 120_000,
      callTimeoutMs: 30_000,
      overallTimeoutMs: 1_200_000,
    });
    expect(DEFAULT_BREAKER).toEqual({ consecutiveFailures: 3, halfOpenAfterMs: 30_000 });
    expect(DEFAULT_BULKHEAD.maxConcurrent).toBe(5);
  });

  it("overrides field by field and leaves the rest", () => {
    const p = resolvePolicies({ aws: { tries: 2 } });
    expect(p.aws).toEqual({ ...DEFAULT_POLICIES.aws, tries: 2 });
    expect(p.critical).toEqual(DEFAULT_POLICIES.critical);
  });

  it("refuses a policy that cannot run", () => {
    expect(() => resolvePolicies({ aws: { tries: 0 } })).toThrow(RangeError);
    expect(() => resolvePolicies({ aws: { callTimeoutMs: 0 } })).toThrow(RangeError);
  });

  it("backs off exponentially with full jitter, under the cap", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 40 }),
        fc.integer({ min: 1, max: 5_000 }),
        fc.integer({ min: 1, max: 200_000 }),
        fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
        (attempt, base, cap, r) => {
          const d = backoffDelay(attempt, base, cap, () => r);
          const ceiling = Math.min(cap, base * 2 ** (attempt - 1));
          expect(d).toBeGreaterThanOrEqual(0);
          expect(d).toBeLessThan(ceiling);
        },
      ),
    );
    expect(backoffDelay(3, 500, 64_000, () => 0.5)).toBe(1_000);
    expect(backoffDelay(20, 500, 64_000, () => 0.5)).toBe(32_000);
  });
});

describe("Resilience.run", () => {
  it("retries transient failures up to the policy's tries and reports each retry", async () => {
    const retries: number[] = [];
    const calls: { outcome: string; tries: number }[] = [];
    const r = new Resilience({
      ...fast,
      observer: { onRetry: (e) => retries.push(e.attempt), onCall: (e) => calls.push(e) },
    });
    let n = 0;
    const out = await r.run(
      site,
      "aws",
      async () => {
        if (++n <= 4) throw throttled();
        return "ok";
      },
      classify,
    );
    expect(out).toBe("ok");
    expect(n).toBe(5);
    expect(retries).toEqual([1, 2, 3, 4]);
    expect(calls).toEqual([expect.objectContaining({ outcome: "ok", tries: 5 })]);
  });

  it("gives up after the policy's tries with the classified error", async () => {
    const r = new Resilience(fast);
    let n = 0;
    const run = r.run(
      site,
      "default",
      async () => {
        n++;
        throw throttled();
      },
      classify,
    );
    await expect(run).rejects.toBeInstanceOf(ThrottlingError);
    expect(n).toBe(3);
  });

  it("never retries a permanent failure", async () => {
    const r = new Resilience(fast);
    let n = 0;
    const run = r.run(
      site,
      "critical",
      async () => {
        n++;
        throw refused();
      },
      classify,
    );
    await expect(run).rejects.toBeInstanceOf(Ec2RequestError);
    expect(n).toBe(1);
  });

  it("opens the breaker after consecutive failed calls, fails fast, and closes after a good trial", async () => {
    const states: BreakerState[] = [];
    const observer: ResilienceObserver = { onBreakerStateChange: (e) => states.push(e.state) };
    const r = new Resilience({
      ...fast,
      policies: { ...fast.policies, default: { tries: 2, baseDelayMs: 1, maxDelayMs: 1 } },
      breaker: { consecutiveFailures: 3, halfOpenAfterMs: 40 },
      observer,
    });
    let n = 0;
    const failing = async () => {
      n++;
      throw throttled();
    };
    for (let i = 0; i < 3; i++) await expect(r.run(site, "default", failing, classify)).rejects.toThrow();
    expect(n).toBe(6);
    expect(states).toEqual(["open"]);
    expect(r.breakerState("ec2", "eu-west-1")).toBe("open");

    await expect(r.run(site, "default", failing, classify)).rejects.toBeInstanceOf(BreakerOpenError);
    expect(n).toBe(6);
    // Another region has its own breaker.
    await expect(r.run({ ...site, region: "us-east-1" }, "default", async () => 1, classify)).resolves.toBe(
      1,
    );

    await new Promise((res) => setTimeout(res, 60));
    await expect(r.run(site, "default", async () => "back", classify)).resolves.toBe("back");
    expect(states).toEqual(["open", "half-open", "closed"]);
  });

  it("permanent failures do not open the breaker", async () => {
    const r = new Resilience({ ...fast, breaker: { consecutiveFailures: 2 } });
    const bad = async () => {
      throw refused();
    };
    for (let i = 0; i < 5; i++) await expect(r.run(site, "aws", bad, classify)).rejects.toThrow();
    expect(r.breakerState("ec2", "eu-west-1")).toBe("closed");
  });

  it("times a try out, aborts it, and retries it", async () => {
    const r = new Resilience({ policies: { default: { tries: 2, baseDelayMs: 1, callTimeoutMs: 20 } } });
    const aborted: boolean[] = [];
    const run = r.run(
      site,
      "default",
      (signal) =>
        new Promise<never>((_, reject) => {
          signal.addEventListener("abort", () => {
            aborted.push(true);
            reject(Object.assign(new Error("aborted"), { name: "AbortError" }));
          });
        }),
      classify,
    );
    await expect(run).rejects.toBeInstanceOf(CallTimeoutError);
    expect(aborted).toEqual([true, true]);
  });

  it("bounds the whole call by the overall limit", async () => {
    const r = new Resilience({
      policies: { critical: { tries: 100, baseDelayMs: 5, maxDelayMs: 5, overallTimeoutMs: 40 } },
    });
    let n = 0;
    const run = r.run(
      site,
      "critical",
      async () => {
        n++;
        throw throttled();
      },
      classify,
    );
    await expect(run).rejects.toThrow(/overall limit of 40 ms/);
    expect(n).toBeLessThan(100);
  });

  it("lets at most maxConcurrent tries run at once per service and region", async () => {
    const r = new Resilience({ bulkhead: { maxConcurrent: 2 } });
    let inFlight = 0;
    let most = 0;
    const work = async () => {
      inFlight++;
      most = Math.max(most, inFlight);
      await new Promise((res) => setTimeout(res, 5));
      inFlight--;
      return true;
    };
    await Promise.all(Array.from({ length: 8 }, () => r.run(site, "aws", work, classify)));
    expect(most).toBe(2);
  });

  it("an observer that throws never breaks a call", async () => {
    const boom = () => {
      throw new Error("observer bug");
    };
    const r = new Resilience({
      ...fast,
      observer: { onCall: boom, onRetry: boom, onBreakerStateChange: boom },
    });
    let n = 0;
    const out = await r.run(
      site,
      "aws",
      async () => {
        if (++n === 1) throw throttled();
        return 7;
      },
      classify,
    );
    expect(out).toBe(7);
  });
});

describe("loggingObserver", () => {
  // Compile-time: the service harness's pino logger is a LoggerLike.
  const _fromPino = (l: Logger): LoggerLike => l;

  it("logs retries, breaker changes and failed calls at their levels", async () => {
    const lines: [level: string, fields: Record<string, unknown>, msg: string | undefined][] = [];
    const log = (level: string) => (fields: object, msg?: string) =>
      lines.push([level, fields as Record<string, unknown>, msg]);
    const logger: LoggerLike = {
      debug: log("debug"),
      info: log("info"),
      warn: log("warn"),
      error: log("error"),
    };
    const r = new Resilience({
      policies: { aws: { tries: 2, baseDelayMs: 1, maxDelayMs: 1 } },
      breaker: { consecutiveFailures: 1, halfOpenAfterMs: 60_000 },
      observer: loggingObserver(logger),
    });
    await expect(
      r.run(
        site,
        "aws",
        async () => {
          throw throttled();
        },
        classify,
      ),
    ).rejects.toThrow();

    expect(lines.map(([level, , msg]) => `${level}: ${msg}`)).toEqual([
      "warn: outside call failed; retrying",
      "error: circuit breaker open: calls fail fast until a trial call succeeds",
      "warn: outside call failed",
    ]);
    expect(lines[0]?.[1]).toMatchObject({ region: "eu-west-1", operation: "DescribeInstances", attempt: 1 });
    expect(String(lines[2]?.[1].err)).toContain("ThrottlingError");
    expect(String(lines[2]?.[1].err)).toContain("(fix: back off");
    expect(lines[2]?.[1]).toMatchObject({ tries: 2, policy: "aws" });
  });
});
