/**
 * The EC2 adapter against the simulated cloud, through the real SDK client: idempotent
 * launches, paging, batching, retries, the breaker, capacity fallback and region
 * confinement, each checked in the sim's request log.
 */

import { inWork, SpanAttributes } from "@cairn/events";
import { useTestTracing } from "@cairn/events/testing";
import type { BreakerState } from "@cairn/service";
import { SIM_CREDENTIALS, type Sim, startSim, ZERO_LATENCIES } from "@cairn/sim";
import { SpanKind, SpanStatusCode, trace } from "@opentelemetry/api";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { nextPlacement, type PlacementChoices } from "../cluster/placement.ts";
import { isCapacityFailure, type LaunchRequest, launchBatchToken, launchToken } from "../ports.ts";
import { Ec2Compute, type Ec2ComputeOptions } from "./ec2.ts";
import {
  BreakerOpenError,
  CapacityError,
  IdempotencyMismatchError,
  ImageNotFoundError,
  InstanceNotFoundError,
  ThrottlingError,
} from "./ec2-errors.ts";

const REGION = "eu-west-1";
const AMI = "ami-0123456789abcdef0";

let sim: Sim;
let compute: Ec2Compute | undefined;

beforeEach(async () => {
  sim = await startSim({ seed: 1, timeScale: 100, latencies: ZERO_LATENCIES });
});

afterEach(async () => {
  compute?.close();
  compute = undefined;
  await sim.stop();
});

/** An adapter on the sim with millisecond backoffs. */
function ec2(opts: Ec2ComputeOptions = {}): Ec2Compute {
  compute = new Ec2Compute({
    endpoint: sim.url,
    credentials: SIM_CREDENTIALS,
    ...opts,
    policies: {
      default: { baseDelayMs: 1, maxDelayMs: 2 },
      aws: { baseDelayMs: 1, maxDelayMs: 2 },
      critical: { baseDelayMs: 1, maxDelayMs: 2 },
      ...opts.policies,
    },
  });
  return compute;
}

function slot(clusterId: string, n: number, over: Partial<LaunchRequest> = {}): LaunchRequest {
  const attempt = over.attempt ?? 0;
  return {
    region: REGION,
    clusterId,
    pool: "workers",
    slot: n,
    attempt,
    role: "agent",
    instanceType: "t3.large",
    capacityType: "on-demand",
    imageId: AMI,
    clientToken: launchToken(clusterId, n, attempt),
    ...over,
  };
}

const logged = (action?: string) => sim.requests.list({ service: "ec2", ...(action ? { action } : {}) });

async function launchMany(c: Ec2Compute, clusterId: string, n: number): Promise<string[]> {
  const launched = await Promise.all(Array.from({ length: n }, (_, i) => c.launch(slot(clusterId, i))));
  return launched.map((i) => i.instanceId);
}

