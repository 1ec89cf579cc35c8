/**
 * The `ClusterSessions` port on the event log: the sessions on a cluster are the holders
 * of its session ledger (`clusterSessionsId`, written by the idle-detector: a session
 * takes its place there during admission, before its last look at the cluster, and
 * gives it back once Terminated or Failed), each with the state its own subject folds to
 * (the shared lifecycle, `sessionStatusAfter`).
 *
 * Every answer is as fresh as the log: each subject's last sequence is asked for (one
 * cheap request), and only what came after the fold kept here is read (an incremental
 * load), so a ledger that grew over years of sessions costs its whole history once per
 * process, not once per delete, and another replica's writes are never missed.
 */
import {
  type AggregateRef,
  type AnyEvent,
  type ClusterSessionRef,
  catalogue,
  clusterSessionsId,
  EventStore,
  isLiveSession,
  type Nats,
  type SessionStatus,
  sessionStatusAfter,
} from "@cairn/events";
import type { ClusterSessions } from "../ports.ts";

/** A subject's fold and the last commit it includes. */
interface Folded<T> {
  readonly lastSequence: number;
  readonly value: T;
}

/** Folds kept per kind of subject: enough for every cluster being deleted at once and their sessions. */
const MAX_FOLDS = 10_000;
/** Sessions read at once while looking at one cluster's holders. */
const READ_CONCURRENCY = 16;

/**
 * `ref`'s fold brought up to the log's last commit, through `kept`: only the commits
 * after the kept fold are read.
 */
async function fresh<T>(
  store: EventStore<AnyEvent>,
  kept: Map<string, Folded<T>>,
  ref: AggregateRef,
  initial: T,
  step: (value: T, e: AnyEvent) => T,
): Promise<T> {
  const from = kept.get(ref.id);
  const history = await store.load(ref, from ? { afterSequence: from.lastSequence } : {});
  const value = history.events.reduce(step, from?.value ?? initial);
  kept.delete(ref.id);
  kept.set(ref.id, { lastSequence: Math.max(history.lastSequence, from?.lastSequence ?? 0), value });
  if (kept.size > MAX_FOLDS) kept.delete(kept.keys().next().value!);
  return value;
}

/** The sessions a ledger holds after `e`: a place taken adds one, a place given back removes it. */
function heldAfter(held: ReadonlySet<string>, e: AnyEvent): ReadonlySet<string> {
  if (e.type === "session.quota-taken") return new Set(held).add(e.data.sessionId);
  if (e.type !== "session.quota-released") return held;
  const next = new Set(held);
  next.delete(e.data.sessionId);
  return next;
}

export function createClusterSessions(o: { nats: Nats }): ClusterSessions {
  const store = new EventStore<AnyEvent>({ js: o.nats.js, jsm: o.nats.jsm, catalogue });
  const ledgers = new Map<string, Folded<ReadonlySet<string>>>();
  const sessions = new Map<string, Folded<SessionStatus | undefined>>();

  const holders = (clusterId: string) =>
    fresh(
      store,
      ledgers,
      { type: "session", id: clusterSessionsId(clusterId) },
      new Set<string>(),
      heldAfter,
    );
  const statusOf = (sessionId: string) =>
    fresh<SessionStatus | undefined>(store, sessions, { type: "session", id: sessionId }, undefined, (s, e) =>
      sessionStatusAfter(s, e),
    );

  return {
    async live(clusterId) {
      const ids = [...(await holders(clusterId))].sort();
      const found: ClusterSessionRef[] = [];
      for (let i = 0; i < ids.length; i += READ_CONCURRENCY) {
        const batch = ids.slice(i, i + READ_CONCURRENCY);
        const statuses = await Promise.all(batch.map(statusOf));
        batch.forEach((sessionId, j) => {
          const status = statuses[j];
          // A holder whose end is recorded but whose place is not given back yet is over.
          if (isLiveSession(status)) found.push({ sessionId, status });
        });
      }
      return found;
    },
  };
}
