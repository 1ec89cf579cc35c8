/**
 * JetStream publishes with their acks pipelined: every publish carries a reply subject
 * under one private inbox, one subscription on that inbox settles each publish by its
 * token, and one timer expires the ones never answered. On the wire it is `js.publish`;
 * what it leaves out is what nats.js spends per request around it — a timer each, and an
 * `Error` (a captured stack) built as every request settles, failed or not
 * (nats-core's `RequestOne.cancel`) — which on the heartbeat path was a tenth of a busy
 * process's time.
 *
 * Publishes asked for in one turn of the event loop leave together (turn-writes.ts: after
 * every I/O callback of the turn, e.g. every HTTP request read in it, with the turn's acks
 * and other deferred sends): one socket write for all of them. `request` sends anything
 * that is answered on a reply subject (a JetStream API call) the same way. nats.js flushes at the end of each microtask checkpoint, which on a server
 * is once per request: a write system call per heartbeat was a third of the API's time.
 * Under a steady stream — requests arriving one per turn, as at 5,000 req/s — that alone
 * batches nothing, so a publish made less than `lingerMs` (1 ms) after the last write
 * waits out the rest of it, with whatever else comes meanwhile (Nagle's idea, bounded):
 * at most 1 ms more for one socket write per millisecond instead of one per publish.
 */
import { JetStreamApiError } from "@nats-io/jetstream";
import {
  createInbox,
  headers,
  type Msg,
  type MsgHdrs,
  type NatsConnection,
  PermissionViolationError,
} from "@nats-io/transport-node";
import { Headers } from "./subjects.ts";
import { atTurnEnd } from "./turn-writes.ts";

/** Why a publish has no ack: nothing stores its subject, nobody answered in time, or the publisher stopped. */
export class PublishNotAcked extends Error {
  override readonly name = "PublishNotAcked";
  readonly reason: "no-stream" | "timeout" | "stopped";
  constructor(subject: string, reason: "no-stream" | "timeout" | "stopped") {
    super(
      reason === "no-stream"
        ? `no stream stores ${subject}`
        : reason === "timeout"
          ? `no ack for ${subject} in time`
          : `the publisher stopped before ${subject} was acked`,
    );
    this.reason = reason;
  }
}

/** What JetStream answered a stored publish with. */
export interface PublishAck {
  readonly seq: number;
  /** The `Nats-Msg-Id` was seen within the stream's dedupe window: nothing was stored, `seq` is the first copy's. */
  readonly duplicate: boolean;
}

export interface PublishOptions {
  /** `Nats-Expected-Last-Subject-Sequence`: stored only if the subject's last message is still this one (0: none). */
  readonly expectedLastSubjectSequence?: number | undefined;
  /** `Nats-Msg-Id`: a second publish with it within the dedupe window is acked as a duplicate, not stored. */
  readonly msgID?: string | undefined;
  /**
   * Headers of the message's own (the `Nats-*` ones above are added to them). A plain
   * record is written straight into the message's header block, with none of the
   * bookkeeping of a `MsgHdrs` (a few microseconds a publish: bench/event-store).
   */
  readonly headers?: MsgHdrs | Readonly<Record<string, string>> | undefined;
}

export interface AckedPublisher {
  /**
   * Publishes and resolves with the stored message's stream sequence. Rejects with
   * `JetStreamApiError` when JetStream refused it (e.g. code 10071, wrong last sequence,
   * for `expectedLastSubjectSequence`), or {@link PublishNotAcked}.
   */
  publish(subject: string, data: string, o?: PublishOptions): Promise<number>;
  /** {@link publish}, resolving with the whole ack (whether it was a duplicate). */
  publishAcked(subject: string, data: string, o?: PublishOptions): Promise<PublishAck>;
  /**
   * A request on the same inbox (e.g. a JetStream API call): resolves with the answer's
   * payload, as it came. Rejects with {@link PublishNotAcked} ("no-stream": nobody listens
   * on the subject; "timeout"; "stopped"). Leaves with the turn's other writes, and builds
   * none of what a nats.js request does per call (a timer, an `Error` with its stack).
   */
  request(subject: string, data: string): Promise<Uint8Array>;
  stop(): void;
}

interface Pending {
  readonly subject: string;
  readonly deadline: number;
  /** Settles it with its answer (an ack, or a request's reply). */
  readonly answer: (m: Msg) => void;
  readonly reject: (err: Error) => void;
}

const decoder = new TextDecoder();
const encoder = new TextEncoder();

