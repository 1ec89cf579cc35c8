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
import { type MsgHdrs, headers as natsHeaders } from "@nats-io/transport-node";
import { askAgain } from "./ask-again.ts";
import { fullJitterBackoff } from "./delays.ts";
import { describeError, remediationOf, type Settlement, settlementOf } from "./errors.ts";
import { apiPrefixOf, natsOf, PULL_CHECK_MS, PullRequests } from "./pull-requests.ts";
import { dlqSubject, Headers } from "./subjects.ts";
import { extractTrace, inMessagingSpan, SpanAttributes, SpanKind, subjectTemplate } from "./trace.ts";
import { atTurnEnd, flushTurnWrites, withNextWrite } from "./turn-writes.ts";

const NS_PER_MS = 1_000_000;

/** The part of a logger the runner needs (pino fits). */
export interface RunnerLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

const silent: RunnerLogger = { info() {}, warn() {}, error() {} };

/**
 * Real failures (not waits) a message may meet before it becomes a dead letter. Small on
 * purpose: a failure that five tries with backoff did not cure needs a person, and the
 * dead letter says why. Waits (`RetryLaterError`) never count.
 */
export const DEFAULT_FAILURE_BUDGET = 5;

/**
 * How long the server waits for a settlement before it hands a message to another
 * consumer. Short, so that work whose process died is retried within seconds; the
 * runtime keeps what it holds alive with `working()` every third of it.
 */
export const DEFAULT_ACK_WAIT_MS = 5_000;

/**
 * Deliveries after which a message is dead-lettered whatever it met: the safety net
 * for a message that kills its process before any failure can be counted (the
 * failure budget lives in the process). Waits redeliver too, so this is large.
 */
export const DEFAULT_MAX_DELIVERIES = 20_000;

/**
 * How long a one-at-a-time runner keeps a message to itself. Past it, a message only
 * buffered (behind a handler that has not returned) is handed back at once, and one whose
 * handler is still running is no longer kept alive: the server gives it to another replica
 * after the ack wait. A handler that hangs (a read waiting on a NATS server that went away)
 * would otherwise hold everything this process pulled, for as long as it hangs, while the
 * other replicas idle — a chaos run saw a cluster's events decided four minutes late. Handling
 * is idempotent (commit ids, expected sequences), so a late finish here does no harm.
 */
export const DEFAULT_MAX_HOLD_MS = 60_000;

/**
 * While a handler hangs past the hold limit, what the runner pulls goes straight back with
 * this delay (the pull stays open): another replica takes it, and a runner alone does not
 * spin on it.
 */
const STUCK_HAND_BACK_DELAY_MS = 1_000;

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
  /** Real failures (transient errors) before a message becomes a dead letter. Waits never count. */
  failureBudget?: number;
  /** Deliveries of any kind before a dead letter: the net under the failure budget. */
  maxDeliveries?: number;
  ackWaitMs?: number;
  /** The delay before the n-th retry of a failure (default: full-jitter exponential backoff). */
  backoff?: (failures: number) => number;
  deliverPolicy?: DeliverPolicy;
  logger?: RunnerLogger;
  /**
   * One-at-a-time handlers: how many messages may be in hand at once (default 1).
   * Messages with the same key (default: the subject, i.e. one aggregate for events)
   * are still handled in order.
   */
  concurrency?: number;
  keyOf?: (msg: JsMsg) => string;
  /** One-at-a-time handlers: how long a message is kept from the other replicas (DEFAULT_MAX_HOLD_MS). */
  maxHoldMs?: number;
  /**
   * One-at-a-time handlers: a message for which this is true is acknowledged as it
   * arrives, unhandled and without a span, never buffered or held (not after the earlier
   * messages of its key): a consumer's filter subject is wider than what it acts on, and a
   * `process` span per message it ignores would bury the trace's real work.
   */
  skip?: (msg: JsMsg) => boolean;
  /**
   * Messages this runner may have pulled and not yet settled, at once (default
   * {@link defaultMaxInHand}): what bounds its memory. Waits do not count: a wait is handed
   * back to the server (nak with its delay) and held there, not here.
   */
  maxInHand?: number;
}

