/**
 * The simulated EC2 driven by the official @aws-sdk/client-ec2, exactly as Cairn's
 * adapters drive it: the sim must speak the wire protocol well enough for the
 * unmodified SDK. Time moves only by `sim.clock.advance` (timeScale 1, so the few
 * wall milliseconds a test takes never cross a latency).
 */

import { Worker } from "node:worker_threads";
import {
  CreateTagsCommand,
  DescribeImagesCommand,
  DescribeInstanceStatusCommand,
  DescribeInstancesCommand,
  type DescribeInstancesCommandOutput,
  EC2Client,
  type Instance,
  RebootInstancesCommand,
  RunInstancesCommand,
  type RunInstancesCommandInput,
  StartInstancesCommand,
  StopInstancesCommand,
  TerminateInstancesCommand,
} from "@aws-sdk/client-ec2";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { REALISTIC_LATENCIES } from "../clock.ts";
import { SIM_CREDENTIALS, type Sim, startSim } from "../sim.ts";
import type { Ec2SimPort, SpotInterruptionNotice } from "./index.ts";

const AMI = "ami-0abc1234def567890";
let sim: Sim;
let ec2: EC2Client;
const clients: EC2Client[] = [];

function client(region: string): EC2Client {
  const c = new EC2Client({ region, endpoint: sim.url, credentials: SIM_CREDENTIALS, maxAttempts: 1 });
  clients.push(c);
  return c;
}

beforeEach(async () => {
  sim = await startSim({ seed: 42, timeScale: 1, latencies: { apiCall: 0 } });
  ec2 = client("eu-west-1");
});
afterEach(async () => {
  for (const c of clients.splice(0)) c.destroy();
  await sim.stop();
});

const advance = (seconds: number) => sim.clock.advance(seconds * 1000);

/** The error a call fails with (the test fails if it succeeds). */
async function failure(p: Promise<unknown>): Promise<Error & { $metadata: { httpStatusCode?: number } }> {
  try {
    await p;
  } catch (e) {
    return e as Error & { $metadata: { httpStatusCode?: number } };
  }
  throw new Error("expected the call to fail");
}

const launch = (input: Partial<RunInstancesCommandInput> = {}, c = ec2) =>
  c.send(
    new RunInstancesCommand({ ImageId: AMI, InstanceType: "t3.large", MinCount: 1, MaxCount: 1, ...input }),
  );

const idsOf = (out: { Instances?: Instance[] }) => (out.Instances ?? []).map((i) => i.InstanceId!);
const instancesOf = (out: DescribeInstancesCommandOutput) =>
  (out.Reservations ?? []).flatMap((r) => r.Instances ?? []);

async function describeStates(ids: string[]): Promise<Record<string, string>> {
  const out = await ec2.send(new DescribeInstancesCommand({ InstanceIds: ids }));
  return Object.fromEntries(instancesOf(out).map((i) => [i.InstanceId!, i.State!.Name!]));
}

async function admin(path: string, body: unknown): Promise<{ status: number; json: unknown }> {
  const res = await fetch(`${sim.adminUrl}/${path}`, { method: "POST", body: JSON.stringify(body) });
  return { status: res.status, json: await res.json() };
}

