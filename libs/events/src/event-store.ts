import { hash } from "node:crypto";
import {
  DeliverPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  type JetStreamClient,
  type JetStreamManager,
} from "@nats-io/jetstream";
import { type NatsConnection, headers as natsHeaders } from "@nats-io/transport-node";
import { type AckedPublisher, ackedPublisher, type PublishAck } from "./acked-publisher.ts";
import { openOrderedConsumer } from "./ask-again.ts";
import type { Catalogue } from "./catalogue/catalogue.ts";
import type { AggregateRef, EventEnvelope, RawCommit, RawEventEnvelope } from "./envelope.ts";
import { ConcurrencyConflictError, describeError } from "./errors.ts";
import { ownCommits } from "./own-commits.ts";
import { eventSubject, Headers, Streams } from "./subjects.ts";
import { recordFailure, SpanAttributes, SpanKind, startMessagingSpan, subjectTemplate } from "./trace.ts";

/** An event as read back: its envelope plus the stream sequence of its commit. */
export type RecordedEvent<E extends Msg = Msg> = EventEnvelope<E> & {
  readonly sequence: number;
  readonly commitId: string;
};

type Msg = { type: string; data: unknown };

/** An aggregate's history as loaded from its subject. */
export interface AggregateHistory<E extends Msg = Msg> {
  readonly aggregate: AggregateRef;
  readonly events: RecordedEvent<E>[];
  /** Stream sequence of the last commit read (0: none): the expected sequence for the next append. */
  readonly lastSequence: number;
  /** Number of events: the aggregate's version. */
  readonly version: number;
  /** Commits already in the log, for idempotency beyond the dedupe window. */
  readonly commitIds: ReadonlySet<string>;
  /** The id of the commit at `lastSequence`; undefined when none was read or that message is unreadable. */
  readonly lastCommitId?: string | undefined;
}

/** A message on an aggregate's subject that is not a readable commit. */
export interface UnreadableCommit {
  readonly sequence: number;
  readonly subject: string;
  readonly reason: string;
}

function defaultUnreadableReport(r: UnreadableCommit) {
  process.emitWarning(`${r.subject} #${r.sequence} is not a readable commit (skipped): ${r.reason}`, {
    code: "CAIRN_UNREADABLE_COMMIT",
  });
}

export interface LoadOptions {
  /**
   * Read only the commits after this stream sequence: the rest of a history whose
   * beginning the caller has folded already (an incremental read). `version` and
   * `commitIds` then cover only what was read.
   */
  readonly afterSequence?: number;
  /** Stop after the commit at this stream sequence. */
  readonly toSequence?: number;
  /**
   * The subject's last sequence as the caller has just read it ({@link EventStore.lastSequence}):
   * the load reads up to it without asking again.
   */
  readonly lastSequence?: number;
  /** Stop after the event at this aggregate version (event count). */
  readonly toVersion?: number;
  /** Stop before the first event later than this time. */
  readonly toTime?: Date;
}

export interface NewCommit {
  readonly aggregate: AggregateRef;
  /** The command or event that caused the commit: its `Nats-Msg-Id` is derived from it. */
  readonly causationId: string;
  readonly events: readonly RawEventEnvelope[];
  /**
   * Every event's data went through `catalogue.checkEventData` when it was built (the
   * command handler's commits): this process's reactors then read the commit back
   * without checking its data again (see own-commits.ts). Leave it out otherwise.
   */
  readonly checked?: boolean;
}

export interface AppendResult {
  readonly sequence: number;
  /** The same cause was appended before (within the dedupe window): nothing was written. */
  readonly duplicate: boolean;
  readonly commitId: string;
}

/**
 * The commit id, and so the `Nats-Msg-Id`, of what one cause did to one aggregate:
 * a redelivered or retried cause yields the same id and JetStream drops the copy.
 */
