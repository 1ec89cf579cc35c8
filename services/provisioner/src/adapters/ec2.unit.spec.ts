/**
 * The adapter over a fake transport: what it sends, in which batches, and how it turns
 * answers and failures into per-instance results. No network.
 */
import {
  EC2Client,
  EC2ServiceException,
  RunInstancesCommand,
  TerminateInstancesCommand,
  type TerminateInstancesCommandInput,
} from "@aws-sdk/client-ec2";
import { describe, expect, it } from "vitest";
import { CAIRN_TAGS, launchToken } from "../ports.ts";
import {
  batches,
  type Ec2Command,
  Ec2Compute,
  type Ec2Transport,
  ec2Client,
  runInstancesInput,
} from "./ec2.ts";
import { Ec2RequestError, InstanceNotFoundError, ThrottlingError } from "./ec2-errors.ts";

const REGION = "eu-west-1";
const ids = (n: number) => Array.from({ length: n }, (_, i) => `i-${String(i).padStart(17, "0")}`);

function awsError(code: string, status: number) {
  return Object.assign(
    new EC2ServiceException({
      name: code,
      $fault: status >= 500 ? "server" : "client",
      $metadata: { httpStatusCode: status },
      message: code,
    }),
    { Code: code },
  );
}

/** A transport that records every command and answers with `answer`. */
function fakeTransport(answer: (command: Ec2Command) => Promise<unknown>) {
  const sent: { region: string; command: Ec2Command }[] = [];
  const made: string[] = [];
  const factory = (region: string): Ec2Transport => {
    made.push(region);
    return {
      send: (command) => {
        sent.push({ region, command });
        return answer(command);
      },
      destroy: () => {},
    };
  };
  return { factory, sent, made };
}

/** Terminates whatever it is asked, as EC2 answers it. */
const terminating = async (command: Ec2Command) => {
  const input = command.input as TerminateInstancesCommandInput;
  return {
    TerminatingInstances: (input.InstanceIds ?? []).map((id) => ({
      InstanceId: id,
      PreviousState: { Code: 16, Name: "running" },
      CurrentState: { Code: 32, Name: "shutting-down" },
    })),
  };
};

const fast = {
  policies: { aws: { baseDelayMs: 1, maxDelayMs: 1 }, critical: { baseDelayMs: 1, maxDelayMs: 1 } },
};

describe("batches", () => {
  it("cuts 23 ids into 10, 10 and 3", () => {
    expect(batches(ids(23), 10).map((b) => b.length)).toEqual([10, 10, 3]);
    expect(batches(ids(23), 10).flat()).toEqual(ids(23));
    expect(batches([], 10)).toEqual([]);
    expect(() => batches(ids(3), 0)).toThrow(RangeError);
  });
});

