import type { RejectionCode } from "./catalogue/common.ts";
import type { CommandEnvelope, EventEnvelope } from "./envelope.ts";
import type { AggregateType } from "./subjects.ts";

/**
 * What a decider knows besides the command and the state: time enters as data, and so
 * does what the decision had to see of the world beyond its own aggregate (`observed`,
 * read fresh just before deciding by the handler's `observe` port; e.g. the sessions
 * live on a cluster that is to be deleted). Undefined when nothing was looked at.
 */
export interface DecisionContext<O = undefined> {
  readonly now: Date;
  /** The aggregate's version (event count) before this decision. */
  readonly version: number;
  readonly observed?: O | undefined;
}

export interface Rejection {
  readonly rejected: { readonly code: RejectionCode; readonly reason: string };
}

/** A decision: the events to append (possibly none), or a rejection with its reason. */
export type Decision<E> = readonly E[] | Rejection;

export function reject(code: RejectionCode, reason: string): Rejection {
  return { rejected: { code, reason } };
}

export function isRejection<E>(d: Decision<E>): d is Rejection {
  return !Array.isArray(d);
}

/**
 * The pure core of an aggregate (emmett's decider): no I/O, no clock, no random.
 * `decide` answers a command from the state; `evolve` folds one event into it.
 */
export interface Decider<
  C extends { type: string; data: unknown },
  E extends { type: string; data: unknown },
  S,
  O = undefined,
> {
  readonly aggregate: AggregateType;
  initialState(): S;
  decide(command: CommandEnvelope<C>, state: S, context: DecisionContext<O>): Decision<E>;
  evolve(state: S, event: EventEnvelope<E>): S;
  /**
   * Optional: folds many events at once (a commit, a history). Must give what
   * `events.reduce(evolve, state)` gives, and leave `state` as it was. For an aggregate
   * whose commits hold hundreds of events: a cluster's 500 launches copied its map of 500
   * slots once per event, O(n²) per commit; folded together, the map is copied once.
   * Callers fold through {@link evolveAll}, which falls back to `evolve`.
   */
  evolveAll?(state: S, events: readonly EventEnvelope<E>[]): S;
  /**
   * Opt-in to snapshots (docs/architecture.md, "Snapshots and looks"): the state is plain
   * JSON data (records, arrays, strings, numbers; no Map, Set, Date or undefined inside
   * arrays), so `JSON.parse(JSON.stringify(s))` is `s`. `version` is the snapshot schema:
   * bump it whenever the state's shape or `evolve`'s meaning changes — a snapshot of
   * another version is never read, the aggregate is folded from its events instead.
   */
  readonly snapshot?: { readonly version: number };
}

/** Folds a history into state. */
export function fold<E extends { type: string; data: unknown }, S>(
  decider: Pick<Decider<never, E, S, unknown>, "initialState" | "evolve" | "evolveAll">,
  events: readonly EventEnvelope<E>[],
): S {
  return evolveAll(decider, decider.initialState(), events);
}

/**
 * `events` folded into `state`: by the decider's `evolveAll` when it has one (and there
 * is more than one event), else one `evolve` at a time. Never changes `state`.
 */
export function evolveAll<E extends { type: string; data: unknown }, S>(
  decider: Pick<Decider<never, E, S, unknown>, "evolve" | "evolveAll">,
  state: S,
  events: readonly EventEnvelope<E>[],
): S {
  if (decider.evolveAll && events.length > 1) return decider.evolveAll(state, events);
  let s = state;
  for (const e of events) s = decider.evolve(s, e);
  return s;
}

/** Compile-time exhaustiveness: a new command or event type fails to compile until handled. */
export function assertNever(x: never): never {
  throw new Error(`unhandled: ${JSON.stringify(x)}`);
}
