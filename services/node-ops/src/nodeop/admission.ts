/**
 * Admission under the cluster-wide disruption limit, for the nodeop reactor: before a
 * cordon or a drain touches the node, the node must hold a place on its cluster's
 * disruption ledger (`nodeopLimitId`, decided in ./limit.ts). No place free → the node
 * records `nodeop.waiting` (naming the nodes it waits for) and the event comes back
 * later; the operation stays in flight (queued), it does not fail.
 *
 * A place is released when Cairn lets go of the node (uncordoned, or the operation ended
 * without leaving it cordoned), or when the node is gone. A drain leaves its node
 * cordoned (as kubectl drain does), so a node drained for retirement (a scale down, a
 * spot interruption) gives its place back only when it is gone:
 *  - eagerly, on `nodeop.node-deleted` (node-ops deleted the Node of a retired or
 *    reclaimed instance; `releaseGone`, called by the reactor), and when the retired
 *    nodes reactor finds a retired instance's Node gone already;
 *  - lazily, when a node finds the ledger full: a holder whose Node left the API (the
 *    kube facts recorded its removal) or whose node aggregate says deleted does not
 *    count; it is released first, then the node is admitted.
 * Each release is a ledger decision with a `reason`, named after its cause (and the
 * holder, for the lazy one), so a redelivery or a second replica releases nothing twice.
 *
 * The limit is `max`, else max(1, floor(fraction × the cluster's nodes)), the nodes
 * counted from the kube facts (1 when the facts know none yet). Every command is named
 * after its cause and the ledger's version, so a redelivered event decides nothing twice,
 * and a refusal (another node took the last place in between) is retried as a new decision.
 * The ledger, the facts and the holders are read as fresh as the log: other processes
 * (the watcher's leader, another replica) write them.
 */
import {
  type AggregateRef,
  CommandHandler,
  catalogue,
  derivedId,
  type EventStore,
  type NodeopCommand,
  type NodeopEvent,
  nodeAggregateId,
  nodeopLimitId,
  PermanentError,
  type RawEventEnvelope,
  RetryLaterError,
} from "@cairn/events";
import { type KubeState, kubeDecider } from "../kube/decider.ts";
import type { NodeopState } from "./decider.ts";

export interface DisruptionLimit {
  /** At most this many nodes of a cluster cordoned or draining by Cairn at once; overrides `fraction`. */
  readonly max?: number;
  /** Else this share of the cluster's nodes, at least 1 (default 0.1). */
  readonly fraction?: number;
  /** A queued operation looks again after this long, doubling… (default 200 ms) */
  readonly pollMs?: number;
  /** …up to this (default 10 s). */
  readonly maxPollMs?: number;
}

export const DEFAULT_DISRUPTION_FRACTION = 0.1;

/** @example limitFor(25, {}) // 2;  limitFor(3, {}) // 1;  limitFor(25, { max: 5 }) // 5 */
export function limitFor(nodes: number, o: DisruptionLimit): number {
  return o.max ?? Math.max(1, Math.floor(nodes * (o.fraction ?? DEFAULT_DISRUPTION_FRACTION)));
}

type Event = RawEventEnvelope & { sequence: number };
type Reader<S> = Pick<CommandHandler<never, never, S>, "read">;
type Handler = CommandHandler<NodeopCommand, NodeopEvent, NodeopState>;

export interface Admission {
  /**
   * Undefined when the node holds its place (now or already, or the limit is off); else
   * the error to throw to come back later, after `nodeop.waiting` was recorded.
   */
  admit(e: Event, deliveries: number): Promise<RetryLaterError | undefined>;
  /** Frees the node's place if Cairn no longer holds it cordoned (`state`: the node's, after `e`). */
  release(e: Event, state: NodeopState): Promise<void>;
  /** Frees the place of `e`'s node, which is gone (`reason`: why), named after `e`. */
  releaseGone(e: Event, reason: string): Promise<void>;
}

/**
 * Why a node holding a place is gone, or undefined while it may still be there: its
 * Node left the API (`facts`), or node-ops deleted it (`state`: its nodeop aggregate's).
 */
export function goneReason(
  node: string,
  facts: Pick<KubeState, "removed">,
  state: NodeopState,
): string | undefined {
  if (state.deleted) return `node ${node} was deleted (its instance is gone)`;
  if (facts.removed.includes(node)) return `node ${node} left the cluster's API (its Node was deleted)`;
  return undefined;
}

