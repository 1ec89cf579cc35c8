/**
 * The projection consumer: one JetStream batch = one Postgres transaction that writes
 * the read models and moves the checkpoint (see docs/projector.md for why that is
 * exactly once).
 */

import { randomUUID } from "node:crypto";
import {
  type AnyEvent,
  type Catalogue,
  consumerConfig,
  contextFromTraceparent,
  catalogue as defaultCatalogue,
  describeError,
  eventFilter,
  eventWorkAttributes,
  Headers,
  type Nats,
  type RunnerLogger,
  type RunningConsumer,
  SpanAttributes,
  SpanKind,
  Streams,
  startConsumer,
  subjectTemplate,
  TransientError,
  type TypedCommit,
  tracer,
} from "@cairn/events";
import {
  DeliverPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  type JetStreamManager,
  type JsMsg,
} from "@nats-io/jetstream";
import { context, type Span, SpanStatusCode, trace } from "@opentelemetry/api";
import type { ClientBase, QueryResult } from "pg";
import {
  addToReadSet,
  clearMoreRows,
  emptyLoadedRows,
  emptyReadSet,
  type FoldedBatch,
  foldBatch,
  type LoadedRows,
  type ReadSet,
  readSetMinus,
  readSetSize,
  readStatements,
  type SequencedEvent,
  writeStatement,
} from "./apply-events.ts";
import type { Change } from "./changes.ts";
import { type Db, withRawClient } from "./db/database.ts";
import { checkSameLog, forgetReadModels } from "./foreign-log.ts";
import { checkpointGauge, eventsApplied, gapsFilled, gapWaits, lagGauge } from "./metrics.ts";
import { APPLY_LOCK_KEY, lockCheckpointText, readCheckpoint } from "./repository/checkpoint.ts";
import { storable, storableBody } from "./storable.ts";

export interface ProjectionTarget {
  readonly db: Db;
  readonly schema: string;
  /** The checkpoint row's name: the durable consumer's name. */
  readonly name: string;
  readonly catalogue?: Catalogue<AnyEvent>;
}

export interface BatchOutcome {
  /** Messages at or below the checkpoint: already applied, skipped. */
  readonly skipped: number;
  /** Messages set aside as dead letters. */
  readonly deadLettered: number;
  readonly commits: number;
  readonly events: number;
  /** The checkpoint after the batch. */
  readonly checkpoint: number;
  /**
   * A missing sequence that could not be filled from the stream (it is not a readable
   * commit, so only its own delivery can dead-letter it, or the batch's fill budget
   * ran out): what came after it was not applied. `projectBatch` throws after its commit when this is set.
   */
  readonly waitingFor?: number;
  /** Missing messages read from the stream to fill a gap before the batch. */
  readonly filled: number;
  /** The rows the batch wrote (for the live change feed, once committed). */
  readonly changes?: readonly Change[];
}

/** What the projection reads from the stream when sequences are missing between the checkpoint and a batch. */
export interface StreamReader {
  /** The lowest sequence still in the stream (everything before it was purged). */
  firstSequence(): Promise<number>;
  /** The message at `seq`, or undefined when it was deleted. */
  get(seq: number): Promise<
    | {
        readonly seq: number;
        readonly subject: string;
        json(): unknown;
        /** Its headers as stored (the commit's `traceparent`). */
        readonly header?: { get(key: string): string };
      }
    | undefined
  >;
}

export function streamReader(jsm: JetStreamManager, stream: string = Streams.events): StreamReader {
  return {
    firstSequence: async () => (await jsm.streams.info(stream)).state.first_seq,
    get: async (seq) => {
      try {
        return (await jsm.streams.getMessage(stream, { seq })) ?? undefined;
      } catch (err) {
        if (err instanceof JetStreamApiError && err.code === JetStreamApiCodes.NoMessageFound)
          return undefined;
        throw err;
      }
    },
  };
}

/**
 * A missing message could not be filled in from the stream (it is unreadable, or the
 * gap is larger than one batch may fill): what came after it waits. The runner
 * retries the batch; each attempt commits what it could, and a restart, which
 * redelivers from the checkpoint, resolves it in any case.
 */