/** The runner's default bound on what it holds: twenty batches, at least 1 000 messages. */
export function defaultMaxInHand(batchSize = 100): number {
  return Math.max(1_000, batchSize * 20);
}

/**
 * The server's limit on a consumer's unacknowledged messages: none (-1). A message waiting
 * (`RetryLaterError`) is nak'd with its delay and stays unacknowledged on the server until it
 * comes back, so every parked wait counts against max_ack_pending; with a limit, enough waits
 * stop all new deliveries — and when a wait can only end through a message behind them (the
 * installer's node-added waits end on its step events, on the same consumer), nothing moves
 * again: a load run of 1 000 clusters stalled for good with 2 000 waits parked. Unlimited is
 * safe because the limit never bounded anything else: what a runner holds in memory is bounded
 * by the runner itself (`maxInHand`: it pulls only when it has room), and the server keeps for
 * each pending message a few dozen bytes, at most one entry per message of the filter still in
 * the stream — so the bound is the stream's own retention.
 */
export const UNLIMITED_ACK_PENDING = -1;

/**
 * One message at a time. Returning settles it with ack; throwing `RetryLaterError`
 * hands it back for redelivery after its delay (the work is not done yet, and it never
 * counts as a failure); throwing a permanent error (`PermanentError`, `SchemaError`)
 * dead-letters it at once; any other error naks it with backoff until the failure
 * budget is spent, then dead-letters it.
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
  /** Stops pulling, finishes what is in hand, hands back what is only buffered, resolves when done. */
  stop(): Promise<void>;
  readonly stats: {
    processed: number;
    acked: number;
    naked: number;
    retried: number;
    waiting: number;
    deadLettered: number;
    /** Given up past the hold limit (`maxHoldMs`), for another replica to handle. */
    handedOver: number;
  };
}

/** The durable consumer's config as the runner keeps it (a caller that makes it itself uses the same). */
export function consumerConfig(o: {
  durable: string;
  filterSubject: string;
  ackWaitMs?: number;
  batchSize?: number;
  deliverPolicy?: DeliverPolicy;
}): Partial<ConsumerConfig> & { durable_name: string; filter_subject: string; ack_wait: number } {
  return {
    durable_name: o.durable,
    filter_subject: o.filterSubject,
    ack_policy: AckPolicy.Explicit,
    ack_wait: (o.ackWaitMs ?? DEFAULT_ACK_WAIT_MS) * NS_PER_MS,
    // The runner dead-letters by itself; the server must never silently stop redelivering.
    max_deliver: -1,
    max_ack_pending: UNLIMITED_ACK_PENDING,
    deliver_policy: o.deliverPolicy ?? DeliverPolicy.All,
  };
}

/** Creates the durable consumer if missing, or brings its filter and limits up to date. Idempotent. */
export async function ensureConsumer(o: ConsumerRunnerOptions): Promise<void> {
  // Asked again when unanswered: two replicas creating the same durable at once on a cluster
  // can leave one without an answer (ask-again.ts); a create that did happen is found by the
  // next attempt's info.
  await askAgain(`ensuring consumer ${o.stream}/${o.durable}`, () => ensureConsumerOnce(o));
}

