/**
 * The simulated SQS queues of every region: standard queues (not FIFO), messages with a
 * visibility timeout measured on the sim clock, receipt handles. Pure state: the wire
 * (`index.ts`) turns requests into these calls and errors into AWS's words.
 */
import { createHash } from "node:crypto";

/** SQS's default visibility timeout (seconds) and its limits. */
export const DEFAULT_VISIBILITY_TIMEOUT = 30;
export const MAX_VISIBILITY_TIMEOUT = 43_200;

export interface QueueAttributes {
  VisibilityTimeout: number;
  ReceiveMessageWaitTimeSeconds: number;
  MessageRetentionPeriod: number;
}

export interface StoredMessage {
  readonly id: string;
  readonly body: string;
  readonly md5: string;
  readonly sentAt: number;
  /** Sim time (epoch ms) from which the message can be received again. */
  visibleAt: number;
  receiveCount: number;
  firstReceivedAt: number | undefined;
  /** The receipt handles issued for this message (any of them deletes it). */
  readonly handles: Set<string>;
}

export interface Queue {
  readonly name: string;
  readonly region: string;
  readonly createdAt: number;
  readonly attributes: QueueAttributes;
  /** In the order they were sent. */
  messages: StoredMessage[];
}

/** One region's queues, and every receipt handle ever issued (to tell "deleted" from "never valid"). */
interface RegionQueues {
  readonly queues: Map<string, Queue>;
  readonly handles: Map<string, { queue: string; messageId: string }>;
}

export const md5Hex = (s: string) => createHash("md5").update(s, "utf8").digest("hex");

export class SqsWorld {
  readonly #regions = new Map<string, RegionQueues>();
  /** Called when a message is sent: wakes long polls waiting on that queue. */
  readonly #listeners = new Set<(region: string, queue: string) => void>();

  #region(region: string): RegionQueues {
    let r = this.#regions.get(region);
    if (!r) {
      r = { queues: new Map(), handles: new Map() };
      this.#regions.set(region, r);
    }
    return r;
  }

  /** Every region's queues, messages and receipt handles (journal compaction; snapshot.ts encodes it). */
  snapshot(): unknown {
    return this.#regions;
  }

  /** Puts back what `snapshot` took (decoded), replacing everything. */
  restore(s: unknown): void {
    this.#regions.clear();
    for (const [region, r] of s as Map<string, RegionQueues>) this.#regions.set(region, r);
  }

  queue(region: string, name: string): Queue | undefined {
    return this.#regions.get(region)?.queues.get(name);
  }

  queues(region: string): Queue[] {
    return [...(this.#regions.get(region)?.queues.values() ?? [])];
  }

  regionNames(): string[] {
    return [...this.#regions.keys()].sort();
  }

  /**
   * Creates the queue, or returns it when it exists with the same attributes (as SQS:
   * CreateQueue is idempotent). Different attributes: `mismatch` names the first.
   */
  create(
    region: string,
    name: string,
    attributes: Partial<QueueAttributes>,
    now: number,
  ): { queue: Queue; mismatch?: keyof QueueAttributes } {
    const r = this.#region(region);
    const existing = r.queues.get(name);
    if (existing) {
      const mismatch = (Object.keys(attributes) as (keyof QueueAttributes)[]).find(
        (k) => attributes[k] !== existing.attributes[k],
      );
      return mismatch ? { queue: existing, mismatch } : { queue: existing };
    }
    const queue: Queue = {
      name,
      region,
      createdAt: now,
      attributes: {
        VisibilityTimeout: DEFAULT_VISIBILITY_TIMEOUT,
        ReceiveMessageWaitTimeSeconds: 0,
        MessageRetentionPeriod: 345_600,
        ...attributes,
      },
      messages: [],
    };
    r.queues.set(name, queue);
    return { queue };
  }

  send(queue: Queue, id: string, body: string, now: number): StoredMessage {
    const m: StoredMessage = {
      id,
      body,
      md5: md5Hex(body),
      sentAt: now,
      visibleAt: now,
      receiveCount: 0,
      firstReceivedAt: undefined,
      handles: new Set(),
    };
    queue.messages.push(m);
    for (const l of this.#listeners) l(queue.region, queue.name);
    return m;
  }

  /** Whether a receive now would find anything. */
  hasVisible(queue: Queue, now: number): boolean {
    this.#expire(queue, now);
    return queue.messages.some((m) => m.visibleAt <= now);
  }

  /**
   * Up to `max` visible messages, oldest first, each hidden for `visibilitySeconds` and
   * given a fresh receipt handle made by `handle`.
   */
  receive(
    queue: Queue,
    max: number,
    visibilitySeconds: number,
    now: number,
    handle: (m: StoredMessage) => string,
  ): { message: StoredMessage; receiptHandle: string }[] {
    this.#expire(queue, now);
    const out: { message: StoredMessage; receiptHandle: string }[] = [];
    const handles = this.#region(queue.region).handles;
    for (const m of queue.messages) {
      if (out.length >= max) break;
      if (m.visibleAt > now) continue;
      m.visibleAt = now + visibilitySeconds * 1000;
      m.receiveCount++;
      m.firstReceivedAt ??= now;
      const h = handle(m);
      m.handles.add(h);
      handles.set(h, { queue: queue.name, messageId: m.id });
      out.push({ message: m, receiptHandle: h });
    }
    return out;
  }

  /**
   * Deletes the message a receipt handle was issued for. `invalid`: no such handle was
   * ever issued for this queue. A handle of a message already deleted succeeds (as SQS).
   */
  delete(queue: Queue, receiptHandle: string): "deleted" | "invalid" {
    const known = this.#region(queue.region).handles.get(receiptHandle);
    if (!known || known.queue !== queue.name) return "invalid";
    queue.messages = queue.messages.filter((m) => m.id !== known.messageId);
    return "deleted";
  }

  /** Wakes `f` whenever a message is sent to any queue; returns the unsubscribe. */
  onSend(f: (region: string, queue: string) => void): () => void {
    this.#listeners.add(f);
    return () => this.#listeners.delete(f);
  }

  /** Drops messages older than the queue's retention period. */
  #expire(queue: Queue, now: number): void {
    const limit = now - queue.attributes.MessageRetentionPeriod * 1000;
    if (queue.messages.length > 0 && queue.messages[0]!.sentAt < limit)
      queue.messages = queue.messages.filter((m) => m.sentAt >= limit);
  }
}
