/**
 * The simulated SQS through the unmodified @aws-sdk/client-sqs (JSON 1.0): queues,
 * long polls, visibility, deletes, AWS's errors, and the EC2 spot interruption warning
 * arriving on the region's queue as EventBridge delivers it.
 */
import { EC2Client, RunInstancesCommand } from "@aws-sdk/client-ec2";
import {
  CreateQueueCommand,
  DeleteMessageBatchCommand,
  DeleteMessageCommand,
  GetQueueUrlCommand,
  ReceiveMessageCommand,
  SendMessageCommand,
  SQSClient,
} from "@aws-sdk/client-sqs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SIM_CREDENTIALS, type Sim, startSim } from "../sim.ts";
import { SPOT_INTERRUPTION_QUEUE } from "./index.ts";

let sim: Sim;
const clients: { destroy(): void }[] = [];
const sqsIn = (region: string) => {
  const c = new SQSClient({ region, endpoint: sim.url, credentials: SIM_CREDENTIALS, maxAttempts: 1 });
  clients.push(c);
  return c;
};
const errorOf = async (p: Promise<unknown>) => {
  try {
    await p;
  } catch (err) {
    return err as Error & { $metadata?: { httpStatusCode?: number } };
  }
  throw new Error("expected the call to fail");
};

beforeAll(async () => {
  sim = await startSim({ seed: 3, timeScale: 100 });
});
afterAll(async () => {
  for (const c of clients) c.destroy();
  await sim?.stop();
});