describe("RunInstances", () => {
  it("launches pending instances that look like EC2's, in the requested zone", async () => {
    const out = await launch({
      MinCount: 2,
      MaxCount: 3,
      Placement: { AvailabilityZone: "eu-west-1b" },
      TagSpecifications: [
        { ResourceType: "instance", Tags: [{ Key: "cairn:cluster", Value: "demo-1" }] },
        { ResourceType: "volume", Tags: [{ Key: "ignored", Value: "x" }] },
      ],
    });
    expect(out.ReservationId).toMatch(/^r-[0-9a-f]{17}$/);
    expect(out.Instances).toHaveLength(3);
    for (const [n, i] of (out.Instances ?? []).entries()) {
      expect(i.InstanceId).toMatch(/^i-[0-9a-f]{17}$/);
      expect(i.State).toEqual({ Code: 0, Name: "pending" });
      expect(i.InstanceType).toBe("t3.large");
      expect(i.ImageId).toBe(AMI);
      expect(i.AmiLaunchIndex).toBe(n);
      expect(i.Placement?.AvailabilityZone).toBe("eu-west-1b");
      expect(i.PrivateIpAddress).toMatch(/^10\.\d+\.\d+\.\d+$/);
      expect(i.PrivateDnsName).toBe(
        `ip-${i.PrivateIpAddress!.replaceAll(".", "-")}.eu-west-1.compute.internal`,
      );
      expect(i.Tags).toEqual([{ Key: "cairn:cluster", Value: "demo-1" }]);
      expect(i.InstanceLifecycle).toBeUndefined();
      expect(i.LaunchTime).toBeInstanceOf(Date);
    }
  });

  it("is idempotent by ClientToken: the same token and parameters give the same instances", async () => {
    const input = { MinCount: 3, MaxCount: 3, ClientToken: "evt-0193a0c2-create" };
    const first = await launch(input);
    const again = await launch(input);
    expect(idsOf(first)).toHaveLength(3);
    expect(idsOf(again)).toEqual(idsOf(first));
    expect(again.ReservationId).toBe(first.ReservationId);

    const all = instancesOf(await ec2.send(new DescribeInstancesCommand({})));
    expect(all.map((i) => i.InstanceId).sort()).toEqual(idsOf(first).sort());

    const err = await failure(launch({ ...input, InstanceType: "t3a.large" }));
    expect(err.name).toBe("IdempotentParameterMismatch");
    expect(err.$metadata.httpStatusCode).toBe(400);
    expect(instancesOf(await ec2.send(new DescribeInstancesCommand({})))).toHaveLength(3);

    // Each call is in the request log with the ids it returned.
    const runs = sim.requests.list({ service: "ec2", action: "RunInstances" });
    expect(runs.map((r) => [r.status, r.ids.length, r.error])).toEqual([
      [200, 3, undefined],
      [200, 3, undefined],
      [400, 0, "IdempotentParameterMismatch"],
    ]);
  });

  it("launches spot instances with a lifecycle and a spot request id", async () => {
    const out = await launch({ InstanceMarketOptions: { MarketType: "spot" } });
    expect(out.Instances?.[0]?.InstanceLifecycle).toBe("spot");
    expect(out.Instances?.[0]?.SpotInstanceRequestId).toMatch(/^sir-[0-9a-z]{8}$/);
  });

  it("places a subnet's instances in that subnet's zone, the same zone every time", async () => {
    const a = await launch({ SubnetId: "subnet-0a1b2c3d" });
    const b = await launch({ SubnetId: "subnet-0a1b2c3d" });
    const az = a.Instances?.[0]?.Placement?.AvailabilityZone;
    expect(az).toMatch(/^eu-west-1[abc]$/);
    expect(b.Instances?.[0]?.Placement?.AvailabilityZone).toBe(az);
    expect(a.Instances?.[0]?.SubnetId).toBe("subnet-0a1b2c3d");

    const pinned = await admin("ec2/subnet", { subnetId: "subnet-0f0f0f0f", availabilityZone: "eu-west-1c" });
    expect(pinned.status).toBe(200);
    const c = await launch({ SubnetId: "subnet-0f0f0f0f" });
    expect(c.Instances?.[0]?.Placement?.AvailabilityZone).toBe("eu-west-1c");
    const mismatch = await failure(
      launch({ SubnetId: "subnet-0f0f0f0f", Placement: { AvailabilityZone: "eu-west-1a" } }),
    );
    expect(mismatch.name).toBe("InvalidParameterValue");
  });

  it("refuses malformed, unknown and admin-listed missing AMIs", async () => {
    const malformed = await failure(launch({ ImageId: "ami-xyz" }));
    expect(malformed.name).toBe("InvalidAMIID.Malformed");
    expect(malformed.message).toContain("ami-xyz");
    expect((await failure(launch({ ImageId: "ami-00000000" }))).name).toBe("InvalidAMIID.NotFound");

    await launch({ ImageId: "ami-0123456789abcdef0" });
    const res = await admin("ec2/missing-ami", { imageId: "ami-0123456789abcdef0" });
    expect(res.status).toBe(200);
    const gone = await failure(launch({ ImageId: "ami-0123456789abcdef0" }));
    expect(gone.name).toBe("InvalidAMIID.NotFound");
    expect(gone.message).toContain("ami-0123456789abcdef0");
  });

  it("validates counts, zones and the instance type", async () => {
    const counts = await failure(launch({ MinCount: 3, MaxCount: 2 }));
    expect(counts.name).toBe("InvalidParameterValue");
    expect(counts.message).toMatch(/minCount/);
    expect((await failure(launch({ Placement: { AvailabilityZone: "us-east-1a" } }))).name).toBe(
      "InvalidParameterValue",
    );
    expect(
      (await failure(launch({ InstanceType: "huge" as RunInstancesCommandInput["InstanceType"] }))).name,
    ).toBe("InvalidParameterValue");
    expect((await failure(launch({ DryRun: true }))).name).toBe("DryRunOperation");
    expect(instancesOf(await ec2.send(new DescribeInstancesCommand({})))).toHaveLength(0);
  });
});