export class WaitingForSequenceError extends TransientError {
  override readonly name = "WaitingForSequenceError";
  readonly sequence: number;
  constructor(sequence: number, checkpoint: number) {
    super(
      `applied up to ${checkpoint}; stream sequence ${sequence} is missing and could not be filled in yet, the rest of the batch waits`,
    );
    this.sequence = sequence;
  }
}

type DeadLetter = (msg: JsMsg, reason: string) => Promise<void>;

/** What a commit's span needs of its message. */
interface Pending {
  readonly seq: number;
  readonly subject: string;
  /** Delivered, or read from the stream to fill a gap. */
  readonly delivered?: JsMsg;
  /** The commit's trace (its publish span), from its headers. */
  readonly traceparent?: string | undefined;
}

/** The projector's own span attributes (beside the shared ones). */
export const ProjectionSpanAttributes = {
  /** The Postgres schema the rows went to. */
  schema: "cairn.projection.schema",
  /** The commit was read from the stream to fill a gap, not delivered. */
  gapFill: "cairn.projection.gap_fill",
} as const;

/**
 * The span of one commit's projection, in the commit's own trace: its parent is the span
 * that published the commit (the `traceparent` in its headers, else its events' meta), so
 * the lifecycle trace of a cluster reads publisher → decisions → outside calls → read
 * model under one trace id. Not a span link: Jaeger shows a trace as the spans that carry
 * its id, and a linked span sits in a trace of its own (the batch's), one click away at
 * best. The batch's span (the runner's `process evt.>`, active here) is linked both ways
 * instead, so either end leads to the other. It ends when the transaction has committed
 * (the rows are visible from then), or with the error that rolled it back.
 */
function startCommitSpan(
  m: Pending,
  commit: TypedCommit<AnyEvent>,
  consumer: string,
  schema: string,
): Span | undefined {
  const first = commit.events[0];
  const parentTrace = m.traceparent || first?.meta.traceparent;
  if (!parentTrace) return undefined;
  const batch = trace.getActiveSpan();
  const template = subjectTemplate(m.subject);
  const span = tracer().startSpan(
    `project ${template}`,
    {
      kind: SpanKind.CONSUMER,
      links: batch ? [{ context: batch.spanContext() }] : [],
      attributes: {
        ...(first ? eventWorkAttributes(first) : {}),
        [SpanAttributes.eventId]: undefined,
        [SpanAttributes.eventTypes]: commit.events.map((e) => e.type).join(","),
        [SpanAttributes.messagingSystem]: "nats",
        [SpanAttributes.operationType]: "process",
        [SpanAttributes.operationName]: "project",
        [SpanAttributes.destination]: m.subject,
        [SpanAttributes.destinationTemplate]: template,
        [SpanAttributes.messageId]: commit.commitId,
        [SpanAttributes.consumerGroup]: consumer,
        [SpanAttributes.sequence]: m.seq,
        [ProjectionSpanAttributes.schema]: schema,
        [ProjectionSpanAttributes.gapFill]: m.delivered === undefined,
      },
    },
    contextFromTraceparent(parentTrace, context.active()),
  );
  batch?.addLinks([{ context: span.spanContext() }]);
  return span;
}

/** Messages parsed between two yields to the event loop. */
const PARSE_SLICE = 250;

/** At most this many missing messages are read from the stream per batch (a huge gap takes several). */
const MAX_FILL_FACTOR = 4;

/**
 * The rows the last batch of this process left behind, kept for the next one: a live
 * batch then reads from Postgres only the rows it has not seen (issue 16 — reading a
 * thousand 2 kB cluster rows back every batch was a round trip's worth of Postgres and
 * of parsing). Valid only while nobody else has written the read models since, which
 * the next batch checks under its lock: the checkpoint row still holds the checkpoint
 * and the token (`writer`, random per batch) this process committed. Any other write of
 * it changes the token: another replica's batch writes its own, a rebuild (so also the
 * schema a replay's swap brings in) and `forgetReadModels` write null. Otherwise
 * it is dropped and every row read as before. Dropped too when a batch fails: its fold
 * has already moved the rows.
 */
