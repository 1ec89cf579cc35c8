import {
  AckPolicy,
  type ConsumerConfig,
  DeliverPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
} from "@nats-io/jetstream";
import { headers as natsHeaders } from "@nats-io/transport-node";
import { describeError, isPermanent, isRetryLater } from "./errors.ts";
import { dlqSubject, Headers } from "./subjects.ts";
import { extractTrace, inMessagingSpan, SpanAttributes, SpanKind, subjectTemplate } from "./trace.ts";

const NS_PER_MS = 1_000_000;

/** The part of a logger the runner needs (pino fits). */
export interface RunnerLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

const silent: RunnerLogger = { info() {}, warn() {}, error() {} };

/** Exponential backoff with full jitter: a random delay in [0, min(cap, base·2^(n-1))]. */
export function fullJitterBackoff(baseMs = 500, capMs = 30_000, random = Math.random) {
  return (deliveryCount: number) =>
    Math.floor(random() * Math.min(capMs, baseMs * 2 ** Math.max(0, deliveryCount - 1)));
}

export interface ConsumerRunnerOptions {
  js: JetStreamClient;
  jsm: JetStreamManager;
  stream: string;
  /** The durable consumer's name: one per consuming role. */
  durable: string;
  /** One filter subject (nats-server 2.9 has no multi-filter consumers). */
  filterSubject: string;
  /** Messages handed to a batch handler at most; also the pull size. */
  batchSize?: number;
  /** Deliveries before a failing message becomes a dead letter. */
  maxDeliver?: number;
  ackWaitMs?: number;
  backoff?: (deliveryCount: number) => number;
  deliverPolicy?: DeliverPolicy;
  logger?: RunnerLogger;
  /**
   * One-at-a-time handlers: how many messages may be in hand at once (default 1).
   * Messages with the same key (default: the subject, i.e. one aggregate for events)
   * are still handled in order.
   */
  concurrency?: number;
  keyOf?: (msg: JsMsg) => string;
}

/**
 * One message at a time. Returning settles it with ack; throwing `RetryLaterError`
 * hands it back for redelivery after its delay (the work is not done yet); throwing a permanent error
 * (`PermanentError`, `SchemaError`) dead-letters it at once; any other error naks it
 * with backoff until `maxDeliver`, then dead-letters it.
 */
export type MessageHandler = (msg: JsMsg) => Promise<void>;

/**
 * A batch in stream order. Returning acks them all; throwing retries the same batch
 * with backoff, in place, until it succeeds or the runner stops (the data is not at
 * fault: a batch handler sets poison messages aside itself with `deadLetter`).
 */
export type BatchHandler = (
  msgs: JsMsg[],
  tools: { deadLetter(msg: JsMsg, reason: string): Promise<void> },
) => Promise<void>;

export interface RunningConsumer {
  /** Stops pulling, finishes what it holds (graceful drain), resolves when done. */
  stop(): Promise<void>;
  readonly stats: {
    processed: number;
    acked: number;
    naked: number;
    retried: number;
    waiting: number;
    deadLettered: number;
  };
}

/** Creates the durable consumer if missing, or brings its filter and limits up to date. Idempotent. */
export async function ensureConsumer(o: ConsumerRunnerOptions): Promise<void> {
  const want: Partial<ConsumerConfig> = {
    durable_name: o.durable,
    filter_subject: o.filterSubject,
    ack_policy: AckPolicy.Explicit,
    ack_wait: (o.ackWaitMs ?? 30_000) * NS_PER_MS,
    // The runner dead-letters by itself; the server must never silently stop redelivering.
    max_deliver: -1,
    max_ack_pending: Math.max(1_000, (o.batchSize ?? 100) * 20),
    deliver_policy: o.deliverPolicy ?? DeliverPolicy.All,
  };
  try {
    const info = await o.jsm.consumers.info(o.stream, o.durable);
    const c = info.config;
    if (
      c.filter_subject !== want.filter_subject ||
      c.ack_wait !== want.ack_wait ||
      c.max_ack_pending !== want.max_ack_pending
    ) {
      await o.jsm.consumers.update(o.stream, o.durable, {
        filter_subject: want.filter_subject!,
        ack_wait: want.ack_wait!,
        max_ack_pending: want.max_ack_pending!,
        max_deliver: -1,
      });
    }
  } catch (err) {
    if (!(err instanceof JetStreamApiError && err.code === JetStreamApiCodes.ConsumerNotFound)) throw err;
    await o.jsm.consumers.add(o.stream, want);
  }
}

