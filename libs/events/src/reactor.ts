/**
 * The reactor runtime: the one way a service reacts to events (beside `serveCommands`
 * for commands). Every process manager, follower and watcher of every service runs on
 * it, so they share one set of rules:
 *
 *  1. A commit is parsed once, against the catalogue, and handed over typed: a reactor
 *     narrows an event by `type` and reads its data with no cast.
 *  2. A message that is not a commit of this aggregate type (garbage, an unknown type,
 *     a schema failure, a commit of another aggregate) is a dead letter with the reason,
 *     once, and never blocks the aggregate's later commits or the process.
 *  3. A commit's outcome follows one rule (`combineSettlements`): a real failure wins over
 *     a wait, a permanent one over a transient one; waits come back at the soonest.
 *  4. Waits never count towards a dead letter; real failures do, within a small budget,
 *     retried with full-jitter backoff.
 *  5. Work in hand is kept alive (`working()`), so the ack wait is short and an event
 *     whose process died is retried within seconds.
 *
 * @example
 * await startReactor({ nats, name: "provisioner-reactor", aggregate: "cluster",
 *   react: async (e) => { if (e.type === "cluster.requested") await validate(e.data.spec); } });
 */
import type { DeliverPolicy, JsMsg } from "@nats-io/jetstream";
import { context } from "@opentelemetry/api";
import { SchemaError } from "./catalogue/define.ts";
import { catalogue, type EventOfAggregate, type EventsByAggregate } from "./catalogue/index.ts";
import type { Nats } from "./connection.ts";
import { type RunnerLogger, type RunningConsumer, startConsumer } from "./consumer-runner.ts";
import { combineSettlements, RetryLaterError, type Settlement, settlementOf } from "./errors.ts";
import { ownCommits } from "./own-commits.ts";
import { type AggregateType, eventFilter, Headers, Streams } from "./subjects.ts";
import {
  contextPropagates,
  eventWorkAttributes,
  inWork,
  SpanAttributes,
  withWorkAttributes,
} from "./trace.ts";

/** An event as a reactor gets it: typed by its aggregate, with where it sits in the log. */
export type ReactingEvent<A extends AggregateType> = EventOfAggregate<A> & {
  /** The stream sequence of its commit: pass it as `atLeastSequence` to read its aggregate. */
  readonly sequence: number;
  readonly commitId: string;
  /** How many times this commit was delivered (1 the first time): waits poll with it. */
  readonly deliveries: number;
};

export interface ReactorOptions<A extends AggregateType> {
  nats: Nats;
  /** `<service>-<concern>` (`provisioner-reactor`): the durable consumer's name, and the name in logs. */
  name: string;
  /** The aggregate type whose events this reactor follows (`evt.<aggregate>.*`). */
  aggregate: A;
  /**
   * The event types it acts on. Others are never handed over, and a commit that holds
   * none of them (its `Cairn-Event-Types` header says so) is acknowledged unread.
   */
  types?: readonly EventsByAggregate[A]["type"][];
  /** Commits in hand at once, across aggregates; one aggregate's commits stay in order. Default 16. */
  concurrency?: number;
  /**
   * `together` (default): a commit's events run side by side (they concern different
   * slots, nodes…, and every reaction is idempotent). `in-order`: one after another,
   * stopping at the first that does not finish.
   */
  commitEvents?: "together" | "in-order";
  /**
   * Commits that need not wait for their aggregate's earlier ones: given a commit's event
   * types (its `Cairn-Event-Types` header), true runs it on a chain of its own, beside the
   * aggregate's others, instead of after them. For commits whose reactions are idempotent by
   * the aggregate's state and read it at least as fresh as their own commit — as any
   * reaction must be anyway, since two replicas of one durable consumer take an aggregate's
   * commits side by side. Default: every commit in order.
   */
  ownChain?: (eventTypes: readonly string[]) => boolean;
  /** Real failures before a dead letter (default: the runner's, 5). */
  failureBudget?: number;
  /** Commits this reactor may have pulled and not yet settled (the runner's `maxInHand`); waits do not count. */
  maxInHand?: number;
  ackWaitMs?: number;
  deliverPolicy?: DeliverPolicy;
  logger?: RunnerLogger;
  react(event: ReactingEvent<A>): Promise<void>;
}