export function createAdmission(o: {
  handler: Handler;
  store: EventStore;
  limit: DisruptionLimit | false;
}): Admission {
  if (o.limit === false)
    return { admit: async () => undefined, release: async () => {}, releaseGone: async () => {} };
  const limit = o.limit;
  // Read only (the watcher's leader writes the facts): a cached view, caught up to the log on each read.
  const facts = new CommandHandler({ decider: kubeDecider, store: o.store, catalogue });
  const pollMs = limit.pollMs ?? 200;
  const maxPollMs = limit.maxPollMs ?? 10_000;

  const decide = async (cause: Event, id: string, type: NodeopCommand["type"], data: object) => {
    const parsed = catalogue.parseCommand({
      id,
      type,
      data,
      meta: { actor: "node-ops", causationId: cause.id, correlationId: cause.meta.correlationId },
    });
    if (!parsed.ok) throw new PermanentError(`the reactor built an invalid ${type}: ${parsed.error.message}`);
    return o.handler.handle(parsed.value);
  };

  /** A handler's view of `ref`, caught up with the log: its cache does not see other processes' writes. */
  const fresh = async <S>(h: Reader<S>, ref: AggregateRef) =>
    h.read(ref, { atLeastSequence: await o.store.lastSequence(ref) });

  const release = (cause: Event, id: string, data: { clusterId: string; node: string; reason?: string }) =>
    decide(cause, id, "node.release-disruption", data);

  /**
   * Releases the holders whose node is gone, each named after the cause, the holder and
   * the ledger's version (a redelivery at the same version is one release); true if any was.
   */
  const releaseStale = async (
    e: Event,
    clusterId: string,
    ledger: { holders: readonly string[]; version: number },
    known: KubeState,
  ) => {
    let released = false;
    for (const holder of ledger.holders) {
      const { state } = await fresh(o.handler, { type: "nodeop", id: nodeAggregateId(clusterId, holder) });
      const reason = goneReason(holder, known, state);
      if (!reason) continue;
      await release(e, derivedId(e.id, "node.release-disruption", holder, String(ledger.version)), {
        clusterId,
        node: holder,
        reason,
      });
      released = true;
    }
    return released;
  };

  return {
    async admit(e, deliveries) {
      const { clusterId, node, force } = e.data as { clusterId: string; node: string; force?: boolean };
      const ledger = { type: "nodeop" as const, id: nodeopLimitId(clusterId) };
      // 1. Already holding a place (a drain after Cairn's cordon, a redelivery): go on.
      let { state, version } = await fresh(o.handler, ledger);
      if ((state.holders ?? []).includes(node)) return undefined;
      const known = (await fresh(facts, { type: "kube", id: clusterId })).state;
      const max = limitFor(Object.keys(known.nodes).length, limit);
      // 2. Full: a holder whose node is gone does not count; release it, then look again.
      if (
        (state.holders ?? []).length >= max &&
        !force &&
        (await releaseStale(e, clusterId, { holders: state.holders ?? [], version }, known))
      )
        ({ state, version } = await fresh(o.handler, ledger));
      const holders = state.holders ?? [];
      // 3. A place is free (or forced): take it; the ledger decides, serialised.
      if (holders.length < max || force) {
        const outcome = await decide(
          e,
          derivedId(e.id, "node.admit-disruption", String(version)),
          "node.admit-disruption",
          { clusterId, node, limit: max, force: force === true },
        );
        if (outcome.status !== "rejected") return undefined;
      }
      // 4. Full (or another node took the last place in between): record what it waits for, come back.
      const now = (await fresh(o.handler, ledger)).state.holders ?? [];
      // A place freed since the first look: no wait to record (it would name nodes that
      // no longer block this one); look again soon.
      if (now.length < max) return new RetryLaterError(pollMs, `node ${node}: a place just freed up`);
      await decide(
        e,
        derivedId(e.id, "node.record-waiting", String(max), now.join(",")),
        "node.record-waiting",
        { clusterId, node, limit: max, waitingFor: [...now] },
      );
      return new RetryLaterError(
        Math.min(maxPollMs, pollMs * 2 ** Math.max(0, deliveries - 1)),
        `node ${node} waits for the disruption limit of cluster ${clusterId} (${max}): ${now.join(", ")}`,
      );
    },
    async release(e, state) {
      if (state.cordoned || state.inFlight) return;
      const { clusterId, node } = e.data as { clusterId: string; node: string };
      await release(e, derivedId(e.id, "node.release-disruption"), { clusterId, node });
    },
    async releaseGone(e, reason) {
      const { clusterId, node } = e.data as { clusterId: string; node: string };
      await release(e, derivedId(e.id, "node.release-disruption"), { clusterId, node, reason });
    },
  };
}
