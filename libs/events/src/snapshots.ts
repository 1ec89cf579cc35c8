import { type KV, Kvm } from "@nats-io/kv";
import { z } from "zod";
import type { AggregateRef } from "./envelope.ts";
import { Buckets } from "./subjects.ts";

/**
 * Commit ids an aggregate remembers for idempotency beyond JetStream's dedupe window,
 * kept in chunks of {@link COMMIT_CHUNK}: when the chunks hold more than
 * {@link COMMIT_CHUNKS}, the oldest chunk goes. So a cached aggregate, and its snapshot,
 * stay small however long the history: the last 8,192 to 9,216 commits of an aggregate
 * are remembered — a command redelivered after more commits than that on its own
 * aggregate would be decided again (commands are redelivered within seconds to minutes;
 * docs/architecture.md, "Snapshots and looks").
 */
export const COMMIT_CHUNK = 1024;
export const COMMIT_CHUNKS = 9;

/** Bounded, chunked set of commit ids (newest chunk last). Mutable: owned by one cached aggregate. */
export class RecentCommits {
  readonly #chunks: Set<string>[];

  constructor(chunks: readonly (readonly string[])[] = []) {
    this.#chunks = chunks.map((c) => new Set(c));
    if (this.#chunks.length === 0) this.#chunks.push(new Set());
  }

  has(commitId: string): boolean {
    for (const c of this.#chunks) if (c.has(commitId)) return true;
    return false;
  }

  add(commitId: string): this {
    let last = this.#chunks[this.#chunks.length - 1]!;
    if (last.size >= COMMIT_CHUNK) {
      last = new Set();
      this.#chunks.push(last);
      if (this.#chunks.length > COMMIT_CHUNKS) this.#chunks.shift();
    }
    last.add(commitId);
    return this;
  }

  get size(): number {
    return this.#chunks.reduce((n, c) => n + c.size, 0);
  }

  /**
   * The chunks (oldest first), each one string of ids joined by spaces: what a snapshot
   * stores. A few strings parse and validate in a fraction of the time 9,000 would.
   */
  toJSON(): string[] {
    return this.#chunks.map((c) => [...c].join(" "));
  }

  /** The chunks as {@link toJSON} wrote them. */
  static fromJSON(chunks: readonly string[]): RecentCommits {
    return new RecentCommits(chunks.map((c) => (c === "" ? [] : c.split(" "))));
  }
}

/**
 * A snapshot as stored (bucket `cairn_snapshots`, key `<type>.<id>`): the state after the
 * commit at `sequence`, which was `commitId`. `schema` is the decider's snapshot version:
 * a snapshot of another version is never read (the state's shape may have changed).
 */
export const snapshotRecord = z.object({
  schema: z.number().int(),
  aggregate: z.object({ type: z.string(), id: z.string() }),
  sequence: z.number().int().positive(),
  commitId: z.string().min(1),
  version: z.number().int().min(0),
  state: z.unknown(),
  /** Recent commit ids, in chunks: {@link RecentCommits.toJSON}. */
  commits: z.array(z.string()),
  lifecycleTraceparent: z.string().optional(),
});
export type SnapshotRecord = z.infer<typeof snapshotRecord>;

/** The key of an aggregate's snapshot: `cluster.demo-1` (ids are subject-token safe). */
export function snapshotKey(a: { readonly type: string; readonly id: string }): string {
  return `${a.type}.${a.id}`;
}

/**
 * An aggregate's latest snapshot, kept in a JetStream KV bucket (history 1). A snapshot is
 * only ever a shortcut: the handler uses it only after the log confirms the commit it
 * names, and folds from scratch otherwise, so a lost, stale or forged snapshot costs time,
 * never correctness.
 */
export class SnapshotStore {
  readonly #kv: KV;
  constructor(kv: KV) {
    this.#kv = kv;
  }

  /** Opens the bucket ensureStreams created. @throws when it is missing or not readable. */
  static async open(nc: ConstructorParameters<typeof Kvm>[0]): Promise<SnapshotStore> {
    const kv = await new Kvm(nc).open(Buckets.snapshots);
    // Kvm.open is lazy: ask for the bucket's info so a missing bucket is known now.
    await kv.status();
    return new SnapshotStore(kv);
  }

  /** The aggregate's snapshot, or undefined (none, unreadable, or not a snapshot record). */
  async get(a: AggregateRef): Promise<SnapshotRecord | undefined> {
    const e = await this.#kv.get(snapshotKey(a));
    if (e?.operation !== "PUT" || e.length === 0) return undefined;
    try {
      const r = snapshotRecord.safeParse(e.json());
      return r.success && r.data.aggregate.type === a.type && r.data.aggregate.id === a.id
        ? r.data
        : undefined;
    } catch {
      return undefined;
    }
  }

  async put(record: SnapshotRecord): Promise<void> {
    await this.#kv.put(snapshotKey(record.aggregate), JSON.stringify(record));
  }
}