interface RowCache {
  /** The checkpoint this process committed with these rows. */
  checkpoint: number;
  /** The token this process's batch wrote with the checkpoint (`projector_checkpoint.writer`). */
  writer: string;
  readonly rows: LoadedRows;
  /** The step durations are all in `rows` (they are read all at once). */
  durations: boolean;
  /** Ids read and found missing (not in Postgres at `checkpoint` unless in `rows` since). */
  readonly absent: ReadSet;
}

/**
 * Rows kept per read model at most; past it the oldest read go first. Bounded for the
 * projector's memory (a cluster row is a few kB in V8; issue 15 keeps a service under 100 MB):
 * enough for the clusters a busy control plane moves between two batches.
 */
const CACHE_ROWS = 5_000;

const rowCaches = new WeakMap<ProjectionTarget, RowCache>();

/**
 * Drops the oldest entries of each map past `CACHE_ROWS` (maps keep insertion order). An
 * evicted row leaves the ids known missing too: it may have been created since it was.
 */
function trimCache(cache: RowCache): void {
  for (const [absent, m] of modelsOf(cache.absent, cache.rows)) {
    if (m.size <= CACHE_ROWS) continue;
    let excess = m.size - CACHE_ROWS;
    for (const k of m.keys()) {
      if (excess-- <= 0) break;
      m.delete(k);
      absent.delete(k);
    }
  }
}

/** Each read model's ids in a `ReadSet` beside the map of its rows in a `LoadedRows`. */
function modelsOf(set: ReadSet, rows: LoadedRows): [Set<string>, Map<string, unknown>][] {
  return [
    [set.clusters, rows.clusters],
    [set.commands, rows.commands],
    [set.installs, rows.more.installs],
    [set.nodes, rows.more.nodes],
    [set.nodeops, rows.more.nodeops],
    [set.sessions, rows.more.sessions],
  ];
}

/** What of `set` the cache neither holds nor knows missing (with `durations` when those are not all there). */
function missingFrom(set: ReadSet, cache: RowCache): ReadSet {
  const out = emptyReadSet();
  const have = modelsOf(cache.absent, cache.rows);
  modelsOf(set, emptyLoadedRows()).forEach(([ids], i) => {
    const [absent, rows] = have[i]!;
    const into = modelsOf(out, emptyLoadedRows())[i]![0];
    for (const id of ids) if (!rows.has(id) && !absent.has(id)) into.add(id);
  });
  out.durations = set.durations && !cache.durations;
  return out;
}

/** Remembers the ids of `asked` that a read did not find (`rows` lacks them). */
function noteAbsent(cache: RowCache, asked: ReadSet): void {
  const have = modelsOf(cache.absent, cache.rows);
  modelsOf(asked, emptyLoadedRows()).forEach(([ids], i) => {
    const [absent, rows] = have[i]!;
    for (const id of ids) if (!rows.has(id)) absent.add(id);
    if (absent.size > CACHE_ROWS) absent.clear();
  });
}

/**
 * The next batch, parsed and folded ahead while this one commits (issue 16: the fold
 * and the statement text of batch N+1 take the Node thread while Postgres writes batch N,
 * on the other core). Used only by the batch that is exactly these messages and that
 * finds `base` still valid (this batch committed and nobody wrote since); otherwise the
 * work is dropped and the batch is folded as usual. `overlay` holds the rows it folded
 * into, copies of nothing: rows are immutable, so the base's maps are not touched.
 */
interface Ahead {
  readonly base: RowCache;
  readonly seqs: readonly number[];
  readonly overlay: LoadedRows;
  readonly folded: FoldedBatch;
  readonly statement: string;
  readonly writer: string;
}

const aheads = new WeakMap<ProjectionTarget, Ahead>();

/** Messages already parsed (ahead of their batch), with the catalogue that parsed them. */
const parsedAhead = new WeakMap<object, { cat: Catalogue<AnyEvent>; parsed: Parsed }>();

