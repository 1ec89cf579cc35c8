/**
 * After a spot interruption: remove the node's Node object once its instance is gone.
 * A Node is not deleted while its kubelet lives (the kubelet would register it again),
 * so on `nodeop.interruption-noticed` this reactor waits, without blocking (the event
 * comes back with a backoff), until
 *  1. the drain has ended (drained or failed: its own reactor runs it), and
 *  2. the node is NotReady (its kubelet stopped with the instance: the provisioner
 *     terminates it once drained, or AWS reclaims it) or already gone;
 * then deletes the Node and records `node.record-deleted`. Idempotent: the aggregate
 * says whether it was recorded, deleting a deleted node is fine, and the command is
 * named after the event.
 *
 * Its own durable (`node-ops-interruptions`), so its waiting never holds up the
 * operations' reactor on the same node.
 */
import {
  commandCausedBy,
  exponentialDelay,
  type Nats,
  RetryLaterError,
  type RunnerLogger,
  type RunningConsumer,
  startReactor,
} from "@cairn/events";
import { isPermanentFailure, type Kube } from "../ports.ts";
import type { NodeopHandler } from "./cluster-nodes-probe.ts";

/** The durable consumer: kept so a deployment resumes where it was. */
export const INTERRUPTION_REACTOR = "node-ops-interruptions";

export interface InterruptionReactorOptions {
  nats: Nats;
  handler: NodeopHandler;
  kube: Kube;
  logger?: RunnerLogger;
  /** How soon to look again (default 200 ms, doubling up to `maxPollMs`, default 5 s). */
  pollMs?: number;
  maxPollMs?: number;
}

export async function startInterruptionReactor(o: InterruptionReactorOptions): Promise<RunningConsumer> {
  const pollMs = o.pollMs ?? 200;
  const maxPollMs = o.maxPollMs ?? 5_000;
  const later = (deliveries: number, why: string) =>
    new RetryLaterError(exponentialDelay(deliveries, { baseMs: pollMs, capMs: maxPollMs }), why);

  return await startReactor({
    nats: o.nats,
    name: INTERRUPTION_REACTOR,
    aggregate: "nodeop",
    types: ["nodeop.interruption-noticed"],
    // Interrupted nodes are waited for side by side; each node's commits stay in order.
    concurrency: 32,
    ...(o.logger ? { logger: o.logger } : {}),
    react: async (e) => {
      if (e.type !== "nodeop.interruption-noticed") return;
      const d = e.data;
      const { state } = await o.handler.read(e.aggregate, { atLeastSequence: e.sequence });
      if (state.interruption?.noticeId !== d.noticeId || state.interruption.deleted) return;
      // 1. The drain first: what it evicts must leave while the node still exists.
      if (state.inFlight?.operation === "drain")
        throw later(e.deliveries, `node ${d.node} is still draining`);
      // 2. Gone or NotReady: the kubelet is gone with its instance.
      let reason: string;
      try {
        const node = await o.kube.getNode(d.clusterId, d.node);
        if (node?.ready !== false && node !== undefined)
          throw later(
            e.deliveries,
            `node ${d.node} is drained; its instance ${d.instanceId} has not gone yet`,
          );
        if (node) await o.kube.deleteNode(d.clusterId, d.node);
        reason = node
          ? `its spot instance ${d.instanceId} was reclaimed (the node was NotReady)`
          : `its spot instance ${d.instanceId} was reclaimed (the node was gone already)`;
      } catch (err) {
        if (!isPermanentFailure(err)) throw err;
        // No kubeconfig any more (a deleted cluster), refused: nothing node-ops can delete.
        o.logger?.warn(
          { cluster: d.clusterId, node: d.node, reason: err.message },
          "interrupted node not deleted",
        );
        return;
      }
      await o.handler.handle(
        commandCausedBy(
          e,
          "node.record-deleted",
          { clusterId: d.clusterId, node: d.node, reason },
          { actor: "node-ops" },
        ),
        { atLeastSequence: e.sequence },
      );
      o.logger?.info({ cluster: d.clusterId, node: d.node }, "interrupted node deleted");
    },
  });
}
