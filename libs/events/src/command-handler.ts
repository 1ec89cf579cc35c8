import { context, trace } from "@opentelemetry/api";
import type { Catalogue, ParsedCommand } from "./catalogue/catalogue.ts";
import type { RejectionCode } from "./catalogue/common.ts";
import { type Decider, evolveAll, isRejection } from "./decider.ts";
import { fullJitterBackoff } from "./delays.ts";
import type {
  AggregateRef,
  CommandEnvelope,
  EventEnvelope,
  RawCommand,
  RawEventEnvelope,
} from "./envelope.ts";
import { ConflictRetriesExhaustedError, isConcurrencyConflict } from "./errors.ts";
import { commitIdFor, type EventStore } from "./event-store.ts";
import { Flights } from "./flights.ts";
import { newId } from "./ids.ts";
import { RecentCommits, type SnapshotStore } from "./snapshots.ts";
import {
  asNewWork,
  commandWorkAttributes,
  contextPropagates,
  linkTo,
  traceIdOf,
  traceparentOf,
} from "./trace.ts";

type Msg = { type: string; data: unknown };

export type HandleOutcome =
  | { readonly status: "accepted"; readonly sequence: number; readonly events: readonly RawEventEnvelope[] }
  | {
      readonly status: "rejected";
      readonly sequence: number;
      readonly code: RejectionCode;
      readonly reason: string;
    }
  /** The command was handled before: nothing was appended. */
  | { readonly status: "duplicate" }
  /** The decision produced no events (the command was already satisfied). */
  | { readonly status: "unchanged" };

interface Cached<S> {
  state: S;
  lastSequence: number;
  /** The id of the commit at `lastSequence` (undefined: none, or unreadable): what a snapshot names. */
  lastCommitId: string | undefined;
  version: number;
  /** The aggregate's recent commits (bounded): idempotency beyond the dedupe window. */
  commitIds: RecentCommits;
  /** The trace of the command that created the aggregate: later commands link to it. */
  lifecycleTraceparent: string | undefined;
  /** Version (event count) at the latest snapshot this process read or wrote for the aggregate (0: none). */
  snapshotVersion: number;
}

/** The wait before the n-th retry after a conflict: in [0, min(50, 2^(n-1))] ms. */
const conflictBackoff = fullJitterBackoff(1, 50);
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Default: a snapshot is written behind every this many events of an aggregate (a commit holds one or a few). */
export const SNAPSHOT_EVERY = 100;

/**
 * A service's default for `snapshotCoalesceMs` (serveAggregate): the snapshots due within
 * this long of the first are one write, of the latest state. A 500-node cluster's creation
 * wrote five snapshots of its whole 500-slot state (~125 kB each) in its first half second.
 */
export const SNAPSHOT_COALESCE_MS = 1_000;

export interface CommandHandlerOptions<C extends Msg, E extends Msg, S, O = undefined> {
  decider: Decider<C, E, S, O>;
  store: EventStore;
  catalogue: Catalogue;
  /** Injected so tests can fix time. */
  clock?: () => Date;
  /** Conflicts with other writers retried before giving up (transient). */
  maxConflictRetries?: number;
  /** Aggregates kept folded in memory; a conflict reloads from the log. */
  cacheSize?: number;
  /**
   * What a command's decision must see beyond its aggregate (a port: I/O), read just
   * before deciding — after the aggregate is brought up to date, before every attempt —
   * and handed to `decide` as `context.observed`. Undefined for commands that need
   * nothing (it is asked about every command, so it answers those at once).
   */
  observe?: (command: CommandEnvelope<C>, target: AggregateRef) => Promise<O | undefined>;
  /**
   * Where snapshots are read and written, for a decider that opts in (`decider.snapshot`).
   * A cold load starts from the aggregate's snapshot once the log confirms the commit it
   * names, and folds only the commits after it; otherwise from scratch.
   */
  snapshots?: SnapshotStore;
  /** A snapshot is written behind every this many events (default {@link SNAPSHOT_EVERY}). */
  snapshotEvery?: number;
  /** Told when a snapshot could not be read or written (never fatal: the log is the record). */
  onSnapshotError?: (err: unknown, target: AggregateRef) => void;
  /**
   * When a snapshot falls due, wait this long and write the aggregate's state as it is
   * then: the snapshots due meanwhile are that one write (0, the default: each at once).
   * One not written yet when the process stops or dies is simply not written: a snapshot
   * is a shortcut, and the next one falls due `snapshotEvery` events on.
   */
  snapshotCoalesceMs?: number;
}