function parseOnce(cat: Catalogue<AnyEvent>, m: JsMsg): Parsed {
  const known = parsedAhead.get(m);
  if (known && known.cat === cat) return known.parsed;
  const parsed = parseDelivered(cat, m);
  parsedAhead.set(m, { cat, parsed });
  return parsed;
}

/** Parses and folds `upcoming` on top of `base` (see `Ahead`); undefined when it cannot. */
async function prepareAhead(
  target: ProjectionTarget,
  cat: Catalogue<AnyEvent>,
  base: RowCache,
  upcoming: readonly JsMsg[],
): Promise<Ahead | undefined> {
  if (upcoming.length === 0) return undefined;
  const events: SequencedEvent[] = [];
  const seqs: number[] = [];
  let expected = base.checkpoint + 1;
  for (let i = 0; i < upcoming.length; i++) {
    const m = upcoming[i]!;
    const p = parseOnce(cat, m);
    // Only a plain run: contiguous after the base, every message readable.
    if (m.seq !== expected++ || !p.events) return undefined;
    seqs.push(m.seq);
    for (const e of p.events) events.push(e);
    if (i % PARSE_SLICE === PARSE_SLICE - 1) await new Promise<void>((r) => setImmediate(r));
  }
  const set = addToReadSet(emptyReadSet(), events);
  if (readSetSize(missingFrom(set, base)) > 0) return undefined;
  const overlay = emptyLoadedRows();
  const from = modelsOf(set, base.rows);
  modelsOf(set, overlay).forEach(([ids, into], i) => {
    const rows = from[i]![1];
    for (const id of ids) {
      const row = rows.get(id);
      if (row !== undefined) into.set(id, row);
    }
  });
  if (set.durations) for (const [k, d] of base.rows.more.durations) overlay.more.durations.set(k, d);
  const folded = foldBatch(events, overlay);
  const writer = randomUUID();
  const statement = writeStatement(target.schema, events, folded, {
    name: target.name,
    sequence: seqs.at(-1)!,
    writer,
  });
  return { base, seqs, overlay, folded, statement, writer };
}

/**
 * Applies one batch in one transaction: event index, clusters and commands, then the
 * checkpoint = the last sequence applied. Messages are applied in stream order and
 * contiguously after the checkpoint, whatever order they were delivered in:
 *
 * - at or below the checkpoint: applied by an earlier transaction (a redelivery after
 *   a crash between commit and ack), skipped;
 * - sequences missing between the checkpoint and the batch (delivered elsewhere, or
 *   handed back and not redelivered yet) are read from the stream and applied first;
 *   their own deliveries, when they come, are then at or below the checkpoint;
 *   deleted ones are passed;
 * - not a readable commit: dead-lettered, skipped; the checkpoint moves past it. A
 *   missing message that is unreadable cannot be dead-lettered from here: the batch
 *   stops before it, commits what came before and throws `WaitingForSequenceError`.
 */
export async function projectBatch(
  target: ProjectionTarget,
  msgs: readonly JsMsg[],
  deadLetter: DeadLetter,
  reader: StreamReader,
  upcoming?: () => readonly JsMsg[],
): Promise<BatchOutcome> {
  const outcome = await projectInTransaction(target, msgs, deadLetter, reader, upcoming);
  if (outcome.waitingFor !== undefined)
    throw new WaitingForSequenceError(outcome.waitingFor, outcome.checkpoint);
  return outcome;
}

