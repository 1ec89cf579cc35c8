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
  type CommandHandler,
  catalogue,
  commandCausedBy,
  eventFilter,
  type Nats,
  type NodeopCommand,
  type NodeopEvent,
  nodeAggregateId,
  type RawEventEnvelope,
  RetryLaterError,
  type RunnerLogger,
  type RunningConsumer,
  Streams,
  startConsumer,
} from "@cairn/events";
import { isPermanentFailure, type Kube } from "../ports.ts";
import type { NodeopState } from "./decider.ts";

export interface RetiredNodesOptions {
  nats: Nats;
  handler: CommandHandler<NodeopCommand, NodeopEvent, NodeopState>;
  kube: Kube;
  logger?: RunnerLogger;
  pollMs?: number;
  maxPollMs?: number;
}

export async function startRetiredNodes(o: RetiredNodesOptions): Promise<RunningConsumer> {
  const pollMs = o.pollMs ?? 200;
  const maxPollMs = o.maxPollMs ?? 5_000;
  const later = (deliveries: number, why: string) =>
    new RetryLaterError(Math.min(maxPollMs, pollMs * 2 ** Math.max(0, deliveries - 1)), why);

  const react = async (e: RawEventEnvelope, deliveries: number) => {
    const d = e.data as { instanceId?: string; drainFirst?: boolean };
    if (
      e.type !== "cluster.instance-termination-requested" &&
      e.type !== "cluster.node-replacement-requested"
    )
      return;
    if (!d.instanceId || d.drainFirst) return;
    const clusterId = e.aggregate.id;
    const node = d.instanceId;
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
        throw later(deliveries, `node ${node} still runs; its instance is not gone yet`);
      await o.kube.deleteNode(clusterId, node);
      reason = `its instance ${node} was terminated by the provisioner (${e.type === "cluster.node-replacement-requested" ? "replaced" : "surplus"})`;
    } catch (err) {
      if (!isPermanentFailure(err)) throw err;
      // No kubeconfig (a cluster not installed, or deleted): no Node to delete.
      return;
    }
    await o.handler.handle(
      commandCausedBy(e, "node.record-deleted", { clusterId, node, reason }, { actor: "node-ops" }),
    );
    o.logger?.info({ cluster: clusterId, node }, "retired node deleted");
  };

  return await startConsumer({
    js: o.nats.js,
    jsm: o.nats.jsm,
    stream: Streams.events,
    durable: "node-ops-retired",
    filterSubject: eventFilter("cluster"),
    // Waiting for the instance to go is a redelivery too.
    concurrency: 16,
    ...(o.logger ? { logger: o.logger } : {}),
    handle: async (msg) => {
      const commit = catalogue.parseCommit(msg.json());
      const results = await Promise.allSettled(
        commit.events.map((e) => react(e as RawEventEnvelope, msg.info.deliveryCount)),
      );
      const failure = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
      if (failure) throw failure.reason;
    },
  });
}