/**
 * A header block written out already. nats.js' `publish` asks a message's headers for
 * nothing but `encode()` (nats-core 3.x `ProtocolHandler.publish`); the acked-publisher
 * tests read every kind of header back from the stream, so a nats.js that asked for more
 * would fail them, not the log.
 */
class HeaderBlock {
  readonly #bytes: Uint8Array;
  constructor(bytes: Uint8Array) {
    this.#bytes = bytes;
  }
  encode(): Uint8Array {
    return this.#bytes;
  }
}

/** An RFC 9110 token: what a header name may be. */
const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const LINE_BREAK = /[\r\n]/;

function headerLine(name: string, value: string): string {
  if (!HEADER_NAME.test(name)) throw new Error(`${JSON.stringify(name)} is not a header name`);
  if (LINE_BREAK.test(value)) throw new Error(`the ${name} header's value holds a line break`);
  return `\r\n${name}: ${value}`;
}

const isMsgHdrs = (h: MsgHdrs | Readonly<Record<string, string>>): h is MsgHdrs =>
  typeof (h as { encode?: unknown }).encode === "function";

/** The headers a publish goes with, the `Nats-*` ones its options ask for included. */
function headersOf(o: PublishOptions | undefined): MsgHdrs | undefined {
  if (!o) return undefined;
  const given = o.headers;
  const expected = o.expectedLastSubjectSequence;
  if (given === undefined || isMsgHdrs(given)) {
    let h = given;
    if (expected !== undefined) {
      h ??= headers();
      h.set(Headers.expectedLastSubjectSequence, String(expected));
    }
    if (o.msgID) {
      h ??= headers();
      h.set(Headers.msgId, o.msgID);
    }
    return h;
  }
  let block = "NATS/1.0";
  for (const name in given) block += headerLine(name, given[name]!);
  if (expected !== undefined) block += headerLine(Headers.expectedLastSubjectSequence, String(expected));
  if (o.msgID) block += headerLine(Headers.msgId, o.msgID);
  return new HeaderBlock(encoder.encode(`${block}\r\n\r\n`)) as unknown as MsgHdrs;
}

const isApiError = (e: unknown): e is { code: number; err_code: number; description: string } =>
  typeof e === "object" &&
  e !== null &&
  "code" in e &&
  typeof e.code === "number" &&
  "err_code" in e &&
  typeof e.err_code === "number" &&
  "description" in e &&
  typeof e.description === "string";

/** What one acked publisher waits for now: see {@link publisherSnapshots}. */
export interface PublisherSnapshot {
  readonly timeoutMs: number;
  /** Sent (or to be sent) and not answered yet, per subject: how many, and the oldest's age in ms. */
  readonly waiting: Record<string, { count: number; oldestMs: number }>;
  readonly queued: number;
}

const publishers = new Set<() => PublisherSnapshot>();

/** What every acked publisher of this process waits for now (a diagnostic, as `consumerSnapshots`). */
export function publisherSnapshots(): PublisherSnapshot[] {
  return [...publishers].map((f) => f());
}