/** Starts a reactor; `stop()` finishes what is in hand and hands back the rest. */
export async function startReactor<A extends AggregateType>(o: ReactorOptions<A>): Promise<RunningConsumer> {
  const wanted = o.types ? new Set<string>(o.types) : undefined;
  const inOrder = o.commitEvents === "in-order";
  const waiting = new WaitingCommits<EventOfAggregate<A>>();
  return await startConsumer({
    js: o.nats.js,
    jsm: o.nats.jsm,
    stream: Streams.events,
    durable: o.name,
    filterSubject: eventFilter(o.aggregate),
    concurrency: o.concurrency ?? 16,
    ...(o.ownChain ? { keyOf: chainOf(o.ownChain) } : {}),
    ...(o.failureBudget !== undefined ? { failureBudget: o.failureBudget } : {}),
    ...(o.ackWaitMs !== undefined ? { ackWaitMs: o.ackWaitMs } : {}),
    ...(o.maxInHand !== undefined ? { maxInHand: o.maxInHand } : {}),
    ...(o.deliverPolicy !== undefined ? { deliverPolicy: o.deliverPolicy } : {}),
    ...(o.logger ? { logger: o.logger } : {}),
    // 1. Nothing wanted in it (by its header): done without parsing, and without a span.
    ...(wanted ? { skip: (msg: JsMsg) => !mayHold(msg, wanted) } : {}),
    handle: async (msg) => {
      // 2. Parse and type it; anything else is permanent (a dead letter with the reason).
      //    A commit handed back for a wait is parsed once, not at every look (`WaitingCommits`).
      const msgId = msg.headers?.get(Headers.msgId) ?? "";
      const commit = waiting.take(msg.seq, msgId, msg.data.length) ?? readCommit(msg, o.aggregate);
      const events = commit.events.filter((e) => !wanted || wanted.has(e.type));
      const deliveries = msg.info.deliveryCount;
      // (Spread as a plain object: the typed union is too wide for the compiler to spread.)
      const reacting = (e: object) =>
        ({ ...e, sequence: msg.seq, commitId: commit.commitId, deliveries }) as unknown as ReactingEvent<A>;
      // 3. React, and settle the commit by the one rule. The commit's span and everything
      //    under it (the outside calls) carry its aggregate and command; each reaction's
      //    context names its own event too.
      const first = events[0];
      if (!first) return;
      // Each reaction's context names its event only where a context is carried (telemetry
      // set up): without, building it per event was wasted — a 500-node cluster's boot polls
      // hand back 500 events per look, each with a context of its own.
      const propagates = contextPropagates();
      const react = (e: (typeof events)[number]) =>
        propagates
          ? context.with(withWorkAttributes(eventWorkAttributes(e)), () => o.react(reacting(e)))
          : o.react(reacting(e));
      await inWork(
        {
          ...eventWorkAttributes(first),
          [SpanAttributes.eventId]: undefined,
          [SpanAttributes.eventTypes]: events.map((e) => e.type).join(","),
        },
        async () => {
          let outcome: Settlement;
          if (inOrder) {
            outcome = { kind: "done" };
            for (const e of events) {
              outcome = await react(e).then(
                () => settlementOf(),
                (err: unknown) => settlementOf(err),
              );
              if (outcome.kind !== "done") break;
            }
          } else {
            const results = await Promise.allSettled(events.map((e) => react(e)));
            outcome = combineSettlements(
              results.map((r) => (r.status === "fulfilled" ? settlementOf() : settlementOf(r.reason))),
            );
          }
          if (outcome.kind === "wait") waiting.keep(msg.seq, msgId, msg.data.length, commit);
          throwSettlement(outcome);
        },
      );
    },
  });
}

