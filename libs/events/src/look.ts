import type { AggregateRef } from "./envelope.ts";
import type { EventStore, RecordedEvent } from "./event-store.ts";
import { Flights } from "./flights.ts";

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
 * Looks at one aggregate that overlap share one read (single flight): the events of one
 * commit are handled side by side, and 50 nodes registered in one kube commit each looked
 * at their cluster's pools at once — 50 loads of the cluster's whole history, each folded
 * (bench/install at 500 nodes, docs/node-ops.md). A look joins a read in flight when that
 * read reaches at least what the look needs: its `atLeastSequence`, or the subject's last
 * sequence as the look read it (the read in flight loads to the subject's end from a last
 * sequence no older, so it is as fresh as "the log now" for this caller).
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
  /**
   * Optional: folds many events at once; must give what `events.reduce(evolve, view)`
   * gives and leave `view` as it was (as a decider's `evolveAll`: a view with a map per
   * instance copied it once per event, O(n²) for a commit of 500 running instances).
   */
  evolveAll?: (view: V, events: readonly RecordedEvent<E>[]) => V;
  /** Aggregates kept folded (least recently looked at go first). Default 10,000. */
  keep?: number;
}) {
  const keep = o.keep ?? 10_000;
  const seen = new Map<string, Seen<V>>();
  /** The read in flight per aggregate, marked with the last sequence it set out from (it reaches at least that). */
  const flights = new Flights<Seen<V>, number>();
  const foldAll = (view: V, events: readonly RecordedEvent<E>[]) =>
    o.evolveAll && events.length > 1 ? o.evolveAll(view, events) : events.reduce(o.evolve, view);
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
      // 1. A read in flight that reaches the sequence asked for serves this look too.
      const early = flights.get(k);
      if (early && atLeastSequence !== undefined && early.mark >= atLeastSequence) return await early.done;
      // 2. The subject's last sequence; the view (perhaps brought up to date meanwhile) when it is there.
      const last = await o.store.lastSequence(target);
      const known = seen.get(k);
      if (known && known.lastSequence === last) return remember(k, known);
      // 3. A read in flight that set out from this last sequence or a later one serves it.
      const flight = flights.get(k);
      if (flight && flight.mark >= last) return await flight.done;
      // 4. Read: only the commits after what was folded; from the start when nothing was, or
      //    when the log is behind the view (a stream restored from an older backup).
      const from = known && known.lastSequence < last ? known : undefined;
      return flights.run(k, last, async () => {
        const rest = await o.store.load(target, { afterSequence: from?.lastSequence ?? 0 });
        return remember(k, {
          view: foldAll(from?.view ?? o.empty(), rest.events),
          lastSequence: rest.lastSequence,
        });
      });
    },
    /** Aggregates currently kept (for tests and metrics). */
    get size(): number {
      return seen.size;
    },
  };
}

export type Look<V> = ReturnType<typeof createLook<V>>;