export function commitIdFor(causationId: string, aggregate: AggregateRef): string {
  // One-shot `hash`: the same digest as a `createHash` object, without building one. The
  // first 16 bytes as hex (the digest's first 32 hex digits, as ever): written from the
  // bytes, a flat 32-character string; `.slice(0, 32)` of the hex was a V8 sliced string that
  // kept its 64-character parent alive wherever the id was kept (an aggregate's recent
  // commits in every cached aggregate: ~80 bytes more per id, docs/benchmarks.md).
  return hash("sha256", `${causationId}|${aggregate.type}|${aggregate.id}`, "buffer").toString("hex", 0, 16);
}

/**
 * One publisher per connection, shared by every store on it: appends leave on its one
 * inbox subscription (see {@link ackedPublisher}) instead of one nats.js request each.
 */
const publishers = new WeakMap<NatsConnection, AckedPublisher>();

function publisherFor(nc: NatsConnection, timeoutMs: number): AckedPublisher {
  let p = publishers.get(nc);
  if (!p) {
    // lingerMs 0: an append waits for no others — an aggregate's next append waits on this
    // one's ack, so a millisecond's linger would be a millisecond on every command. The
    // appends of one turn of the event loop (every ack of a socket read) still leave in one write.
    p = ackedPublisher(nc, { timeoutMs, lingerMs: 0 });
    publishers.set(nc, p);
    // A closed connection answers nothing more: what still waits for an ack is refused
    // now (PublishNotAcked, "stopped") rather than after the timeout.
    const done = () => {
      p?.stop();
      if (publishers.get(nc) === p) publishers.delete(nc);
    };
    nc.closed().then(done, done);
  }
  return p;
}

/**
 * A publish JetStream stores and acknowledges, as the event store's appends and the command
 * bus's sends make it: through the connection's pipelined publisher when the client shows
 * its connection (no nats.js request per publish, its timer and `Error`; the turn's sends in
 * one socket write), else `js.publish`. `headers` without their undefined values.
 */
export function publishStored(
  to: { js: JetStreamClient; nc: NatsConnection | undefined; timeoutMs: number },
  subject: string,
  data: string,
  o: { msgID: string; expectedLastSubjectSequence?: number; headers: Record<string, string | undefined> },
): Promise<PublishAck> {
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(o.headers)) if (v !== undefined) headers[k] = v;
  if (to.nc) return publisherFor(to.nc, to.timeoutMs).publishAcked(subject, data, { ...o, headers });
  const h = natsHeaders();
  for (const [k, v] of Object.entries(headers)) h.set(k, v);
  return to.js.publish(subject, data, {
    msgID: o.msgID,
    ...(o.expectedLastSubjectSequence !== undefined
      ? { expect: { lastSubjectSequence: o.expectedLastSubjectSequence } }
      : {}),
    headers: h,
  });
}

/** The connection under a nats.js JetStream client (its `nc`, public on the implementation though not on the interface). */
export function connectionOf(js: JetStreamClient): NatsConnection | undefined {
  const nc = (js as unknown as { nc?: unknown }).nc;
  return typeof nc === "object" && nc !== null && "publish" in nc && "subscribe" in nc && "closed" in nc
    ? (nc as NatsConnection)
    : undefined;
}

/**
 * The stream sequence in a `STREAM.MSG.GET` answer; 0 when the subject holds no message.
 * @throws JetStreamApiError for any other error the API answered with
 */
/** How a stored-message answer begins, up to its sequence (the server writes `subject`, then `seq`). */
const STORED_MESSAGE_HEAD =
  /^\{"type":"io\.nats\.jetstream\.api\.v1\.stream_msg_get_response","message":\{"subject":"([^"\\]*)","seq":(\d+)[,}]/;

