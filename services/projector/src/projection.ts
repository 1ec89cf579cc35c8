/**
 * The projection consumer: one JetStream batch = one Postgres transaction that writes
 * the read models and moves the checkpoint (see docs/projector.md for why that is
 * exactly once).
 */
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
  spansExported,
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
  emptyLoadedRows,
  emptyReadSet,
  eventIndexRows,
  foldBatch,
  type LoadedRows,
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
import type { StepDurationRow } from "./projections/step-durations.ts";
import { APPLY_LOCK_KEY, lockCheckpointText, readCheckpoint } from "./repository/checkpoint.ts";
import { copyText } from "./repository/copy-text.ts";
import { copyEventIndex, eventIndexCopyText } from "./repository/event-index-copy.ts";
import { Staging } from "./repository/recordset.ts";
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
  /** The step durations the batch wrote (announced beside the rows: api/cluster-cache.ts). */
  readonly durations?: readonly StepDurationRow[];
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
  // Nothing would export it, and nothing reads its ids (the batch's span stays, for the logs).
  if (!spansExported()) return undefined;
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

/**
 * From this many events a batch writes the event index by COPY (two round trips more,
 * a third of the index's cost less: docs/projector.md "Live apply, third pass").
 */
const COPY_INDEX_MIN_EVENTS = 200;

