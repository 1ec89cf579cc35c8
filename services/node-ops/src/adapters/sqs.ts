/**
 * The `NoticeQueue` port on @aws-sdk/client-sqs: one client per region, the queue's URL
 * looked up once per region (and again after `SqsQueueMissing`), long polls of up to
 * ten messages. Every call runs under the resilience of SQS in its region (a breaker
 * and a bulkhead per region, SERVICE_SETTINGS.sqs; retries with full jitter on transient
 * failures only); failures are classified (sqs-errors.ts, one class per condition).
 */
import {
  DeleteMessageCommand,
  GetQueueUrlCommand,
  ReceiveMessageCommand,
  SQSClient,
  type SQSClientConfig,
} from "@aws-sdk/client-sqs";
import { type LoggerLike, Resilience, resilienceMetricsObserver, traceAwsClient } from "@cairn/service";
import type { NoticeQueue, QueuedNotice } from "../ports.ts";
import { classifySqsError, SqsCancelled, SqsQueueMissing } from "./sqs-errors.ts";

/** The service label of the SQS breakers and bulkheads (one per region). */
export const SQS_SERVICE = "sqs";

export interface SqsNoticeQueueOptions {
  /** Client settings (endpoint, credentials); absent: as the SDK reads the environment (`AWS_ENDPOINT_URL_SQS`, …). */
  readonly sqs?: Pick<SQSClientConfig, "endpoint" | "credentials">;
  readonly queueName: string;
  /** Long-poll length (default 20 s, SQS's maximum). */
  readonly waitTimeSeconds?: number;
  /** How long a received message stays hidden before it comes back if not deleted (default 30 s). */
  readonly visibilityTimeoutSeconds?: number;
  /** Breakers and bulkheads shared with the process's other adapters; absent: its own, with metrics. */
  readonly resilience?: Resilience;
  readonly logger?: LoggerLike;
}

export function createSqsNoticeQueue(o: SqsNoticeQueueOptions): NoticeQueue {
  const resilience = o.resilience ?? new Resilience({ observer: resilienceMetricsObserver(o.logger) });
  const clients = new Map<string, SQSClient>();
  const urls = new Map<string, string>();
  const sqs = (region: string) => {
    let c = clients.get(region);
    if (!c) {
      // Retries are the resilience policy's; the SDK's own would multiply them.
      c = new SQSClient({ region, maxAttempts: 1, ...(o.sqs ?? {}) });
      traceAwsClient(c);
      clients.set(region, c);
    }
    return c;
  };
  /** One SQS call under the region's resilience; `signal` (the intake's) cancels it. */
  const call = <T>(
    region: string,
    operation: string,
    signal: AbortSignal,
    fn: (c: SQSClient, abortSignal: AbortSignal) => Promise<T>,
  ) =>
    resilience.run(
      { service: SQS_SERVICE, region, operation },
      "default",
      (tryAbort) => fn(sqs(region), AbortSignal.any([tryAbort, signal])),
      (e) => {
        const ctx = { operation, region, queue: o.queueName };
        // Cancelled by the intake (stopped, or its lease lost): neither retried nor counted.
        return signal.aborted
          ? new SqsCancelled(ctx, { code: "Cancelled", cause: e })
          : classifySqsError(e, ctx);
      },
      signal,
    );
  const urlOf = async (region: string, signal: AbortSignal) => {
    let url = urls.get(region);
    if (!url) {
      url = (
        await call(region, "GetQueueUrl", signal, (c, abortSignal) =>
          c.send(new GetQueueUrlCommand({ QueueName: o.queueName }), { abortSignal }),
        )
      ).QueueUrl;
      if (url) urls.set(region, url);
    }
    return url;
  };
  return {
    name: o.queueName,
    async receive(region, signal) {
      try {
        const QueueUrl = await urlOf(region, signal);
        const r = await call(region, "ReceiveMessage", signal, (c, abortSignal) =>
          c.send(
            new ReceiveMessageCommand({
              QueueUrl,
              MaxNumberOfMessages: 10,
              WaitTimeSeconds: o.waitTimeSeconds ?? 20,
              VisibilityTimeout: o.visibilityTimeoutSeconds ?? 30,
            }),
            { abortSignal },
          ),
        );
        return (r.Messages ?? []).map(
          (m): QueuedNotice => ({ messageId: m.MessageId, body: m.Body ?? "", receipt: m.ReceiptHandle }),
        );
      } catch (err) {
        // Looked for again at the next poll: it may be made meanwhile.
        if (err instanceof SqsQueueMissing) urls.delete(region);
        throw err;
      }
    },
    async delete(region, notice, signal) {
      const QueueUrl = await urlOf(region, signal);
      await call(region, "DeleteMessage", signal, (c, abortSignal) =>
        c.send(new DeleteMessageCommand({ QueueUrl, ReceiptHandle: notice.receipt }), { abortSignal }),
      );
    },
    close() {
      for (const c of clients.values()) c.destroy();
    },
  };
}