/** `projectBatch` without the throw: what it applied, and what it waits for. */
export async function projectInTransaction(
  target: ProjectionTarget,
  msgs: readonly JsMsg[],
  deadLetter: DeadLetter,
  reader: StreamReader,
  /** The messages buffered behind this batch (the runner's `upcoming`): folded ahead while it commits. */
  upcoming?: () => readonly JsMsg[],
): Promise<BatchOutcome> {
  const { db, schema, name } = target;
  const cat = target.catalogue ?? defaultCatalogue;
  // One span per commit applied, ended once the transaction is over (startCommitSpan).
  const spans: Span[] = [];
  try {
    const outcome = await applyInTransaction();
    for (const span of spans) span.end();
    return outcome;
  } catch (err) {
    for (const span of spans) {
      span.setStatus({ code: SpanStatusCode.ERROR, message: `not applied: ${describeError(err)}` });
      span.end();
    }
    throw err;
  }

  async function applyInTransaction(): Promise<BatchOutcome> {
    // Parsed before the transaction (CPU work that need not hold the checkpoint's lock);
    // dead-lettered only if the batch reaches them (below).
    // In slices, letting I/O in between (lease renewals, API requests): a large catch-up
    // batch is thousands of validating parses.
    const delivered: Parsed[] = [];
    for (let i = 0; i < msgs.length; i++) {
      delivered.push(parseOnce(cat, msgs[i]!));
      if (i % PARSE_SLICE === PARSE_SLICE - 1) await new Promise<void>((r) => setImmediate(r));
    }
    const reads = emptyReadSet();
    for (const d of delivered) if (d.events) addToReadSet(reads, d.events);
    // The batch buffered behind this one, parsed now (its own parse, done early) so that
    // the rows it touches are read with this batch's, under this batch's lock: it can then
    // be folded while this one commits (`prepareAhead`).
    const following = upcoming?.() ?? [];
    for (let i = 0; i < following.length; i++) {
      const p = parseOnce(cat, following[i]!);
      if (p.events) addToReadSet(reads, p.events);
      if (i % PARSE_SLICE === PARSE_SLICE - 1) await new Promise<void>((r) => setImmediate(r));
    }
    // The rows of the last batch, when this process wrote it: only the others are read.
    const cached = rowCaches.get(target);
    const ahead = aheads.get(target);
    aheads.delete(target);
    // Written with the checkpoint, so the next batch can tell nobody wrote after this one.
    let writer: string = randomUUID();
    let wrote = false;
    rowCaches.delete(target); // back only once this batch has committed
    const loaded = cached?.rows ?? emptyLoadedRows();
    const asked = cached ? missingFrom(reads, cached) : reads;
    const firstReads = readStatements(schema, asked, loaded);
    // What this batch's rows become once it commits: the next batch's base.
    const next: RowCache = {
      checkpoint: 0,
      writer,
      rows: loaded,
      durations: false,
      absent: cached?.absent ?? emptyReadSet(),
    };

    return await withRawClient(db, async (client) => {
      try {
        // Round trip 1, one simple query: begin, the apply lock, the checkpoint, and the
        // rows every delivered message touches. Postgres resolves each statement's table
        // names only when it reaches it, so everything after the lock sees the tables as
        // they are once we hold it: a schema swap holds this lock while it renames, and a
        // batch never straddles the swap.
        // No wait for the WAL flush at commit (a few ms each batch; set with the lock). A
        // commit lost in a Postgres crash loses its checkpoint with it, and the messages,
        // though acked, come back: a restart starts the consumer after the database's
        // checkpoint, and a running projector fills the gap from the stream (step 3) at
        // its next batch.
        const opened = await simpleQuery(client, [
          "begin",
          `select pg_advisory_xact_lock(${APPLY_LOCK_KEY}), set_config('synchronous_commit', 'off', true)`,
          lockCheckpointText(schema, name),
          ...firstReads.statements,
        ]);
        const locked = opened[2]!.rows[0] as { last_sequence: number; writer: string | null };
        const checkpoint = Number(locked.last_sequence);
        const stale =
          cached !== undefined && (cached.checkpoint !== checkpoint || cached.writer !== locked.writer);
        if (stale) {
          // Someone else wrote since (another replica, a replay's swap, a reset): the kept
          // rows may be stale. Forget them and read every row, in one more round trip.
          loaded.clusters.clear();
          loaded.commands.clear();
          clearMoreRows(loaded.more);
          for (const [ids] of modelsOf(next.absent, loaded)) ids.clear();
          firstReads.read(opened.slice(3));
          const rest = readStatements(schema, reads, loaded);
          rest.read(await simpleQuery(client, rest.statements));
          noteAbsent(next, reads);
        } else {
          firstReads.read(opened.slice(3));
          noteAbsent(next, asked);
        }
        next.durations = reads.durations || (!stale && (cached?.durations ?? false));
        const outcome = await applyAfter(checkpoint, client, stale);
        // Committed: the rows are what Postgres now holds, at this checkpoint (kept only
        // when this batch wrote the checkpoint, and so its token).
        if (!wrote) return outcome;
        rowCaches.set(target, next);
        return outcome;
      } catch (err) {
        // Ends the transaction; a connection that cannot is closed by withRawClient.
        await client.query("rollback").catch(() => {});
        throw err;
      }
    });

    async function applyAfter(checkpoint: number, client: ClientBase, stale: boolean): Promise<BatchOutcome> {
      const order = delivered.filter((d) => d.msg.seq > checkpoint).sort((a, b) => a.msg.seq - b.msg.seq);
      const skipped = msgs.length - order.length;

      // The run of messages to apply: contiguous from the checkpoint, gaps filled from the stream.
      const ready: Parsed[] = [];
      let expected = checkpoint + 1;
      let waitingFor: number | undefined;
      let filled = 0;
      let fillBudget = Math.max(100, msgs.length * MAX_FILL_FACTOR);
      outer: for (const d of order) {
        const m = d.msg;
        if (m.seq < expected) continue; // the same message twice in one batch
        if (m.seq > expected) {
          for (let s = Math.max(expected, await reader.firstSequence()); s < m.seq; s++) {
            if (fillBudget-- <= 0) {
              waitingFor = s;
              break outer;
            }
            const stored = await reader.get(s);
            if (!stored) continue; // deleted: a hole that never fills
            const fill = parseStored(cat, stored);
            if (!fill) {
              waitingFor = s;
              break outer;
            }
            ready.push(fill);
            filled++;
          }
        }
        ready.push(d);
        expected = m.seq + 1;
      }
      const last = ready.at(-1)?.seq ?? checkpoint;
      const result = (
        r: Omit<BatchOutcome, "skipped" | "checkpoint" | "waitingFor" | "filled">,
      ): BatchOutcome => ({
        skipped,
        checkpoint: last,
        filled,
        ...(waitingFor !== undefined ? { waitingFor } : {}),
        ...r,
      });
      if (ready.length === 0) {
        await client.query("commit");
        return result({ deadLettered: 0, commits: 0, events: 0 });
      }

      const events: SequencedEvent[] = [];
      let deadLettered = 0;
      let commits = 0;
      for (const p of ready) {
        if (!p.events) {
          // Only delivered messages get here unreadable (gap fills are checked first).
          if (p.delivered) await deadLetter(p.delivered, `not a readable commit: ${p.error}`);
          deadLettered++;
          continue;
        }
        commits++;
        const span = startCommitSpan(p, p.commit!, name, schema);
        if (span) spans.push(span);
        for (const e of p.events) events.push(e);
      }

      // Rows that gap fills touch and the first reads did not cover: one more round trip,
      // only then.
      const more = readSetMinus(addToReadSet(emptyReadSet(), events), reads);
      if (readSetSize(more) > 0) {
        const extra = readStatements(schema, more, loaded);
        extra.read(await simpleQuery(client, extra.statements));
      }
      // Folded ahead while the previous batch committed, when that still holds: the same
      // messages, on rows nobody else wrote since.
      const usable =
        ahead !== undefined &&
        ahead.base === cached &&
        !stale &&
        filled === 0 &&
        deadLettered === 0 &&
        ready.length === ahead.seqs.length &&
        ready.every((p, i) => p.seq === ahead.seqs[i]);
      let folded: FoldedBatch;
      let statement: string;
      if (usable) {
        const pairs = modelsOf(emptyReadSet(), ahead.overlay);
        modelsOf(emptyReadSet(), loaded).forEach(([, into], i) => {
          for (const [id, row] of pairs[i]![1]) into.set(id, row);
        });
        for (const [k, d] of ahead.overlay.more.durations) loaded.more.durations.set(k, d);
        folded = ahead.folded;
        statement = ahead.statement;
        writer = ahead.writer;
      } else {
        folded = foldBatch(events, loaded);
        statement = writeStatement(schema, events, folded, { name, sequence: last, writer });
      }
      next.checkpoint = last;
      next.writer = writer;
      trimCache(next);
      // Round trip 2: every row, the checkpoint and the commit; the next batch is parsed
      // and folded meanwhile, on what this one leaves (dropped if this one fails).
      const write = simpleQuery(client, [statement, "commit"]);
      write.catch(() => {}); // awaited below, after the work ahead has started
      const preparing =
        following.length > 0 ? prepareAhead(target, cat, next, following).catch(() => undefined) : undefined;
      await write;
      wrote = true;
      const prepared = await preparing;
      if (prepared) aheads.set(target, prepared);
      const changes: Change[] = [
        ...folded.clusters.map(
          (row): Change => ({ resource: "clusters", id: row.id, sequence: row.lastSequence, row }),
        ),
        ...folded.commands.map(
          (row): Change => ({ resource: "commands", id: row.commandId, sequence: last, row }),
        ),
        ...folded.more.installs.map(
          (row): Change => ({ resource: "installs", id: row.clusterId, sequence: row.lastSequence, row }),
        ),
        // A cluster whose install moved: its progress (install steps) moved with it.
        ...folded.progressed.map(
          (row): Change => ({ resource: "clusters", id: row.id, sequence: last, row }),
        ),
        ...folded.more.nodes.map(
          (row): Change => ({ resource: "nodes", id: row.id, sequence: row.lastSequence, row }),
        ),
        ...folded.more.nodeops.map(
          (row): Change => ({ resource: "nodeops", id: row.id, sequence: row.lastSequence, row }),
        ),
        ...folded.more.sessions.map(
          (row): Change => ({ resource: "sessions", id: row.id, sequence: row.lastSequence, row }),
        ),
      ];
      return result({ deadLettered, commits, events: events.length, changes });
    }
  }
}

