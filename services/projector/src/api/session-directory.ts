/**
 * What a heartbeat needs to know of a session — whose it is and what state it is in —
 * held in memory, so that a heartbeat reads no Postgres:
 *
 *  1. filled at start with every live session (one query), and on first use of any other
 *     from the read model (one query per session; callers asking at the same time share it);
 *  2. kept fresh by the read-model changes every replica receives after each committed
 *     batch (`cairn.projector.changes.<durable>`, fed into the in-process `ChangeFeed`); a
 *     row is replaced only by a later one (its `lastSequence`), so a slow read never
 *     overwrites a newer change;
 *  3. read again in the background once older than `refreshMs` (30 s): the fan-out is core
 *     NATS, and a change lost in a reconnect heals within that;
 *  4. an unknown session is remembered for `absentMs` (1 s), so a storm of heartbeats for
 *     an id that does not exist costs one query a second, and a session just projected is
 *     known within that at worst (the change usually announces it first).
 *
 * Staleness is safe in the directions it can happen: the owner of a session never
 * changes; a session that has just ended may have a heartbeat accepted for a moment
 * (its activity is ignored: only Running sessions are swept); a session just created is
 * 404 until it is projected, as every read of it is.
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

interface Entry {
  facts: SessionFacts | undefined;
  /** When the read model was last asked (the change feed keeps it fresh in between). */
  checkedAt: number;
  reading: Promise<SessionFacts | undefined> | undefined;
}

export function sessionDirectory(o: {
  changes: ChangeFeed;
  read: (id: string) => Promise<SessionFacts | undefined>;
  /** The live sessions, at most `limit`, read once at start (a restart does not read them one by one). */
  prefill?: (limit: number) => Promise<Iterable<[string, SessionFacts]>>;
  now?: () => number;
  refreshMs?: number;
  absentMs?: number;
  /** Sessions held at most; the least recently filled go first. Default 500 000. */
  capacity?: number;
}): SessionDirectory {
  const now = o.now ?? Date.now;
  const refreshMs = o.refreshMs ?? 30_000;
  const absentMs = o.absentMs ?? 1_000;
  const capacity = o.capacity ?? 500_000;
  const entries = new Map<string, Entry>();

  const later = (a: SessionFacts | undefined, b: SessionFacts | undefined) =>
    !a ? b : !b ? a : b.lastSequence >= a.lastSequence ? b : a;
  const put = (id: string, e: Entry) => {
    // Re-inserted at the end: the map's order is the order of filling.
    entries.delete(id);
    entries.set(id, e);
    if (entries.size > capacity) entries.delete(entries.keys().next().value!);
  };

  const unsubscribe = o.changes.subscribe((c: Change) => {
    if (c.resource !== "sessions") return;
    const e = entries.get(c.id);
    const facts = { user: c.row.user, state: c.row.state, lastSequence: c.row.lastSequence };
    if (e) e.facts = later(e.facts, facts);
    else put(c.id, { facts, checkedAt: now(), reading: undefined });
  });

  // At start: the live sessions in one query. A lookup meanwhile reads on its own; a
  // row already there from a change or a read is kept when it is as late.
  o.prefill?.(capacity).then(
    (rows) => {
      for (const [id, facts] of rows) {
        const e = entries.get(id);
        if (e) e.facts = later(e.facts, facts);
        else put(id, { facts, checkedAt: now(), reading: undefined });
      }
    },
    () => {}, // Postgres away at start: each session is read on first use instead.
  );

  const refresh = (id: string, e: Entry): Promise<SessionFacts | undefined> => {
    e.reading ??= o
      .read(id)
      .then((facts) => {
        e.facts = later(e.facts, facts);
        e.checkedAt = now();
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
      if (!e) {
        e = { facts: undefined, checkedAt: Number.NEGATIVE_INFINITY, reading: undefined };
        put(id, e);
        return refresh(id, e);
      }
      const age = now() - e.checkedAt;
      if (e.facts) {
        // Known: answer now; re-read behind it when it is old (a lost change heals).
        if (age > refreshMs && !e.reading) refresh(id, e).catch(() => {});
        return e.facts;
      }
      if (age <= absentMs) return e.reading ?? undefined;
      return refresh(id, e);
    },
    stop: unsubscribe,
  };
}
