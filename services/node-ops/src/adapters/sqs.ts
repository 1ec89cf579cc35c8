/**
 * The `NoticeQueue` port on @aws-sdk/client-sqs: one client per region, the queue's URL
 * looked up once per region (and again after `QueueDoesNotExist`), long polls of up to
 * ten messages.
 */
import {
  DeleteMessageCommand,
  GetQueueUrlCommand,
  ReceiveMessageCommand,
  SQSClient,
  type SQSClientConfig,
} from "@aws-sdk/client-sqs";
import type { NoticeQueue, QueuedNotice } from "../ports.ts";

export interface SqsNoticeQueueOptions {
  /** Client settings (endpoint, credentials); absent: as the SDK reads the environment (`AWS_ENDPOINT_URL_SQS`, …). */
  readonly sqs?: Pick<SQSClientConfig, "endpoint" | "credentials">;
  readonly queueName: string;
  /** Long-poll length (default 20 s, SQS's maximum). */
  readonly waitTimeSeconds?: number;
  /** How long a received message stays hidden before it comes back if not deleted (default 30 s). */
  readonly visibilityTimeoutSeconds?: number;
}

export function createSqsNoticeQueue(o: SqsNoticeQueueOptions): NoticeQueue {
  const clients = new Map<string, SQSClient>();
  const urls = new Map<string, string>();
  const sqs = (region: string) => {
    let c = clients.get(region);
    if (!c) {
      c = new SQSClient({ region, ...(o.sqs ?? {}) });
      clients.set(region, c);
    }
    return c;
  };
  const urlOf = async (region: string, signal: AbortSignal) => {
    let url = urls.get(region);
    if (!url) {
      url = (
        await sqs(region).send(new GetQueueUrlCommand({ QueueName: o.queueName }), { abortSignal: signal })
      ).QueueUrl;
      if (url) urls.set(region, url);
    }
    return url;
  };
  return {
    name: o.queueName,
    async receive(region, signal) {
      try {
        const r = await sqs(region).send(
          new ReceiveMessageCommand({
            QueueUrl: await urlOf(region, signal),
            MaxNumberOfMessages: 10,
            WaitTimeSeconds: o.waitTimeSeconds ?? 20,
            VisibilityTimeout: o.visibilityTimeoutSeconds ?? 30,
          }),
          { abortSignal: signal },
        );
        return (r.Messages ?? []).map(
          (m): QueuedNotice => ({ messageId: m.MessageId, body: m.Body ?? "", receipt: m.ReceiptHandle }),
        );
      } catch (err) {
        // Looked for again at the next poll: it may be made meanwhile.
        if ((err as { name?: string }).name === "QueueDoesNotExist") urls.delete(region);
        throw err;
      }
    },
    async delete(region, notice, signal) {
      await sqs(region).send(
        new DeleteMessageCommand({ QueueUrl: await urlOf(region, signal), ReceiptHandle: notice.receipt }),
        { abortSignal: signal },
      );
    },
    close() {
      for (const c of clients.values()) c.destroy();
    },
  };
}