/** One message, parsed (or why it is not a readable commit). */
interface Parsed {
  readonly seq: number;
  readonly subject: string;
  readonly msg: { readonly seq: number };
  /** Delivered (and so dead-letterable), or read from the stream to fill a gap. */
  readonly delivered?: JsMsg;
  /** The commit's trace (its publish span), from its headers. */
  readonly traceparent?: string | undefined;
  readonly commit?: TypedCommit<AnyEvent>;
  readonly events?: readonly SequencedEvent[];
  readonly error?: string;
}

function parseDelivered(cat: Catalogue<AnyEvent>, m: JsMsg): Parsed {
  const base = {
    seq: m.seq,
    subject: m.subject,
    msg: m,
    delivered: m,
    traceparent: m.headers?.get(Headers.traceparent),
  };
  try {
    const commit = cat.parseCommit(storableBody(m), { subject: m.subject });
    return { ...base, commit, events: commit.events.map((event) => ({ event, sequence: m.seq })) };
  } catch (err) {
    return { ...base, error: describeError(err) };
  }
}

/** A message read from the stream to fill a gap, or undefined when it is not a readable commit. */
function parseStored(
  cat: Catalogue<AnyEvent>,
  stored: Awaited<ReturnType<StreamReader["get"]>> & {},
): Parsed | undefined {
  try {
    const commit = cat.parseCommit(storable(stored.json()), { subject: stored.subject });
    return {
      seq: stored.seq,
      subject: stored.subject,
      msg: stored,
      traceparent: stored.header?.get(Headers.traceparent),
      commit,
      events: commit.events.map((event) => ({ event, sequence: stored.seq })),
    };
  } catch {
    return undefined;
  }
}

