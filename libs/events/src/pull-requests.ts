/**
 * The consumer runner's pulls: JetStream pull requests whose answers all come to one
 * subscription that lives as long as the runner.
 *
 * Why not nats.js's `fetch()`: each fetch subscribes to an inbox of its own and ends, on the
 * client, when two idle heartbeats are missed — with the default heartbeat (half the expiry,
 * the most nats-server 2.9 accepts), at the very moment the server expires the pull. A fetch
 * the client gave up on is unsubscribed while the server may still hold its request: what
 * the server sends it meanwhile (messages already on the wire, or queued behind other traffic
 * of the same connection) reaches no subscription and waits out its ack wait (5 s), and the
 * runner used to wait a second more before pulling again — the ~6 s stalls of
 * docs/benchmarks.md. Here a pull given up for silent is only forgotten: its inbox is the
 * runner's, so anything it still brings is received and handled like any other message.
 */
import type { DeliveryInfo, JetStreamClient, JsMsg } from "@nats-io/jetstream";
import { createInbox, type Msg, type NatsConnection, type Subscription } from "@nats-io/transport-node";
import { connectionOf } from "./event-store.ts";

const NS_PER_MS = 1_000_000;

/** How long a pull stays open on the server when nothing comes. */
export const PULL_EXPIRES_MS = 5_000;
/** The server's idle heartbeat on an open pull: well under half the expiry (see `forgetSilent`). */
export const PULL_HEARTBEAT_MS = 1_000;
/**
 * A pull that brought nothing (no message, heartbeat or status) for this long is forgotten
 * and another one is sent: the server lost it (a restart, a consumer made again). Three
 * heartbeats: a heartbeat late behind a busy connection is no reason to pull twice.
 */
export const PULL_SILENT_MS = 3 * PULL_HEARTBEAT_MS;
/**
 * How long past its expiry a pull is given up, whatever it still hears. nats-server 2.9
 * drops an expired pull without a word (no 408) when a message comes for it before its
 * expiry timer has run — under steady traffic, often. Waiting for two heartbeats past the
 * expiry (as before) left the consumer with no pull on the server for ~2 s: the
 * command-read hiccups (docs/benchmarks.md, "The ~2 s hiccup"); waiting 200 ms (after that)
 * still left a 200 ms hole in the projector's deliveries at one expiry in two at 500
 * commits/s, a hundred commands 100 ms late on average: p99 material (docs/benchmarks.md,
 * "command-read p99 at 500/s", branch `cmdp99`). Forgetting a pull early costs nothing: if
 * the server still holds it for a moment, what it brings comes to the same subscription and
 * is handled (counted against the next pull, which then may end early in
 * our books and be followed by one more: a pull's worth over `maxInHand` at most).
 */
export const PULL_EXPIRED_GRACE_MS = 20;
/** How often the runner looks at its open pull while waiting for it to end. */
export const PULL_CHECK_MS = 250;

/** The connection under a JetStream client ({@link connectionOf}); the runner cannot pull without it. */
export function natsOf(js: JetStreamClient): NatsConnection {
  const nc = connectionOf(js);
  if (!nc) throw new Error("the JetStream client has no connection");
  return nc;
}

/** The JetStream API prefix of a client (default `$JS.API`). */
export function apiPrefixOf(js: JetStreamClient): string {
  return js.getOptions().apiPrefix ?? "$JS.API";
}

interface OpenPull {
  readonly reply: string;
  /** Messages it may still bring. */
  left: number;
  readonly sentAt: number;
  /** The last sign of it: sent, a message while it was the oldest, a heartbeat or a status. */
  lastSign: number;
}

export interface PullRequestsOptions {
  nc: NatsConnection;
  /** `$JS.API.CONSUMER.MSG.NEXT.<stream>.<durable>` */
  subject: string;
  ackTimeoutMs: number;
  onMessage(msg: JsMsg): void;
  /** A pull ended (filled, expired or refused). */
  onEnded(): void;
  /** The server refused a pull (a status other than a heartbeat or an expiry). */
  onRefused(code: number, description: string): void;
}