/**
 * The sequence of a stored-message answer read from its first bytes, or undefined when
 * they are not the usual head for `subject` (an error, another layout: parse it all).
 * The answer carries the whole commit, base64 in JSON — up to 1 MB for a group commit of
 * a large install — and the sequence is all a look at the subject needs: decoding and
 * parsing the rest was most of what each look cost (bench/install's profile at 500 nodes).
 *
 * @example sequenceFromHead(utf8('{"type":"io.nats.jetstream.api.v1.stream_msg_get_response","message":{"subject":"evt.install.c1","seq":42,"data":"…'), "evt.install.c1") // → 42
 */
export function sequenceFromHead(bytes: Uint8Array, subject: string): number | undefined {
  const head = new TextDecoder().decode(bytes.subarray(0, 160 + subject.length));
  const m = STORED_MESSAGE_HEAD.exec(head);
  if (!m || m[1] !== subject) return undefined;
  const seq = Number(m[2]);
  return Number.isSafeInteger(seq) && seq > 0 ? seq : undefined;
}

function lastSequenceOf(answer: unknown, subject: string): number {
  if (typeof answer === "object" && answer !== null) {
    if ("error" in answer && typeof answer.error === "object" && answer.error !== null) {
      const e = answer.error as { code: number; err_code: number; description: string };
      if (e.err_code === JetStreamApiCodes.NoMessageFound) return 0;
      throw new JetStreamApiError(e);
    }
    if ("message" in answer && typeof answer.message === "object" && answer.message !== null) {
      const seq = (answer.message as { seq?: unknown }).seq;
      if (typeof seq === "number") return seq;
    }
  }
  throw new Error(`not a stored-message answer for ${subject}`);
}

/**
 * The event store on JetStream: one subject per aggregate (`evt.<type>.<id>`), one
 * message per commit, optimistic concurrency on the subject's last sequence.
 */
export class EventStore<E extends Msg = Msg> {
  readonly #js: JetStreamClient;
  readonly #jsm: JetStreamManager;
  readonly #catalogue: Catalogue<E>;
  readonly #stream: string;
  /** Where appends go: the connection's pipelined publisher, or `js.publish` when the client hides its connection. */
  readonly #nc: NatsConnection | undefined;
  readonly #timeoutMs: number;
  /** The JetStream API subject of a stored-message get on the stream. */
  readonly #msgGet: string;

  readonly #onUnreadable: (report: UnreadableCommit) => void;
  /** Sequences already reported unreadable by this store: each is reported once. */
  readonly #reported = new Set<number>();

  constructor(deps: {
    js: JetStreamClient;
    jsm: JetStreamManager;
    catalogue: Catalogue<E>;
    stream?: string;
    /** The connection under `js` (found on nats.js' client when not given). */
    nc?: NatsConnection;
    /** Told once per sequence about a message on an aggregate's subject that is not a readable commit. */
    onUnreadable?: (report: UnreadableCommit) => void;
  }) {
    this.#js = deps.js;
    this.#jsm = deps.jsm;
    this.#catalogue = deps.catalogue;
    this.#stream = deps.stream ?? Streams.events;
    this.#nc = deps.nc ?? connectionOf(deps.js);
    this.#timeoutMs = deps.js.getOptions().timeout ?? 10_000;
    this.#msgGet = `${deps.js.getOptions().apiPrefix ?? "$JS.API"}.STREAM.MSG.GET.${this.#stream}`;
    this.#onUnreadable = deps.onUnreadable ?? defaultUnreadableReport;
  }