/** Sends `statements` as one simple query (one round trip) and returns each one's result. */
async function simpleQuery(client: ClientBase, statements: readonly string[]): Promise<QueryResult[]> {
  const r = (await client.query(statements.join(";\n"))) as unknown as QueryResult | QueryResult[];
  return Array.isArray(r) ? r : [r];
}

/** The runner's own config for the durable consumer (kept equal, so it does not rewrite it). */
function projectionConsumerConfig(durable: string, batchSize: number) {
  return consumerConfig({ durable, filterSubject: eventFilter(), batchSize });
}

/**
 * The database is the truth about what was applied, so the durable consumer is made
 * again at every start to begin right after the checkpoint. That drops what a previous
 * run held unacknowledged (it would otherwise come back only after the ack wait, behind
 * later messages) and replays what a restored or recreated database lacks.
 */
export async function resetConsumer(
  nats: Nats,
  target: ProjectionTarget,
  durable: string,
  batchSize: number,
  log: RunnerLogger,
): Promise<number> {
  let checkpoint = await readCheckpoint(target.db, target.schema, target.name);
  const sameLog = await checkSameLog(nats, target.db, target.schema, checkpoint);
  if (!sameLog.same) {
    const tables = await forgetReadModels(target.db, target.schema);
    log.warn(
      { schema: target.schema, checkpoint, tables, reason: sameLog.reason },
      "the read models were built from another event log: emptied, projecting again from sequence 1",
    );
    checkpoint = 0;
  }
  try {
    await nats.jsm.consumers.delete(Streams.events, durable);
  } catch (err) {
    if (!(err instanceof JetStreamApiError && err.code === JetStreamApiCodes.ConsumerNotFound)) throw err;
  }
  await nats.jsm.consumers.add(Streams.events, {
    ...projectionConsumerConfig(durable, batchSize),
    ...(checkpoint > 0
      ? { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: checkpoint + 1 }
      : { deliver_policy: DeliverPolicy.All }),
  });
  log.info(
    { stream: Streams.events, consumer: durable, from: checkpoint + 1 },
    "projection consumer starts after the checkpoint",
  );
  return checkpoint;
}

