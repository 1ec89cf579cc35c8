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
 */
import {
  CommandBus,
  catalogue,
  type DrainOutcome,
  derivedId,
  drainOutcome,
  EventStore,
  type Nats,
  type RawEventEnvelope,
} from "@cairn/events";

/** How long a scale down waits for a node's pods to move before terminating it anyway. */
export const SCALE_DOWN_DRAIN_SECONDS = 300;

export type DrainStatus = "not-a-node" | DrainOutcome["status"];

export function drainFirst(nats: Nats) {
  const bus = new CommandBus({ js: nats.js, catalogue });
  const store = new EventStore({ js: nats.js, jsm: nats.jsm, catalogue });

  /** Whether node-ops saw `node` register in the cluster (and not leave it). */
  const isNode = async (clusterId: string, node: string): Promise<boolean> => {
    const facts = (await store.load({ type: "kube", id: clusterId })).events;
    let registered = false;
    for (const f of facts) {
      const n = (f.data as { node?: string }).node;
      if (n !== node) continue;
      if (f.type === "kube.node-registered") registered = true;
      if (f.type === "kube.node-removed") registered = false;
    }
    return registered;
  };

  return {
    /**
     * Asks node-ops to drain the node of `cause`'s slot (idempotent: the command is named
     * after the cause) and tells where the drain is.
     */
    async drain(
      cause: RawEventEnvelope,
      clusterId: string,
      node: string,
      slot: number,
    ): Promise<DrainStatus> {
      if (!(await isNode(clusterId, node))) return "not-a-node";
      const id = derivedId(cause.id, "node.drain");
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
        },
      });
      const outcome = await drainOutcome(store, clusterId, node, id);
      return outcome.status;
    },
  };
}
