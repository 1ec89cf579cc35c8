/**
 * The spot interruption queue's adapter against the simulated SQS, through the real SDK
 * client: a throttled receive is retried under SQS's resilience and gets the message; a
 * missing queue is a permanent SqsQueueMissing, sent once; the metrics show the retries.
 */
import { CreateQueueCommand, SendMessageCommand, SQSClient } from "@aws-sdk/client-sqs";
import { isPermanent } from "@cairn/events";
import { RESILIENCE_METRICS, Resilience, registry, resilienceMetricsObserver } from "@cairn/service";
import { SIM_CREDENTIALS, type Sim, startSim, ZERO_LATENCIES } from "@cairn/sim";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createSqsNoticeQueue, SQS_SERVICE } from "./sqs.ts";
import { SqsQueueMissing } from "./sqs-errors.ts";

const REGION = "eu-west-1";
let sim: Sim;
let admin: SQSClient;

beforeAll(async () => {
  sim = await startSim({ seed: 9, timeScale: 100, latencies: ZERO_LATENCIES });
  admin = new SQSClient({ region: REGION, endpoint: sim.url, credentials: SIM_CREDENTIALS, maxAttempts: 1 });
});
afterAll(async () => {
  admin?.destroy();
  await sim?.stop();
});

const sqsRequests = (action: string) =>
  sim.requests.list().filter((r) => r.service === "sqs" && r.action === action);
const metric = async (name: string, labels: string) => {
  const m = new RegExp(`^${name}\\{${labels}\\} (\\d+)$`, "m").exec(await registry.metrics());
  return m ? Number(m[1]) : 0;
};

describe("SQS resilience on the sim", () => {
  it("a throttled receive is retried and gets the message; the retries show in the metrics", async () => {
    const { QueueUrl } = await admin.send(new CreateQueueCommand({ QueueName: "spot-q" }));
    await admin.send(new SendMessageCommand({ QueueUrl, MessageBody: "hello" }));
    const resilience = new Resilience({
      policies: { default: { baseDelayMs: 1, maxDelayMs: 2 } },
      observer: resilienceMetricsObserver(),
    });
    const queue = createSqsNoticeQueue({
      queueName: "spot-q",
      sqs: { endpoint: sim.url, credentials: SIM_CREDENTIALS },
      waitTimeSeconds: 1,
      resilience,
    });
    const labels = `service="sqs",region="${REGION}",operation="ReceiveMessage"`;
    const before = await metric(RESILIENCE_METRICS.retries, labels);
    sim.faults.add({ kind: "throttle", service: "sqs", action: "ReceiveMessage", count: 2 });
    const got = await queue.receive(REGION, new AbortController().signal);
    expect(got.map((m) => m.body)).toEqual(["hello"]);
    expect(sqsRequests("ReceiveMessage").map((r) => r.error ?? r.status)).toEqual([
      "RequestThrottled",
      "RequestThrottled",
      200,
    ]);
    expect(await metric(RESILIENCE_METRICS.retries, labels)).toBe(before + 2);
    expect(resilience.breakerState(SQS_SERVICE, REGION)).toBe("closed");
    queue.close();
  });

  it("a missing queue is permanent: SqsQueueMissing with its hint, sent once", async () => {
    const queue = createSqsNoticeQueue({
      queueName: "no-such-queue",
      sqs: { endpoint: sim.url, credentials: SIM_CREDENTIALS },
      resilience: new Resilience({ policies: { default: { baseDelayMs: 1, maxDelayMs: 2 } } }),
    });
    const lookups = sqsRequests("GetQueueUrl").length;
    const err = await queue.receive(REGION, new AbortController().signal).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SqsQueueMissing);
    expect(isPermanent(err)).toBe(true);
    expect((err as SqsQueueMissing).remediation).toMatch(/EventBridge rule/);
    expect(sqsRequests("GetQueueUrl").length).toBe(lookups + 1);
    queue.close();
  });
});
