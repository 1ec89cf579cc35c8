/**
 * Admission under the cluster-wide disruption limit, for the nodeop reactor: before a
 * cordon or a drain touches the node, the node must hold a place on its cluster's
 * disruption ledger (`nodeopLimitId`, decided in ./limit.ts). No place free → the node
 * records `nodeop.waiting` (naming the nodes it waits for) and the event comes back
 * later; the operation stays in flight (queued), it does not fail. When Cairn lets go of
 * the node (uncordoned, or the operation ended without leaving it cordoned) its place is
 * released.
 *
 * The limit is `max`, else max(1, floor(fraction × the cluster's nodes)), the nodes
 * counted from the kube facts (1 when the facts know none yet). Every command is named
 * after its cause and the ledger's version, so a redelivered event decides nothing twice,
 * and a refusal (another node took the last place in between) is retried as a new decision.
 */
import {
  CommandHandler,
  catalogue,
  derivedId,
  type EventStore,
  type NodeopCommand,
  type NodeopEvent,
  nodeopLimitId,
  PermanentError,
  type RawEventEnvelope,
  RetryLaterError,
} from "@cairn/events";
import { kubeDecider } from "../kube/decider.ts";
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
type Handler = CommandHandler<NodeopCommand, NodeopEvent, NodeopState>;

export interface Admission {
  /**
   * Undefined when the node holds its place (now or already, or the limit is off); else
   * the error to throw to come back later, after `nodeop.waiting` was recorded.
   */
  admit(e: Event, deliveries: number): Promise<RetryLaterError | undefined>;
  /** Frees the node's place if Cairn no longer holds it cordoned (`state`: the node's, after `e`). */
  release(e: Event, state: NodeopState): Promise<void>;
}

export function createAdmission(o: {
  handler: Handler;
  store: EventStore;
  limit: DisruptionLimit | false;
}): Admission {
  if (o.limit === false) return { admit: async () => undefined, release: async () => {} };
  const limit = o.limit;
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

  const limitOf = async (clusterId: string) => {
    const { state } = await facts.read({ type: "kube", id: clusterId });
    return limitFor(Object.keys(state.nodes).length, limit);
  };

  return {
    async admit(e, deliveries) {
      const { clusterId, node, force } = e.data as { clusterId: string; node: string; force?: boolean };
      const ledger = { type: "nodeop" as const, id: nodeopLimitId(clusterId) };
      // 1. Already holding a place (a drain after Cairn's cordon, a redelivery): go on.
      const { state, version } = await o.handler.read(ledger);
      const holders = state.holders ?? [];
      if (holders.includes(node)) return undefined;
      // 2. A place is free (or forced): take it; the ledger decides, serialised.
      const max = await limitOf(clusterId);
      if (holders.length < max || force) {
        const outcome = await decide(
          e,
          derivedId(e.id, "node.admit-disruption", String(version)),
          "node.admit-disruption",
          { clusterId, node, limit: max, force: force === true },
        );
        if (outcome.status !== "rejected") return undefined;
      }
      // 3. Full (or another node took the last place in between): record what it waits for, come back.
      const now = (await o.handler.read(ledger)).state.holders ?? [];
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
      await decide(e, derivedId(e.id, "node.release-disruption"), "node.release-disruption", {
        clusterId,
        node,
      });
    },
  };
}
