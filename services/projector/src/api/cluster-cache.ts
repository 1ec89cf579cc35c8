/**
 * The inputs of `GET /clusters/:id`'s live view, held in memory by an API replica and kept
 * fresh by the projecting replica's change announcements (`cairn.projector.changes.<durable>`),
 * so a read on a replica that does not project needs neither Postgres nor a pool checkout.
 *
 * What is held, per cluster: its row, its install row and its sessions counted by state; and
 * once for all: the learnt step durations (the ETA is computed from them and the clock at
 * each read, as before). The view is built from them exactly as from the statement's row.
 *
 * Contracts (docs/projector.md, "The cluster cache"):
 *
 *  1. The cache is at one point of the log, its watermark `W`: it holds exactly what the
 *     read model held when the checkpoint was `W`, for the clusters it holds. It moves only
 *     by whole announced batches (`from`, `to`], and only when `from` is `W`: a batch missed
 *     (a lost core-NATS message, a projecting replica killed between its commit and its
 *     announcement, another projector's first batch) empties it instead.
 *  2. An entry enters only from a read of Postgres whose own checkpoint `P` (same statement,
 *     same snapshot) is `W` or later, with no batch half received and no reset since the read
 *     began. Later (`P` > `W`: the announcements of (`W`, `P`] are still on their way) is as
 *     good: the entry is Postgres's newer state, and when those announcements come, a row
 *     they carry replaces an entry's only if it is not older (`lastSequence`), and what they
 *     cannot order (sessions, durations) they drop, as always. Earlier (`P` < `W`) is not:
 *     what (`P`, `W`] changed in it is already gone by.
 *  3. Nothing is served while a batch is half received, before a first watermark is known,
 *     or without the step durations; a change that may move what an entry holds updates or
 *     drops it (a session's change drops its cluster's counts). The step durations the batch
 *     wrote come with it (`Cairn-Changes-Durations`) and replace the held ones by kind when
 *     not older; from a projector that does not say them, a node's change drops them (a
 *     node that moves may teach one).
 *  4. A replica's announcements come after Postgres committed, so a read here may be one
 *     batch behind Postgres for the time the announcement takes to arrive — as a read racing
 *     the projection always could, and as every view's `sequence` says. Never behind what
 *     this replica's live stream has sent, never going backwards. `?atLeastSequence=` asks
 *     for a view at least that fresh: the cache answers it only when `W` reached it.
 *  5. Announcements that stop (the projecting replica gone, NATS cut): a poll of the
 *     checkpoint (`pollMs`, 500 ms) empties the cache when `W` has not reached, `resetAfterMs`
 *     (2 s) later, a checkpoint Postgres had, and when the clusters table is another one (a
 *     replay's swap). (Not at the first poll behind: on a loaded machine announcements take
 *     hundreds of milliseconds, and emptying then only sends every read to Postgres.)
 *  6. Warm-up (`warm`): when the cache, empty, first knows its watermark (at start, after each
 *     reset), every cluster is read from Postgres and kept through `fill`, under rule 2, so a
 *     cluster's first read here is not the one that goes to Postgres.
 */

import { z } from "zod";
import type { Change } from "../changes.ts";
import { clusterCacheOutcomes } from "../metrics.ts";
import type { ClusterRow } from "../projections/clusters.ts";
import type { InstallRow } from "../projections/installs.ts";
import type { StepDurationRow } from "../projections/step-durations.ts";

/** One announcement's place in its batch: the batch (`from`, `to`], part `part` of `parts` (1-based). */
export interface AnnouncedRange {
  readonly from: number;
  readonly to: number;
  readonly part: number;
  readonly parts: number;
}

const announcedDurations = z.array(
  z.object({
    kind: z.string(),
    samples: z.number(),
    meanMs: z.number(),
    lastMs: z.number(),
    updatedAt: z.string(),
    lastSequence: z.number(),
  }),
);

