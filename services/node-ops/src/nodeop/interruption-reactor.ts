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
  type CommandHandler,
  catalogue,
  derivedId,
  eventFilter,
  type Nats,
  type NodeopCommand,
  type NodeopEvent,
  PermanentError,
  type RawEventEnvelope,
  RetryLaterError,
  type RunnerLogger,
  type RunningConsumer,
  Streams,
  startConsumer,
} from "@cairn/events";
import { isPermanentFailure, type Kube } from "../ports.ts";
import type { NodeopState } from "./decider.ts";

export interface InterruptionReactorOptions {
  nats: Nats;
  handler: CommandHandler<NodeopCommand, NodeopEvent, NodeopState>;
  kube: Kube;
  logger?: RunnerLogger;
  /** How soon to look again (default 200 ms, doubling up to `maxPollMs`, default 5 s). */
  pollMs?: number;
  maxPollMs?: number;
}

type Notice = { clusterId: string; node: string; noticeId: string; instanceId: string };

export async function startInterruptionReactor(o: InterruptionReactorOptions): Promise<RunningConsumer> {
  const pollMs = o.pollMs ?? 200;
  const maxPollMs = o.maxPollMs ?? 5_000;
  const later = (deliveries: number, why: string) =>
    new RetryLaterError(Math.min(maxPollMs, pollMs * 2 ** Math.max(0, deliveries - 1)), why);

  const react = async (e: RawEventEnvelope & { sequence: number }, deliveries: number) => {
    if (e.type !== "nodeop.interruption-noticed") return;
    const d = e.data as Notice;
    const { state } = await o.handler.read(e.aggregate, { atLeastSequence: e.sequence });
    if (state.interruption?.noticeId !== d.noticeId || state.interruption.deleted) return;
    // 1. The drain first: what it evicts must leave while the node still exists.
    if (state.inFlight?.operation === "drain") throw later(deliveries, `node ${d.node} is still draining`);
    // 2. Gone or NotReady: the kubelet is gone with its instance.
    let reason: string;
    try {
      const node = await o.kube.getNode(d.clusterId, d.node);
      if (node?.ready !== false && node !== undefined)
        throw later(deliveries, `node ${d.node} is drained; its instance ${d.instanceId} has not gone yet`);
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
    const parsed = catalogue.parseCommand({
      id: derivedId(e.id, "node.record-deleted"),
      type: "node.record-deleted",
      data: { clusterId: d.clusterId, node: d.node, reason },
      meta: { actor: "node-ops", causationId: e.id, correlationId: e.meta.correlationId },
    });
    if (!parsed.ok)
      throw new PermanentError(`the reactor built an invalid node.record-deleted: ${parsed.error.message}`);
    await o.handler.handle(parsed.value, { atLeastSequence: e.sequence });
    o.logger?.info({ cluster: d.clusterId, node: d.node }, "interrupted node deleted");
  };

  return await startConsumer({
    js: o.nats.js,
    jsm: o.nats.jsm,
    stream: Streams.events,
    durable: "node-ops-interruptions",
    filterSubject: eventFilter("nodeop"),
    // Waiting for a reclaim is a redelivery too: 1,000 of up to 5 s each is over an hour.
    concurrency: 32,
    ...(o.logger ? { logger: o.logger } : {}),
    handle: async (msg) => {
      const commit = catalogue.parseCommit(msg.json());
      for (const e of commit.events)
        await react({ ...(e as RawEventEnvelope), sequence: msg.seq }, msg.info.deliveryCount);
    },
  });
}