describe("Ec2Compute batching", () => {
  it("terminates 23 instances in 3 calls of at most 10, with a result per instance in order", async () => {
    const t = fakeTransport(terminating);
    const compute = new Ec2Compute({ ...fast, transport: t.factory });
    const results = await compute.terminate(REGION, ids(23));

    expect(t.sent).toHaveLength(3);
    for (const { command } of t.sent) {
      expect(command).toBeInstanceOf(TerminateInstancesCommand);
      expect((command.input as TerminateInstancesCommandInput).InstanceIds!.length).toBeLessThanOrEqual(10);
    }
    expect(results.map((r) => r.instanceId)).toEqual(ids(23));
    expect(
      results.every((r) => r.ok && r.previousState === "running" && r.currentState === "shutting-down"),
    ).toBe(true);
  });

  it("sends each id once however often it is given; nothing for no ids", async () => {
    const t = fakeTransport(terminating);
    const compute = new Ec2Compute({ ...fast, transport: t.factory });
    const [a, b] = ids(2) as [string, string];
    expect(await compute.terminate(REGION, [a, b, a, a])).toHaveLength(2);
    expect(await compute.terminate(REGION, [])).toEqual([]);
    expect(t.sent).toHaveLength(1);
  });

  it("takes the batch size from the options", async () => {
    const t = fakeTransport(terminating);
    await new Ec2Compute({ ...fast, transport: t.factory, batchSize: 4 }).terminate(REGION, ids(9));
    expect(
      t.sent.map((s) => (s.command.input as TerminateInstancesCommandInput).InstanceIds!.length),
    ).toEqual([4, 4, 1]);
  });

  it("asks id by id when a batch is refused, so one unknown id does not fail the other nine", async () => {
    const [bad] = ids(1) as [string];
    const t = fakeTransport(async (command) => {
      const input = command.input as TerminateInstancesCommandInput;
      if (input.InstanceIds?.includes(bad)) throw awsError("InvalidInstanceID.NotFound", 400);
      return terminating(command);
    });
    const results = await new Ec2Compute({ ...fast, transport: t.factory }).terminate(REGION, ids(10));
    expect(t.sent).toHaveLength(1 + 10);
    const failed = results.filter((r) => !r.ok);
    expect(failed.map((r) => r.instanceId)).toEqual([bad]);
    expect(failed[0]?.ok === false && failed[0].error).toBeInstanceOf(InstanceNotFoundError);
    expect(results.filter((r) => r.ok)).toHaveLength(9);
  });

  it("gives every instance of a batch its transient error once the retries are spent", async () => {
    const t = fakeTransport(async () => {
      throw awsError("RequestLimitExceeded", 503);
    });
    const compute = new Ec2Compute({
      transport: t.factory,
      policies: { critical: { tries: 2, baseDelayMs: 1, maxDelayMs: 1 } },
      breaker: { consecutiveFailures: 100 },
    });
    const results = await compute.terminate(REGION, ids(12));
    expect(t.sent).toHaveLength(2 * 2);
    expect(results).toHaveLength(12);
    for (const r of results) {
      expect(r.ok).toBe(false);
      if (!r.ok) {
        expect(r.error).toBeInstanceOf(ThrottlingError);
        expect(r.error.transient).toBe(true);
      }
    }
  });

  it("runs batches in parallel, never more than the bulkhead allows", async () => {
    let inFlight = 0;
    let most = 0;
    const t = fakeTransport(async (command) => {
      inFlight++;
      most = Math.max(most, inFlight);
      await new Promise((r) => setTimeout(r, 5));
      inFlight--;
      return terminating(command);
    });
    const compute = new Ec2Compute({ ...fast, transport: t.factory, bulkhead: { maxConcurrent: 3 } });
    const results = await compute.terminate(REGION, ids(100));
    expect(results).toHaveLength(100);
    expect(t.sent).toHaveLength(10);
    expect(most).toBe(3);
  });

  it("runs terminate under the critical policy and describe under the aws policy", async () => {
    const policies: string[] = [];
    const t = fakeTransport(async (command) =>
      command instanceof TerminateInstancesCommand ? terminating(command) : { Reservations: [] },
    );
    const compute = new Ec2Compute({
      ...fast,
      transport: t.factory,
      observer: { onCall: (e) => policies.push(`${e.operation}:${e.policy}`) },
    });
    await compute.terminate(REGION, ids(1));
    await compute.describeCluster(REGION, "demo-1");
    expect(policies).toEqual(["TerminateInstances:critical", "DescribeInstances:aws"]);
  });
});

describe("ec2Client", () => {
  it("carries Cairn's client span and not the SDK's call logging, which an SDK client has by default", () => {
    const names = (c: EC2Client) => c.middlewareStack.identify().map((m) => m.split(" ")[0]);
    // The SDK's default: its logging middleware, which masks and copies every answer even
    // for its no-op logger (the test fails if the SDK renames it: then nothing is removed).
    expect(names(new EC2Client({ region: "eu-west-1" }))).toContain("loggerMiddleware");
    const client = ec2Client("eu-west-1", { endpoint: "http://127.0.0.1:1" });
    expect(names(client)).not.toContain("loggerMiddleware");
    expect(names(client)).toContain("cairnClientSpan");
    client.destroy();
  });
});

