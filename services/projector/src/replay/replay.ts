/**
 * Replay with zero downtime: rebuild every read model from sequence 1 into a fresh
 * schema while the live one keeps serving, then swap the two in one transaction.
 *
 *  1. Take the replay lock (one replay at a time) and pick the rebuild schema:
 *     `<live>_rebuild_<n>` if one is left from an interrupted run (it resumes after its
 *     own checkpoint), else a new one, migrated from code.
 *  2. Load: read `EVT` with an ordered consumer (not the live durable) in big batches,
 *     parsed with `parseCommitTrusted` (the log was validated when it was written);
 *     each batch is one transaction with the rebuild's checkpoint, COPY for the event
 *     index, and `synchronous_commit = off` (a commit lost in a crash loses its
 *     checkpoint with it, and the next run re-applies it). Repeat until near the head
 *     (at most 8 passes: under a head that moves faster, the swap applies the rest).
 *  3. Swap, in ONE transaction: take the apply lock (the live projection takes it per
 *     batch, so it pauses), apply the rebuild up to the live checkpoint, compare the two
 *     (row counts and content hashes), apply the rest up to the stream's head, rename
 *     `<live>` → `<live>_old_<n>` and the rebuild → `<live>`, commit. The checkpoint
 *     row moves with its schema, so the live projection continues from the rebuild's
 *     checkpoint, skipping what it covers. `checkOnly` compares and drops the rebuild.
 *  4. Drop the old schema (unless `keepOld`).
 */
import {
  type AnyEvent,
  type Catalogue,
  catalogue as defaultCatalogue,
  type Nats,
  type RunnerLogger,
} from "@cairn/events";
import { sql } from "kysely";
import {
  assertSchemaName,
  type Db,
  DEFAULT_SCHEMA,
  type DedicatedConnection,
  openDedicatedConnection,
} from "../db/database.ts";
import { migrateToLatest } from "../db/migrate.ts";
import { eventsApplied, replayCheckpoint, replayHead } from "../metrics.ts";
import { ensureCheckpoint, readCheckpoint, takeApplyLock } from "../repository/checkpoint.ts";
import { type Comparison, compareAtLiveCheckpoint, digestSchema } from "./compare.ts";
import { deferIndexes, restoreIndexes } from "./deferred-indexes.ts";
import { readLog, streamHead } from "./read-log.ts";
import {
  addPendingRows,
  cachedRowCount,
  emptyPendingRows,
  flushRows,
  loadRebuildState,
  MAX_CACHED_ROWS,
  type PreparedBatch,
  pendingRowCount,
  prepareBatch,
  trimToCheckpoint,
  writeBatch,
  writeEventIndex,
} from "./rebuild-batch.ts";

/** Load passes towards a moving head before going on (the swap applies what is left). */
const MAX_LOAD_PASSES = 8;

/**
 * The bulk load writes the read-model rows (and moves its checkpoint) at most this many
 * events apart, and at the end of each pass: what a crash loses is redone on resume.
 */
export const FLUSH_EVERY_EVENTS = 500_000;

/** Session advisory lock held for a whole replay: two replays never build at once. */
export const REPLAY_LOCK_KEY = 7_361_043_502;

export interface ReplayOptions {
  readonly databaseUrl: string;
  readonly nats: Nats;
  /** The live schema. Default `cairn`. */
  readonly schema?: string;
  /** The checkpoint row's name (the live durable's). Default `projector`. */
  readonly name?: string;
  /** Messages per rebuild transaction. Default 5,000. */
  readonly batchSize?: number;
  /**
   * The bulk load writes the read-model rows and moves the rebuild's checkpoint at least
   * this many events apart (and at the end of each pass, and on abort). Default 500,000:
   * what a crash can lose, redone by the resumed run.
   */
  readonly flushEveryEvents?: number;
  /**
   * Read the log with `parseCommitTrusted` (default true): envelope, type and version are
   * checked and old versions upcast, but today's data is not re-validated against its zod
   * schema — the owning service did that before appending, and it is most of the parse
   * cost. `false` validates every event as the live projection does: the rebuild then
   * also passes over a commit whose data alone is invalid (only a writer bug or a foreign
   * publisher makes one; live dead-lettered it), which the trusted read would fold.
   */
  readonly trustLog?: boolean;
  /** Compare a rebuild with live, do not swap; the rebuild is dropped afterwards. */
  readonly checkOnly?: boolean;
  /** Keep `<live>_old_<n>` after the swap (default: dropped). */
  readonly keepOld?: boolean;
  readonly logger?: RunnerLogger;
  readonly catalogue?: Catalogue<AnyEvent>;
  /** Stops the load between batches (a shutdown); the next replay resumes from the rebuild's checkpoint. */
  readonly signal?: AbortSignal;
  /** Called after every load batch. */
  readonly onProgress?: (p: ReplayProgress) => void;
}