  /**
   * A commit as read from the log, or undefined for a message that is not one (garbage
   * published straight onto an event subject). Such a message is skipped by every load
   * — it can never block the aggregate — and reported once; the reactors dead-letter it.
   */
  #read(
    sequence: number,
    subject: string,
    data: Uint8Array,
  ): ReturnType<Catalogue["parseCommit"]> | undefined {
    try {
      return this.#catalogue.parseCommit(JSON.parse(new TextDecoder().decode(data)), { subject });
    } catch (err) {
      if (!this.#reported.has(sequence)) {
        this.#reported.add(sequence);
        if (this.#reported.size > 10_000) this.#reported.delete(this.#reported.values().next().value!);
        this.#onUnreadable({ sequence, subject, reason: describeError(err) });
      }
      return undefined;
    }
  }

  /**
   * Stream sequence of the aggregate's last commit; 0 when it has none. Always from a look
   * sent after this call, but shared: while a look at the subject is under way, the calls
   * that come meanwhile wait for it to end and share the one look sent then (two in flight
   * per subject at most). The answer carries the subject's whole last commit (up to ~300 KB
   * for a large cluster's group commits), and a commit's reactions look side by side: node-ops'
   * classification check looked at a 500-node cluster ~550 times during its install, ~120 MB
   * of answers through one connection (docs/installer.md, "The stall and the looks at the log").
   */
  lastSequence(aggregate: AggregateRef): Promise<number> {
    let subject: string;
    try {
      subject = eventSubject(aggregate);
    } catch (err) {
      // A refused id is a refused promise, as from any async method (never a throw).
      return Promise.reject(err);
    }
    const under = this.#looks.get(subject);
    if (!under) return this.#look(subject);
    // The look under way was sent before this call: it may not see a commit made just
    // before it. The next one, sent once it ends, does; everyone who asks meanwhile shares it.
    under.next ??= under.sent.then(noop, noop).then(() => this.#look(subject));
    return under.next;
  }

  /** The looks at each subject's last sequence: the one sent, and the one queued after it. */
  readonly #looks = new Map<string, { sent: Promise<number>; next: Promise<number> | undefined }>();

  #look(subject: string): Promise<number> {
    const sent = this.#lastSequenceNow(subject);
    const look = { sent, next: undefined };
    this.#looks.set(subject, look);
    const done = () => {
      if (this.#looks.get(subject) === look) this.#looks.delete(subject);
    };
    sent.then(done, done);
    return sent;
  }

  async #lastSequenceNow(last_by_subj: string): Promise<number> {
    if (this.#nc) {
      // The same API call as `jsm.streams.getMessage`, on the connection's pipelined
      // publisher: it leaves with the turn's other writes, and a subject with no commit
      // yet (every new aggregate) costs no nats.js request and no JetStreamApiError.
      const bytes = await publisherFor(this.#nc, this.#timeoutMs).request(
        this.#msgGet,
        JSON.stringify({ last_by_subj }),
      );
      return (
        sequenceFromHead(bytes, last_by_subj) ??
        lastSequenceOf(JSON.parse(new TextDecoder().decode(bytes)), last_by_subj)
      );
    }
    try {
      const m = await this.#jsm.streams.getMessage(this.#stream, { last_by_subj });
      return m?.seq ?? 0;
    } catch (err) {
      if (err instanceof JetStreamApiError && err.code === JetStreamApiCodes.NoMessageFound) return 0;
      throw err;
    }
  }

  /**
   * The id of the commit at this stream sequence if it is one of this aggregate's commits,
   * else undefined (another subject, gone, or not a readable commit). One direct look: how
   * a snapshot is checked against the log before it is trusted.
   */
  async commitAt(aggregate: AggregateRef, sequence: number): Promise<string | undefined> {
    const subject = eventSubject(aggregate);
    try {
      const m = await this.#jsm.streams.getMessage(this.#stream, { seq: sequence });
      if (!m || m.subject !== subject) return undefined;
      return this.#read(m.seq, subject, m.data)?.commitId;
    } catch (err) {
      if (err instanceof JetStreamApiError && err.code === JetStreamApiCodes.NoMessageFound) return undefined;
      throw err;
    }
  }

  /**
   * Reads an aggregate's commits in order through an ordered consumer filtered on its
   * one subject, optionally only up to a sequence, version or time (point in time).
   * Every event is upcast to today's schema.
   */
  async load(aggregate: AggregateRef, opts: LoadOptions = {}): Promise<AggregateHistory<E>> {
    const subject = eventSubject(aggregate);
    const last = opts.lastSequence ?? (await this.lastSequence(aggregate));
    const events: RecordedEvent<E>[] = [];
    const commitIds = new Set<string>();
    let lastCommitId: string | undefined;
    const after = opts.afterSequence ?? 0;
    let lastSequence = Math.min(after, last);
    const end = opts.toSequence !== undefined ? Math.min(opts.toSequence, last) : last;
    if (end > after) {
      // Asked again when a create goes unanswered (a server of the cluster down: see ordered-consumer.ts).
      const consumer = await openOrderedConsumer(this.#js, this.#stream, {
        filter_subjects: subject,
        ...(after > 0
          ? { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: after + 1 }
          : { deliver_policy: DeliverPolicy.All }),
      });
      const messages = await consumer.consume({ max_messages: 256 });
      try {
        reading: for await (const m of messages) {
          if (m.seq > end) break;
          const commit = this.#read(m.seq, subject, m.data);
          if (!commit) {
            // Unreadable: skipped, but it is the subject's last message as far as the
            // next append's expected sequence goes.
            lastSequence = m.seq;
            lastCommitId = undefined;
            if (m.seq >= end) break;
            continue;
          }
          for (const e of commit.events) {
            if (opts.toVersion !== undefined && e.position > opts.toVersion) break reading;
            if (opts.toTime !== undefined && Date.parse(e.time) > opts.toTime.getTime()) break reading;
            events.push({ ...e, sequence: m.seq, commitId: commit.commitId } as RecordedEvent<E>);
          }
          commitIds.add(commit.commitId);
          lastCommitId = commit.commitId;
          lastSequence = m.seq;
          if (m.seq >= end) break;
        }
      } finally {
        messages.stop();
        await consumer.delete().catch(() => {});
      }
    }
    return { aggregate, events, lastSequence, version: events.length, commitIds, lastCommitId };
  }

  /**
   * Appends one commit atomically, if the aggregate's last commit is still
   * `expectedSequence` (0: the aggregate must be new).
   * @throws ConcurrencyConflictError when another writer appended first.
   */
  async append(commit: NewCommit, expectedSequence: number): Promise<AppendResult> {
    const subject = eventSubject(commit.aggregate);
    const commitId = commitIdFor(commit.causationId, commit.aggregate);
    const events = commit.events;
    const types = events.length === 1 ? events[0]!.type : events.map((e) => e.type).join(",");
    const { span, traceparent } = startMessagingSpan({
      operation: "publish",
      template: subjectTemplate(subject),
      destination: subject,
      kind: SpanKind.PRODUCER,
      attributes: () => ({
        [SpanAttributes.messageId]: commitId,
        [SpanAttributes.aggregateType]: commit.aggregate.type,
        [SpanAttributes.aggregateId]: commit.aggregate.id,
        [SpanAttributes.eventTypes]: types,
      }),
    });
    try {
      const body: RawCommit = { commitId, aggregate: commit.aggregate, events: events as RawEventEnvelope[] };
      const data = JSON.stringify(body);
      // Its events' data were checked when built: this process's reactors read this
      // exact text back without checking them again.
      if (commit.checked) ownCommits.remember(commitId, data);
      const ack = await publishStored(
        { js: this.#js, nc: this.#nc, timeoutMs: this.#timeoutMs },
        subject,
        data,
        {
          msgID: commitId,
          expectedLastSubjectSequence: expectedSequence,
          headers: { [Headers.eventTypes]: types, [Headers.traceparent]: traceparent },
        },
      );
      if (span.isRecording()) span.setAttribute(SpanAttributes.sequence, ack.seq);
      return { sequence: ack.seq, duplicate: ack.duplicate, commitId };
    } catch (err) {
      recordFailure(span, err);
      if (err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamWrongLastSequence) {
        throw new ConcurrencyConflictError(subject, expectedSequence, { cause: err });
      }
      throw err;
    } finally {
      span.end();
    }
  }
}

function noop(): void {}
