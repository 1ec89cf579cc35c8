/**
 * Every session's state in this process's memory, for the idle sweep and for answering
 * heartbeats: an ordered consumer over `evt.session.*` from the first commit (rebuilt on
 * every start) that folds each session with the decider's own `evolve`, so the index and
 * the aggregate cannot disagree on what a state means. Each replica keeps its own (a
 * durable consumer would share the events out among replicas). It lags the log by the
 * time a commit takes to arrive: the sweep only proposes, the session's decider decides
 * on the log's state.
 */
import {
  catalogue,
  type EventOfAggregate,
  isQuotaLedgerId,
  type Nats,
  openOrderedConsumer,
  SESSION_FINAL_STATES,
  Streams,
} from "@cairn/events";
import type { ConsumerMessages } from "@nats-io/jetstream";
import { initialSessionState, isLive, type SessionState, sessionDecider } from "./decider.ts";

export interface IndexedSession {
  readonly state: SessionState;
  /** The session's lifecycle trace (its create's), for the sweep's span links. */
  readonly traceparent: string | undefined;
  readonly version: number;
}

export interface SessionIndex {
  get(sessionId: string): IndexedSession | undefined;
  /** Live sessions (neither Terminated nor Failed). */
  live(): IterableIterator<[string, IndexedSession]>;
  size(): number;
  /** Resolves once the history up to the start is folded in. */
  readonly caughtUp: Promise<void>;
  stop(): Promise<void>;
}

/**
 * What the index keeps of a session that is over (Terminated, Failed: nothing gets it out,
 * and ids are never reused): its status alone, one shared entry per final status, so a
 * late heartbeat is still answered 409 (not 404) and a cluster's deletion still skips it,
 * while its template, user, times and trace are forgotten. Nothing else reads an ended
 * session here: the sweep and the heartbeats' start walk the live ones, the sweep's trace
 * lookup is for live ones, and every decision is the aggregate's, read from the log.
 */
const ENDED: Readonly<Record<string, IndexedSession>> = Object.fromEntries(
  SESSION_FINAL_STATES.map((status) => [
    status,
    Object.freeze({
      state: Object.freeze({ ...initialSessionState(), status }),
      traceparent: undefined,
      version: 0,
    }),
  ]),
);

export async function startSessionIndex(nats: Nats): Promise<SessionIndex> {
  const sessions = new Map<string, IndexedSession>();
  const live = new Map<string, IndexedSession>();
  // Asked again when a cluster leaves the create unanswered (ask-again.ts): a service starting
  // while a NATS server is away must not fail its start on it.
  const consumer = await openOrderedConsumer(nats.js, Streams.events, { filter_subjects: "evt.session.*" });
  const info = await consumer.info(true);
  let markCaughtUp!: () => void;
  const caughtUp = new Promise<void>((r) => (markCaughtUp = r));
  if (info.num_pending === 0) markCaughtUp();
  const messages: ConsumerMessages = await consumer.consume({ max_messages: 512 });
  let stopped = false;

  const apply = (e: EventOfAggregate<"session">) => {
    const id = e.aggregate.id;
    const was = sessions.get(id);
    const next: IndexedSession = {
      state: sessionDecider.evolve(was?.state ?? sessionDecider.initialState(), e),
      traceparent: was?.traceparent ?? e.meta.traceparent,
      version: e.position,
    };
    if (isLive(next.state.status)) {
      sessions.set(id, next);
      live.set(id, next);
    } else {
      sessions.set(id, (next.state.status && ENDED[next.state.status]) || next);
      live.delete(id);
    }
  };

  const loop = (async () => {
    for await (const m of messages) {
      try {
        const commit = catalogue.parseCommitTrusted(m.json());
        if (!isQuotaLedgerId(commit.aggregate.id))
          for (const e of commit.events) apply(e as EventOfAggregate<"session">);
      } catch {
        // Not a commit: every load skips it too (the reactor dead-letters it).
      }
      if (m.info.pending === 0) markCaughtUp();
    }
  })();

  return {
    get: (id) => sessions.get(id),
    live: () => live.entries(),
    size: () => sessions.size,
    caughtUp,
    stop: async () => {
      if (stopped) return;
      stopped = true;
      messages.stop();
      await loop.catch(() => {});
      await consumer.delete().catch(() => {});
    },
  };
}