/**
 * handleCommand, as numbered steps (emmett's handleCommand):
 *  1. Aggregate the target's stream (from the cache, else the log).
 *  2. Return early when this command's commit is already in the log.
 *  3. Decide; a rejection becomes a `<aggregate>.rejected` event.
 *  4. Append with the expected last sequence.
 *  5. On a conflict, reload and go to 2 (bounded); never double-append.
 */
export class CommandHandler<C extends Msg, E extends Msg, S, O = undefined> {
  readonly #o: Required<
    Omit<CommandHandlerOptions<C, E, S, O>, "clock" | "observe" | "snapshots" | "onSnapshotError">
  > & {
    clock: () => Date;
    observe?: CommandHandlerOptions<C, E, S, O>["observe"];
    snapshots?: SnapshotStore;
    onSnapshotError?: CommandHandlerOptions<C, E, S, O>["onSnapshotError"];
  };
  readonly #cache = new Map<string, Cached<S>>();
  /**
   * The load in flight per aggregate (single flight). The events of one commit are handled
   * side by side: the 50 nodes of one kube commit each read their cluster's kube facts at
   * once, and each went to the log — 50 cold loads of the same history, or 50 reads of the
   * same new commits (bench/install at 500 nodes, docs/benchmarks.md "grow500"). A read that
   * finds a load in flight waits for it and keeps its result when it is as fresh as the read
   * needs; otherwise it loads again.
   */
  readonly #loading = new Flights<Cached<S>>();
  /** Decisions on one aggregate in this process run one after another (the tail of each queue). */
  readonly #queues = new Map<string, Promise<unknown>>();
  /** Counters for metrics: conflicts met (each one a reload and a second decision). */
  readonly stats = {
    handled: 0,
    conflicts: 0,
    duplicates: 0,
    rejected: 0,
    staleReads: 0,
    /** Cold loads that started from a snapshot. */
    snapshotsUsed: 0,
    /** Snapshots found but not used (another schema version, or not confirmed by the log). */
    snapshotsIgnored: 0,
    snapshotsWritten: 0,
    snapshotErrors: 0,
    /** Commands decided on a guess that their aggregate is new (not cached, no look at the log). */
    guessedNew: 0,
    /** Of those, the ones the log refused (the aggregate had commits): decided again on its state. */
    guessedNewWrong: 0,
  };

