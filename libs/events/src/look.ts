import type { AggregateRef } from "./envelope.ts";
import type { EventStore, RecordedEvent } from "./event-store.ts";

type Msg = { type: string; data: unknown };

/** What a look saw: a fold of the aggregate's history up to `lastSequence`. */
export interface Seen<V> {
  readonly view: V;
  /** Stream sequence of the last commit folded (0: the aggregate has none). */
  readonly lastSequence: number;
}

/**
 * A service's view of another service's aggregate (a cluster's status, its pools), kept
 * folded and brought up to date by folding only the commits after the last one it saw —
 * never the whole history again. A look costs one read of the subject's last sequence
 * when nothing changed (none when `atLeastSequence` is already folded in), plus the new
 * commits when something did.
 *
 * @example
 * const status = createLook({ store, empty: () => undefined, evolve: clusterTransitionOr });
 * (await status.of({ type: "cluster", id: "demo-1" })).view // "Ready"
 */
export function createLook<V, E extends Msg = Msg>(o: {
  store: Pick<EventStore<E>, "lastSequence" | "load">;
  /** The view of an aggregate with no events. */
  empty: () => V;
  /** Folds one event into the view (pure). */
  evolve: (view: V, event: RecordedEvent<E>) => V;
  /** Aggregates kept folded (least recently looked at go first). Default 10,000. */
  keep?: number;
}) {
  const keep = o.keep ?? 10_000;
  const seen = new Map<string, Seen<V>>();
  const remember = (k: string, entry: Seen<V>): Seen<V> => {
    // A slower read must not replace a fresher view.
    const current = seen.get(k);
    if (current && current.lastSequence > entry.lastSequence) return current;
    seen.delete(k);
    seen.set(k, entry);
    if (seen.size > keep) seen.delete(seen.keys().next().value as string);
    return entry;
  };
  return {
    /**
     * The view as the log has it now, or — with `atLeastSequence` — at least that fresh
     * (a reactor passes the commit it reacts to: a view already past it needs no read).
     */
    async of(target: AggregateRef, atLeastSequence?: number): Promise<Seen<V>> {
      const k = `${target.type}.${target.id}`;
      const cached = seen.get(k);
      if (cached && atLeastSequence !== undefined && cached.lastSequence >= atLeastSequence)
        return remember(k, cached);
      const last = await o.store.lastSequence(target);
      if (cached && cached.lastSequence === last) return remember(k, cached);
      // Only the commits after what was folded; from the start when nothing was, or when
      // the log is behind the view (a stream restored from an older backup).
      const from = cached && cached.lastSequence < last ? cached : undefined;
      const rest = await o.store.load(target, { afterSequence: from?.lastSequence ?? 0 });
      const view = rest.events.reduce(o.evolve, from?.view ?? o.empty());
      return remember(k, { view, lastSequence: rest.lastSequence });
    },
    /** Aggregates currently kept (for tests and metrics). */
    get size(): number {
      return seen.size;
    },
  };
}

export type Look<V> = ReturnType<typeof createLook<V>>;