export interface RunningProjection {
  readonly consumer: RunningConsumer;
  /** The last batch outcome and error, for readiness and logs. */
  readonly status: { running: boolean; lastBatchAt?: Date; lastError?: string; checkpoint?: number };
  stop(): Promise<void>;
}

export async function startProjection(opts: {
  nats: Nats;
  target: ProjectionTarget;
  durable: string;
  batchSize: number;
  logger: RunnerLogger;
  /** Called with the rows of each batch after its transaction committed. Must not throw. */
  onCommitted?: (changes: readonly Change[]) => void;
}): Promise<RunningProjection> {
  const { nats, target, durable, logger } = opts;
  const status: RunningProjection["status"] = {
    running: false,
    checkpoint: await resetConsumer(nats, target, durable, opts.batchSize, logger),
  };
  const reader = streamReader(nats.jsm);
  const consumer = await startConsumer({
    js: nats.js,
    jsm: nats.jsm,
    stream: Streams.events,
    durable,
    filterSubject: eventFilter(),
    batchSize: opts.batchSize,
    logger,
    handleBatch: async (msgs, { deadLetter, upcoming }) => {
      try {
        const outcome = await projectInTransaction(target, msgs, deadLetter, reader, upcoming);
        status.lastBatchAt = new Date();
        status.checkpoint = outcome.checkpoint;
        eventsApplied.inc({ mode: "live" }, outcome.events);
        checkpointGauge.set(outcome.checkpoint);
        gapsFilled.inc(outcome.filled);
        const last = msgs.at(-1);
        // EVT holds only evt.>, so the last delivery's pending count reaches the head.
        if (last) lagGauge.set(Math.max(0, last.seq + last.info.pending - outcome.checkpoint));
        // Announced once this batch is acked and the next one is on its way to Postgres:
        // serialising a busy batch's rows takes milliseconds the next batch's round trips
        // can hide. In order (setImmediate runs its callbacks first in, first out).
        const committed = outcome.changes;
        if (committed?.length && opts.onCommitted) {
          const announce = opts.onCommitted;
          setImmediate(() => announce(committed));
        }
        if (outcome.waitingFor !== undefined) {
          gapWaits.inc();
          throw new WaitingForSequenceError(outcome.waitingFor, outcome.checkpoint);
        }
        delete status.lastError;
      } catch (err) {
        if (!(err instanceof WaitingForSequenceError)) status.lastError = describeError(err);
        throw err;
      }
    },
  });
  status.running = true;
  return {
    consumer,
    status,
    stop: async () => {
      status.running = false;
      await consumer.stop();
    },
  };
}