export function ackedPublisher(
  nc: NatsConnection,
  o: {
    timeoutMs?: number;
    /** How long a publish may wait for others after a write went out (default 1 ms; 0: never). */
    lingerMs?: number;
  } = {},
): AckedPublisher {
  const timeoutMs = o.timeoutMs ?? 2_000;
  const lingerMs = o.lingerMs ?? 1;
  // Under the connection's own inbox prefix when it has one: where its user may subscribe.
  const inbox = createInbox((nc as { options?: { inboxPrefix?: string } }).options?.inboxPrefix);
  // In publish order, hence in deadline order: the sweep stops at the first one not due.
  const pending = new Map<string, Pending>();
  let next = 0;

  const sub = nc.subscribe(`${inbox}.*`, {
    callback: (err, m: Msg) => {
      if (err) return;
      const token = m.subject.slice(inbox.length + 1);
      const p = pending.get(token);
      if (!p) return;
      pending.delete(token);
      // No responders: no stream listens on the subject.
      if (m.data.length === 0 && m.headers?.code === 503)
        return p.reject(new PublishNotAcked(p.subject, "no-stream"));
      p.answer(m);
    },
  });
  /** Settles a publish by its JetStream ack. */
  const acked =
    (subject: string, resolve: (ack: PublishAck) => void, reject: (err: Error) => void) => (m: Msg) => {
      try {
        const ack: unknown = JSON.parse(decoder.decode(m.data));
        if (typeof ack === "object" && ack !== null) {
          if ("error" in ack && isApiError(ack.error)) return reject(new JetStreamApiError(ack.error));
          if ("seq" in ack && typeof ack.seq === "number")
            return resolve({ seq: ack.seq, duplicate: "duplicate" in ack && ack.duplicate === true });
        }
        reject(new Error(`not a JetStream ack for ${subject}`));
      } catch (e) {
        reject(e instanceof Error ? e : new Error(String(e)));
      }
    };
  // A publish the server refuses (its user may not publish there) gets no answer on the
  // inbox: the server says so once, on the connection, naming the subject. Its oldest
  // publish to that subject fails with that error at once, as `js.publish` would, rather
  // than timing out as if nobody had answered.
  let stopped = false;
  void (async () => {
    for await (const s of nc.status()) {
      if (stopped) return;
      const err = s.type === "error" ? s.error : undefined;
      if (!(err instanceof PermissionViolationError) || err.operation !== "publish") continue;
      for (const [token, p] of pending)
        if (p.subject === err.subject) {
          pending.delete(token);
          p.reject(err);
          break;
        }
    }
  })().catch(() => {});
  const sweep = setInterval(
    () => {
      const now = performance.now();
      for (const [token, p] of pending) {
        if (p.deadline > now) break;
        pending.delete(token);
        p.reject(new PublishNotAcked(p.subject, "timeout"));
      }
    },
    Math.max(10, timeoutMs / 4),
  );
  sweep.unref();

  // What is to go out at the end of this turn of the event loop — or, when the last write
  // went out less than `lingerMs` ago (a steady stream of publishes, one per turn), at the
  // end of that: a socket write costs tens of microseconds here, a publish a few.
  const outbox: { token: string; subject: string; data: string; o: PublishOptions | undefined }[] = [];
  let flushing: { cancel(): void } | undefined;
  let lastFlush = Number.NEGATIVE_INFINITY;
  const schedule = () => {
    const wait = lastFlush + lingerMs - performance.now();
    if (wait <= 0) {
      // With every other send of the turn (acks included): one socket write (turn-writes.ts).
      let cancelled = false;
      atTurnEnd(() => {
        if (!cancelled) flush();
      });
      flushing = { cancel: () => (cancelled = true) };
    } else {
      const t = setTimeout(flush, wait);
      flushing = { cancel: () => clearTimeout(t) };
    }
  };
  const flush = () => {
    flushing = undefined;
    lastFlush = performance.now();
    for (const m of outbox.splice(0)) {
      try {
        const h = headersOf(m.o);
        nc.publish(m.subject, m.data, { reply: `${inbox}.${m.token}`, ...(h ? { headers: h } : {}) });
      } catch (err) {
        const p = pending.get(m.token);
        pending.delete(m.token);
        p?.reject(err instanceof Error ? err : new Error(String(err)));
      }
    }
  };

  const enqueue = (
    subject: string,
    data: string,
    o: PublishOptions | undefined,
    answer: (m: Msg) => void,
    reject: (err: Error) => void,
  ) => {
    const token = (next++).toString(36);
    pending.set(token, { subject, deadline: performance.now() + timeoutMs, answer, reject });
    outbox.push({ token, subject, data, o });
    if (!flushing) schedule();
  };

  const snapshot = (): PublisherSnapshot => {
    const now = performance.now();
    const waiting: Record<string, { count: number; oldestMs: number }> = {};
    for (const p of pending.values()) {
      const w = waiting[p.subject] ?? { count: 0, oldestMs: 0 };
      waiting[p.subject] = w;
      w.count++;
      w.oldestMs = Math.max(w.oldestMs, Math.round(now - (p.deadline - timeoutMs)));
    }
    return { timeoutMs, waiting, queued: outbox.length };
  };
  publishers.add(snapshot);

  return {
    publish(subject, data, o) {
      return new Promise<number>((resolve, reject) =>
        enqueue(
          subject,
          data,
          o,
          acked(subject, (a) => resolve(a.seq), reject),
          reject,
        ),
      );
    },
    publishAcked(subject, data, o) {
      return new Promise<PublishAck>((resolve, reject) =>
        enqueue(subject, data, o, acked(subject, resolve, reject), reject),
      );
    },
    request(subject, data) {
      return new Promise<Uint8Array>((resolve, reject) =>
        enqueue(subject, data, undefined, (m) => resolve(m.data), reject),
      );
    },
    stop() {
      publishers.delete(snapshot);
      stopped = true;
      flushing?.cancel();
      flushing = undefined;
      outbox.length = 0;
      clearInterval(sweep);
      sub.unsubscribe();
      for (const p of pending.values()) p.reject(new PublishNotAcked(p.subject, "stopped"));
      pending.clear();
    },
  };
}