describe("queues and messages", () => {
  it("CreateQueue is idempotent; GetQueueUrl finds it; an unknown queue is QueueDoesNotExist", async () => {
    const sqs = sqsIn("eu-west-1");
    const a = await sqs.send(new CreateQueueCommand({ QueueName: "q1" }));
    const b = await sqs.send(new CreateQueueCommand({ QueueName: "q1" }));
    expect(a.QueueUrl).toBe(`${sim.url}/123456789012/q1`);
    expect(b.QueueUrl).toBe(a.QueueUrl);
    expect((await sqs.send(new GetQueueUrlCommand({ QueueName: "q1" }))).QueueUrl).toBe(a.QueueUrl);
    const err = await errorOf(sqs.send(new GetQueueUrlCommand({ QueueName: "nope" })));
    expect(err.name).toBe("QueueDoesNotExist");
    expect(err.message).toBe("The specified queue does not exist.");
    // Queues are per region, like everything else in the sim.
    const other = await errorOf(sqsIn("us-east-1").send(new GetQueueUrlCommand({ QueueName: "q1" })));
    expect(other.name).toBe("QueueDoesNotExist");
    const mismatch = await errorOf(
      sqs.send(new CreateQueueCommand({ QueueName: "q1", Attributes: { VisibilityTimeout: "5" } })),
    );
    expect(mismatch.name).toBe("QueueNameExists");
  });

  it("receive hides a message for the visibility timeout; delete removes it; the body's MD5 checks out", async () => {
    const sqs = sqsIn("eu-west-1");
    const { QueueUrl } = await sqs.send(new CreateQueueCommand({ QueueName: "q2" }));
    const sent = await sqs.send(new SendMessageCommand({ QueueUrl, MessageBody: "hello" }));
    expect(sent.MessageId).toBeTruthy();
    // The SDK compares MD5OfBody with the body itself: a wrong digest would throw here.
    const r1 = await sqs.send(
      new ReceiveMessageCommand({ QueueUrl, VisibilityTimeout: 30, MessageSystemAttributeNames: ["All"] }),
    );
    expect(r1.Messages?.map((m) => m.Body)).toEqual(["hello"]);
    expect(r1.Messages?.[0]?.Attributes?.ApproximateReceiveCount).toBe("1");
    // Hidden now (30 sim s): an immediate receive finds nothing.
    const r2 = await sqs.send(new ReceiveMessageCommand({ QueueUrl }));
    expect(r2.Messages ?? []).toEqual([]);
    // After the visibility timeout it comes back, with a new receipt handle.
    sim.clock.advance(31_000);
    const r3 = await sqs.send(new ReceiveMessageCommand({ QueueUrl }));
    expect(r3.Messages?.[0]?.Body).toBe("hello");
    expect(r3.Messages?.[0]?.ReceiptHandle).not.toBe(r1.Messages?.[0]?.ReceiptHandle);
    await sqs.send(new DeleteMessageCommand({ QueueUrl, ReceiptHandle: r3.Messages?.[0]?.ReceiptHandle }));
    // Deleting again with a handle that was valid succeeds, as in SQS; a made-up one does not.
    await sqs.send(new DeleteMessageCommand({ QueueUrl, ReceiptHandle: r1.Messages?.[0]?.ReceiptHandle }));
    const bad = await errorOf(sqs.send(new DeleteMessageCommand({ QueueUrl, ReceiptHandle: "made-up" })));
    expect(bad.name).toBe("ReceiptHandleIsInvalid");
    expect(sim.world.sqs.messages("eu-west-1", "q2")).toEqual([]);
  });

  it("MaxNumberOfMessages and DeleteMessageBatch, with a failed entry reported, not thrown", async () => {
    const sqs = sqsIn("eu-west-1");
    const { QueueUrl } = await sqs.send(new CreateQueueCommand({ QueueName: "q3" }));
    for (const b of ["a", "b", "c"]) await sqs.send(new SendMessageCommand({ QueueUrl, MessageBody: b }));
    const r = await sqs.send(new ReceiveMessageCommand({ QueueUrl, MaxNumberOfMessages: 2 }));
    expect(r.Messages?.map((m) => m.Body)).toEqual(["a", "b"]);
    const out = await sqs.send(
      new DeleteMessageBatchCommand({
        QueueUrl,
        Entries: [
          ...(r.Messages ?? []).map((m, i) => ({ Id: `m${i}`, ReceiptHandle: m.ReceiptHandle })),
          { Id: "bogus", ReceiptHandle: "nope" },
        ],
      }),
    );
    expect(out.Successful?.map((s) => s.Id).sort()).toEqual(["m0", "m1"]);
    expect(out.Failed).toEqual([
      expect.objectContaining({ Id: "bogus", Code: "ReceiptHandleIsInvalid", SenderFault: true }),
    ]);
    expect(sim.world.sqs.messages("eu-west-1", "q3")).toEqual(["c"]);
    const empty = await errorOf(sqs.send(new DeleteMessageBatchCommand({ QueueUrl, Entries: [] })));
    expect(empty.name).toBe("EmptyBatchRequest");
  });

  it("parameters out of range are InvalidParameterValue, worded as SQS words them", async () => {
    const sqs = sqsIn("eu-west-1");
    const { QueueUrl } = await sqs.send(new CreateQueueCommand({ QueueName: "q4" }));
    const many = await errorOf(sqs.send(new ReceiveMessageCommand({ QueueUrl, MaxNumberOfMessages: 11 })));
    expect(many.name).toBe("InvalidParameterValue");
    expect(many.message).toBe(
      "Value 11 for parameter MaxNumberOfMessages is invalid. Reason: Must be between 1 and 10, if provided.",
    );
    const wait = await errorOf(sqs.send(new ReceiveMessageCommand({ QueueUrl, WaitTimeSeconds: 21 })));
    expect(wait.message).toBe(
      "Value 21 for parameter WaitTimeSeconds is invalid. Reason: Must be >= 0 and <= 20, if provided.",
    );
  });

  it("a long poll answers as soon as a message arrives", async () => {
    const sqs = sqsIn("eu-west-1");
    const { QueueUrl } = await sqs.send(new CreateQueueCommand({ QueueName: "q5" }));
    const polling = sqs.send(new ReceiveMessageCommand({ QueueUrl, WaitTimeSeconds: 20 }));
    await new Promise((r) => setTimeout(r, 50));
    sim.world.sqs.deliver("eu-west-1", "q5", "late");
    expect((await polling).Messages?.map((m) => m.Body)).toEqual(["late"]);
    // Nothing arrives: the poll ends empty after WaitTimeSeconds (sim seconds: 20 s → 0.2 s here).
    const empty = await sqs.send(new ReceiveMessageCommand({ QueueUrl, WaitTimeSeconds: 20 }));
    expect(empty.Messages ?? []).toEqual([]);
  });

  it("throttling is the error the SDK retries (RequestThrottled)", async () => {
    sim.faults.add({ kind: "throttle", service: "sqs", action: "GetQueueUrl", count: 1 });
    const sqs = new SQSClient({ region: "eu-west-1", endpoint: sim.url, credentials: SIM_CREDENTIALS });
    clients.push(sqs);
    await sqs.send(new CreateQueueCommand({ QueueName: "q6" }));
    const r = await sqs.send(new GetQueueUrlCommand({ QueueName: "q6" }));
    expect(r.QueueUrl).toContain("/q6");
    expect(r.$metadata.attempts).toBe(2);
    expect(sim.requests.list({ service: "sqs", action: "GetQueueUrl" }).map((e) => e.error)).toContain(
      "RequestThrottled",
    );
  });
});