describe("concurrent calls", () => {
  it("a RunInstances that waited behind another is dated at its arrival: its boot counts from then", async () => {
    // A sim whose calls take 10 sim s each (10 ms of wall time at ×1000): both calls are in
    // before the first is handled, and handling 2,000 instances keeps the one process busy
    // for tens of wall ms (tens of sim s) while the second waits. EC2 handles them side by side.
    await sim.stop();
    sim = await startSim({ seed: 42, timeScale: 1000, latencies: { apiCall: 10 } });
    const c = client("eu-west-1");
    const [a, b] = await Promise.all([
      launch({ MinCount: 2000, MaxCount: 2000 }, c),
      launch({ MinCount: 2000, MaxCount: 2000 }, c),
    ]);
    const [first, second] = sim.requests.list({ action: "RunInstances" });
    const secondIds = second!.ids[0] === idsOf(a)[0] ? idsOf(a) : idsOf(b);
    // Dated when it came, before the first call was done with…
    expect(second!.at).toBeDefined();
    expect(Date.parse(second!.at!)).toBeLessThan(Date.parse(first!.time));
    // …and booted instanceBoot after that date, not after its turn came.
    sim.clock.advance(60_000);
    const v = sim.world.ec2.instance("eu-west-1", secondIds[1999]!)!;
    expect(v.state).toBe("running");
    const booted = v.runningSince! - Date.parse(second!.at!);
    expect(booted).toBeGreaterThanOrEqual(REALISTIC_LATENCIES.instanceBoot * 1000 - 1);
    expect(booted).toBeLessThan(REALISTIC_LATENCIES.instanceBoot * 1000 + 1);
  });
});

describe("concurrent calls, from another thread", () => {
  it("a call that comes while the sim works through others is dated when it came, not after all of them", async () => {
    // Four calls of 2,000 instances written at once are dated together, so their latency
    // (10 ms of wall time at ×1000) runs out together, and each keeps the one process busy
    // for tens of ms. A fifth call, written 15 ms later while the sim works on them, must be
    // read and dated before the sim goes on to the next of the four: EC2 would have dated it
    // then. The calls come from a worker thread, so they are written while the sim is busy.
    await sim.stop();
    sim = await startSim({ seed: 42, timeScale: 1000, latencies: { apiCall: 10 } });
    const worker = new Worker(
      `const { parentPort, workerData } = require("node:worker_threads");
       const run = (n) => fetch(workerData.url, { method: "POST",
         headers: { "content-type": "application/x-www-form-urlencoded" },
         body: new URLSearchParams({ Action: "RunInstances", Version: "2016-11-15",
           ImageId: workerData.ami, MinCount: String(n), MaxCount: String(n) }).toString() }).then((r) => r.text());
       (async () => {
         await (await fetch(workerData.url + "/_sim/health")).text(); // fetch warmed
         const big = [1, 2, 3, 4].map(() => run(2000));
         await new Promise((r) => setTimeout(r, 15));
         const small = await run(1);
         await Promise.all(big);
         parentPort.postMessage(small);
       })();`,
      { eval: true, workerData: { url: sim.url, ami: AMI } },
    );
    try {
      const small = await new Promise<string>((r) => worker.once("message", r));
      expect(small).toContain("<instanceId>");
      const calls = sim.requests.list({ action: "RunInstances" });
      const one = calls.find((e) => e.ids.length === 1)!;
      const bigOnes = calls.filter((e) => e.ids.length === 2000);
      expect(bigOnes).toHaveLength(4);
      // Came while the first of the four was handled: dated before the second was.
      const handled = bigOnes.map((e) => Date.parse(e.time)).sort((a, b) => a - b);
      expect(Date.parse(one.at ?? one.time)).toBeLessThan(handled[1]!);
    } finally {
      await worker.terminate();
    }
  });
});