/**
 * The `Cairn-Changes-Durations` header read back: the step durations a batch wrote.
 * Undefined when absent (a projector that does not announce them) or unreadable: the
 * follower then drops its durations at a node's change, as it did without the header.
 */
export function parseAnnouncedDurations(value: string | undefined): readonly StepDurationRow[] | undefined {
  if (value === undefined) return undefined;
  if (value === "[]") return [];
  try {
    const parsed = announcedDurations.safeParse(JSON.parse(value));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

/** `held` with each of `newer` in place of its kind's row unless the held one is later. */
function mergeDurations(
  held: readonly StepDurationRow[],
  newer: readonly StepDurationRow[],
): readonly StepDurationRow[] {
  if (newer.length === 0) return held;
  const byKind = new Map(held.map((d) => [d.kind, d]));
  for (const d of newer) {
    const h = byKind.get(d.kind);
    if (h === undefined || d.lastSequence >= h.lastSequence) byKind.set(d.kind, d);
  }
  return [...byKind.values()];
}

/** What a cluster's live view is built from. */
export interface ClusterInputs {
  readonly row: ClusterRow;
  readonly install: InstallRow | undefined;
  readonly sessions: readonly { state: string; n: number }[];
  readonly durations: readonly StepDurationRow[];
}

/** What a poll of Postgres saw: the checkpoint, and which table is the clusters table now. */
export interface CheckpointSeen {
  readonly checkpoint: number | undefined;
  readonly table: string | null;
}

export interface ClusterCacheOptions {
  /** Entries at most; the oldest filled is dropped first. Default 20,000. */
  readonly maxEntries?: number;
  /** Reads the checkpoint and the clusters table's identity. */
  readonly poll?: () => Promise<CheckpointSeen>;
  /** Default 500 ms; 0: no poll. */
  readonly pollMs?: number;
  /** How long `W` may stay below a checkpoint Postgres had before the cache empties. Default 2 s. */
  readonly resetAfterMs?: number;
  readonly onReset?: (why: string) => void;
  /**
   * Fills the cache with every cluster (up to `maxEntries`) through `fill`, as reads would
   * one by one: called when the cache, empty, first knows its watermark (at start, and again
   * after each reset), never twice at once. Without it, entries come only from reads.
   */
  readonly warm?: (cache: ClusterCache) => Promise<void>;
}

type Entry = {
  row: ClusterRow;
  install: InstallRow | undefined;
  sessions: readonly { state: string; n: number }[];
};

/** A ticket taken before a read of Postgres: the fill is kept only if nothing reset since. */
export type FillTicket = number;

export class ClusterCache {
  readonly #entries = new Map<string, Entry>();
  readonly #max: number;
  #durations: readonly StepDurationRow[] | undefined;
  #watermark: number | undefined;
  #inBatch: { from: number; to: number; next: number; parts: number } | undefined;
  #generation = 0;
  #behind: { checkpoint: number; at: number } | undefined;
  readonly #resetAfterMs: number;
  #table: string | null | undefined;
  #timer: ReturnType<typeof setInterval> | undefined;
  #polling = false;
  readonly #onReset: (why: string) => void;
  readonly #warm: ((cache: ClusterCache) => Promise<void>) | undefined;
  /** Empty since the last warm-up began (or never warmed): warm once a watermark is known. */
  #cold = true;
  #warming = false;
  #stopped = false;
  /** Served from memory, filled from Postgres, emptied. */
  readonly counts = { hits: 0, misses: 0, fills: 0, resets: 0 };

  constructor(opts: ClusterCacheOptions = {}) {
    this.#max = opts.maxEntries ?? 20_000;
    this.#onReset = opts.onReset ?? (() => {});
    this.#resetAfterMs = opts.resetAfterMs ?? 2_000;
    this.#warm = opts.warm;
    const poll = opts.poll;
    const every = opts.pollMs ?? 500;
    if (poll && every > 0) {
      this.#timer = setInterval(() => void this.#pollOnce(poll), every);
      this.#timer.unref();
      void this.#pollOnce(poll);
    }
  }

  /** The point of the log the cache is at; undefined: not known (nothing is served). */
  get watermark(): number | undefined {
    return this.#watermark;
  }

  get size(): number {
    return this.#entries.size;
  }

  /** Entries at most. */
  get maxEntries(): number {
    return this.#max;
  }

  stop(): void {
    this.#stopped = true;
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /**
   * The inputs of `id`'s live view, or undefined when they must be read from Postgres.
   * `atLeastSequence`: only when the watermark reached it.
   */
  get(id: string, atLeastSequence?: number): ClusterInputs | undefined {
    const w = this.#watermark;
    const durations = this.#durations;
    const entry = this.#entries.get(id);
    if (
      w === undefined ||
      this.#inBatch !== undefined ||
      durations === undefined ||
      entry === undefined ||
      (atLeastSequence !== undefined && w < atLeastSequence)
    ) {
      this.counts.misses++;
      clusterCacheOutcomes.inc({ outcome: "miss" });
      return undefined;
    }
    this.counts.hits++;
    clusterCacheOutcomes.inc({ outcome: "hit" });
    return { ...entry, durations };
  }

  /** Taken before reading Postgres for `fill`. */
  ticket(): FillTicket {
    return this.#generation;
  }

  /**
   * Keeps what a read of Postgres saw at checkpoint `checkpoint` (read in the same statement
   * as the row), when that is where the cache is or later, and nothing reset since `ticket`.
   * @returns whether it was kept.
   */
  fill(ticket: FillTicket, checkpoint: number | undefined, id: string, inputs: ClusterInputs): boolean {
    if (
      ticket !== this.#generation ||
      checkpoint === undefined ||
      this.#watermark === undefined ||
      checkpoint < this.#watermark ||
      this.#inBatch !== undefined
    )
      return false;
    // An entry held is current already (filled at `W` or later, kept by every batch since):
    // kept, so a slower read never takes it back.
    if (!this.#entries.has(id)) {
      if (this.#entries.size >= this.#max) {
        const oldest = this.#entries.keys().next().value;
        if (oldest !== undefined) this.#entries.delete(oldest);
      }
      this.#entries.set(id, { row: inputs.row, install: inputs.install, sessions: inputs.sessions });
    }
    // Both reads saw `W` or later: per kind, the later row (a slower read never takes one back).
    this.#durations =
      this.#durations === undefined ? inputs.durations : mergeDurations(this.#durations, inputs.durations);
    this.counts.fills++;
    clusterCacheOutcomes.inc({ outcome: "fill" });
    return true;
  }

  /**
   * One announcement: its place in its batch (`range`; undefined from a projector that does
   * not say, which empties the cache), the rows it carries and the step durations its batch
   * wrote (`durations`, on every part, the rows on the last; undefined from a projector that
   * does not announce them). Call it for every announcement, in the order they arrive,
   * before anything else reads them.
   */
  announced(
    range: AnnouncedRange | undefined,
    changes: readonly Change[],
    durations?: readonly StepDurationRow[],
  ): void {
    if (range === undefined) {
      this.#reset("an announcement without its batch's range");
      return;
    }
    const { from, to, part, parts } = range;
    if (part === 1) {
      if (this.#inBatch !== undefined)
        this.#reset(`batch (${this.#inBatch.from}, ${this.#inBatch.to}] not whole`);
      else if (this.#watermark !== undefined && from !== this.#watermark)
        this.#reset(`batch (${from}, ${to}] does not follow ${this.#watermark}`);
      this.#inBatch = { from, to, next: 2, parts };
    } else {
      const b = this.#inBatch;
      if (b === undefined || b.from !== from || b.to !== to || b.next !== part || b.parts !== parts) {
        // A part of a batch whose beginning was missed: empty, and wait for a whole batch.
        if (b !== undefined || this.#watermark !== undefined || this.#entries.size > 0)
          this.#reset(`part ${part}/${parts} of (${from}, ${to}] out of order`);
        return;
      }
      b.next++;
    }
    const durationsAnnounced = durations !== undefined;
    for (const c of changes) this.#apply(c, durationsAnnounced);
    if (durations !== undefined && durations.length > 0 && this.#durations !== undefined)
      this.#durations = mergeDurations(this.#durations, durations);
    if (part === parts) {
      // Empty after a reset: any point of the log is one it is at.
      this.#watermark = to;
      this.#inBatch = undefined;
      this.#behind = undefined;
      this.#warmIfCold();
    }
  }

  #apply(c: Change, durationsAnnounced: boolean): void {
    switch (c.resource) {
      case "clusters": {
        // Not older than what a read later than `W` put there (rule 2).
        const e = this.#entries.get(c.id);
        if (e && c.row.lastSequence >= e.row.lastSequence) e.row = c.row;
        return;
      }
      case "installs": {
        const e = this.#entries.get(c.id);
        if (e && (e.install === undefined || c.row.lastSequence >= e.install.lastSequence)) e.install = c.row;
        return;
      }
      case "sessions":
        // Its cluster's counts by state moved, from what the cache cannot tell: read again.
        this.#entries.delete(c.row.clusterId);
        return;
      case "nodes":
        // A node that moves may teach a step duration (the ETA's input): the batch says
        // which it wrote; from a projector that does not, read them all again.
        if (!durationsAnnounced) this.#durations = undefined;
        return;
      case "commands":
      case "nodeops":
        return;
    }
  }

  #reset(why: string): void {
    this.#entries.clear();
    this.#durations = undefined;
    this.#watermark = undefined;
    this.#inBatch = undefined;
    this.#behind = undefined;
    this.#generation++;
    this.#cold = true;
    this.counts.resets++;
    clusterCacheOutcomes.inc({ outcome: "reset" });
    this.#onReset(why);
  }

  /** What a poll saw at `now` (ms; exposed for tests, the timer calls it). */
  polled(seen: CheckpointSeen, now = Date.now()): void {
    if (this.#table !== undefined && seen.table !== this.#table) {
      this.#table = seen.table;
      this.#reset("the clusters table was swapped (a replay)");
      return;
    }
    this.#table = seen.table;
    const c = seen.checkpoint;
    if (c === undefined) return;
    const w = this.#watermark;
    if (w === undefined) {
      // Empty and at no point yet: start at Postgres's, unless a batch is arriving.
      if (this.#inBatch === undefined && this.#entries.size === 0) {
        this.#watermark = c;
        this.#warmIfCold();
      }
      return;
    }
    const behind = this.#behind;
    if (behind !== undefined && w >= behind.checkpoint) this.#behind = undefined;
    else if (behind !== undefined && now - behind.at >= this.#resetAfterMs) {
      // Postgres is ahead: normal for the moment an announcement takes; not for this long.
      this.#reset(`Postgres had ${behind.checkpoint} ${now - behind.at} ms ago, announcements are at ${w}`);
      return;
    }
    if (c > w && this.#behind === undefined) this.#behind = { checkpoint: c, at: now };
  }

  /** Starts a warm-up when the cache is cold and knows its watermark (one at a time). */
  #warmIfCold(): void {
    const warm = this.#warm;
    if (!warm || !this.#cold || this.#warming || this.#stopped || this.#watermark === undefined) return;
    this.#cold = false;
    this.#warming = true;
    warm(this)
      .catch(() => {
        // Postgres unreachable: reads fill it one by one instead; a later reset warms again.
      })
      .finally(() => {
        this.#warming = false;
        // Emptied while it ran: warm again (its fills after the reset were refused).
        this.#warmIfCold();
      });
  }

  async #pollOnce(poll: () => Promise<CheckpointSeen>): Promise<void> {
    if (this.#polling) return;
    this.#polling = true;
    try {
      this.polled(await poll());
    } catch {
      // Postgres unreachable: reads fail the same way; nothing is known, nothing changes.
    } finally {
      this.#polling = false;
    }
  }
}