describe("launch", () => {
  it("is idempotent by ClientToken: the same token twice is one instance", async () => {
    const c = ec2();
    const first = await c.launch(slot("demo-1", 0));
    const again = await c.launch(slot("demo-1", 0));

    expect(again.instanceId).toBe(first.instanceId);
    expect(sim.world.ec2.instances(REGION)).toHaveLength(1);
    expect(logged("RunInstances").filter((r) => r.status === 200)).toHaveLength(2);
    expect(first.owner).toEqual({ clusterId: "demo-1", pool: "workers", slot: 0, role: "agent", attempt: 0 });
    expect(first.clientToken).toBe(launchToken("demo-1", 0, 0));
    expect(first.tags.Name).toBe("demo-1-workers-0");
  });

  it("launches a batch in one call: each instance's owner is the first slot plus its AmiLaunchIndex", async () => {
    const c = ec2();
    const req = {
      ...slot("demo-1", 1000, { attempt: 1 }),
      count: 5,
      clientToken: launchBatchToken("demo-1", 1000, 1, 5),
    };
    const launched = await c.launchBatch(req);
    expect(launched.map((i) => [i.amiLaunchIndex, i.owner?.slot, i.owner?.attempt])).toEqual([
      [0, 1000, 1],
      [1, 1001, 1],
      [2, 1002, 1],
      [3, 1003, 1],
      [4, 1004, 1],
    ]);
    expect(logged("RunInstances")).toHaveLength(1);
    // DescribeInstances says the same: the slot is readable from EC2 alone.
    const found = await c.describeCluster(REGION, "demo-1");
    expect(found.map((i) => i.owner?.slot).sort()).toEqual([1000, 1001, 1002, 1003, 1004]);
  });

  it("two replicas launching one batch at once (or after a crash) get the same instances", async () => {
    const a = ec2();
    const b = new Ec2Compute({ endpoint: sim.url, credentials: SIM_CREDENTIALS });
    try {
      const req = {
        ...slot("demo-1", 1000, { attempt: 1 }),
        count: 20,
        clientToken: launchBatchToken("demo-1", 1000, 1, 20),
      };
      const [x, y] = await Promise.all([a.launchBatch(req), b.launchBatch(req)]);
      expect(y.map((i) => i.instanceId)).toEqual(x.map((i) => i.instanceId));
      const again = await b.launchBatch(req);
      expect(again.map((i) => i.instanceId)).toEqual(x.map((i) => i.instanceId));
      expect(sim.world.ec2.instances(REGION)).toHaveLength(20);
    } finally {
      b.close();
    }
  });

  it("a batch short of capacity answers the instances EC2 could launch, by position", async () => {
    sim.faults.add({
      kind: "insufficient-capacity",
      service: "ec2",
      match: { instanceType: "t3.large" },
      available: 2,
      count: 1,
    });
    const req = {
      ...slot("demo-1", 1000, { attempt: 1 }),
      count: 4,
      clientToken: launchBatchToken("demo-1", 1000, 1, 4),
    };
    const launched = await ec2().launchBatch(req);
    expect(launched.map((i) => i.owner?.slot)).toEqual([1000, 1001]);
  });

  it("launches spot when asked", async () => {
    const i = await ec2().launch(slot("demo-1", 0, { capacityType: "spot", availabilityZone: "eu-west-1b" }));
    expect(i.capacityType).toBe("spot");
    expect(i.availabilityZone).toBe("eu-west-1b");
    expect(sim.world.ec2.instance(REGION, i.instanceId)?.spot).toBe(true);
  });

  it("the same token with other parameters is a permanent IdempotencyMismatchError", async () => {
    const c = ec2();
    await c.launch(slot("demo-1", 0));
    const err = await c.launch(slot("demo-1", 0, { instanceType: "t3a.large" })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(IdempotencyMismatchError);
    expect(logged("RunInstances")).toHaveLength(2);
  });

  it("a missing AMI is an ImageNotFoundError with the hint, not retried", async () => {
    const res = await fetch(`${sim.adminUrl}/ec2/missing-ami`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ imageId: AMI, region: REGION }),
    });
    expect(res.ok).toBe(true);
    const err = await ec2()
      .launch(slot("demo-1", 0))
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ImageNotFoundError);
    expect((err as ImageNotFoundError).remediation).toBe(
      `the AMI ${AMI} does not exist in ${REGION}: build or copy the Cairn AMI there, or set \`ami\` in the spec`,
    );
    expect(logged("RunInstances")).toHaveLength(1);
  });
});

describe("traces", () => {
  const tracing = useTestTracing();

  it("every EC2 call is a client span under the caller's span, saying what it was for", async () => {
    tracing.reset();
    const c = ec2();
    // What a reaction does: its span is active, and the runtime said what the work is about.
    const work = { [SpanAttributes.aggregateId]: "demo-1", [SpanAttributes.commandId]: "cmd-1" };
    await trace.getTracer("test").startActiveSpan("reaction", async (span) => {
      await inWork(work, () => c.launch(slot("demo-1", 0)));
      span.end();
    });
    const calls = tracing.spans().filter((s) => s.kind === SpanKind.CLIENT);
    expect(calls.map((s) => s.name)).toEqual(["EC2.RunInstances"]);
    const [run] = calls;
    const parent = tracing.spans().find((s) => s.name === "reaction")!;
    expect(run!.parentSpanContext?.spanId).toBe(parent.spanContext().spanId);
    expect(run!.spanContext().traceId).toBe(parent.spanContext().traceId);
    expect(run!.attributes).toMatchObject({
      "rpc.system": "aws-api",
      "rpc.service": "EC2",
      "rpc.method": "RunInstances",
      "cloud.region": REGION,
      "http.response.status_code": 200,
      "cairn.aggregate.id": "demo-1",
      "cairn.command.id": "cmd-1",
    });
    expect(run!.attributes["aws.request_id"]).toEqual(expect.any(String));
    expect(run!.status.code).not.toBe(SpanStatusCode.ERROR);
  });

  it("a refused call's span is an error with EC2's status and request id; each retry has its own", async () => {
    tracing.reset();
    sim.faults.add({ kind: "throttle", service: "ec2", count: 2 });
    await ec2().launch(slot("demo-2", 0));
    const calls = tracing.spans().filter((s) => s.name === "EC2.RunInstances");
    expect(calls.map((s) => s.status.code)).toEqual([
      SpanStatusCode.ERROR,
      SpanStatusCode.ERROR,
      SpanStatusCode.UNSET,
    ]);
    expect(calls[0]!.attributes["http.response.status_code"]).toBeGreaterThanOrEqual(400);
    expect(calls[0]!.attributes["error.type"]).toEqual(expect.any(String));
    expect(calls[0]!.events.map((e) => e.name)).toContain("exception");
  });
});