describe("lifecycle", () => {
  it("pending → running after the boot latency, with status checks initializing for two minutes", async () => {
    const [id] = idsOf(await launch());
    advance(REALISTIC_LATENCIES.instanceBoot - 5);
    expect(await describeStates([id!])).toEqual({ [id!]: "pending" });
    const notYet = await ec2.send(new DescribeInstanceStatusCommand({ InstanceIds: [id!] }));
    expect(notYet.InstanceStatuses).toEqual([]);
    const all = await ec2.send(
      new DescribeInstanceStatusCommand({ InstanceIds: [id!], IncludeAllInstances: true }),
    );
    expect(all.InstanceStatuses?.[0]?.InstanceState?.Name).toBe("pending");
    expect(all.InstanceStatuses?.[0]?.InstanceStatus?.Status).toBe("not-applicable");

    advance(5);
    expect(await describeStates([id!])).toEqual({ [id!]: "running" });
    expect(sim.world.ec2.instance("eu-west-1", id!)?.runningSince).toBeTypeOf("number");
    const booting = await ec2.send(new DescribeInstanceStatusCommand({ InstanceIds: [id!] }));
    expect(booting.InstanceStatuses?.[0]).toMatchObject({
      InstanceId: id,
      InstanceState: { Code: 16, Name: "running" },
      SystemStatus: { Status: "initializing" },
      InstanceStatus: { Status: "initializing", Details: [{ Name: "reachability", Status: "initializing" }] },
    });
    advance(120);
    const ready = await ec2.send(new DescribeInstanceStatusCommand({ InstanceIds: [id!] }));
    expect(ready.InstanceStatuses?.[0]).toMatchObject({
      SystemStatus: { Status: "ok" },
      InstanceStatus: { Status: "ok", Details: [{ Name: "reachability", Status: "passed" }] },
    });
  });

  it("stops, starts and terminates many instances per call, answering per instance", async () => {
    const ids = idsOf(await launch({ MinCount: 2, MaxCount: 2 }));
    advance(30);

    const stopped = await ec2.send(new StopInstancesCommand({ InstanceIds: ids }));
    expect(stopped.StoppingInstances).toEqual(
      ids.map((id) => ({
        InstanceId: id,
        PreviousState: { Code: 16, Name: "running" },
        CurrentState: { Code: 64, Name: "stopping" },
      })),
    );
    advance(REALISTIC_LATENCIES.instanceStop);
    expect(Object.values(await describeStates(ids))).toEqual(["stopped", "stopped"]);
    const desc = instancesOf(await ec2.send(new DescribeInstancesCommand({ InstanceIds: ids })));
    expect(desc[0]?.StateTransitionReason).toMatch(/^User initiated \(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d GMT\)$/);
    expect(desc[0]?.StateReason?.Code).toBe("Client.UserInitiatedShutdown");

    const started = await ec2.send(new StartInstancesCommand({ InstanceIds: [ids[0]!] }));
    expect(started.StartingInstances).toEqual([
      {
        InstanceId: ids[0],
        PreviousState: { Code: 80, Name: "stopped" },
        CurrentState: { Code: 0, Name: "pending" },
      },
    ]);
    advance(REALISTIC_LATENCIES.instanceBoot);
    expect(await describeStates(ids)).toEqual({ [ids[0]!]: "running", [ids[1]!]: "stopped" });
    await ec2.send(new RebootInstancesCommand({ InstanceIds: [ids[0]!] }));
    expect((await failure(ec2.send(new RebootInstancesCommand({ InstanceIds: [ids[1]!] })))).name).toBe(
      "IncorrectInstanceState",
    );

    const terminated = await ec2.send(new TerminateInstancesCommand({ InstanceIds: ids }));
    expect(
      terminated.TerminatingInstances?.map((c) => [c.PreviousState?.Name, c.CurrentState?.Name]),
    ).toEqual([
      ["running", "shutting-down"],
      ["stopped", "shutting-down"],
    ]);
    advance(REALISTIC_LATENCIES.instanceTerminate);
    const again = await ec2.send(new TerminateInstancesCommand({ InstanceIds: ids }));
    expect(again.TerminatingInstances?.map((c) => c.CurrentState)).toEqual([
      { Code: 48, Name: "terminated" },
      { Code: 48, Name: "terminated" },
    ]);
    const visible = await ec2.send(
      new DescribeInstancesCommand({ Filters: [{ Name: "instance-state-name", Values: ["terminated"] }] }),
    );
    expect(instancesOf(visible).map((i) => i.InstanceId)).toEqual(ids);
    expect((await failure(ec2.send(new StartInstancesCommand({ InstanceIds: ids })))).name).toBe(
      "IncorrectInstanceState",
    );
  });

  it("fails the whole call on one unknown id and changes nothing", async () => {
    const [id] = idsOf(await launch());
    const err = await failure(
      ec2.send(new TerminateInstancesCommand({ InstanceIds: [id!, "i-0123456789abcdef0"] })),
    );
    expect(err.name).toBe("InvalidInstanceID.NotFound");
    expect(err.message).toContain("i-0123456789abcdef0");
    expect(await describeStates([id!])).toEqual({ [id!]: "pending" });
    expect((await failure(ec2.send(new StopInstancesCommand({ InstanceIds: ["web-1"] })))).name).toBe(
      "InvalidInstanceID.Malformed",
    );
  });

  it("stopping a spot instance is UnsupportedOperation", async () => {
    const [id] = idsOf(await launch({ InstanceMarketOptions: { MarketType: "spot" } }));
    advance(30);
    expect((await failure(ec2.send(new StopInstancesCommand({ InstanceIds: [id!] })))).name).toBe(
      "UnsupportedOperation",
    );
  });
});