export interface ReplayProgress {
  readonly schema: string;
  readonly checkpoint: number;
  readonly head: number;
  readonly events: number;
}

export interface ReplayResult {
  /** The schema the rebuild was built in. */
  readonly rebuildSchema: string;
  /** The rebuild's checkpoint when this run started (0: from sequence 1; more: resumed). */
  readonly resumedFrom: number;
  /** The rebuild's checkpoint at the end (= the live checkpoint after a swap). */
  readonly checkpoint: number;
  readonly commits: number;
  readonly events: number;
  /** Messages that are not readable commits (the live projection dead-lettered them): skipped. */
  readonly unreadable: number;
  readonly ms: number;
  readonly eventsPerSecond: number;
  readonly swapped: boolean;
  /** Where the previous live schema went (absent if dropped or not swapped). */
  readonly oldSchema?: string;
  readonly comparison: Comparison;
  /** Where the time went (ms): the bulk load, building the deferred indexes, the catch-up after them, the comparison, the swap transaction (last tail and renames: the live apply waits this long), dropping the old schema. */
  readonly timings: {
    load: number;
    /**
     * The load's Node thread, split (ms; they add up to about `load`): waiting for the
     * next batch from NATS, parsing and folding (`prepareBatch`), waiting for the previous
     * batch's write to finish. The largest says what bounds the load.
     */
    loadSplit: { receive: number; prepare: number; writeWait: number };
    indexes: number;
    catchUp: number;
    compare: number;
    swap: number;
    cleanUp: number;
  };
}

export class ReplayInProgressError extends Error {
  override readonly name = "ReplayInProgressError";
  constructor() {
    super("another replay holds the replay lock; wait for it to finish (or for its process to end)");
  }
}

export class ReplayAbortedError extends Error {
  override readonly name = "ReplayAbortedError";
  readonly checkpoint: number;
  constructor(schema: string, checkpoint: number) {
    super(`replay stopped at ${checkpoint}; the next replay resumes ${schema} from ${checkpoint + 1}`);
    this.checkpoint = checkpoint;
  }
}

const silent: RunnerLogger = { info() {}, warn() {}, error() {} };

