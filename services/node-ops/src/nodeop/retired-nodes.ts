/**
 * The Node objects of instances the provisioner retires. K3s has no cloud controller
 * here to remove the Node of a terminated instance, so without this a scale down or a
 * replacement would leave NotReady ghosts in `kubectl get nodes`. On
 * `cluster.instance-termination-requested` (a surplus slot) and
 * `cluster.node-replacement-requested` (an instance that never became healthy) this
 * reactor waits, without blocking, until the node is NotReady (its kubelet went with
 * the instance) or gone, then deletes it and records `nodeop.node-deleted`. A node that
 * never registered has nothing to delete. Interrupted spot instances are the
 * interruption reactor's (their replacement says `drainFirst`).
 *
 * A node drained for retirement stays cordoned, holding its place under the cluster's
 * disruption limit: `nodeop.node-deleted` gives it back (the nodeop reactor), and a
 * retired instance whose Node is gone already gives it back here
 * (`node.release-disruption` with a reason, named after the event).
 *
 * Nodes are named after their instance, so the event's instance id names the node.
 */
import {
  commandCausedBy,
  exponentialDelay,
  type Nats,
  nodeAggregateId,
  RetryLaterError,
  type RunnerLogger,
  type RunningConsumer,
  startReactor,
} from "@cairn/events";
import { isPermanentFailure, type Kube } from "../ports.ts";
import type { NodeopHandler } from "./cluster-nodes-probe.ts";

/** The durable consumer: kept so a deployment resumes where it was. */
export const RETIRED_NODES_REACTOR = "node-ops-retired";

export interface RetiredNodesOptions {
  nats: Nats;
  handler: NodeopHandler;
  kube: Kube;
  logger?: RunnerLogger;
  pollMs?: number;
  maxPollMs?: number;
}

export async function startRetiredNodes(o: RetiredNodesOptions): Promise<RunningConsumer> {
  const pollMs = o.pollMs ?? 200;
  const maxPollMs = o.maxPollMs ?? 5_000;
  const later = (deliveries: number, why: string) =>
    new RetryLaterError(exponentialDelay(deliveries, { baseMs: pollMs, capMs: maxPollMs }), why);

  return await startReactor({
    nats: o.nats,
    name: RETIRED_NODES_REACTOR,
    aggregate: "cluster",
    types: ["cluster.instance-termination-requested", "cluster.node-replacement-requested"],
    // Waiting for an instance to go is a redelivery: clusters are waited for side by side,
    // and a commit's retirements (a scale down by several) together.
    concurrency: 16,
    ...(o.logger ? { logger: o.logger } : {}),
    react: async (e) => {
      let instanceId: string | undefined;
      let why: string;
      switch (e.type) {
        case "cluster.instance-termination-requested":
          instanceId = e.data.instanceId;
          why = "surplus";
          break;
        case "cluster.node-replacement-requested":
          // An interrupted spot instance's node is the interruption reactor's.
          if (e.data.drainFirst) return;
          instanceId = e.data.instanceId;
          why = "replaced";
          break;
        default:
          return;
      }
      if (!instanceId) return;
      const clusterId = e.aggregate.id;
      const node = instanceId;
      // Another aggregate (the node's): read as fresh as the log.
      const { state } = await o.handler.read({ type: "nodeop", id: nodeAggregateId(clusterId, node) });
      if (state.deleted) return;
      let reason: string;
      try {
        const found = await o.kube.getNode(clusterId, node);
        if (!found) {
          // Never registered, or gone by other hands: nothing to delete. If Cairn drained it
          // for this retirement it still holds a place under the disruption limit: give it back.
          await o.handler.handle(
            commandCausedBy(
              e,
              "node.release-disruption",
              { clusterId, node, reason: `its instance ${node} was retired and its Node is gone` },
              { actor: "node-ops" },
            ),
          );
          return;
        }
        if (found.ready !== false)
          throw later(e.deliveries, `node ${node} still runs; its instance is not gone yet`);
        await o.kube.deleteNode(clusterId, node);
        reason = `its instance ${node} was terminated by the provisioner (${why})`;
      } catch (err) {
        if (!isPermanentFailure(err)) throw err;
        // No kubeconfig (a cluster not installed, or deleted): no Node to delete.
        return;
      }
      await o.handler.handle(
        commandCausedBy(e, "node.record-deleted", { clusterId, node, reason }, { actor: "node-ops" }),
      );
      o.logger?.info({ cluster: clusterId, node }, "retired node deleted");
    },
  });
}