/** At most this many missing messages are read from the stream per batch (a huge gap takes several). */
const MAX_FILL_FACTOR = 4;

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
): Promise<BatchOutcome> {
  const outcome = await projectInTransaction(target, msgs, deadLetter, reader);
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
  /**
   * Also fill from the stream every sequence up to `fillTo` (inclusive) that neither the
   * checkpoint nor `msgs` covers, at most `fillBudget` of them: how an idle projection
   * heals a commit Postgres lost after its messages were acked (`startProjection`).
   */
  fill?: { readonly fillTo: number; readonly fillBudget: number },
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
      delivered.push(parseDelivered(cat, msgs[i]!));
      if (i % PARSE_SLICE === PARSE_SLICE - 1) await new Promise<void>((r) => setImmediate(r));
    }
    const reads = emptyReadSet();
    let eventCount = 0;
    for (const d of delivered) {
      if (!d.events) continue;
      addToReadSet(reads, d.events);
      eventCount += d.events.length;
    }
    // A small batch (steady traffic, where latency counts) keeps its two round trips; a big
    // one sends its event index, and its rows into staging tables, by COPY.
    const copyIndex = eventCount >= COPY_INDEX_MIN_EVENTS;

    return await withRawClient(db, async (client) => {
      try {
        return await attempt(client, copyIndex);
      } catch (err) {
        // Ends the transaction; a connection that cannot is closed by withRawClient.
        await client.query("rollback").catch(() => {});
        if (!(err instanceof IndexCopyConflict)) throw err;
      }
      // An event index key was there already (COPY inserts): the batch again, from its
      // reads, with the index upserted. Its first commit spans ended with the attempt.
      for (const span of spans.splice(0)) {
        span.setStatus({ code: SpanStatusCode.ERROR, message: "applied again: the event index held a key" });
        span.end();
      }
      try {
        return await attempt(client, false);
      } catch (err) {
        await client.query("rollback").catch(() => {});
        throw err;
      }
    });

    /** The batch in one transaction on `client`; `copyIndex`: the event index by COPY. */
    async function attempt(client: ClientBase, copyIndex: boolean): Promise<BatchOutcome> {
      const loaded = emptyLoadedRows();
      const firstReads = readStatements(schema, reads, loaded);
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
      const checkpoint = Number((opened[2]!.rows[0] as { last_sequence: number }).last_sequence);
      firstReads.read(opened.slice(3));
      return await applyAfter(checkpoint, client, loaded, copyIndex);
    }

    async function applyAfter(
      checkpoint: number,
      client: ClientBase,
      loaded: LoadedRows,
      copyIndex: boolean,
    ): Promise<BatchOutcome> {
      const order = delivered.filter((d) => d.msg.seq > checkpoint).sort((a, b) => a.msg.seq - b.msg.seq);
      const skipped = msgs.length - order.length;

      // The run of messages to apply: contiguous from the checkpoint, gaps filled from the stream.
      const ready: Parsed[] = [];
      let expected = checkpoint + 1;
      let waitingFor: number | undefined;
      let filled = 0;
      let fillBudget = Math.max(100, msgs.length * MAX_FILL_FACTOR, fill?.fillBudget ?? 0);
      /** Reads [expected, end) from the stream into `ready`; false when it had to stop (waitingFor). */
      const fillBefore = async (end: number): Promise<boolean> => {
        for (let s = Math.max(expected, await reader.firstSequence()); s < end; s++) {
          if (fillBudget-- <= 0) {
            waitingFor = s;
            return false;
          }
          const stored = await reader.get(s);
          if (!stored) continue; // deleted: a hole that never fills
          const parsed = parseStored(cat, stored);
          if (!parsed) {
            waitingFor = s;
            return false;
          }
          ready.push(parsed);
          filled++;
        }
        return true;
      };
      let stopped = false;
      for (const d of order) {
        const m = d.msg;
        if (m.seq < expected) continue; // the same message twice in one batch
        if (m.seq > expected && !(await fillBefore(m.seq))) {
          stopped = true;
          break;
        }
        ready.push(d);
        expected = m.seq + 1;
      }
      if (!stopped && fill && expected <= fill.fillTo) {
        // An idle heal's fill stops quietly at its budget: the next heal goes on from there.
        const end = Math.min(fill.fillTo + 1, expected + fill.fillBudget);
        if (await fillBefore(end)) expected = end;
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
      const folded = foldBatch(events, loaded);
      // The event index by COPY (one row per event: the cheapest way in, the raw limit's
      // own); a key already there fails it, and the batch is applied again with the upsert.
      if (copyIndex) await copyIndexRows(client, schema, events);
      // A big batch's rows go by COPY into the session's staging tables, and the upserts
      // read them from there (set-based: docs/projector.md "Live apply, sixth pass"): one
      // round trip to make the tables if this session lacks them, one COPY per table.
      // A small batch keeps its two round trips, the rows inline.
      const staging = copyIndex ? new Staging() : undefined;
      const write = writeStatement(
        schema,
        events,
        folded,
        { name, sequence: last },
        { eventIndex: !copyIndex, ...(staging ? { staging } : {}) },
      );
      const stagedTables = staging?.tables() ?? [];
      if (stagedTables.length > 0) {
        await simpleQuery(client, [
          "select set_config('client_min_messages', 'warning', true)",
          ...stagedTables.map((t) => t.create),
        ]);
        for (const t of stagedTables) await copyText(client, t.copy, t.text);
      }
      // Round trip 2: every row, the checkpoint and the commit.
      await simpleQuery(client, [write, "commit"]);
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
      return result({
        deadLettered,
        commits,
        events: events.length,
        changes,
        durations: folded.more.durations,
      });
    }
  }
}

/** The live COPY of the event index met a key already there (23505): the batch is applied again with the upsert. */
class IndexCopyConflict extends Error {
  override readonly name = "IndexCopyConflict";
}