/** Rebuilds every read model from sequence 1 and swaps it in (or only compares). */
export async function replay(opts: ReplayOptions): Promise<ReplayResult> {
  const live = assertSchemaName(opts.schema ?? DEFAULT_SCHEMA);
  const name = opts.name ?? "projector";
  const batchSize = opts.batchSize ?? 5_000;
  const flushEvery = opts.flushEveryEvents ?? FLUSH_EVERY_EVENTS;
  const log = opts.logger ?? silent;
  const cat = opts.catalogue ?? defaultCatalogue;
  const trusted = opts.trustLog ?? true;
  const t0 = performance.now();
  const conn = await openDedicatedConnection(opts.databaseUrl, { searchPath: live });
  const { client, db } = conn;
  try {
    // 1. One replay at a time (a session lock: it goes with the connection if the process dies).
    const locked = await sql<{
      ok: boolean;
    }>`select pg_try_advisory_lock(${sql.lit(REPLAY_LOCK_KEY)}) as ok`.execute(db);
    if (!locked.rows[0]?.ok) throw new ReplayInProgressError();
    const rebuild = await rebuildSchemaName(db, live);
    await migrateToLatest(db, rebuild);
    await ensureCheckpoint(db, rebuild, name);
    const resumedFrom = await readCheckpoint(db, rebuild, name);
    // Event index rows past the checkpoint (COPYed before a crash, their rows never flushed) go.
    const trimmed = await trimToCheckpoint(db, rebuild, resumedFrom);
    if (trimmed > 0)
      log.info({ rebuild, trimmed, resumedFrom }, "replay trimmed the index to its checkpoint");
    log.info({ rebuild, resumedFrom, live }, resumedFrom > 0 ? "replay resumes" : "replay starts");

    const state = await loadRebuildState(db, rebuild, resumedFrom === 0);
    const totals = { commits: 0, events: 0, unreadable: 0 };
    let checkpoint = resumedFrom;
    const count = (batch: PreparedBatch) => {
      totals.commits += batch.commits;
      totals.events += batch.events;
      totals.unreadable += batch.unreadable;
      checkpoint = batch.checkpoint;
      eventsApplied.inc({ mode: "replay" }, batch.events);
      replayCheckpoint.set(checkpoint);
    };
    /** Inside the caller's transaction: batches from the checkpoint to `until`, one after another. */
    const applyUpTo = async (until: number) => {
      for await (const msgs of readLog(opts.nats, checkpoint + 1, until, batchSize)) {
        const batch = await prepareBatch(msgs, cat, state, db, rebuild, trusted);
        await writeBatch(client, db, rebuild, name, batch);
        count(batch);
      }
    };

    // 2. Load until less than a batch separates it from the head, with secondary indexes
    //    set aside until the bulk is in. Each batch is its own transaction; batch N+1 is
    //    parsed and folded while batch N is written.
    if (resumedFrom === 0) await deferIndexes(db, rebuild);
    await sql`set maintenance_work_mem = '256MB'`.execute(db);
    // A bounded number of passes: under writes faster than the rebuild's batches the head
    // would move on for ever (a livelock). What a last pass leaves is applied at the swap,
    // under the apply lock: correct, only a longer pause of the live apply.
    //    Read-model rows are not written per batch: the load COPYs each batch's event index
    //    rows and keeps the changed rows (their latest versions) pending, and flushes them
    //    with the checkpoint — at the end of each pass, every FLUSH_EVERY_EVENTS, before
    //    the in-memory rows are forgotten, and on abort. The checkpoint thus always says
    //    "every row is as of here"; index rows past it are trimmed on resume.
    const pending = emptyPendingRows();
    let flushed = checkpoint;
    let sinceFlush = 0;
    const load = async () => {
      for (
        let head = await streamHead(opts.nats), passes = 0;
        head - checkpoint > batchSize && passes < MAX_LOAD_PASSES;
        head = await streamHead(opts.nats), passes++
      ) {
        replayHead.set(head);
        let writing: Promise<void> = Promise.resolve();
        let failure: { err: unknown } | undefined;
        const settle = async () => {
          await writing;
          if (failure) throw failure.err;
        };
        /** After `settle`: nothing is being written, `pending` holds the rows up to `checkpoint`. */
        const flush = async () => {
          await settle();
          if (checkpoint === flushed && pendingRowCount(pending) === 0) return;
          const at = checkpoint;
          await inTransaction(client, true, () => flushRows(db, rebuild, name, pending, at));
          flushed = at;
          sinceFlush = 0;
        };
        let t = performance.now();
        const lap = (k: keyof typeof split) => {
          const now = performance.now();
          split[k] += now - t;
          t = now;
        };
        for await (const msgs of readLog(opts.nats, checkpoint + 1, head, batchSize)) {
          lap("receive");
          // Rows read back must include the previous batch's.
          if (!state.complete) await settle();
          // Before prepareBatch forgets the rows kept in memory, they must be written.
          if ((state.complete && cachedRowCount(state) > MAX_CACHED_ROWS) || sinceFlush >= flushEvery)
            await flush();
          lap("writeWait");
          const batch = await prepareBatch(msgs, cat, state, db, rebuild, trusted);
          lap("prepare");
          await settle();
          lap("writeWait");
          if (opts.signal?.aborted) {
            await flush();
            throw new ReplayAbortedError(rebuild, checkpoint);
          }
          // Rows read back from the schema (past MAX_CACHED_ROWS) must be there: per batch, as live.
          const deferRows = state.complete;
          writing = inTransaction(client, true, () =>
            deferRows
              ? writeEventIndex(client, db, rebuild, batch)
              : writeBatch(client, db, rebuild, name, batch),
          ).then(
            () => {
              count(batch);
              if (deferRows) {
                addPendingRows(pending, batch);
                sinceFlush += batch.events;
              } else flushed = batch.checkpoint;
              opts.onProgress?.({ schema: rebuild, checkpoint, head, events: totals.events });
            },
            (err: unknown) => {
              failure = { err };
            },
          );
          t = performance.now();
        }
        await flush();
        lap("writeWait");
        if (opts.signal?.aborted) throw new ReplayAbortedError(rebuild, checkpoint);
      }
    };
    const split = { receive: 0, prepare: 0, writeWait: 0 };
    const tLoad = performance.now();
    await load();
    const tIndexes = performance.now();
    const indexes = await restoreIndexes(db, rebuild);
    const tCatchUp = performance.now();
    log.info({ rebuild, checkpoint, indexes }, "rebuild loaded; indexes built");
    await load();
    const tCompare = performance.now();

    // 3. Compare at one checkpoint without pausing the live apply: a repeatable-read
    //    snapshot of live (at its checkpoint L), and the rebuild brought to exactly L;
    //    both hashed at once, on two connections.
    const comparison = await compareAtLiveCheckpoint(opts.databaseUrl, live, name, checkpoint, async (at) => {
      await inTransaction(client, true, () => applyUpTo(at));
      return await digestSchema(db, rebuild);
    });
    logComparison(log, comparison);
    const tSwap = performance.now();

    // 4. The swap, in one transaction that pauses the live apply: the last tail, then
    //    the renames.
    let oldSchema: string | undefined;
    if (!opts.checkOnly) {
      await inTransaction(client, false, async () => {
        await takeApplyLock(db);
        await applyUpTo(await streamHead(opts.nats));
        oldSchema = `${live}_old_${rebuild.slice(`${live}_rebuild_`.length)}`;
        await sql`alter schema ${sql.id(live)} rename to ${sql.id(oldSchema)}`.execute(db);
        await sql`alter schema ${sql.id(rebuild)} rename to ${sql.id(live)}`.execute(db);
      });
    }

    // 5. Clean up what is not needed any more.
    const tCleanUp = performance.now();
    if (opts.checkOnly) await sql`drop schema ${sql.id(rebuild)} cascade`.execute(db);
    else if (!opts.keepOld && oldSchema) {
      await sql`drop schema ${sql.id(oldSchema)} cascade`.execute(db);
      oldSchema = undefined;
    }
    const ms = performance.now() - t0;
    const result: ReplayResult = {
      rebuildSchema: rebuild,
      resumedFrom,
      checkpoint,
      ...totals,
      ms: Math.round(ms),
      timings: {
        load: Math.round(tIndexes - tLoad),
        loadSplit: {
          receive: Math.round(split.receive),
          prepare: Math.round(split.prepare),
          writeWait: Math.round(split.writeWait),
        },
        indexes: Math.round(tCatchUp - tIndexes),
        catchUp: Math.round(tCompare - tCatchUp),
        compare: Math.round(tSwap - tCompare),
        swap: Math.round(tCleanUp - tSwap),
        cleanUp: Math.round(performance.now() - tCleanUp),
      },
      eventsPerSecond: Math.round((totals.events * 1000) / ms),
      swapped: !opts.checkOnly,
      ...(oldSchema ? { oldSchema } : {}),
      comparison,
    };
    log.info(
      { ...result, comparison: undefined },
      opts.checkOnly ? "replay check done" : "replay swapped in",
    );
    return result;
  } finally {
    replayHead.set(0);
    await conn.close().catch(() => {});
  }
}