  constructor(options: CommandHandlerOptions<C, E, S, O>) {
    this.#o = {
      clock: () => new Date(),
      maxConflictRetries: 8,
      cacheSize: 10_000,
      snapshotEvery: SNAPSHOT_EVERY,
      snapshotCoalesceMs: 0,
      ...options,
    };
  }

  get aggregate(): string {
    return this.#o.decider.aggregate;
  }

  /**
   * Handles one parsed command. Never throws for business outcomes; throws for I/O.
   * `atLeastSequence`: decide on a state that includes at least this commit (a reactor
   * passes the commit it reacts to), since a decision that appends nothing is never
   * checked against the log by optimistic concurrency.
   */
  async handle(parsed: ParsedCommand, opts: { atLeastSequence?: number } = {}): Promise<HandleOutcome> {
    // No context manager (no telemetry set up): a context given to `context.with` is never
    // seen again, so the work attributes and links below would be built for nobody.
    if (!contextPropagates()) return await this.#serially(parsed.target, () => this.#handle(parsed, opts));
    // What it writes (and any span under it) names this command, not the event that caused it.
    const work = asNewWork(
      commandWorkAttributes({
        target: parsed.target,
        commandId: parsed.command.id,
        commandType: parsed.command.type,
        correlationId: parsed.command.meta.correlationId,
      }),
    );
    // The span handling it (the consumer's) links to the lifecycles the command names.
    const links = (parsed.command.meta.links ?? []).flatMap(linkTo);
    if (links.length > 0) trace.getActiveSpan()?.addLinks(links);
    return await context.with(work, () => this.#serially(parsed.target, () => this.#handle(parsed, opts)));
  }

  async #handle(parsed: ParsedCommand, opts: { atLeastSequence?: number }): Promise<HandleOutcome> {
    const command = parsed.command as CommandEnvelope<C>;
    if (opts.atLeastSequence !== undefined)
      await this.read(parsed.target, { atLeastSequence: opts.atLeastSequence });
    const observe = this.#o.observe;
    return await this.#withRetries(
      parsed.target,
      command.id,
      (agg, ctx, observed) => {
        const decision = this.#o.decider.decide(command, agg.state, { ...ctx, observed });
        if (isRejection(decision)) return { rejection: decision.rejected };
        return { events: decision };
      },
      command,
      observe ? () => observe(command, parsed.target) : undefined,
    );
  }

  /**
   * The aggregate's state. With `atLeastSequence` (a reactor passes the sequence of the
   * commit it reacts to), at least that fresh: the cache serves when it is. Without it,
   * as the log has it now: the cached state is checked against the subject's last
   * sequence (one cheap look), since another replica may have written since — a process
   * is never the only writer.
   */
  async read(
    target: AggregateRef,
    opts: { atLeastSequence?: number } = {},
  ): Promise<{ state: S; version: number; lastSequence: number; lifecycleTraceparent: string | undefined }> {
    let agg = await this.#aggregate(target, false);
    if (opts.atLeastSequence !== undefined) {
      if (agg.lastSequence < opts.atLeastSequence)
        agg = await this.#aggregate(target, true, opts.atLeastSequence);
    } else {
      const last = await this.#o.store.lastSequence(target);
      if (last !== agg.lastSequence) {
        this.stats.staleReads++;
        agg = await this.#aggregate(target, true, last);
      }
    }
    return {
      state: agg.state,
      version: agg.version,
      lastSequence: agg.lastSequence,
      // The trace of the aggregate's first event: a reaction to a fact from elsewhere continues it.
      lifecycleTraceparent: agg.lifecycleTraceparent,
    };
  }

  /** Records a refusal of a command that could not be parsed but whose target is known. */
  async rejectUnreadable(input: {
    target: AggregateRef;
    commandId: string;
    commandType: string;
    reason: string;
    meta?: RawCommand["meta"];
  }): Promise<HandleOutcome> {
    const command: RawCommand = {
      id: input.commandId,
      type: input.commandType,
      data: {},
      meta: input.meta ?? { actor: "anonymous" },
    };
    return await this.#serially(input.target, () =>
      this.#withRetries(
        input.target,
        input.commandId,
        () => ({ rejection: { code: "invalid" as const, reason: input.reason } }),
        command,
      ),
    );
  }

  /** Runs `f` after every earlier decision on the same aggregate in this process. */
  async #serially<T>(target: AggregateRef, f: () => Promise<T>): Promise<T> {
    const k = key(target);
    const before = this.#queues.get(k);
    // Nothing before it (the usual case): it starts now rather than a turn of promises later.
    const run = before ? before.then(f, f) : f();
    const tail = run.catch(() => {});
    this.#queues.set(k, tail);
    try {
      return await run;
    } finally {
      if (this.#queues.get(k) === tail) this.#queues.delete(k);
    }
  }

  async #withRetries(
    target: AggregateRef,
    commandId: string,
    decide: (
      agg: Cached<S>,
      ctx: { now: Date; version: number },
      observed: O | undefined,
    ) => { events: readonly E[] } | { rejection: { code: RejectionCode; reason: string } },
    command: RawCommand,
    observe?: () => Promise<O | undefined>,
  ): Promise<HandleOutcome> {
    const commitId = commitIdFor(commandId, target);
    // Whether the first attempt may decide on a new aggregate when none is cached (below).
    let mayGuess = true;
    for (let attempt = 0; attempt <= this.#o.maxConflictRetries; attempt++) {
      // 1. aggregate the stream (a cached one without waiting for anything). Not cached:
      //    decided as a new aggregate, with no look at the log first — the append says
      //    "no commit on this subject yet" (expected sequence 0), so the log itself checks
      //    the guess: an aggregate that has commits refuses it, and the decision is made
      //    again on what the log holds. A new aggregate (every create, and every command
      //    naming one that does not exist) saves a JetStream API round trip; a cold one
      //    that exists costs one refused publish more, and `observe` is asked again, as
      //    after a conflict. Not while a load of it is under way.
      let agg = attempt === 0 ? this.#cached(target) : undefined;
      const guessed = agg === undefined && mayGuess && !this.#loading.get(key(target));
      mayGuess = false;
      if (guessed) {
        this.stats.guessedNew++;
        agg = this.#initial();
      }
      agg ??= await this.#aggregate(target, attempt > 0);
      // 2. already handled?
      if (agg.commitIds.has(commitId)) {
        this.stats.duplicates++;
        return { status: "duplicate" };
      }
      // 3. decide, on what the world looks like now (each attempt looks again: a
      //    conflict means time passed)
      const observed = observe ? await observe() : undefined;
      const now = this.#o.clock();
      const outcome = decide(agg, { now, version: agg.version }, observed);
      const rejected = "rejection" in outcome ? outcome.rejection : undefined;
      const eventData: Msg[] = rejected
        ? [{ type: `${target.type}.rejected`, data: { commandId, commandType: command.type, ...rejected } }]
        : [...(outcome as { events: readonly E[] }).events];
      if (eventData.length === 0) {
        // A decision that appends nothing is never checked by optimistic concurrency: if
        // another process (a replica) wrote since this state was cached, decide again on
        // the log's state rather than lose the command silently.
        if (attempt === 0 && (await this.#o.store.lastSequence(target)) !== agg.lastSequence) {
          this.stats.staleReads++;
          continue;
        }
        return { status: "unchanged" };
      }
      const envelopes = this.#envelopes(target, agg, eventData, command, now);
      // 4. append
      try {
        const res = await this.#o.store.append(
          // checked: #envelopes checked every event's data against the catalogue.
          { aggregate: target, causationId: commandId, events: envelopes, checked: true },
          agg.lastSequence,
        );
        if (res.duplicate) {
          this.stats.duplicates++;
          this.#cache.delete(key(target));
          return { status: "duplicate" };
        }
        this.#remember(target, agg, envelopes, res.sequence, commitId);
        this.stats.handled++;
        if (rejected) this.stats.rejected++;
        return rejected
          ? { status: "rejected", sequence: res.sequence, ...rejected }
          : { status: "accepted", sequence: res.sequence, events: envelopes };
      } catch (err) {
        // 5. conflict: somebody else wrote; read what they wrote (the commits after the
        //    cached state) and decide again
        if (!isConcurrencyConflict(err)) throw err;
        if (guessed) {
          // The aggregate had commits: load it and decide again, as the first attempt
          // (no other writer to wait for, and not a conflict the retries are bounded for).
          this.stats.guessedNewWrong++;
          attempt--;
          continue;
        }
        this.stats.conflicts++;
        // A moment's jittered wait before reading again: the writer that won is likely
        // still writing (a replica working through its own commands, each appended
        // straight from its cache), and a loser that reloads at once keeps arriving
        // between two of its appends — starved until it runs out of retries.
        if (attempt < this.#o.maxConflictRetries) await sleep(conflictBackoff(attempt + 1));
      }
    }
    throw new ConflictRetriesExhaustedError(
      `${target.type} ${target.id}: still conflicting after ${this.#o.maxConflictRetries} retries`,
      { remediation: "too many writers on one aggregate; the command is retried with backoff" },
    );
  }

  #envelopes(
    target: AggregateRef,
    agg: Cached<S>,
    events: Msg[],
    command: RawCommand,
    now: Date,
  ): RawEventEnvelope[] {
    const tp = traceparentOf(context.active()) ?? command.meta.traceparent;
    const lifecycle = agg.lifecycleTraceparent;
    let links: string[] | undefined;
    if (lifecycle || command.meta.links?.length) {
      // The aggregate's own lifecycle and the ones the command names, each once, none on this trace.
      const traceIds = new Set([traceIdOf(tp)]);
      const linked: string[] = [];
      for (const l of [...(lifecycle ? [lifecycle] : []), ...(command.meta.links ?? [])]) {
        if (traceIds.has(traceIdOf(l))) continue;
        traceIds.add(traceIdOf(l));
        linked.push(l);
      }
      if (linked.length > 0) links = linked;
    }
    const time = now.toISOString();
    return events.map((e, i) => ({
      id: newId(),
      type: e.type,
      version: this.#o.catalogue.eventVersion(e.type),
      aggregate: target,
      position: agg.version + i + 1,
      time,
      // Checked here so a decider bug is a clear error, not a poisoned log.
      data: this.#o.catalogue.checkEventData(e.type, e.data),
      meta: {
        commandId: command.id,
        causationId: command.meta.causationId ?? command.id,
        correlationId: command.meta.correlationId ?? command.id,
        actor: command.meta.actor,
        ...(tp ? { traceparent: tp } : {}),
        ...(links ? { links } : {}),
      },
    }));
  }

  /** The cached aggregate, if any, made the most recently used. */
  #cached(target: AggregateRef): Cached<S> | undefined {
    const k = key(target);
    const hit = this.#cache.get(k);
    if (hit) {
      // Refresh recency for the LRU.
      this.#cache.delete(k);
      this.#cache.set(k, hit);
    }
    return hit;
  }

  /**
   * The aggregate, from the cache unless `fresh`; a fresh one at least as new as
   * `atLeastSequence` when given (a load in flight that reached it serves), else loaded now.
   */
  async #aggregate(target: AggregateRef, fresh: boolean, atLeastSequence?: number): Promise<Cached<S>> {
    const k = key(target);
    const hit = fresh ? undefined : this.#cached(target);
    if (hit) return hit;
    const flight = this.#loading.get(k);
    if (flight && (!fresh || atLeastSequence !== undefined)) {
      const joined = await flight.done.catch(() => undefined);
      if (joined && (!fresh || joined.lastSequence >= atLeastSequence!)) return joined;
    }
    return this.#loading.run(k, undefined, () => this.#load(target, k));
  }

  async #load(target: AggregateRef, k: string): Promise<Cached<S>> {
    // A stale cached state (another replica wrote, or a conflict) is brought up to date by
    // folding only the commits after it; a cold one starts from a snapshot, else from scratch.
    const known = this.#cache.get(k);
    let loaded = known ? await this.#after(target, known) : undefined;
    if (!loaded) {
      // Cold: the subject's last commit first (one look). An aggregate with none — every
      // new one, and every command naming one that does not exist — is its initial state,
      // with no snapshot to ask for and nothing to read.
      const last = await this.#o.store.lastSequence(target);
      loaded =
        last === 0
          ? this.#initial()
          : ((await this.#fromSnapshot(target, last)) ?? (await this.#fromScratch(target, last)));
    }
    const newer = this.#cache.get(k);
    if (newer && newer.lastSequence > loaded.lastSequence) return newer;
    this.#put(k, loaded);
    this.#snapshotBehind(target, loaded);
    return loaded;
  }

  /** A cached state with the commits after it folded in; undefined when the log is behind it. */
  async #after(target: AggregateRef, known: Cached<S>): Promise<Cached<S> | undefined> {
    const rest = await this.#o.store.load(target, { afterSequence: known.lastSequence });
    if (rest.lastSequence < known.lastSequence) return undefined;
    if (rest.lastSequence === known.lastSequence) return known;
    const d = this.#o.decider;
    const commitIds = known.commitIds;
    for (const id of rest.commitIds) commitIds.add(id);
    return {
      state: evolveAll(d, known.state, rest.events as unknown as EventEnvelope<E>[]),
      lastSequence: rest.lastSequence,
      lastCommitId: rest.lastCommitId,
      version: known.version + rest.version,
      commitIds,
      lifecycleTraceparent:
        known.lifecycleTraceparent ?? rest.events.find((e) => e.meta.traceparent)?.meta.traceparent,
      snapshotVersion: known.snapshotVersion,
    };
  }

  /** An aggregate with no commit in the log. */
  #initial(): Cached<S> {
    return {
      state: this.#o.decider.initialState(),
      lastSequence: 0,
      lastCommitId: undefined,
      version: 0,
      commitIds: new RecentCommits(),
      lifecycleTraceparent: undefined,
      snapshotVersion: 0,
    };
  }

  /** The whole history folded from the first commit (`last`: the subject's last sequence, just read). */
  async #fromScratch(target: AggregateRef, last: number): Promise<Cached<S>> {
    const history = await this.#o.store.load(target, { lastSequence: last });
    const d = this.#o.decider;
    const commitIds = new RecentCommits();
    for (const id of history.commitIds) commitIds.add(id);
    return {
      state: evolveAll(d, d.initialState(), history.events as unknown as EventEnvelope<E>[]),
      lastSequence: history.lastSequence,
      lastCommitId: history.lastCommitId,
      version: history.version,
      commitIds,
      lifecycleTraceparent: history.events.find((e) => e.meta.traceparent)?.meta.traceparent,
      snapshotVersion: 0,
    };
  }

  /**
   * The aggregate from its snapshot and the commits after it, or undefined to fold from
   * scratch. Steps:
   *  1. Read the snapshot; none, unreadable or another schema version → undefined.
   *  2. Ask the log for the commit at the snapshot's sequence: it must be this aggregate's
   *     and carry the commit id the snapshot names (a stale, forged or foreign snapshot
   *     is never trusted — the log is the record).
   *  3. Fold the commits after that sequence onto the snapshot's state.
   */
  async #fromSnapshot(target: AggregateRef, last: number): Promise<Cached<S> | undefined> {
    const d = this.#o.decider;
    const store = this.#o.snapshots;
    if (!store || !d.snapshot) return undefined;
    try {
      // 1.
      const snap = await store.get(target);
      if (!snap) return undefined;
      if (snap.schema !== d.snapshot.version) {
        this.stats.snapshotsIgnored++;
        return undefined;
      }
      // 2.
      if ((await this.#o.store.commitAt(target, snap.sequence)) !== snap.commitId) {
        this.stats.snapshotsIgnored++;
        return undefined;
      }
      // 3.
      // (A snapshot past the last sequence read means commits came meanwhile: the load asks again.)
      const rest = await this.#o.store.load(target, {
        afterSequence: snap.sequence,
        ...(last >= snap.sequence ? { lastSequence: last } : {}),
      });
      const commitIds = RecentCommits.fromJSON(snap.commits);
      for (const id of rest.commitIds) commitIds.add(id);
      this.stats.snapshotsUsed++;
      return {
        state: evolveAll(d, snap.state as S, rest.events as unknown as EventEnvelope<E>[]),
        lastSequence: rest.lastSequence,
        lastCommitId: rest.lastSequence === snap.sequence ? snap.commitId : rest.lastCommitId,
        version: snap.version + rest.version,
        commitIds,
        lifecycleTraceparent:
          snap.lifecycleTraceparent ?? rest.events.find((e) => e.meta.traceparent)?.meta.traceparent,
        snapshotVersion: snap.version,
      };
    } catch (err) {
      // A snapshot is a shortcut: any trouble with it means the long way, never a failure.
      this.stats.snapshotErrors++;
      this.#o.onSnapshotError?.(err, target);
      return undefined;
    }
  }

  /**
   * Writes the aggregate's snapshot behind the decision (not awaited) when it is
   * `snapshotEvery` events or more past the last one this process knows of. Replicas may
   * both write: any snapshot the log confirms is a correct start, so the last write wins.
   */
  #snapshotBehind(target: AggregateRef, agg: Cached<S>) {
    if (!this.#snapshotDue(agg)) return;
    const wait = this.#o.snapshotCoalesceMs;
    if (wait <= 0) return this.#writeSnapshot(target, agg);
    const k = key(target);
    // One already waiting writes the latest state when it fires: nothing more to do.
    if (this.#snapshotTimers.has(k)) return;
    const timer = setTimeout(() => {
      this.#snapshotTimers.delete(k);
      const latest = this.#cache.get(k);
      if (latest && this.#snapshotDue(latest)) this.#writeSnapshot(target, latest);
    }, wait);
    timer.unref();
    this.#snapshotTimers.set(k, timer);
  }

  /** The snapshots waiting to be written (snapshotCoalesceMs), by aggregate. */
  readonly #snapshotTimers = new Map<string, ReturnType<typeof setTimeout>>();

  /** Drops the snapshots still waiting (a stopping service: the log is the record). */
  cancelSnapshots(): void {
    for (const t of this.#snapshotTimers.values()) clearTimeout(t);
    this.#snapshotTimers.clear();
  }

  #snapshotDue(agg: Cached<S>): boolean {
    const d = this.#o.decider;
    if (!this.#o.snapshots || !d.snapshot || agg.lastCommitId === undefined) return false;
    return agg.version - agg.snapshotVersion >= this.#o.snapshotEvery;
  }

  #writeSnapshot(target: AggregateRef, agg: Cached<S>) {
    const d = this.#o.decider;
    const store = this.#o.snapshots;
    if (!store || !d.snapshot || agg.lastCommitId === undefined) return;
    const before = agg.snapshotVersion;
    agg.snapshotVersion = agg.version;
    const record = {
      schema: d.snapshot.version,
      aggregate: { type: target.type, id: target.id },
      sequence: agg.lastSequence,
      commitId: agg.lastCommitId,
      version: agg.version,
      state: agg.state,
      commits: agg.commitIds.toJSON(),
      ...(agg.lifecycleTraceparent ? { lifecycleTraceparent: agg.lifecycleTraceparent } : {}),
    };
    store.put(record).then(
      () => void this.stats.snapshotsWritten++,
      (err: unknown) => {
        this.stats.snapshotErrors++;
        // Try again at the next commit rather than after another `snapshotEvery`.
        if (agg.snapshotVersion === record.version) agg.snapshotVersion = before;
        this.#o.onSnapshotError?.(err, target);
      },
    );
  }

  #remember(
    target: AggregateRef,
    agg: Cached<S>,
    events: RawEventEnvelope[],
    sequence: number,
    commitId: string,
  ) {
    const d = this.#o.decider;
    const next: Cached<S> = {
      state: evolveAll(d, agg.state, events as unknown as EventEnvelope<E>[]),
      lastSequence: sequence,
      lastCommitId: commitId,
      version: agg.version + events.length,
      commitIds: agg.commitIds.add(commitId),
      lifecycleTraceparent: agg.lifecycleTraceparent ?? events[0]?.meta.traceparent,
      snapshotVersion: agg.snapshotVersion,
    };
    this.#put(key(target), next);
    this.#snapshotBehind(target, next);
  }

  #put(k: string, v: Cached<S>) {
    // A slower load must not replace a newer snapshot (a stale state would make a
    // decision that appends nothing look right).
    const current = this.#cache.get(k);
    if (current && current.lastSequence > v.lastSequence) return;
    this.#cache.delete(k);
    this.#cache.set(k, v);
    if (this.#cache.size > this.#o.cacheSize) {
      const oldest = this.#cache.keys().next().value;
      if (oldest !== undefined) this.#cache.delete(oldest);
    }
  }
}

function key(a: AggregateRef): string {
  return `${a.type}.${a.id}`;
}