describe("DescribeInstances filters and pagination", () => {
  it("filters by tag, tag-key, type, zone, lifecycle and state, wildcards included", async () => {
    const c1 = idsOf(
      await launch({
        MinCount: 4,
        MaxCount: 4,
        TagSpecifications: [{ ResourceType: "instance", Tags: [{ Key: "cairn:cluster", Value: "c1" }] }],
      }),
    );
    const c2 = idsOf(
      await launch({
        InstanceType: "t3a.large",
        Placement: { AvailabilityZone: "eu-west-1c" },
        InstanceMarketOptions: { MarketType: "spot" },
        TagSpecifications: [{ ResourceType: "instance", Tags: [{ Key: "cairn:cluster", Value: "c2" }] }],
      }),
    );
    const [untagged] = idsOf(await launch());
    const find = async (...Filters: { Name: string; Values: string[] }[]) =>
      instancesOf(await ec2.send(new DescribeInstancesCommand({ Filters }))).map((i) => i.InstanceId);

    expect(await find({ Name: "tag:cairn:cluster", Values: ["c1"] })).toEqual(c1);
    expect(await find({ Name: "tag:cairn:cluster", Values: ["c1", "c2"] })).toEqual([...c1, ...c2]);
    expect(await find({ Name: "tag:cairn:cluster", Values: ["c*"] })).toEqual([...c1, ...c2]);
    expect(await find({ Name: "tag-key", Values: ["cairn:cluster"] })).toEqual([...c1, ...c2]);
    expect(await find({ Name: "instance-type", Values: ["t3a.large"] })).toEqual(c2);
    expect(await find({ Name: "availability-zone", Values: ["eu-west-1c"] })).toEqual(c2);
    expect(await find({ Name: "instance-lifecycle", Values: ["spot"] })).toEqual(c2);
    expect(await find({ Name: "instance-id", Values: [untagged!, c1[0]!] })).toEqual([c1[0], untagged]);
    expect(
      await find(
        { Name: "tag:cairn:cluster", Values: ["c1"] },
        { Name: "instance-state-name", Values: ["running"] },
      ),
    ).toEqual([]);

    // CreateTags overwrites, and the filters follow.
    await ec2.send(
      new CreateTagsCommand({ Resources: [c1[0]!], Tags: [{ Key: "cairn:cluster", Value: "c2" }] }),
    );
    expect(await find({ Name: "tag:cairn:cluster", Values: ["c2"] })).toEqual([c1[0], ...c2]);
    expect(await find({ Name: "tag:cairn:cluster", Values: ["c1"] })).toEqual(c1.slice(1));

    advance(30);
    expect(
      await find(
        { Name: "tag:cairn:cluster", Values: ["c1"] },
        { Name: "instance-state-name", Values: ["running"] },
      ),
    ).toEqual(c1.slice(1));

    const bad = await failure(
      ec2.send(new DescribeInstancesCommand({ Filters: [{ Name: "colour", Values: ["x"] }] })),
    );
    expect(bad.name).toBe("InvalidParameterValue");
  });

  it("pages 25 instances 10 at a time: three pages, every id once, grouped in reservations", async () => {
    const tags = [{ ResourceType: "instance" as const, Tags: [{ Key: "pool", Value: "workers" }] }];
    const launched = [
      ...idsOf(await launch({ MinCount: 12, MaxCount: 12, TagSpecifications: tags })),
      ...idsOf(await launch({ MinCount: 13, MaxCount: 13, TagSpecifications: tags })),
    ];
    await launch(); // another instance, not in the pool

    const pages: DescribeInstancesCommandOutput[] = [];
    let NextToken: string | undefined;
    do {
      const page = await ec2.send(
        new DescribeInstancesCommand({
          Filters: [{ Name: "tag:pool", Values: ["workers"] }],
          MaxResults: 10,
          NextToken,
        }),
      );
      pages.push(page);
      NextToken = page.NextToken;
    } while (NextToken && pages.length < 10);

    expect(pages.map((p) => instancesOf(p).length)).toEqual([10, 10, 5]);
    expect(pages.flatMap(instancesOf).map((i) => i.InstanceId)).toEqual(launched);
    // The second page holds the end of the first reservation and the start of the second.
    expect(pages[1]?.Reservations?.map((r) => r.Instances?.length)).toEqual([2, 8]);

    const withIds = await failure(
      ec2.send(new DescribeInstancesCommand({ InstanceIds: launched, MaxResults: 10 })),
    );
    expect(withIds.name).toBe("InvalidParameterCombination");
    expect((await failure(ec2.send(new DescribeInstancesCommand({ MaxResults: 3 })))).name).toBe(
      "InvalidParameterValue",
    );
    const foreignToken = await failure(
      ec2.send(new DescribeInstancesCommand({ MaxResults: 10, NextToken: pages[0]?.NextToken })),
    );
    expect(foreignToken.name).toBe("InvalidPaginationToken");
  });
});

