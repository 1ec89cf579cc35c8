/**
 * A surplus node is drained before its instance is terminated (a scale down, a rollback
 * to fewer nodes), as a cluster autoscaler does: node-ops cordons it and evicts its pods
 * through the Eviction API, honouring PodDisruptionBudgets, so workloads move instead of
 * dying with the instance. The provisioner asks (`node.drain` on the bus, named after the
 * termination request) and looks at the node's own subject for the outcome.
 *
 * Only a node that registered with the cluster's API (node-ops' facts, `evt.kube.<id>`)
 * is drained: an instance that never joined has nothing to evict. A drain that fails
 * (a budget that never allows it, within the timeout) does not keep the node: the
 * instance is terminated anyway, and the log says so.
 *
 * A drain takes minutes and the termination request is looked at again every few
 * seconds, so a look must not fold the node's whole history (a node drained and
 * uncordoned many times has a long one) nor the cluster's node facts each time. Each look
 * reads only what was appended since the last one (where it got to is remembered per
 * drain and per node), and the node's subject only from the termination request's own
 * sequence on: node-ops answers a drain the provisioner asked for after that request, in
 * the same stream, so nothing before it can be the answer. The outcome is the one
 * `drainOutcome` (@cairn/events) gives: a refusal of the command, or the first drained /
 * drain-failed / failed event from the request on. A process that restarts reads once
 * from those starting points again.
 */
import {
  type AggregateRef,
  type AggregateType,
  CommandBus,
  catalogue,
  type DrainOutcome,
  type DrainSeen,
  derivedId,
  type EventOfAggregate,
  EventStore,
  eventSubject,
  foldDrain,
  type Nats,
  nodeAggregateId,
  openOrderedConsumer,
  type RawEventEnvelope,
  readCommit,
  Streams,
} from "@cairn/events";

/** How long a scale down waits for a node's pods to move before terminating it anyway. */
export const SCALE_DOWN_DRAIN_SECONDS = 300;

export type DrainStatus = "not-a-node" | DrainOutcome["status"];

/** Where a look at a subject got to: the next stream sequence to read, and what it found. */
interface Progress<T> {
  next: number;
  found: T;
}

/** Remembered looks per process: bounded, oldest forgotten first (a forgotten one is read again). */
const MAX_REMEMBERED = 10_000;

// Where a drain stands is libs/events' `foldDrain`, read here one slice at a time.
export { foldDrain };

/** Whether `node` is registered after `events` (the cluster's node facts, in log order). Pure. */
export function foldRegistered(
  registered: boolean,
  events: readonly EventOfAggregate<"kube">[],
  node: string,
) {
  let r = registered;
  for (const e of events) {
    if (e.type === "kube.node-registered" && e.data.node === node) r = true;
    if (e.type === "kube.node-removed" && e.data.node === node) r = false;
  }
  return r;
}

export function drainFirst(nats: Nats) {
  const bus = new CommandBus({ js: nats.js, catalogue });
  // Only for the subjects' last sequences; unreadable messages are the reactors' to report.
  const store = new EventStore({ js: nats.js, jsm: nats.jsm, catalogue, onUnreadable: () => {} });
  const drains = new Map<string, Progress<DrainSeen>>();
  const nodes = new Map<string, Progress<boolean>>();

  /**
   * The typed events of `aggregate` appended at or after stream sequence `from`, up to
   * its last commit now, and the sequence to read from next time. Messages that are not
   * commits are skipped (the reactors dead-letter them).
   */
  const readFrom = async <A extends AggregateType>(
    aggregate: AggregateRef & { type: A },
    from: number,
  ): Promise<{ events: EventOfAggregate<A>[]; next: number }> => {
    const last = await store.lastSequence(aggregate);
    if (last < from) return { events: [], next: from };
    const events: EventOfAggregate<A>[] = [];
    const consumer = await openOrderedConsumer(nats.js, Streams.events, {
      filter_subjects: eventSubject(aggregate),
      // DeliverPolicy.StartSequence (the provisioner does not depend on nats.js itself).
      deliver_policy: "by_start_sequence",
      opt_start_seq: Math.max(1, from),
    });
    const messages = await consumer.consume({ max_messages: 256 });
    try {
      for await (const m of messages) {
        if (m.seq > last) break;
        try {
          events.push(...readCommit(m, aggregate.type).events);
        } catch {
          // Not a commit of this aggregate: never an answer.
        }
        if (m.seq >= last) break;
      }
    } finally {
      messages.stop();
      await consumer.delete().catch(() => {});
    }
    return { events, next: last + 1 };
  };

  const remember = <T>(memo: Map<string, Progress<T>>, key: string, p: Progress<T>) => {
    memo.delete(key);
    memo.set(key, p);
    if (memo.size > MAX_REMEMBERED) memo.delete(memo.keys().next().value as string);
  };

  /** Whether node-ops saw `node` register in the cluster (and not leave it). */
  const isNode = async (clusterId: string, node: string): Promise<boolean> => {
    const key = `${clusterId}/${node}`;
    const was = nodes.get(key) ?? { next: 1, found: false };
    const { events, next } = await readFrom({ type: "kube", id: clusterId }, was.next);
    const found = foldRegistered(was.found, events, node);
    remember(nodes, key, { next, found });
    return found;
  };

  /** Where the drain `commandId`, asked after stream sequence `after`, stands. */
  const outcomeOf = async (
    clusterId: string,
    node: string,
    commandId: string,
    after: number,
  ): Promise<DrainSeen> => {
    const was = drains.get(commandId) ?? { next: after + 1, found: { asked: false } };
    if (was.found.outcome) return was.found;
    const { events, next } = await readFrom(
      { type: "nodeop", id: nodeAggregateId(clusterId, node) },
      was.next,
    );
    const found = foldDrain(was.found, events, commandId);
    remember(drains, commandId, { next, found });
    return found;
  };

  return {
    /**
     * Asks node-ops to drain the node of `cause`'s slot (idempotent: the command is named
     * after the cause) and tells where the drain is. `cause.sequence`: the stream sequence
     * of the cause's commit (node-ops' answer can only come after it).
     */
    async drain(
      cause: Pick<RawEventEnvelope, "id" | "meta"> & { sequence: number },
      clusterId: string,
      node: string,
      slot: number,
    ): Promise<DrainStatus> {
      if (!(await isNode(clusterId, node))) return "not-a-node";
      const id = derivedId(cause.id, "node.drain");
      const before = await outcomeOf(clusterId, node, id, cause.sequence);
      if (before.outcome) return before.outcome.status;
      // Not seen by node-ops yet (or lost): ask (again; the same id is one command).
      if (!before.asked)
        await bus.send({
          id,
          type: "node.drain",
          data: {
            clusterId,
            node,
            reason: `slot ${slot} is surplus: its instance is terminated once the node is drained`,
            timeoutSeconds: SCALE_DOWN_DRAIN_SECONDS,
          },
          meta: {
            actor: "provisioner",
            causationId: cause.id,
            ...(cause.meta.correlationId ? { correlationId: cause.meta.correlationId } : {}),
            // The cluster's lifecycle, which the cause (a scale on a trace of its own) links to.
            ...(cause.meta.links?.length ? { links: cause.meta.links } : {}),
          },
        });
      return "pending";
    },
  };
}