describe("capacity", () => {
  it("insufficient capacity is a CapacityError, not retried; the planner's next choice launches", async () => {
    sim.faults.add({
      kind: "insufficient-capacity",
      service: "ec2",
      action: "RunInstances",
      match: { instanceType: "t3.large" },
      count: 1,
    });
    const c = ec2();
    const pool: PlacementChoices = {
      instanceTypes: ["t3.large", "t3a.large"],
      availabilityZones: ["eu-west-1a", "eu-west-1b"],
      capacityType: "spot",
      fallbackToOnDemand: true,
    };
    const first = nextPlacement(pool, [])!;
    const err = await c
      .launch(slot("demo-1", 0, { ...first, availabilityZone: first.availabilityZone! }))
      .catch((e: unknown) => e);

    expect(err).toBeInstanceOf(CapacityError);
    expect(isCapacityFailure(err)).toBe(true);
    expect(logged("RunInstances")).toHaveLength(1);

    const next = nextPlacement(pool, [(err as CapacityError).placement])!;
    expect(next).toEqual({ instanceType: "t3a.large", availabilityZone: "eu-west-1a", capacityType: "spot" });
    const launched = await c.launch(
      slot("demo-1", 0, { ...next, availabilityZone: next.availabilityZone!, attempt: 1 }),
    );
    expect(launched.instanceType).toBe("t3a.large");
    expect(launched.availabilityZone).toBe("eu-west-1a");
    expect(launched.owner?.attempt).toBe(1);
    expect(logged("RunInstances").map((r) => r.status)).toEqual([500, 200]);
  });
});

describe("describe", () => {
  it("describeCluster finds the cluster's instances by tag across pages", async () => {
    const c = ec2({ pageSize: 10 });
    const mine = await launchMany(c, "big", 25);
    await launchMany(c, "other", 3);
    sim.requests.clear();

    const found = await c.describeCluster(REGION, "big");
    expect(found.map((i) => i.instanceId).sort()).toEqual([...mine].sort());
    expect(found.every((i) => i.owner?.clusterId === "big")).toBe(true);
    expect(logged("DescribeInstances").length).toBeGreaterThanOrEqual(3);
  });

  it("leaves terminated instances out unless asked", async () => {
    const c = ec2();
    const [gone, ...rest] = await launchMany(c, "demo-1", 3);
    await c.terminate(REGION, [gone!]);
    expect((await c.describeCluster(REGION, "demo-1")).map((i) => i.instanceId).sort()).toEqual(rest.sort());
    expect(await c.describeCluster(REGION, "demo-1", { includeTerminated: true })).toHaveLength(3);
  });

  it("describe answers the known ids and leaves unknown ones out", async () => {
    const c = ec2();
    const launched = await launchMany(c, "demo-1", 2);
    const found = await c.describe(REGION, [...launched, "i-00000000000000000"]);
    expect(found.map((i) => i.instanceId).sort()).toEqual([...launched].sort());
  });

  it("describe with states leaves out the instances in other states (the boot poll's filter)", async () => {
    const c = ec2();
    const [gone, ...rest] = await launchMany(c, "demo-1", 3);
    await c.terminate(REGION, [gone!]);
    const running = await c.describe(REGION, [gone!, ...rest], { states: ["running"] });
    expect(running.map((i) => i.instanceId).sort()).toEqual([...rest].sort());
    expect(logged("DescribeInstances").at(-1)?.status).toBe(200);
    expect(await c.describe(REGION, [gone!], { states: ["terminated", "shutting-down"] })).toHaveLength(1);
  });
});