/**
 * Commits handed back for a wait, as parsed, until they come back: a 500-node cluster's
 * launch commits (500 events, ~250 kB of JSON) came back at every boot look, each parsed
 * and checked again. Keyed by stream sequence, and taken only when the message id and size
 * match too (a stream made anew reuses sequences). At most `maxEvents` events are kept; the
 * oldest commit goes first. A commit taken is kept again only if it waits again, so one
 * handed to the other replica, or settled, is dropped when it is next evicted.
 */
export class WaitingCommits<E> {
  readonly #kept = new Map<
    number,
    { msgId: string; bytes: number; commit: { commitId: string; events: E[] } }
  >();
  #events = 0;
  readonly maxEvents: number;
  constructor(maxEvents = 20_000) {
    this.maxEvents = maxEvents;
  }

  keep(seq: number, msgId: string, bytes: number, commit: { commitId: string; events: E[] }): void {
    this.#drop(seq);
    if (commit.events.length > this.maxEvents) return;
    this.#kept.set(seq, { msgId, bytes, commit });
    this.#events += commit.events.length;
    for (const [s] of this.#kept) {
      if (this.#events <= this.maxEvents) break;
      this.#drop(s);
    }
  }

  take(seq: number, msgId: string, bytes: number): { commitId: string; events: E[] } | undefined {
    const k = this.#kept.get(seq);
    this.#drop(seq);
    return k && k.msgId === msgId && k.bytes === bytes ? k.commit : undefined;
  }

  get size(): number {
    return this.#kept.size;
  }

  #drop(seq: number): void {
    const k = this.#kept.get(seq);
    if (!k) return;
    this.#kept.delete(seq);
    this.#events -= k.commit.events.length;
  }
}

/** Hands a settlement to the runner, which settles by the same classification. */
function throwSettlement(outcome: Settlement): void {
  switch (outcome.kind) {
    case "done":
      return;
    case "wait":
      throw new RetryLaterError(outcome.delayMs, outcome.reason);
    case "transient":
    case "permanent":
      throw outcome.error;
  }
}

/** The runner's chain for a commit: its subject (its aggregate's order), or its own when `ownChain` says so. */
function chainOf(ownChain: (eventTypes: readonly string[]) => boolean): (msg: JsMsg) => string {
  return (msg) => {
    const header = msg.headers?.get(Headers.eventTypes);
    return header && ownChain(header.split(",")) ? `${msg.subject}#${msg.seq}` : msg.subject;
  };
}

/** False only when the commit's header says it holds none of the wanted types. */
function mayHold(msg: JsMsg, wanted: ReadonlySet<string>): boolean {
  const header = msg.headers?.get(Headers.eventTypes);
  if (!header) return true;
  return header.split(",").some((t) => wanted.has(t));
}

/**
 * The commit in `msg`, parsed against the catalogue and checked to belong where it was
 * published. @throws SchemaError (permanent: the message is a dead letter)
 */
export function readCommit<A extends AggregateType>(
  msg: Pick<JsMsg, "data" | "subject" | "seq"> & { headers?: JsMsg["headers"] },
  aggregate: A,
): { commitId: string; events: EventOfAggregate<A>[] } {
  let raw: unknown;
  const text = new TextDecoder().decode(msg.data);
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new SchemaError(`${msg.subject} #${msg.seq} is not JSON, so not a commit`, [], { cause: err });
  }
  // A commit this process appended, exactly as it published it: its events' data were
  // checked against the catalogue when built, so only the envelopes are checked here.
  const commit = ownCommits.wrote(msg.headers?.get(Headers.msgId), text)
    ? catalogue.parseCommitTrusted(raw, { subject: msg.subject })
    : catalogue.parseCommit(raw, { subject: msg.subject });
  if (commit.aggregate.type !== aggregate)
    throw new SchemaError(
      `${msg.subject} #${msg.seq} holds a commit of ${commit.aggregate.type}, not of ${aggregate}`,
    );
  return { commitId: commit.commitId, events: commit.events as EventOfAggregate<A>[] };
}
