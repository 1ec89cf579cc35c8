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
 * The ledger, the facts and the holders are read as fresh as the log (a plain `read`):
 * other processes (the watcher's leader, another replica) write them.
 */
import {
  type CairnEvent,
  type CommandDataInput,
  CommandHandler,
  catalogue,
  commandCausedBy,
  type EventStore,
  exponentialDelay,
  nodeAggregateId,
  nodeopLimitId,
  type RawEventEnvelope,
  RetryLaterError,
} from "@cairn/events";
import { type KubeState, kubeDecider } from "../kube/decider.ts";
import type { NodeopHandler } from "./cluster-nodes-probe.ts";
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

/** The request that asks for a place: a cordon or a drain (its data names the node and `force`). */
type Request = CairnEvent<"nodeop.cordon-requested" | "nodeop.drain-requested">;
/** An event that names a node, as a cause (its id names the commands it causes). */
type NodeCause = Pick<RawEventEnvelope, "id" | "meta"> & {
  readonly data: { clusterId: string; node: string };
};
type Handler = NodeopHandler;
type LimitCommandType = "node.admit-disruption" | "node.release-disruption" | "node.record-waiting";

export interface Admission {
  /**
   * Undefined when the node holds its place (now or already, or the limit is off); else
   * the error to throw to come back later, after `nodeop.waiting` was recorded.
   */
  admit(e: Request, deliveries: number): Promise<RetryLaterError | undefined>;
  /** Frees the node's place if Cairn no longer holds it cordoned (`state`: the node's, after `e`). */
  release(e: NodeCause, state: NodeopState): Promise<void>;
  /** Frees the place of `e`'s node, which is gone (`reason`: why), named after `e`. */
  releaseGone(e: NodeCause, reason: string): Promise<void>;
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
  // Read only (the watcher's leader writes the facts): a cached view; a plain read checks it against the log.
  const facts = new CommandHandler({ decider: kubeDecider, store: o.store, catalogue });
  const pollMs = limit.pollMs ?? 200;
  const maxPollMs = limit.maxPollMs ?? 10_000;

  /** Decides a ledger (or waiting) command caused by `cause`; `key` tells its commands of one type apart. */
  const decide = <T extends LimitCommandType>(
    cause: Pick<RawEventEnvelope, "id" | "meta">,
    type: T,
    data: CommandDataInput<T>,
    key?: readonly string[],
  ) =>
    o.handler.handle(
      commandCausedBy(cause, type, data, {
        actor: "node-ops",
        // The parts joined as derivedId joins them: the ids are those of the earlier releases.
        ...(key ? { key: key.join("\u0000") } : {}),
      }),
    );

  const release = (
    cause: Pick<RawEventEnvelope, "id" | "meta">,
    data: { clusterId: string; node: string; reason?: string },
    key?: readonly string[],
  ) => decide(cause, "node.release-disruption", data, key);

  /**
   * Releases the holders whose node is gone, each named after the cause, the holder and
   * the ledger's version (a redelivery at the same version is one release); true if any was.
   */
  const releaseStale = async (
    e: Request,
    clusterId: string,
    ledger: { holders: readonly string[]; version: number },
    known: KubeState,
  ) => {
    let released = false;
    for (const holder of ledger.holders) {
      const { state } = await o.handler.read({ type: "nodeop", id: nodeAggregateId(clusterId, holder) });
      const reason = goneReason(holder, known, state);
      if (!reason) continue;
      await release(e, { clusterId, node: holder, reason }, [holder, String(ledger.version)]);
      released = true;
    }
    return released;
  };

  return {
    async admit(e, deliveries) {
      const { clusterId, node, force } = e.data;
      const ledger = { type: "nodeop" as const, id: nodeopLimitId(clusterId) };
      // 1. Already holding a place (a drain after Cairn's cordon, a redelivery): go on.
      let { state, version } = await o.handler.read(ledger);
      if ((state.holders ?? []).includes(node)) return undefined;
      const known = (await facts.read({ type: "kube", id: clusterId })).state;
      const max = limitFor(Object.keys(known.nodes).length, limit);
      // 2. Full: a holder whose node is gone does not count; release it, then look again.
      if (
        (state.holders ?? []).length >= max &&
        !force &&
        (await releaseStale(e, clusterId, { holders: state.holders ?? [], version }, known))
      )
        ({ state, version } = await o.handler.read(ledger));
      const holders = state.holders ?? [];
      // 3. A place is free (or forced): take it; the ledger decides, serialised.
      if (holders.length < max || force) {
        const outcome = await decide(
          e,
          "node.admit-disruption",
          { clusterId, node, limit: max, force: force === true },
          [String(version)],
        );
        if (outcome.status !== "rejected") return undefined;
      }
      // 4. Full (or another node took the last place in between): record what it waits for, come back.
      const now = (await o.handler.read(ledger)).state.holders ?? [];
      // A place freed since the first look: no wait to record (it would name nodes that
      // no longer block this one); look again soon.
      if (now.length < max) return new RetryLaterError(pollMs, `node ${node}: a place just freed up`);
      await decide(e, "node.record-waiting", { clusterId, node, limit: max, waitingFor: [...now] }, [
        String(max),
        now.join(","),
      ]);
      return new RetryLaterError(
        exponentialDelay(deliveries, { baseMs: pollMs, capMs: maxPollMs }),
        `node ${node} waits for the disruption limit of cluster ${clusterId} (${max}): ${now.join(", ")}`,
      );
    },
    async release(e, state) {
      if (state.cordoned || state.inFlight) return;
      const { clusterId, node } = e.data;
      await release(e, { clusterId, node });
    },
    async releaseGone(e, reason) {
      const { clusterId, node } = e.data;
      await release(e, { clusterId, node, reason });
    },
  };
}
