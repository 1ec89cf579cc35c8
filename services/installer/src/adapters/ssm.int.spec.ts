/**
 * The SSM adapter's resilience against the simulated SSM, through the real SDK client:
 * SSM has its own breaker (3 failed calls, 45 s before a trial, 3 calls at once per
 * region), not EC2's; a throttling storm opens it, calls then fail fast without reaching
 * SSM, and a good trial after 45 s closes it. The metrics show every step.
 */
import { isPermanent } from "@cairn/events";
import { type BreakerState, RESILIENCE_METRICS, registry, resilienceMetricsObserver } from "@cairn/service";
import { SIM_CREDENTIALS, type Sim, startSim, ZERO_LATENCIES } from "@cairn/sim";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { SSM_SERVICE, SsmRemoteExec } from "./ssm.ts";
import { SsmBreakerOpen, SsmInvocationNotFound, SsmThrottled } from "./ssm-errors.ts";

const REGION = "eu-central-1";
let sim: Sim;

beforeEach(async () => {
  sim = await startSim({ seed: 3, timeScale: 100, latencies: ZERO_LATENCIES });
});
afterEach(async () => {
  vi.useRealTimers();
  await sim.stop();
});

const ssmRequests = () => sim.requests.list().filter((r) => r.service === "ssm" && r.region === REGION);
const metric = async (name: string, labels: string) => {
  const m = new RegExp(`^${name}\\{${labels}\\} (\\d+)$`, "m").exec(await registry.metrics());
  return m ? Number(m[1]) : 0;
};

describe("SSM's own resilience", () => {
  it("has SSM's settings, not EC2's: 3 failures, 45 s, 3 at once", () => {
    const remote = new SsmRemoteExec({ endpoint: sim.url, credentials: SIM_CREDENTIALS });
    expect(remote.resilience.settingsOf(SSM_SERVICE)).toEqual({
      breaker: { consecutiveFailures: 3, halfOpenAfterMs: 45_000 },
      bulkhead: { maxConcurrent: 3, maxQueued: 1_000 },
    });
    expect(remote.resilience.settingsOf("ec2")).toEqual({
      breaker: { consecutiveFailures: 3, halfOpenAfterMs: 30_000 },
      bulkhead: { maxConcurrent: 5, maxQueued: 1_000 },
    });
  });

  it("a throttling storm opens SSM's breaker after 3 failed calls; it lets a trial through only after 45 s, which closes it", async () => {
    // Only Date is faked (the breaker's clock); sockets and backoff timers stay real.
    vi.useFakeTimers({ toFake: ["Date"], now: Date.now() });
    const states: BreakerState[] = [];
    const metrics = resilienceMetricsObserver();
    const remote = new SsmRemoteExec({
      endpoint: sim.url,
      credentials: SIM_CREDENTIALS,
      policies: { aws: { tries: 2, baseDelayMs: 1, maxDelayMs: 2 } },
      observer: {
        ...metrics,
        onBreakerStateChange: (e) => {
          states.push(e.state);
          metrics.onBreakerStateChange?.(e);
        },
      },
    });
    const site = `service="ssm",region="${REGION}"`;
    const retriesBefore = await metric(RESILIENCE_METRICS.retries, `${site},operation="GetParameter"`);
    const rejectedBefore = await metric(RESILIENCE_METRICS.rejected, `${site},reason="breaker-open"`);
    sim.faults.add({ kind: "throttle", service: "ssm", region: REGION, count: 1_000 });

    for (let i = 0; i < 3; i++) {
      const err = await remote.parameterVersion(REGION, "/cairn/x/token").catch((e: unknown) => e);
      expect(err).toBeInstanceOf(SsmThrottled);
      expect(isPermanent(err)).toBe(false);
    }
    expect(states).toEqual(["open"]);
    expect(ssmRequests()).toHaveLength(3 * 2); // each call: its 2 tries, then it counted once
    expect(remote.resilience.breakerState(SSM_SERVICE, REGION)).toBe("open");
    expect(await metric(RESILIENCE_METRICS.breakerState, site)).toBe(2);
    expect(await metric(RESILIENCE_METRICS.retries, `${site},operation="GetParameter"`)).toBe(
      retriesBefore + 3,
    );

    // Open: calls fail fast without reaching SSM, with the hint; the storm is over but
    // 44 s later (EC2's 30 s long past) it is still open.
    sim.faults.clear();
    vi.setSystemTime(Date.now() + 44_000);
    const fast = await remote.parameterVersion(REGION, "/cairn/x/token").catch((e: unknown) => e);
    expect(fast).toBeInstanceOf(SsmBreakerOpen);
    expect((fast as SsmBreakerOpen).remediation).toMatch(/A breaker is open/);
    expect(ssmRequests()).toHaveLength(6);
    expect(await metric(RESILIENCE_METRICS.rejected, `${site},reason="breaker-open"`)).toBe(
      rejectedBefore + 1,
    );

    // 45 s after it opened: one trial call goes through and closes it.
    vi.setSystemTime(Date.now() + 1_001);
    await expect(remote.parameterVersion(REGION, "/cairn/x/token")).resolves.toBeUndefined();
    expect(states).toEqual(["open", "half-open", "closed"]);
    expect(ssmRequests()).toHaveLength(7);
    expect(await metric(RESILIENCE_METRICS.breakerState, site)).toBe(0);
    expect(
      await metric(RESILIENCE_METRICS.breakerTransitions, `${site},state="open"`),
    ).toBeGreaterThanOrEqual(1);
  });

  it("a permanent refusal is not retried and does not count towards the breaker", async () => {
    const remote = new SsmRemoteExec({
      endpoint: sim.url,
      credentials: SIM_CREDENTIALS,
      policies: { aws: { baseDelayMs: 1, maxDelayMs: 2 } },
    });
    for (let i = 0; i < 4; i++) {
      // No such command: SSM answers InvalidCommandId.
      const err = await remote.cancel(REGION, "no-such-command", "i-0abc").catch((e: unknown) => e);
      if (!(err instanceof SsmInvocationNotFound))
        return expect.fail(`expected SsmInvocationNotFound, got ${String(err)}`);
      expect(isPermanent(err)).toBe(true);
      expect(err.remediation).toMatch(/sent again/);
    }
    expect(ssmRequests()).toHaveLength(4);
    expect(remote.resilience.breakerState(SSM_SERVICE, REGION)).toBe("closed");
  });
});