describe("regions", () => {
  it("keeps regions apart, and the request log shows each request's region", async () => {
    const [id] = idsOf(await launch());
    const us = client("us-east-1");
    const err = await failure(us.send(new DescribeInstancesCommand({ InstanceIds: [id!] })));
    expect(err.name).toBe("InvalidInstanceID.NotFound");
    expect(instancesOf(await us.send(new DescribeInstancesCommand({})))).toEqual([]);
    expect((await failure(us.send(new TerminateInstancesCommand({ InstanceIds: [id!] })))).name).toBe(
      "InvalidInstanceID.NotFound",
    );
    expect(await describeStates([id!])).toEqual({ [id!]: "pending" });

    // The same ClientToken in another region is another launch.
    const a = await launch({ ClientToken: "same-token" });
    const b = await launch({ ClientToken: "same-token" }, us);
    expect(idsOf(b)).not.toEqual(idsOf(a));

    expect(sim.requests.list({ service: "ec2" }).map((r) => [r.region, r.action, r.status])).toEqual([
      ["eu-west-1", "RunInstances", 200],
      ["us-east-1", "DescribeInstances", 400],
      ["us-east-1", "DescribeInstances", 200],
      ["us-east-1", "TerminateInstances", 400],
      ["eu-west-1", "DescribeInstances", 200],
      ["eu-west-1", "RunInstances", 200],
      ["us-east-1", "RunInstances", 200],
    ]);
    expect(sim.world.ec2.instances("us-east-1").map((v) => v.instanceId)).toEqual(idsOf(b));
  });
});