describe("spot interruption warnings (EventBridge → SQS)", () => {
  it("interrupting a spot instance puts the EventBridge event on the region's queue", async () => {
    const ec2 = new EC2Client({ region: "eu-west-2", endpoint: sim.url, credentials: SIM_CREDENTIALS });
    clients.push(ec2);
    const run = await ec2.send(
      new RunInstancesCommand({
        ImageId: "ami-0123456789abcdef0",
        InstanceType: "t3.large",
        MinCount: 1,
        MaxCount: 1,
        InstanceMarketOptions: { MarketType: "spot" },
      }),
    );
    const instanceId = run.Instances?.[0]?.InstanceId ?? "";
    const res = await fetch(`${sim.adminUrl}/ec2/interrupt-spot`, {
      method: "POST",
      body: JSON.stringify({ region: "eu-west-2", instanceId }),
    });
    const notice = (await res.json()) as { noticeTime: string; terminationTime: string };
    const sqs = sqsIn("eu-west-2");
    const { QueueUrl } = await sqs.send(new GetQueueUrlCommand({ QueueName: SPOT_INTERRUPTION_QUEUE }));
    const r = await sqs.send(new ReceiveMessageCommand({ QueueUrl, WaitTimeSeconds: 1 }));
    const event = JSON.parse(r.Messages?.[0]?.Body ?? "{}");
    expect(event).toMatchObject({
      "detail-type": "EC2 Spot Instance Interruption Warning",
      source: "aws.ec2",
      region: "eu-west-2",
      time: notice.noticeTime.replace(/\.\d{3}Z$/, "Z"),
      detail: { "instance-id": instanceId, "instance-action": "terminate" },
    });
    expect(event.resources[0]).toMatch(new RegExp(`instance/${instanceId}$`));
    expect(Date.parse(notice.terminationTime) - Date.parse(notice.noticeTime)).toBe(120_000);
    // Another region's queue never sees it.
    expect(sim.world.sqs.messages("eu-west-1", SPOT_INTERRUPTION_QUEUE)).toEqual([]);

    // The node on it stays Ready until the instance is reclaimed, then turns NotReady (its kubelet went with it)
    // once the node-monitor grace period has passed.
    sim.world.kube.ensureCluster("spot-1");
    sim.world.kube.registerNode("spot-1", {
      name: instanceId,
      instanceId,
      availabilityZone: "eu-west-2a",
      role: "agent",
      labels: {},
      taints: [],
    });
    const ready = () => {
      const st = sim.state() as { kube: { clusters: Record<string, { nodes: { ready: boolean }[] }> } };
      return st.kube.clusters["spot-1"]?.nodes[0]?.ready;
    };
    expect(ready()).toBe(true);
    const look = async (ms: number) => {
      sim.clock.advance(ms);
      await new Promise((r) => setTimeout(r, 150));
      await fetch(`${sim.adminUrl}/health`);
      return ready();
    };
    // Reclaimed at +120 s: its kubelet stops, but the node controller notices only after
    // the node-monitor grace period (40 s), as on a real cluster.
    expect(await look(121_000)).toBe(true);
    expect(await look(41_000)).toBe(false);
  });
});