async function ensureConsumerOnce(o: ConsumerRunnerOptions): Promise<void> {
  const want = consumerConfig(o);
  try {
    const info = await o.jsm.consumers.info(o.stream, o.durable);
    const c = info.config;
    if (
      c.filter_subject !== want.filter_subject ||
      c.ack_wait !== want.ack_wait ||
      c.max_ack_pending !== want.max_ack_pending
    ) {
      await o.jsm.consumers.update(o.stream, o.durable, {
        filter_subject: want.filter_subject,
        ack_wait: want.ack_wait,
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
 * The headers a dead letter keeps of the original: the caller's own (trace, event types),
 * never JetStream's publish directives (`Nats-Msg-Id`, `Nats-Expected-*`), which would
 * make the dead letter's own publish fail or be dropped as a duplicate.
 */
export function deadLetterHeaders(original: MsgHdrs | undefined): MsgHdrs {
  const h = natsHeaders();
  if (original)
    for (const [k, v] of original) {
      if (k.toLowerCase().startsWith("nats-")) continue;
      for (const value of v) h.append(k, value);
    }
  return h;
}

/** What one running consumer holds now: see {@link consumerSnapshots}. */
export interface ConsumerSnapshot {
  readonly stream: string;
  readonly consumer: string;
  /** Pulled and not settled (buffered or in a handler). */
  readonly held: number;
  readonly buffered: number;
  /** In a handler now: the message, and since when it was pulled (ms). */
  readonly handling: { subject: string; sequence: number; heldMs: number }[];
  readonly pullsOpen: number;
  readonly outstanding: number;
  readonly stopping: boolean;
}

const running = new Set<() => ConsumerSnapshot>();

/**
 * What every consumer running in this process holds now (a diagnostic: bench/install's
 * BENCH_TRACE prints it when the log stops moving, to say which handler holds what).
 */
export function consumerSnapshots(): ConsumerSnapshot[] {
  return [...running].map((f) => f());
}

/**
 * Runs a durable pull consumer: batch pulls, settles every message (ack, nak with
 * backoff, or dead letter to `dlq.<stream>` with the reason), keeps what it holds alive
 * with `working()`, hands back what it only buffered on stop, and keeps going across
 * NATS restarts (the client reconnects; the durable consumer remembers where it was).
 * Never throws from settling: a dead letter that cannot be written is retried later.
 */
export async function startConsumer(
  o: ConsumerRunnerOptions & ({ handle: MessageHandler } | { handleBatch: BatchHandler }),
): Promise<RunningConsumer> {
  const log = o.logger ?? silent;
  const batchSize = o.batchSize ?? 100;
  const concurrency = "handle" in o ? Math.max(1, o.concurrency ?? 1) : 1;
  const keyOf = o.keyOf ?? ((m: JsMsg) => m.subject);
  const failureBudget = Math.max(1, o.failureBudget ?? DEFAULT_FAILURE_BUDGET);
  const maxDeliveries = o.maxDeliveries ?? DEFAULT_MAX_DELIVERIES;
  const ackWaitMs = o.ackWaitMs ?? DEFAULT_ACK_WAIT_MS;
  const backoff = o.backoff ?? fullJitterBackoff();
  const maxHoldMs = o.maxHoldMs ?? DEFAULT_MAX_HOLD_MS;
  const maxInHand = Math.max(1, o.maxInHand ?? defaultMaxInHand(batchSize));
  const stats = {
    processed: 0,
    acked: 0,
    naked: 0,
    retried: 0,
    waiting: 0,
    deadLettered: 0,
    handedOver: 0,
  };
  let stopping = false;
  const ctx = { stream: o.stream, consumer: o.durable };
  // Messages a batch handler dead-lettered: already terminated, not to be acked.
  const settled = new WeakSet<JsMsg>();
  // Real failures per message (by stream sequence), counted in this process. A replica
  // or a restart counts afresh, so a message fails at most budget × processes times;
  // `maxDeliveries` is the net under that.
  const failures = new Map<number, number>();
  // Everything pulled and not yet settled, with when it was pulled: kept alive with working()
  // so the ack wait can be short — up to the hold limit (one-at-a-time handlers).
  const held = new Map<JsMsg, number>();
  // In a handler right now (one-at-a-time handlers).
  const handling = new Set<JsMsg>();
  // Given up past the hold limit: its handler never starts here (it was handed back), or its
  // late end settles nothing twice in the stats.
  const givenUp = new WeakSet<JsMsg>();

  await ensureConsumer(o);
  // Wakes the reader when a settlement makes room under `maxInHand`.
  let roomWake: (() => void) | undefined;
  const oneAtATime = "handle" in o;
  const keepAlive = setInterval(
    () => {
      const now = Date.now();
      for (const [m, since] of held) {
        if (!oneAtATime || now - since < maxHoldMs) {
          m.working();
          continue;
        }
        givenUp.add(m);
        handBackOne(m);
        stats.handedOver++;
        const inHandler = handling.has(m);
        // Only buffered: back to the server at once. In a handler: left to its ack wait.
        if (!inHandler) m.nak();
        log.warn(
          { ...ctx, subject: m.subject, sequence: m.seq, heldMs: now - since, inHandler },
          inHandler
            ? "a handler has not returned within the hold limit: the message is left to another replica"
            : "a message waited behind a handler past the hold limit: handed back",
        );
      }
    },
    Math.max(250, Math.floor(ackWaitMs / 3)),
  );
  keepAlive.unref();

  const release = (msg: JsMsg) => {
    held.delete(msg);
    failures.delete(msg.seq);
    roomWake?.();
  };
  /** No longer in hand here (a wait or a retry handed back to the server), failures still counted. */
  const handBackOne = (msg: JsMsg) => {
    held.delete(msg);
    roomWake?.();
  };

  /** Keeps the message in `dlq.<stream>` with the reason, then terminates it. Never throws. */
  const deadLetter = async (msg: JsMsg, reason: string): Promise<boolean> => {
    const h = deadLetterHeaders(msg.headers);
    h.set(Headers.dlqReason, reason.replaceAll(/[\r\n]+/g, " ").slice(0, 2_000));
    h.set(Headers.dlqStream, o.stream);
    h.set(Headers.dlqSubject, msg.subject);
    h.set(Headers.dlqSequence, String(msg.seq));
    h.set(Headers.dlqConsumer, o.durable);
    h.set(Headers.dlqDeliveries, String(msg.info.deliveryCount));
    try {
      // Kept before the original is terminated, so nothing is lost between the two. The id
      // is the original's place: every consumer that meets the same bad message writes one
      // dead letter (the DLQ stream's duplicate window is long).
      await o.js.publish(dlqSubject(o.stream), msg.data, {
        headers: h,
        msgID: `dlq:${o.stream}:${msg.seq}`,
      });
    } catch (err) {
      const delay = backoff(msg.info.deliveryCount);
      msg.nak(delay);
      release(msg);
      stats.naked++;
      log.error(
        { ...ctx, subject: msg.subject, sequence: msg.seq, reason, err: describeError(err), delayMs: delay },
        "could not write the dead letter; the message comes back later",
      );
      return false;
    }
    // A bare +TERM: a server before 2.10 ignores `+TERM <reason>` altogether (it compares the
    // whole payload), so the message would come back after every ack wait and be
    // dead-lettered again and again. The reason is in the dead letter.
    atTurnEnd(() => msg.term());
    settled.add(msg);
    release(msg);
    stats.deadLettered++;
    log.error({ ...ctx, subject: msg.subject, sequence: msg.seq, reason }, "message dead-lettered");
    return true;
  };

  /** Settles one message by the one rule. Never throws. */
  const settle = async (msg: JsMsg, outcome: Settlement) => {
    switch (outcome.kind) {
      case "done":
        // Rides with the next sends (the next command's look or append): one socket write
        // for all of them (turn-writes.ts). The work is done and committed; only the write waits.
        withNextWrite(() => msg.ack());
        release(msg);
        stats.acked++;
        return;
      case "wait": {
        if (msg.info.deliveryCount >= maxDeliveries) {
          await deadLetter(
            msg,
            `still waiting after ${msg.info.deliveryCount} deliveries: ${outcome.reason}`,
          );
          return;
        }
        atTurnEnd(() => msg.nak(outcome.delayMs));
        handBackOne(msg);
        stats.waiting++;
        return;
      }
      case "permanent":
        await deadLetter(msg, describeError(outcome.error));
        return;
      case "transient": {
        const n = (failures.get(msg.seq) ?? 0) + 1;
        const reason = describeError(outcome.error);
        if (n >= failureBudget || msg.info.deliveryCount >= maxDeliveries) {
          await deadLetter(msg, `failed ${n} times: ${reason}`);
          return;
        }
        failures.set(msg.seq, n);
        const delay = backoff(n);
        atTurnEnd(() => msg.nak(delay));
        handBackOne(msg);
        stats.naked++;
        const hint = remediationOf(outcome.error);
        log.warn(
          {
            ...ctx,
            subject: msg.subject,
            sequence: msg.seq,
            failures: n,
            budget: failureBudget,
            delayMs: delay,
            err: reason,
            ...(hint ? { remediation: hint } : {}),
          },
          "message failed; retrying",
        );
        return;
      }
    }
  };

  /** A handler still running on a message it was given up for (past the hold limit). */
  const stuck = () => {
    for (const m of handling) if (givenUp.has(m)) return true;
    return false;
  };

  const processOne = async (handle: MessageHandler, msg: JsMsg) => {
    // Handed back past the hold limit while it waited: another replica has it.
    if (givenUp.has(msg)) return;
    handling.add(msg);
    try {
      await processHeld(handle, msg);
    } finally {
      handling.delete(msg);
    }
  };

  const processHeld = async (handle: MessageHandler, msg: JsMsg) => {
    let outcome: Settlement;
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
      outcome = { kind: "done" };
    } catch (err) {
      outcome = settlementOf(err);
    }
    await settle(msg, outcome);
    stats.processed++;
  };

  // A failing batch is retried in place: naking it would let the messages buffered
  // behind it overtake it, and batch consumers (projections) depend on order.
  const processBatch = async (handleBatch: BatchHandler, batch: JsMsg[]) => {
    const tools = {
      deadLetter: async (m: JsMsg, reason: string) => {
        if (!(await deadLetter(m, reason)))
          throw new Error(`the dead letter of ${m.seq} could not be written`);
      },
    };
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
          () => handleBatch(batch, tools),
        );
        const acks: JsMsg[] = [];
        for (const m of batch) {
          if (!settled.has(m)) {
            acks.push(m);
            stats.acked++;
          }
          release(m);
        }
        // The batch is committed: its acks ride with the next writes (turn-writes.ts).
        withNextWrite(() => {
          for (const m of acks) m.ack();
        });
        break;
      } catch (err) {
        const delay = backoff(attempt);
        if (stopping) {
          // Handed back for redelivery, in order, to whoever consumes next.
          for (const m of batch) {
            if (!settled.has(m)) m.nak();
            release(m);
          }
          stats.naked += batch.length;
          return;
        }
        stats.retried++;
        log.warn(
          { ...ctx, size: batch.length, attempt, delayMs: delay, err: describeError(err) },
          "batch failed; retrying in place",
        );
        await new Promise((r) => setTimeout(r, delay));
      }
    }
    stats.processed += batch.length;
  };

  // The reader moves messages into our own buffer; the processor takes what is there
  // (up to a batch) whenever it is free. Batches grow under load and stay small, so
  // latency stays low, when traffic is light. The reader bounds what is in hand itself
  // (`maxInHand`): it pulls only as many as there is room for, one short pull at a time
  // (not consume(): consume() pulls again as soon as messages arrive, whether or not they
  // were read, so only the server's max_ack_pending bounded it — and parked waits count
  // against that; see UNLIMITED_ACK_PENDING). Its pulls all answer to one subscription that
  // lives as long as the runner (pull-requests.ts): a message the server sends to a pull we
  // had given up for silent is still received, never left to its ack wait.
  const buffer: JsMsg[] = [];
  let wake: (() => void) | undefined;
  let ended = false;
  const pause = (ms: number) =>
    new Promise<void>((resolve) => {
      const t = setTimeout(done, ms);
      function done() {
        clearTimeout(t);
        roomWake = undefined;
        resolve();
      }
      roomWake = done;
    });
  const skip = "handle" in o ? o.skip : undefined;
  /** A message the server delivered to us, from whichever of our pulls. */
  const received = (msg: JsMsg) => {
    if (stopping) {
      // Pulled as we stopped: straight back to the server for whoever consumes next.
      msg.nak();
      return;
    }
    if (skip?.(msg)) {
      // Nothing to do for it (by its header): acked as it arrives, never buffered, chained or
      // held — not after its aggregate's earlier commits, and in no in-hand slot. A reactor
      // of cluster commits takes every commit of the aggregate type to skip most (the
      // provisioner's two: two deliveries a command). Skipping is stateless: one that comes
      // back (the ack lost with a killed process) is skipped again.
      withNextWrite(() => msg.ack());
      stats.acked++;
      stats.processed++;
      return;
    }
    if (stuck()) {
      // A handler here hangs past the hold limit: what we pull would only wait behind it.
      msg.nak(STUCK_HAND_BACK_DELAY_MS);
      stats.handedOver++;
      return;
    }
    held.set(msg, Date.now());
    buffer.push(msg);
    wake?.();
  };
  const pulls = new PullRequests({
    nc: natsOf(o.js),
    subject: `${apiPrefixOf(o.js)}.CONSUMER.MSG.NEXT.${o.stream}.${o.durable}`,
    ackTimeoutMs: ackWaitMs,
    onMessage: received,
    onEnded: () => roomWake?.(),
    onRefused: (code, description) => log.warn({ ...ctx, code, description }, "pull failed; pulling again"),
  });
  const reader = (async () => {
    try {
      while (!stopping) {
        pulls.forgetSilent(Date.now());
        if (pulls.open > 0) {
          // Our pull is open: look again when it ends (or soon, to see whether it went silent),
          // and at its expiry at the latest (its end may never come: PULL_EXPIRED_GRACE_MS).
          await pause(Math.max(1, Math.min(PULL_CHECK_MS, pulls.untilExpired(Date.now()))));
          continue;
        }
        const room = maxInHand - held.size - pulls.outstanding;
        if (room <= 0) {
          // Full: pull again when a settlement makes room (or soon, to look again).
          await pause(250);
          continue;
        }
        // A pull the server refused (not its expiry: no JetStream, a consumer being made
        // again): not again at once.
        if (pulls.refusedRecently(Date.now())) await pause(1_000);
        if (stopping) break;
        // Up to five batches a pull: a pull ends when it is filled and the next one costs a
        // round trip; at two batches a pull no-op handlers ran ~10 % slower than consume()'s
        // overlapping pulls, at five ~12 % faster (docs/benchmarks.md, waits).
        pulls.pull(Math.min(batchSize * 5, room));
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
  /** On stop, what is only buffered goes back at once rather than after the ack wait. */
  const handBack = () => {
    for (const m of buffer.splice(0)) {
      if (givenUp.has(m)) continue;
      m.nak();
      release(m);
      stats.naked++;
    }
  };
  const processor = (async () => {
    for (;;) {
      if (stopping) return;
      if (buffer.length === 0) {
        if (ended) return;
        await new Promise<void>((resolve) => (wake = resolve));
        wake = undefined;
        continue;
      }
      const batch = buffer.splice(0, batchSize);
      if (!("handle" in o)) await processBatch(o.handleBatch, batch);
      else if (concurrency === 1) {
        for (let i = 0; i < batch.length; i++) {
          if (stopping) {
            buffer.unshift(...batch.slice(i));
            break;
          }
          await processOne(o.handle, batch[i]!);
        }
      } else {
        for (let i = 0; i < batch.length; i++) {
          if (stopping) {
            buffer.unshift(...batch.slice(i));
            break;
          }
          await dispatch(o.handle, batch[i]!);
        }
      }
    }
  })();

  const drained = async () => {
    await processor;
    await Promise.all(inHand);
  };
  const loop = Promise.all([reader, drained()]).catch((err) =>
    log.error({ ...ctx, err: describeError(err) }, "consumer loop ended with an error"),
  );

  const snapshot = (): ConsumerSnapshot => {
    const now = Date.now();
    return {
      stream: o.stream,
      consumer: o.durable,
      held: held.size,
      buffered: buffer.length,
      handling: [...handling].map((m) => ({
        subject: m.subject,
        sequence: m.seq,
        heldMs: now - (held.get(m) ?? now),
      })),
      pullsOpen: pulls.open,
      outstanding: pulls.outstanding,
      stopping,
    };
  };
  running.add(snapshot);
  void loop.finally(() => running.delete(snapshot));

  log.info({ ...ctx, filter: o.filterSubject }, "consumer started");
  return {
    stats,
    stop: async () => {
      stopping = true;
      // Our pull ends first: a message handed back while it is still open on the server
      // would be redelivered straight into it, to nobody, and wait out the ack wait.
      pulls.close();
      roomWake?.();
      wake?.();
      await loop;
      handBack();
      // Settlements deferred to the end of the turn go now: the caller may close the connection next.
      flushTurnWrites();
      clearInterval(keepAlive);
      log.info({ ...ctx, ...stats }, "consumer stopped");
    },
  };
}
