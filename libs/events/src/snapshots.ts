import { type KV, Kvm } from "@nats-io/kv";
import { z } from "zod";
import type { AggregateRef } from "./envelope.ts";
import { Buckets } from "./subjects.ts";

/**
 * Commit ids an aggregate remembers for idempotency beyond JetStream's dedupe window,
 * kept in chunks of {@link COMMIT_CHUNK}: when the chunks hold more than
 * {@link COMMIT_CHUNKS}, the oldest chunk goes. So a cached aggregate, and its snapshot,
 * stay small however long the history: the last 8,192 to 9,216 commits of an aggregate
 * are remembered (8 sealed chunks and the open one) — a command redelivered after more commits than that on its own
 * aggregate would be decided again (commands are redelivered within seconds to minutes;
 * docs/architecture.md, "Snapshots and looks").
 */
export const COMMIT_CHUNK = 1024;
export const COMMIT_CHUNKS = 9;
/** Ids the open chunk holds as an array before it becomes a Set (a scan of 16 is as quick as a hash). */
const SMALL_OPEN = 16;
const EMPTY: readonly string[] = Object.freeze([]);

/**
 * Bounded, chunked set of commit ids (newest chunk last). Mutable: owned by one cached
 * aggregate. Only the open (newest) chunk is a Set; full chunks are sealed as one string
 * (` id id … `), searched with `includes`: a snapshot's chunks are then read as a few
 * strings — no Set of 9,000 ids to build on every cold load (bench/growth).
 */
export class RecentCommits {
  /** Full chunks, oldest first, each ` id1 id2 … ` (ids hold no spaces). */
  /** Undefined until the first chunk is sealed: most aggregates never fill one. */
  #sealed: { text: string; count: number }[] | undefined;
  /**
   * The open chunk: an array while it holds at most {@link SMALL_OPEN} ids (most aggregates
   * never hold more: a session, a workload, a cluster have a handful of commits), a Set past
   * that. The array is copied at each add (`concat`), so it is exactly its ids long (`push`
   * or a spread would give it room for 17): with the sealed list not made until needed, a
   * RecentCommits of three ids is ~130 bytes where it was ~230 (a Set and an empty array;
   * cached-aggregate-memory.unit.spec), for each cached aggregate, tens of thousands of them
   * in a service at 20,000 sessions.
   */
  #open: readonly string[] | Set<string> = EMPTY;

  constructor(chunks: readonly (readonly string[])[] = []) {
    for (const c of chunks) for (const id of c) this.add(id);
  }

  has(commitId: string): boolean {
    if (this.#openHas(commitId)) return true;
    if (this.#sealed === undefined) return false;
    const needle = ` ${commitId} `;
    for (const c of this.#sealed) if (c.text.includes(needle)) return true;
    return false;
  }

  #openHas(commitId: string): boolean {
    const open = this.#open;
    return open instanceof Set ? open.has(commitId) : open.includes(commitId);
  }

  #openSize(): number {
    const open = this.#open;
    return open instanceof Set ? open.size : open.length;
  }

  add(commitId: string): this {
    if (this.#openHas(commitId)) return this;
    if (this.#openSize() >= COMMIT_CHUNK) {
      this.#sealed ??= [];
      this.#sealed.push({ text: ` ${[...this.#open].join(" ")} `, count: this.#openSize() });
      this.#open = EMPTY;
      if (this.#sealed.length >= COMMIT_CHUNKS) this.#sealed.shift();
    }
    const open = this.#open;
    if (open instanceof Set) open.add(commitId);
    else if (open.length < SMALL_OPEN) this.#open = open.concat(commitId);
    else this.#open = new Set([...open, commitId]);
    return this;
  }

  get size(): number {
    return (this.#sealed ?? []).reduce((n, c) => n + c.count, this.#openSize());
  }

  /** The chunks (oldest first), each one string of ids joined by spaces: what a snapshot stores. */
  toJSON(): string[] {
    return [...(this.#sealed ?? []).map((c) => c.text.trim()), [...this.#open].join(" ")];
  }

  /** The chunks as {@link toJSON} wrote them: sealed ones kept as text, the last one opened. */
  static fromJSON(chunks: readonly string[]): RecentCommits {
    const r = new RecentCommits();
    const last = chunks.length - 1;
    chunks.forEach((c, i) => {
      if (c === "") return;
      if (i < last) {
        r.#sealed ??= [];
        const sealed = r.#sealed;
        sealed.push({ text: ` ${c} `, count: words(c) });
        if (sealed.length >= COMMIT_CHUNKS) sealed.shift();
      } else for (const id of c.split(" ")) r.add(id);
    });
    return r;
  }
}

/** Ids in a chunk's text: its spaces plus one (a scan, no array of strings made). */
function words(text: string): number {
  let n = 1;
  for (let i = text.indexOf(" "); i !== -1; i = text.indexOf(" ", i + 1)) n++;
  return n;
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