describe("states (the boot poll's look)", () => {
  const NOT_PENDING = ["running", "shutting-down", "stopping", "stopped", "terminated"] as const;

  it("answers ids and states by DescribeInstanceStatus, leaving out pending ones and the states not asked", async () => {
    // Instances that boot for an hour: pending throughout the test.
    await sim.stop();
    sim = await startSim({ seed: 1, timeScale: 1, latencies: { ...ZERO_LATENCIES, instanceBoot: 3600 } });
    const c = ec2();
    const [gone, ...booting] = await launchMany(c, "demo-1", 3);
    sim.requests.clear();
    expect(await c.states(REGION, [gone!, ...booting], { states: NOT_PENDING })).toEqual([]);
    expect(
      (await c.states(REGION, [gone!, ...booting], { states: ["pending"] })).map((i) => i.instanceId).sort(),
    ).toEqual([gone!, ...booting].sort());
    await c.terminate(REGION, [gone!]);
    const seen = await c.states(REGION, [gone!, ...booting], { states: NOT_PENDING });
    expect(seen).toHaveLength(1);
    expect(seen[0]?.instanceId).toBe(gone);
    expect(["shutting-down", "terminated"]).toContain(seen[0]?.state);
    expect(logged("DescribeInstanceStatus").every((r) => r.status === 200)).toBe(true);
    expect(logged("DescribeInstances")).toHaveLength(0);
  });

  it("names at most 100 ids a call; a batch with an id EC2 does not show is asked again by DescribeInstances", async () => {
    const c = ec2();
    const batch = await c.launchBatch({
      ...slot("big", 1000),
      count: 150,
      clientToken: launchBatchToken("big", 1000, 0, 150),
    });
    const ids = batch.map((i) => i.instanceId);
    sim.requests.clear();
    const unknown = "i-00000000000000000";
    const seen = await c.states(REGION, [...ids, unknown], { states: ["running"] });
    expect(seen.map((i) => i.instanceId).sort()).toEqual([...ids].sort());
    expect(seen.every((i) => i.state === "running")).toBe(true);
    const status = logged("DescribeInstanceStatus");
    expect(status.every((r) => r.ids.length <= 100)).toBe(true);
    // The first 100 answered; the batch of 50 + the unknown id was refused (NotFound),
    // then asked by the instance-id filter, which leaves the unknown id out.
    expect(status.map((r) => r.status).sort()).toEqual([200, 400]);
    expect(status.find((r) => r.status === 400)?.error).toBe("InvalidInstanceID.NotFound");
    expect(logged("DescribeInstances")).toHaveLength(1);
  });
});

describe("state changes", () => {
  it("terminates 23 instances in 3 calls of at most 10, with 23 results", async () => {
    const c = ec2();
    const launched = await launchMany(c, "demo-1", 23);
    sim.requests.clear();

    const results = await c.terminate(REGION, launched);
    const calls = logged("TerminateInstances");
    expect(calls).toHaveLength(3);
    expect(calls.every((r) => r.ids.length <= 10 && r.status === 200)).toBe(true);
    expect(results).toHaveLength(23);
    expect(results.map((r) => r.instanceId)).toEqual(launched);
    expect(results.every((r) => r.ok && r.previousState === "running")).toBe(true);
    expect(sim.world.ec2.instances(REGION).every((i) => i.state !== "running")).toBe(true);
  });

  it("an unknown id gets its own not-found result; the others are terminated", async () => {
    const c = ec2();
    const launched = await launchMany(c, "demo-1", 3);
    const unknown = "i-0fffffffffffffff0";
    const results = await c.terminate(REGION, [...launched, unknown]);
    const bad = results.find((r) => r.instanceId === unknown);
    expect(bad?.ok).toBe(false);
    expect(bad && !bad.ok && bad.error).toBeInstanceOf(InstanceNotFoundError);
    expect(results.filter((r) => r.ok)).toHaveLength(3);
  });

  it("stops, starts and reboots with a result per instance", async () => {
    const c = ec2();
    const launched = await launchMany(c, "demo-1", 2);
    const stopped = await c.stop(REGION, launched);
    expect(stopped.every((r) => r.ok && r.previousState === "running")).toBe(true);
    const started = await c.start(REGION, launched);
    expect(started.every((r) => r.ok && r.previousState === "stopped")).toBe(true);
    const rebooted = await c.reboot(REGION, launched);
    expect(rebooted.map((r) => r.ok)).toEqual([true, true]);
  });
});