function logComparison(log: RunnerLogger, c: Comparison): void {
  if (!c.compared) log.warn({ reason: c.reason }, "rebuild not compared with live");
  else if (c.equal) log.info({ at: c.at, tables: c.tables }, "rebuild equals live");
  else
    log.warn(
      { at: c.at, differ: c.tables.filter((t) => !t.equal) },
      "rebuild differs from live (expected when the projection code changed)",
    );
}

/** The schema left by an interrupted rebuild (resumed), else a fresh `<live>_rebuild_<n>`. */
async function rebuildSchemaName(db: Db, live: string): Promise<string> {
  const r = await sql<{ nspname: string }>`
    select nspname from pg_namespace where nspname ~ ${`^${live}_(rebuild|old)_[0-9]+$`}`.execute(db);
  const numbered = r.rows.map((x) => ({
    name: x.nspname,
    rebuild: x.nspname.startsWith(`${live}_rebuild_`),
    n: Number(x.nspname.slice(x.nspname.lastIndexOf("_") + 1)),
  }));
  const pending = numbered.filter((x) => x.rebuild).sort((a, b) => b.n - a.n)[0];
  if (pending) return pending.name;
  return assertSchemaName(`${live}_rebuild_${Math.max(0, ...numbered.map((x) => x.n)) + 1}`);
}

/** BEGIN … COMMIT on the dedicated connection; ROLLBACK on a throw. */
async function inTransaction(
  client: DedicatedConnection["client"],
  relaxed: boolean,
  f: () => Promise<void>,
): Promise<void> {
  await client.query("begin");
  try {
    // Safe here: the checkpoint commits with the rows, so a lost commit is re-applied on resume.
    if (relaxed) await client.query("set local synchronous_commit = off");
    await f();
    await client.query("commit");
  } catch (err) {
    await client.query("rollback").catch(() => {});
    throw err;
  }
}