/** COPY of `events`' index rows into `schema`'s event index, in the caller's transaction. */
async function copyIndexRows(client: ClientBase, schema: string, events: readonly SequencedEvent[]) {
  try {
    await copyEventIndex(client, schema, eventIndexCopyText(eventIndexRows(events)));
  } catch (err) {
    if ((err as { code?: string }).code === "23505") throw new IndexCopyConflict(describeError(err));
    throw err;
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
  const seq = m.seq;
  const subject = m.subject;
  let commit: TypedCommit<AnyEvent> | undefined;
  let events: SequencedEvent[] | undefined;
  let error: string | undefined;
  try {
    commit = cat.parseCommit(storableBody(m), { subject });
    events = commit.events.map((event) => ({ event, sequence: seq }));
  } catch (err) {
    error = describeError(err);
  }
  return {
    seq,
    subject,
    msg: m,
    delivered: m,
    // Read only for a commit span (an exporter configured): decoding a message's headers
    // costs as much as checking its commit's envelopes.
    get traceparent() {
      return m.headers?.get(Headers.traceparent);
    },
    ...(commit ? { commit, events } : { error }),
  };
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
  /**
   * Called with the rows of each batch after its transaction committed, and the batch's
   * place in the log: the checkpoint before it (`from`) and after it (`to`). Called for every
   * committed batch, one that wrote no row included, in commit order, so a follower can tell
   * that it saw every batch (api/cluster-cache.ts), with the step durations the batch wrote
   * (not read-model rows of the live stream; the cache's ETA input). Must not throw.
   */
  onCommitted?: (
    changes: readonly Change[],
    range: { readonly from: number; readonly to: number },
    durations: readonly StepDurationRow[],
  ) => void;
  /**
   * How often the projection checks its checkpoint against its consumer's ack floor
   * (default 5 s; 0: never). See `healLostCommits`.
   */
  healEveryMs?: number;
}): Promise<RunningProjection> {
  const { nats, target, durable, logger } = opts;
  const status: RunningProjection["status"] = {
    running: false,
    checkpoint: await resetConsumer(nats, target, durable, opts.batchSize, logger),
  };
  const reader = streamReader(nats.jsm);
  const announcements = orderedAnnouncements();
  const consumer = await startConsumer({
    js: nats.js,
    jsm: nats.jsm,
    stream: Streams.events,
    durable,
    filterSubject: eventFilter(),
    batchSize: opts.batchSize,
    logger,
    handleBatch: async (msgs, { deadLetter }) => {
      const from = status.checkpoint ?? 0;
      try {
        const outcome = await projectInTransaction(target, msgs, deadLetter, reader);
        status.lastBatchAt = new Date();
        status.checkpoint = outcome.checkpoint;
        eventsApplied.inc({ mode: "live" }, outcome.events);
        checkpointGauge.set(outcome.checkpoint);
        gapsFilled.inc(outcome.filled);
        const last = msgs.at(-1);
        // EVT holds only evt.>, so the last delivery's pending count reaches the head.
        if (last) lagGauge.set(Math.max(0, last.seq + last.info.pending - outcome.checkpoint));
        // Every batch is announced, one with no rows too: a follower checks that each follows
        // the last. A small batch (steady traffic, where the latency is the point) at once; a
        // busy one once it is acked and the next batch is on its way to Postgres: serialising
        // its rows takes milliseconds the next batch's round trips can hide. Waiting for
        // that put the next batch's parse (up to PARSE_SLICE commits) before every
        // announcement: command → read model p99 16 ms of it quiet (docs/benchmarks.md).
        const committed = outcome.changes ?? [];
        const durations = outcome.durations ?? [];
        if (opts.onCommitted) {
          const announce = opts.onCommitted;
          const range = { from, to: outcome.checkpoint };
          announcements.inOrder(committed.length <= ANNOUNCE_AT_ONCE_MAX_ROWS, () => {
            // Never fails the batch it follows (committed, about to be acked): a closed
            // connection's publish throws, and a follower notices the missing batch.
            try {
              announce(committed, range, durations);
            } catch (err) {
              logger.warn({ err: describeError(err) }, "a batch's change announcement failed");
            }
          });
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
  const healing = healLostCommits({
    nats,
    target,
    durable,
    reader,
    everyMs: opts.healEveryMs ?? DEFAULT_HEAL_EVERY_MS,
    budget: Math.max(100, opts.batchSize),
    logger,
    onHealed: (outcome, from) => {
      status.checkpoint = outcome.checkpoint;
      checkpointGauge.set(outcome.checkpoint);
      gapsFilled.inc(outcome.filled);
      eventsApplied.inc({ mode: "live" }, outcome.events);
      opts.onCommitted?.(outcome.changes ?? [], { from, to: outcome.checkpoint }, outcome.durations ?? []);
    },
  });
  return {
    consumer,
    status,
    stop: async () => {
      status.running = false;
      await healing.stop();
      await consumer.stop();
    },
  };
}

export const DEFAULT_HEAL_EVERY_MS = 5_000;

/** A batch that wrote at most this many rows is announced at once (one announcement's worth). */
export const ANNOUNCE_AT_ONCE_MAX_ROWS = 200;

/**
 * Runs announcements in commit order, each either at once or deferred (`setImmediate`, first
 * in, first out): one is run at once only when none is deferred still, so a small batch never
 * overtakes a busy one before it.
 */
export function orderedAnnouncements(): { inOrder(now: boolean, announce: () => void): void } {
  let deferred = 0;
  return {
    inOrder(now, announce) {
      if (now && deferred === 0) return announce();
      deferred++;
      setImmediate(() => {
        deferred--;
        announce();
      });
    },
  };
}

/**
 * Heals a commit Postgres lost after its messages were acked, when nothing follows it.
 *
 * Batches commit with `synchronous_commit = off`, so a Postgres crash can lose the last
 * commits (rows and checkpoint together) after the runner acked their messages. The
 * next batch sees the gap and fills it from the stream; but when no next batch comes
 * (the bus is quiet), nothing would, and the read models would stay behind the log
 * indefinitely. A batch is acked only after its transaction committed, so the durable
 * consumer's ack floor never passes the checkpoint unless a commit was lost: every
 * `everyMs`, the ack floor is read first, then the checkpoint, and if the checkpoint is
 * below the floor the missing sequences are read from the stream and applied (at most
 * `budget` per transaction), like a batch's gap fill. It is a batch's transaction (apply
 * lock, checkpoint), so it is harmless beside a batch in flight or a second replica.
 */
function healLostCommits(opts: {
  nats: Nats;
  target: ProjectionTarget;
  durable: string;
  reader: StreamReader;
  everyMs: number;
  budget: number;
  logger: RunnerLogger;
  /** `from`: the checkpoint the heal started from. */
  onHealed: (outcome: BatchOutcome, from: number) => void;
}): { stop(): Promise<void> } {
  if (opts.everyMs <= 0) return { stop: async () => {} };
  let inFlight: Promise<void> | undefined;
  let stopped = false;
  const noDeadLetters: DeadLetter = async () => {
    throw new Error("a heal applies only what it reads from the stream: nothing to dead-letter");
  };
  const look = async () => {
    // The floor before the checkpoint: whatever the floor covers was committed (or lost) by then.
    const acked = (await opts.nats.jsm.consumers.info(Streams.events, opts.durable)).ack_floor.stream_seq;
    const checkpoint = await readCheckpoint(opts.target.db, opts.target.schema, opts.target.name);
    if (checkpoint >= acked || stopped) return;
    const outcome = await projectInTransaction(opts.target, [], noDeadLetters, opts.reader, {
      fillTo: acked,
      fillBudget: opts.budget,
    });
    if (outcome.filled > 0) {
      opts.logger.warn(
        { from: checkpoint + 1, to: outcome.checkpoint, acked, filled: outcome.filled },
        "acked messages were missing from the read models (a commit lost in a Postgres crash): filled from the stream",
      );
      opts.onHealed(outcome, checkpoint);
    }
  };
  const timer = setInterval(() => {
    if (inFlight || stopped) return;
    inFlight = look()
      .catch((err) =>
        opts.logger.warn({ err: describeError(err) }, "checking the checkpoint against the ack floor failed"),
      )
      .finally(() => (inFlight = undefined));
  }, opts.everyMs);
  timer.unref();
  return {
    stop: async () => {
      stopped = true;
      clearInterval(timer);
      await inFlight;
    },
  };
}
