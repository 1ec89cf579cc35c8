/**
 * What a heartbeat needs to know of a session — whose it is and what state it is in —
 * held in memory, so that a heartbeat reads no Postgres:
 *
 *  1. filled at start with every live session (one query);
 *  2. kept fresh at once by the read-model changes every replica receives after each
 *     committed batch (`cairn.projector.changes.<durable>`, fed into the in-process
 *     `ChangeFeed`);
 *  3. and, since that fan-out is core NATS (a change can be lost across a reconnect), by
 *     asking the read model every `pollMs` (2 s) for the rows changed since it last asked
 *     (`last_sequence` past the last one seen; indexed): one small query, whatever the
 *     number of sessions, and a lost change heals within `pollMs`;
 *  4. a session it does not hold (not live at start, or evicted) is read on first use
 *     (one query; callers asking at the same time share it); an unknown id is remembered
 *     for `absentMs` (1 s), so a storm of heartbeats for an id that does not exist costs
 *     one query a second.
 *
 * A row is replaced only by a later one (its `lastSequence`), so a slow read never
 * overwrites a newer change. Staleness is safe in the directions it can happen: the owner
 * of a session never changes; a session that has just ended may have a heartbeat accepted
 * for a moment (its activity is ignored: only Running sessions are swept); a session just
 * created is 404 until it is projected, as every read of it is.
 */
import type { SessionStatus } from "@cairn/events";
import type { Change, ChangeFeed } from "../changes.ts";

export interface SessionFacts {
  readonly user: string;
  readonly state: SessionStatus;
  /** The stream sequence of the last event folded into the row: the later row wins. */
  readonly lastSequence: number;
}

export interface SessionDirectory {
  /** The session's facts; `undefined`: no such session (or not projected yet). Synchronous when known. */
  lookup(id: string): SessionFacts | undefined | Promise<SessionFacts | undefined>;
  stop(): void;
}

/** The directory's port to the read model. */
export interface SessionFactsSource {
  /** One session's facts. */
  read(id: string): Promise<SessionFacts | undefined>;
  /** The live sessions (at most `limit`), and the last sequence folded into any row then. */
  live(limit: number): Promise<{ rows: Iterable<[string, SessionFacts]>; high: number }>;
  /** The sessions changed after sequence `after`, in sequence order, at most `limit`. */
  changedSince(after: number, limit: number): Promise<Iterable<[string, SessionFacts]>>;
}

interface Entry {
  facts: SessionFacts | undefined;
  /** When the read model was last asked for it alone (an absent id is asked again after `absentMs`). */
  readAt: number;
  reading: Promise<SessionFacts | undefined> | undefined;
}

const PAGE = 5_000;

export function sessionDirectory(o: {
  changes: ChangeFeed;
  source: SessionFactsSource;
  now?: () => number;
  pollMs?: number;
  absentMs?: number;
  /** Sessions held at most; the least recently filled go first. Default 500 000. */
  capacity?: number;
}): SessionDirectory {
  const now = o.now ?? Date.now;
  const pollMs = o.pollMs ?? 2_000;
  const absentMs = o.absentMs ?? 1_000;
  const capacity = o.capacity ?? 500_000;
  const entries = new Map<string, Entry>();

  const later = (a: SessionFacts | undefined, b: SessionFacts | undefined) =>
    !a ? b : !b ? a : b.lastSequence >= a.lastSequence ? b : a;
  /** Takes `facts` unless what it holds is later. */
  const learn = (id: string, facts: SessionFacts) => {
    const e = entries.get(id);
    if (e) {
      e.facts = later(e.facts, facts);
      return;
    }
    entries.set(id, { facts, readAt: now(), reading: undefined });
    // The map's order is the order of filling: the oldest goes first.
    if (entries.size > capacity) entries.delete(entries.keys().next().value!);
  };

  const unsubscribe = o.changes.subscribe((c: Change) => {
    if (c.resource === "sessions")
      learn(c.id, { user: c.row.user, state: c.row.state, lastSequence: c.row.lastSequence });
  });

  // The last sequence the read model was asked past; undefined until the start's query.
  let high: number | undefined;
  let stopped = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const poll = async () => {
    try {
      if (high === undefined) {
        const start = await o.source.live(capacity);
        for (const [id, facts] of start.rows) learn(id, facts);
        high = start.high;
      }
      for (;;) {
        let n = 0;
        for (const [id, facts] of await o.source.changedSince(high, PAGE)) {
          learn(id, facts);
          if (facts.lastSequence > high) high = facts.lastSequence;
          n++;
        }
        if (n < PAGE) break;
      }
    } catch {
      // Postgres away: asked again at the next poll; the change feed keeps it fresh meanwhile.
    }
    if (!stopped) {
      timer = setTimeout(poll, pollMs);
      timer.unref();
    }
  };
  void poll();

  const readOne = (id: string, e: Entry): Promise<SessionFacts | undefined> => {
    e.reading ??= o.source
      .read(id)
      .then((facts) => {
        e.facts = later(e.facts, facts);
        e.readAt = now();
        return e.facts;
      })
      .finally(() => {
        e.reading = undefined;
      });
    return e.reading;
  };

  return {
    lookup(id) {
      let e = entries.get(id);
      if (e?.facts) return e.facts;
      if (!e) {
        e = { facts: undefined, readAt: Number.NEGATIVE_INFINITY, reading: undefined };
        entries.set(id, e);
        if (entries.size > capacity) entries.delete(entries.keys().next().value!);
      }
      if (e.reading) return e.reading;
      return now() - e.readAt <= absentMs ? undefined : readOne(id, e);
    },
    stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      unsubscribe();
    },
  };
}