describe("faults", () => {
  it("throttles the next two calls with the SDK's own RequestLimitExceeded, then lets calls through", async () => {
    const res = await fetch(`${sim.adminUrl}/faults`, {
      method: "POST",
      body: JSON.stringify({ kind: "throttle", service: "ec2", action: "DescribeInstances", count: 2 }),
    });
    expect(res.status).toBe(201);
    for (let n = 0; n < 2; n++) {
      const err = await failure(ec2.send(new DescribeInstancesCommand({})));
      expect(err.name).toBe("RequestLimitExceeded");
      expect(err.$metadata.httpStatusCode).toBe(503);
    }
    await expect(ec2.send(new DescribeInstancesCommand({}))).resolves.toBeDefined();
    expect(sim.requests.list({ action: "DescribeInstances" }).map((r) => r.error ?? r.status)).toEqual([
      "RequestLimitExceeded",
      "RequestLimitExceeded",
      200,
    ]);
  });

  it("runs out of capacity for one instance type only", async () => {
    sim.faults.add({
      kind: "insufficient-capacity",
      service: "ec2",
      match: { instanceType: "t3.large" },
      count: 2,
    });
    await expect(launch({ InstanceType: "t3a.large" })).resolves.toBeDefined();
    await expect(ec2.send(new DescribeInstancesCommand({}))).resolves.toBeDefined();
    const err = await failure(
      launch({ InstanceType: "t3.large", Placement: { AvailabilityZone: "eu-west-1a" } }),
    );
    expect(err.name).toBe("InsufficientInstanceCapacity");
    expect(err.$metadata.httpStatusCode).toBe(500);
    expect(err.message).toContain(
      "sufficient t3.large capacity in the Availability Zone you requested (eu-west-1a)",
    );
    expect(err.message).toContain("eu-west-1b, eu-west-1c");
    expect((await failure(launch({ InstanceType: "t3.large" }))).name).toBe("InsufficientInstanceCapacity");
    await expect(launch({ InstanceType: "t3.large" })).resolves.toBeDefined();
    expect(instancesOf(await ec2.send(new DescribeInstancesCommand({}))).map((i) => i.InstanceType)).toEqual([
      "t3a.large",
      "t3.large",
    ]);
  });

  it("with capacity short, launches the most it can above MinCount, or nothing when MinCount is more", async () => {
    // EC2: "launches the largest possible number of instances above the specified minimum
    // count"; a MinCount above what it can launch launches none.
    sim.faults.add({
      kind: "insufficient-capacity",
      match: { instanceType: "t3.large" },
      available: 3,
      count: 2,
    });
    const some = await launch({ MinCount: 1, MaxCount: 5, ClientToken: "batch-1" });
    expect(some.Instances?.map((i) => i.AmiLaunchIndex)).toEqual([0, 1, 2]);
    const none = await failure(launch({ MinCount: 5, MaxCount: 5, ClientToken: "batch-2" }));
    expect(none.name).toBe("InsufficientInstanceCapacity");
    // The token names what the first call launched: the same three, not five, once capacity is back.
    const again = await launch({ MinCount: 1, MaxCount: 5, ClientToken: "batch-1" });
    expect(idsOf(again)).toEqual(idsOf(some));
    expect(again.ReservationId).toBe(some.ReservationId);
    // A refused token was never used: the same call launches all five now.
    expect(idsOf(await launch({ MinCount: 5, MaxCount: 5, ClientToken: "batch-2" }))).toHaveLength(5);
    expect(instancesOf(await ec2.send(new DescribeInstancesCommand({})))).toHaveLength(8);
  });

  it("runs out of capacity in one zone only, and an internal error fails any action", async () => {
    sim.faults.add({ kind: "insufficient-capacity", match: { availabilityZone: "eu-west-1a" }, count: 5 });
    await expect(launch({ Placement: { AvailabilityZone: "eu-west-1b" } })).resolves.toBeDefined();
    expect((await failure(launch())).name).toBe("InsufficientInstanceCapacity");

    sim.faults.add({ kind: "internal-error", service: "ec2", action: "TerminateInstances", count: 1 });
    const [id] = idsOf(await launch({ Placement: { AvailabilityZone: "eu-west-1c" } }));
    const err = await failure(ec2.send(new TerminateInstancesCommand({ InstanceIds: [id!] })));
    expect(err.name).toBe("InternalError");
    expect(err.$metadata.httpStatusCode).toBe(500);
    await expect(ec2.send(new TerminateInstancesCommand({ InstanceIds: [id!] }))).resolves.toBeDefined();
  });
});