/**
 * Runs a durable pull consumer: batch pulls, settles every message (ack, nak with
 * backoff, or dead letter to `dlq.<stream>` with the reason), drains on stop, and
 * keeps going across NATS restarts (the client reconnects; the durable consumer
 * remembers where it was).
 */
export async function startConsumer(
  o: ConsumerRunnerOptions & ({ handle: MessageHandler } | { handleBatch: BatchHandler }),
): Promise<RunningConsumer> {
  const log = o.logger ?? silent;
  const batchSize = o.batchSize ?? 100;
  const concurrency = "handle" in o ? Math.max(1, o.concurrency ?? 1) : 1;
  const keyOf = o.keyOf ?? ((m: JsMsg) => m.subject);
  const maxDeliver = o.maxDeliver ?? 5;
  const backoff = o.backoff ?? fullJitterBackoff();
  const stats = { processed: 0, acked: 0, naked: 0, retried: 0, waiting: 0, deadLettered: 0 };
  let stopping = false;
  const ctx = { stream: o.stream, consumer: o.durable };
  // Messages a batch handler dead-lettered: already terminated, not to be acked.
  const settled = new WeakSet<JsMsg>();

  await ensureConsumer(o);
  const consumer = await o.js.consumers.get(o.stream, o.durable);
  // Short pulls with heartbeats: after a NATS restart the runner notices within seconds.
  const messages = await consumer.consume({ max_messages: batchSize * 2, expires: 5_000 });

  const deadLetter = async (msg: JsMsg, reason: string) => {
    const h = natsHeaders();
    if (msg.headers) for (const [k, v] of msg.headers) for (const value of v) h.append(k, value);
    h.set(Headers.dlqReason, reason.replaceAll(/[\r\n]+/g, " ").slice(0, 2_000));
    h.set(Headers.dlqStream, o.stream);
    h.set(Headers.dlqSubject, msg.subject);
    h.set(Headers.dlqSequence, String(msg.seq));
    h.set(Headers.dlqConsumer, o.durable);
    h.set(Headers.dlqDeliveries, String(msg.info.deliveryCount));
    // Kept before the original is terminated, so nothing is lost between the two.
    await o.js.publish(dlqSubject(o.stream), msg.data, { headers: h, msgID: `dlq:${o.stream}:${msg.seq}` });
    msg.term(reason.slice(0, 200));
    settled.add(msg);
    stats.deadLettered++;
    log.error({ ...ctx, subject: msg.subject, sequence: msg.seq, reason }, "message dead-lettered");
  };

  const settleFailure = async (msg: JsMsg, err: unknown) => {
    if (isRetryLater(err)) {
      msg.nak(err.delayMs);
      stats.waiting++;
      return;
    }
    const reason = describeError(err);
    if (isPermanent(err) || msg.info.deliveryCount >= maxDeliver) {
      await deadLetter(msg, reason);
      return;
    }
    const delay = backoff(msg.info.deliveryCount);
    msg.nak(delay);
    stats.naked++;
    log.warn(
      {
        ...ctx,
        subject: msg.subject,
        sequence: msg.seq,
        deliveries: msg.info.deliveryCount,
        delayMs: delay,
        err: reason,
      },
      "message failed; retrying",
    );
  };

  const processOne = async (handle: MessageHandler, msg: JsMsg) => {
    try {
      await inMessagingSpan(
        {
          operation: "process",
          template: subjectTemplate(msg.subject),
          destination: msg.subject,
          kind: SpanKind.CONSUMER,
          parent: extractTrace(msg.headers),
          attributes: { [SpanAttributes.consumerGroup]: o.durable, [SpanAttributes.sequence]: msg.seq },
        },
        () => handle(msg),
      );
      msg.ack();
      stats.acked++;
    } catch (err) {
      await settleFailure(msg, err);
    }
    stats.processed++;
  };

  // A failing batch is retried in place: naking it would let the messages buffered
  // behind it overtake it, and batch consumers (projections) depend on order.
  const processBatch = async (handleBatch: BatchHandler, batch: JsMsg[]) => {
    for (let attempt = 1; ; attempt++) {
      try {
        await inMessagingSpan(
          {
            operation: "process",
            template: subjectTemplate(o.filterSubject),
            destination: o.filterSubject,
            kind: SpanKind.CONSUMER,
            attributes: {
              [SpanAttributes.consumerGroup]: o.durable,
              [SpanAttributes.batchCount]: batch.length,
            },
          },
          () => handleBatch(batch, { deadLetter }),
        );
        for (const m of batch) {
          if (!settled.has(m)) {
            m.ack();
            stats.acked++;
          }
        }
        break;
      } catch (err) {
        const delay = backoff(attempt);
        if (stopping) {
          // Handed back for redelivery, in order, to whoever consumes next.
          for (const m of batch) if (!settled.has(m)) m.nak();
          stats.naked += batch.length;
          return;
        }
        stats.retried++;
        log.warn(
          { ...ctx, size: batch.length, attempt, delayMs: delay, err: describeError(err) },
          "batch failed; retrying in place",
        );
        await new Promise((r) => setTimeout(r, delay));
        // Keep the server from redelivering what we still hold.
        for (const m of batch) if (!settled.has(m)) m.working();
      }
    }
    stats.processed += batch.length;
  };

  // The reader moves messages into our own buffer; the processor takes what is there
  // (up to a batch) whenever it is free. Batches grow under load and stay small, so
  // latency stays low, when traffic is light. The buffer is bounded by the consumer's
  // max_ack_pending. (nats.js's getPending() cannot tell "nothing buffered": it
  // counts queued status callbacks too.)
  const buffer: JsMsg[] = [];
  let wake: (() => void) | undefined;
  let ended = false;
  const reader = (async () => {
    try {
      for await (const msg of messages) {
        buffer.push(msg);
        wake?.();
      }
    } finally {
      ended = true;
      wake?.();
    }
  })();
  // Concurrent handling, in order within a key: each key's messages form a chain, and at
  // most `concurrency` messages are in hand at once.
  const chains = new Map<string, Promise<void>>();
  const inHand = new Set<Promise<void>>();
  const dispatch = async (handle: MessageHandler, msg: JsMsg) => {
    while (inHand.size >= concurrency) await Promise.race(inHand);
    const k = keyOf(msg);
    const run = (chains.get(k) ?? Promise.resolve()).then(() => processOne(handle, msg));
    chains.set(k, run);
    inHand.add(run);
    void run.finally(() => {
      inHand.delete(run);
      if (chains.get(k) === run) chains.delete(k);
    });
  };
  const processor = (async () => {
    for (;;) {
      if (buffer.length === 0) {
        if (ended) return;
        await new Promise<void>((resolve) => (wake = resolve));
        wake = undefined;
        continue;
      }
      const batch = buffer.splice(0, batchSize);
      if (!("handle" in o)) await processBatch(o.handleBatch, batch);
      else if (concurrency === 1) for (const msg of batch) await processOne(o.handle, msg);
      else for (const msg of batch) await dispatch(o.handle, msg);
    }
  })();

  const drained = async () => {
    await processor;
    await Promise.all(inHand);
  };
  const loop = Promise.all([reader, drained()]).catch((err) =>
    log.error({ ...ctx, err: describeError(err) }, "consumer loop ended with an error"),
  );

  log.info({ ...ctx, filter: o.filterSubject }, "consumer started");
  return {
    stats,
    stop: async () => {
      stopping = true;
      messages.stop();
      await loop;
      log.info({ ...ctx, ...stats }, "consumer stopped");
    },
  };
}