describe("Ec2Compute states", () => {
  it("a role without ec2:DescribeInstanceStatus still sees its instances, through DescribeInstances", async () => {
    const t = fakeTransport(async (command) => {
      if (command.constructor.name === "DescribeInstanceStatusCommand")
        throw awsError("UnauthorizedOperation", 403);
      return {
        Reservations: [{ Instances: [{ InstanceId: ids(1)[0], State: { Code: 16, Name: "running" } }] }],
      };
    });
    const compute = new Ec2Compute({ ...fast, transport: t.factory });
    expect(await compute.states(REGION, ids(1), { states: ["running"] })).toEqual([
      { instanceId: ids(1)[0], state: "running" },
    ]);
    expect(t.sent.map((s) => s.command.constructor.name)).toEqual([
      "DescribeInstanceStatusCommand",
      "DescribeInstancesCommand",
    ]);
  });

  it("any other refusal is the look's failure", async () => {
    const t = fakeTransport(async () => {
      throw awsError("InvalidParameterValue", 400);
    });
    const compute = new Ec2Compute({ ...fast, transport: t.factory });
    await expect(compute.states(REGION, ids(1), { states: ["running"] })).rejects.toBeInstanceOf(
      Ec2RequestError,
    );
  });
});

describe("Ec2Compute regions", () => {
  it("makes one client per region and keeps it", async () => {
    const t = fakeTransport(async () => ({ Reservations: [] }));
    const compute = new Ec2Compute({ ...fast, transport: t.factory });
    await compute.describeCluster("eu-west-1", "a");
    await compute.describeCluster("eu-west-1", "b");
    await compute.describe("us-east-2", ids(3));
    expect(t.made).toEqual(["eu-west-1", "us-east-2"]);
  });

  it("refuses a region that is not one, before any client exists", async () => {
    const t = fakeTransport(async () => ({ Reservations: [] }));
    const compute = new Ec2Compute({ ...fast, transport: t.factory });
    await expect(compute.describeCluster("eu-west", "a")).rejects.toBeInstanceOf(Ec2RequestError);
    await expect(compute.terminate("", ids(1))).rejects.toBeInstanceOf(Ec2RequestError);
    expect(t.made).toEqual([]);
  });
});

describe("runInstancesInput", () => {
  const req = {
    region: REGION,
    clusterId: "demo-1",
    pool: "workers",
    slot: 4,
    attempt: 1,
    role: "agent" as const,
    instanceType: "t3.large",
    availabilityZone: "eu-west-1b",
    capacityType: "spot" as const,
    imageId: "ami-0123456789abcdef0",
    clientToken: launchToken("demo-1", 4, 1),
    tags: { team: "data" },
  };

  it("is the same every time (the ClientToken promises the same parameters)", () => {
    expect(JSON.stringify(runInstancesInput(req))).toBe(JSON.stringify(runInstancesInput({ ...req })));
  });

  it("launches one spot instance in the zone, tagged, with its token", () => {
    const input = runInstancesInput(req);
    expect(input).toMatchObject({
      ClientToken: req.clientToken,
      ImageId: req.imageId,
      InstanceType: "t3.large",
      MinCount: 1,
      MaxCount: 1,
      Placement: { AvailabilityZone: "eu-west-1b" },
      InstanceMarketOptions: { MarketType: "spot" },
      MetadataOptions: { HttpTokens: "required" },
    });
    const instanceTags = input.TagSpecifications?.find((s) => s.ResourceType === "instance")?.Tags ?? [];
    expect(Object.fromEntries(instanceTags.map((t) => [t.Key, t.Value]))).toEqual({
      team: "data",
      [CAIRN_TAGS.cluster]: "demo-1",
      [CAIRN_TAGS.pool]: "workers",
      [CAIRN_TAGS.slot]: "4",
      [CAIRN_TAGS.role]: "agent",
      [CAIRN_TAGS.attempt]: "1",
      [CAIRN_TAGS.name]: "demo-1-workers-4",
    });
  });

  it("on-demand has no market options", () => {
    expect(runInstancesInput({ ...req, capacityType: "on-demand" }).InstanceMarketOptions).toBeUndefined();
  });

  it("refuses a token EC2 would refuse, without calling it", async () => {
    const t = fakeTransport(async () => ({}));
    const compute = new Ec2Compute({ ...fast, transport: t.factory });
    await expect(compute.launch({ ...req, clientToken: "x".repeat(65) })).rejects.toBeInstanceOf(
      Ec2RequestError,
    );
    expect(t.sent.filter((s) => s.command instanceof RunInstancesCommand)).toHaveLength(0);
  });
});