export class PullRequests {
  readonly #o: PullRequestsOptions;
  readonly #prefix: string;
  readonly #sub: Subscription;
  /** In the order sent: the server fills the oldest first. */
  readonly #open: OpenPull[] = [];
  #n = 0;
  #refusedAt = 0;

  constructor(o: PullRequestsOptions) {
    this.#o = o;
    const inboxPrefix = (o.nc as unknown as { options?: { inboxPrefix?: string } }).options?.inboxPrefix;
    this.#prefix = createInbox(inboxPrefix);
    this.#sub = o.nc.subscribe(`${this.#prefix}.*`, {
      callback: (err, msg) => {
        if (!err) this.#on(msg);
      },
    });
  }

  /** Pulls open on the server, as far as we know. */
  get open(): number {
    return this.#open.length;
  }

  /** Ms until the oldest open pull is past its expiry and given up (Infinity: none open). */
  untilExpired(now: number): number {
    const oldest = this.#open[0];
    return oldest
      ? oldest.sentAt + PULL_EXPIRES_MS + PULL_EXPIRED_GRACE_MS + 1 - now
      : Number.POSITIVE_INFINITY;
  }

  /** Messages the open pulls may still bring. */
  get outstanding(): number {
    let n = 0;
    for (const p of this.#open) n += p.left;
    return n;
  }

  /** Asks for up to `batch` messages (the pull stays open until filled or PULL_EXPIRES_MS). */
  pull(batch: number): void {
    const reply = `${this.#prefix}.${++this.#n}`;
    const now = Date.now();
    this.#open.push({ reply, left: batch, sentAt: now, lastSign: now });
    this.#o.nc.publish(
      this.#o.subject,
      JSON.stringify({
        batch,
        expires: PULL_EXPIRES_MS * NS_PER_MS,
        idle_heartbeat: PULL_HEARTBEAT_MS * NS_PER_MS,
      }),
      { reply },
    );
  }

  /**
   * Forgets the pulls that went silent (PULL_SILENT_MS without a sign) or outlived their
   * expiry: the server lost them or ended them, or their signs are late. Either way what they still bring is received (same subscription).
   */
  forgetSilent(now: number): void {
    for (let i = this.#open.length - 1; i >= 0; i--)
      if (
        now - this.#open[i]!.lastSign > PULL_SILENT_MS ||
        // Past its expiry: over on the server whatever we heard (its end dropped by the
        // server or lost on the way, or signs of a request another server still holds).
        now - this.#open[i]!.sentAt > PULL_EXPIRES_MS + PULL_EXPIRED_GRACE_MS
      ) {
        this.#open.splice(i, 1);
        this.#o.onEnded();
      }
  }

  /** True when the server refused a pull in the last second (not to ask again at once). */
  refusedRecently(now: number): boolean {
    return now - this.#refusedAt < 1_000;
  }

  /** Unsubscribes: the server drops our open pulls (no interest), nothing more comes. */
  close(): void {
    this.#open.length = 0;
    this.#sub.unsubscribe();
  }

  #on(msg: Msg): void {
    const now = Date.now();
    if (msg.subject.startsWith(this.#prefix)) {
      // A status for one pull: a heartbeat, its expiry, or a refusal.
      const i = this.#open.findIndex((p) => p.reply === msg.subject);
      const code = msg.headers?.code ?? 0;
      if (code === 100) {
        if (i >= 0) this.#open[i]!.lastSign = now;
        return;
      }
      if (i >= 0) this.#open.splice(i, 1);
      if (code !== 408) {
        this.#refusedAt = now;
        this.#o.onRefused(code, msg.headers?.description ?? "");
      }
      this.#o.onEnded();
      return;
    }
    // A message: from the oldest open pull (the server fills them in order); from one we had
    // forgotten if none is open — received all the same.
    const p = this.#open[0];
    if (p) {
      p.lastSign = now;
      if (--p.left <= 0) {
        this.#open.shift();
        this.#o.onEnded();
      }
    }
    this.#o.onMessage(new PulledMsg(this.#o.nc, msg, this.#o.ackTimeoutMs));
  }
}