describe("spot interruptions", () => {
  it("gives a notice, then reclaims the instance spotInterruptionNotice seconds later", async () => {
    const [spot] = idsOf(await launch({ InstanceMarketOptions: { MarketType: "spot" } }));
    const [onDemand] = idsOf(await launch());
    advance(30);

    const res = await admin("ec2/interrupt-spot", { region: "eu-west-1", instanceId: spot });
    expect(res.status).toBe(200);
    const notice = res.json as SpotInterruptionNotice;
    expect(notice).toMatchObject({ instanceId: spot, region: "eu-west-1", action: "terminate" });
    expect(Date.parse(notice.terminationTime) - Date.parse(notice.noticeTime)).toBe(
      REALISTIC_LATENCIES.spotInterruptionNotice * 1000,
    );
    expect((await admin("ec2/interruptions", { region: "eu-west-1" })).json).toEqual({ notices: [notice] });
    expect((await admin("ec2/interruptions", { region: "us-east-1" })).json).toEqual({ notices: [] });
    expect((sim.world.ec2 as Ec2SimPort).interruptions()).toEqual([notice]);
    expect((await admin("ec2/interrupt-spot", { region: "eu-west-1", instanceId: onDemand })).status).toBe(
      400,
    );

    advance(REALISTIC_LATENCIES.spotInterruptionNotice - 5);
    expect(await describeStates([spot!])).toEqual({ [spot!]: "running" });
    advance(5);
    expect(await describeStates([spot!])).toEqual({ [spot!]: "shutting-down" });
    advance(REALISTIC_LATENCIES.instanceTerminate);
    const [reclaimed] = instancesOf(await ec2.send(new DescribeInstancesCommand({ InstanceIds: [spot!] })));
    expect(reclaimed?.State?.Name).toBe("terminated");
    expect(reclaimed?.StateReason?.Code).toBe("Server.SpotInstanceTermination");
    expect(await describeStates([onDemand!])).toEqual({ [onDemand!]: "running" });
  });
});

describe("protocol edges and admin", () => {
  it("answers an unknown action with InvalidAction and a bad body with MissingAction", async () => {
    const post = (body: string) =>
      fetch(sim.url, {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded" },
        body,
      });
    const res = await post("Action=DescribeVolumes&Version=2016-11-15");
    expect(res.status).toBe(400);
    const xml = await res.text();
    expect(xml).toContain("<Code>InvalidAction</Code>");
    expect(xml).toMatch(/<RequestID>[0-9a-f-]{36}<\/RequestID>/);
    expect(await (await post("Version=2016-11-15")).text()).toContain("<Code>MissingAction</Code>");
  });

  it("shows each region's instances and counts in the admin state", async () => {
    const ids = idsOf(
      await launch({
        MinCount: 2,
        MaxCount: 2,
        TagSpecifications: [{ ResourceType: "instance", Tags: [{ Key: "Name", Value: "n" }] }],
      }),
    );
    advance(30);
    await ec2.send(new TerminateInstancesCommand({ InstanceIds: [ids[1]!] }));
    const state = (await (await fetch(`${sim.adminUrl}/state`)).json()) as {
      ec2: {
        regions: Record<
          string,
          { counts: Record<string, number>; instances: { id: string; tags: object }[] }
        >;
      };
    };
    const eu = state.ec2.regions["eu-west-1"];
    expect(eu?.counts).toMatchObject({ running: 1, "shutting-down": 1, pending: 0 });
    expect(eu?.instances.map((i) => [i.id, i.tags])).toEqual(ids.map((id) => [id, { Name: "n" }]));
  });

  it("gives the same ids for the same seed", async () => {
    const first = idsOf(await launch({ MinCount: 3, MaxCount: 3 }));
    await sim.stop();
    sim = await startSim({ seed: 42, timeScale: 1, latencies: { apiCall: 0 } });
    ec2 = client("eu-west-1");
    expect(idsOf(await launch({ MinCount: 3, MaxCount: 3 }))).toEqual(first);
  });
});

describe("DescribeImages", () => {
  it("every well-formed AMI exists (x86_64, available) unless it was made missing", async () => {
    const out = await ec2.send(new DescribeImagesCommand({ ImageIds: [AMI] }));
    expect(out.Images?.map((i) => [i.ImageId, i.Architecture, i.State])).toEqual([
      [AMI, "x86_64", "available"],
    ]);
    await admin("ec2/missing-ami", { imageId: AMI, region: "eu-west-1" });
    const err = await failure(ec2.send(new DescribeImagesCommand({ ImageIds: [AMI] })));
    expect(err.name).toBe("InvalidAMIID.NotFound");
    // Regions are apart: the image is only missing where it was made missing.
    const us = await client("us-east-1").send(new DescribeImagesCommand({ ImageIds: [AMI] }));
    expect(us.Images).toHaveLength(1);
    expect((await failure(ec2.send(new DescribeImagesCommand({ ImageIds: ["ami-x"] })))).name).toBe(
      "InvalidAMIID.Malformed",
    );
  });
});