describe("resilience", () => {
  it("rides out a throttling storm of 4 with retries; the call succeeds", async () => {
    const retries: number[] = [];
    const states: BreakerState[] = [];
    const c = ec2({
      observer: {
        onRetry: (e) => retries.push(e.attempt),
        onBreakerStateChange: (e) => states.push(e.state),
      },
    });
    sim.faults.add({ kind: "throttle", service: "ec2", count: 4 });

    const launched = await c.launch(slot("demo-1", 0));
    expect(launched.state).toBe("running");
    expect(logged("RunInstances").map((r) => r.error ?? r.status)).toEqual([
      "RequestLimitExceeded",
      "RequestLimitExceeded",
      "RequestLimitExceeded",
      "RequestLimitExceeded",
      200,
    ]);
    expect(retries).toEqual([1, 2, 3, 4]);
    expect(states).toEqual([]);
  });

  it("a longer storm opens the breaker: calls fail fast without reaching EC2, then a good trial closes it", async () => {
    const states: BreakerState[] = [];
    const c = ec2({
      policies: { aws: { tries: 2, baseDelayMs: 1, maxDelayMs: 1 } },
      breaker: { consecutiveFailures: 3, halfOpenAfterMs: 100 },
      observer: { onBreakerStateChange: (e) => states.push(e.state) },
    });
    sim.faults.add({ kind: "throttle", service: "ec2", count: 1_000 });

    for (let i = 0; i < 3; i++) {
      await expect(c.describeCluster(REGION, "demo-1")).rejects.toBeInstanceOf(ThrottlingError);
    }
    expect(states).toEqual(["open"]);
    const reached = logged().length;
    expect(reached).toBe(3 * 2);

    const err = await c.describeCluster(REGION, "demo-1").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BreakerOpenError);
    expect((err as BreakerOpenError).remediation).toBe(
      "EC2 in eu-west-1 failed repeatedly; waiting for it to recover",
    );
    await expect(c.launch(slot("demo-1", 0))).rejects.toBeInstanceOf(BreakerOpenError);
    expect(logged()).toHaveLength(reached);

    sim.faults.clear();
    await new Promise((r) => setTimeout(r, 150));
    await expect(c.describeCluster(REGION, "demo-1")).resolves.toEqual([]);
    expect(states).toEqual(["open", "half-open", "closed"]);
    expect(c.resilience.breakerState("ec2", REGION)).toBe("closed");
  });
});

describe("regions", () => {
  it("a cluster in eu-west-1 never causes a request to any other region", async () => {
    const c = ec2();
    const launched = await launchMany(c, "demo-1", 3);
    await c.describeCluster(REGION, "demo-1");
    await c.describe(REGION, launched);
    await c.stop(REGION, launched);
    await c.start(REGION, launched);
    await c.reboot(REGION, launched);
    await c.terminate(REGION, launched);

    const all = sim.requests.list();
    expect(all.length).toBeGreaterThan(0);
    expect(all.filter((r) => r.region !== REGION)).toEqual([]);
  });

  it("reads the endpoint and credentials from the environment as the SDK does", async () => {
    const keys = ["AWS_ENDPOINT_URL_EC2", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"] as const;
    const saved = keys.map((k) => process.env[k]);
    process.env.AWS_ENDPOINT_URL_EC2 = sim.url;
    process.env.AWS_ACCESS_KEY_ID = SIM_CREDENTIALS.accessKeyId;
    process.env.AWS_SECRET_ACCESS_KEY = SIM_CREDENTIALS.secretAccessKey;
    try {
      compute = new Ec2Compute();
      const i = await compute.launch(slot("env-1", 0));
      expect(sim.world.ec2.instance(REGION, i.instanceId)).toBeDefined();
    } finally {
      keys.forEach((k, n) => {
        const v = saved[n];
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      });
    }
  });
});