const ACK = Uint8Array.of(43, 65, 67, 75); // +ACK
const NAK = Uint8Array.of(45, 78, 65, 75); // -NAK
const WPI = Uint8Array.of(43, 87, 80, 73); // +WPI
const TERM = Uint8Array.of(43, 84, 69, 82, 77); // +TERM

/**
 * A pulled message with JetStream's settlements, as nats.js's own (which its package does
 * not export): the same payloads on the message's ack subject.
 */
class PulledMsg implements JsMsg {
  readonly #nc: NatsConnection;
  readonly #msg: Msg;
  readonly #timeoutMs: number;
  #info: DeliveryInfo | undefined;
  #settled = false;

  constructor(nc: NatsConnection, msg: Msg, timeoutMs: number) {
    this.#nc = nc;
    this.#msg = msg;
    this.#timeoutMs = timeoutMs;
  }
  get subject() {
    return this.#msg.subject;
  }
  get sid() {
    return this.#msg.sid;
  }
  get data() {
    return this.#msg.data;
  }
  get headers() {
    return this.#msg.headers;
  }
  get reply() {
    return this.#msg.reply ?? "";
  }
  get info(): DeliveryInfo {
    this.#info ??= parseDeliveryInfo(this.reply);
    return this.#info;
  }
  get redelivered() {
    return this.info.deliveryCount > 1;
  }
  get seq() {
    return this.info.streamSequence;
  }
  get timestampNanos() {
    return BigInt(ackTokens(this.reply)[9]!);
  }
  get time() {
    return new Date(Number(this.timestampNanos / 1_000_000n));
  }
  get timestamp() {
    return this.time.toISOString();
  }
  #settle(payload: Uint8Array, final = true) {
    if (this.#settled) return;
    this.#settled = final;
    this.#msg.respond(payload);
  }
  ack() {
    this.#settle(ACK);
  }
  nak(millis?: number) {
    this.#settle(
      millis ? new TextEncoder().encode(`-NAK ${JSON.stringify({ delay: millis * NS_PER_MS })}`) : NAK,
    );
  }
  working() {
    this.#settle(WPI, false);
  }
  term(reason = "") {
    this.#settle(reason ? new TextEncoder().encode(`+TERM ${reason}`) : TERM);
  }
  /** Acks and waits for the server's confirmation. */
  async ackAck(opts?: { timeout?: number }): Promise<boolean> {
    if (this.#settled || !this.#msg.reply) return false;
    this.#settled = true;
    await this.#nc.request(this.#msg.reply, ACK, { timeout: opts?.timeout ?? this.#timeoutMs });
    return true;
  }
  /** Not used by the runner (it pulls for itself). */
  next(): void {
    throw new Error("next is not supported on pulled messages");
  }
  json<T>(): T {
    return this.#msg.json<T>();
  }
  string(): string {
    return this.#msg.string();
  }
}

function ackTokens(reply: string): string[] {
  const tokens = reply.split(".");
  if (tokens.length === 9) tokens.splice(2, 0, "_", "");
  if (tokens.length < 11 || tokens[0] !== "$JS" || tokens[1] !== "ACK")
    throw new Error("unable to parse delivery info - not a jetstream message");
  return tokens;
}

/** `$JS.ACK.<domain>.<account>.<stream>.<consumer>.<delivered>.<sseq>.<dseq>.<ts>.<pending>[.…]` */
function parseDeliveryInfo(reply: string): DeliveryInfo {
  const t = ackTokens(reply);
  const deliveryCount = Number.parseInt(t[6]!, 10);
  return {
    domain: t[2] === "_" ? "" : t[2]!,
    account_hash: t[3],
    stream: t[4]!,
    consumer: t[5]!,
    deliveryCount,
    redelivered: deliveryCount > 1,
    streamSequence: Number.parseInt(t[7]!, 10),
    deliverySequence: Number.parseInt(t[8]!, 10),
    timestampNanos: Number.parseInt(t[9]!, 10),
    pending: Number.parseInt(t[10]!, 10),
  };
}
