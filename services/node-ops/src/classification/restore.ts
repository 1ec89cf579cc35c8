/**
 * Classification drift restore: every node keeps `cairn.dev/pool`,
 * `cairn.dev/capacity-type` and its pool's labels and taints. A process manager on two
 * durable consumers (one filter each, for nats-server 2.9):
 *  - `node-ops-restore-kube` on `evt.kube.*`: a node registered or its classification
 *    changed → compare the node (the kube facts, at least as fresh as the event) with its
 *    pool (folded from the cluster's events) → if it drifted, the corrective operation;
 *  - `node-ops-restore-clusters` on `evt.cluster.*`: a pool's labels or taints changed
 *    (`cluster.pool-updated`, `cluster.rollback-requested`, `cluster.scale-failed`) →
 *    the same check for every node the facts know of in the cluster.
 *
 * The correction is the internal `node.restore-classification` on the node's nodeop
 * aggregate (actor `node-ops`), so it queues behind whatever operation the node has in
 * flight (the reactor waits: `RetryLaterError`) instead of racing it. Its id is derived
 * from the event that showed the drift, so a redelivered event restores nothing twice.
 * A restore that went through shows up as one more classification change, which finds
 * nothing left to do: no loop.
 */
import {
  CommandHandler,
  catalogue,
  derivedId,
  EventStore,
  eventFilter,
  type Nats,
  type NodeopCommand,
  type NodeopEvent,
  nodeAggregateId,
  PermanentError,
  type RawEventEnvelope,
  RetryLaterError,
  type RunnerLogger,
  type RunningConsumer,
  Streams,
  startConsumer,
} from "@cairn/events";
import { kubeDecider } from "../kube/decider.ts";
import type { NodeopState } from "../nodeop/decider.ts";
import { classificationDrift, foldPoolView } from "./pool-view.ts";

export const RESTORE_REASON = "restore pool classification";
/** How long a restore waits for the operation in flight on the node before looking again. */
const BUSY_RETRY_MS = 500;

export interface ClassificationRestoreOptions {
  nats: Nats;
  /** The nodeop aggregate's handler (the same one the command server uses). */
  handler: CommandHandler<NodeopCommand, NodeopEvent, NodeopState>;
  logger?: RunnerLogger;
  /** How long to wait for a node's operation in flight (default 500 ms). */
  busyRetryMs?: number;
}

type Event = RawEventEnvelope & { sequence: number };

export async function startClassificationRestore(
  o: ClassificationRestoreOptions,
): Promise<{ stop(): Promise<void> }> {
  const store = new EventStore({ js: o.nats.js, jsm: o.nats.jsm, catalogue });
  // Reads only (the facts are written by the watcher's own handler): a cached, incremental view.
  const facts = new CommandHandler({ decider: kubeDecider, store, catalogue });
  const busyMs = o.busyRetryMs ?? BUSY_RETRY_MS;

  /**
   * 1. Fold the cluster's events into the pools' classification.
   * 2. Read the kube facts, at least as fresh as the cause.
   * 3. For each node (or the one named): compute the drift; none → nothing.
   * 4. The node busy with another operation → wait (retry later); else request the restore.
   */
  const check = async (clusterId: string, cause: Event, only?: string, kubeSequence?: number) => {
    const view = foldPoolView((await store.load({ type: "cluster", id: clusterId })).events);
    if (view.deleting) return;
    const { state } = await facts.read(
      { type: "kube", id: clusterId },
      { atLeastSequence: kubeSequence ?? (await store.lastSequence({ type: "kube", id: clusterId })) },
    );
    const nodes = only ? [only] : Object.keys(state.nodes).sort();
    let busy: string | undefined;
    for (const node of nodes) {
      const now = state.nodes[node];
      if (!now) continue;
      const change = classificationDrift(view, node, now);
      if (!change) continue;
      const ref = { type: "nodeop" as const, id: nodeAggregateId(clusterId, node) };
      const nodeop = await o.handler.read(ref);
      if (nodeop.state.inFlight) {
        busy = node;
        continue;
      }
      const parsed = catalogue.parseCommand({
        // The cause, the node and the node's version: a redelivery of the same decision is
        // one command; after a refusal (a race) the version moved and the retry is a new one.
        id: derivedId(cause.id, "node.restore-classification", node, String(nodeop.version)),
        type: "node.restore-classification",
        data: { clusterId, node, change, reason: RESTORE_REASON },
        meta: { actor: "node-ops", causationId: cause.id, correlationId: cause.meta.correlationId },
      });
      if (!parsed.ok) throw new PermanentError(`restore built an invalid command: ${parsed.error.message}`);
      const outcome = await o.handler.handle(parsed.value);
      // Another operation got in between the read and the decision: wait for it as well.
      if (outcome.status === "rejected") busy = node;
      else o.logger?.info({ cluster: clusterId, node, change }, "restoring a node's pool classification");
    }
    // On the next pass the nodes restored meanwhile are busy or show no drift any more.
    if (busy) throw new RetryLaterError(busyMs, `node ${busy} has an operation in flight`);
  };

  const onKube = async (e: Event) => {
    if (e.type !== "kube.node-registered" && e.type !== "kube.node-classification-changed") return;
    return check(e.aggregate.id, e, (e.data as { node: string }).node, e.sequence);
  };
  const onCluster = async (e: Event) => {
    if (
      e.type !== "cluster.pool-updated" &&
      e.type !== "cluster.rollback-requested" &&
      e.type !== "cluster.scale-failed"
    )
      return;
    return check(e.aggregate.id, e);
  };

  const consume = (durable: string, aggregate: string, react: (e: Event) => Promise<void>) =>
    startConsumer({
      js: o.nats.js,
      jsm: o.nats.jsm,
      stream: Streams.events,
      durable,
      filterSubject: eventFilter(aggregate),
      concurrency: 8,
      ...(o.logger ? { logger: o.logger } : {}),
      handle: async (msg) => {
        const commit = catalogue.parseCommit(msg.json());
        for (const e of commit.events) await react({ ...(e as RawEventEnvelope), sequence: msg.seq });
      },
    });
  const consumers: RunningConsumer[] = [
    await consume("node-ops-restore-kube", "kube", onKube),
    await consume("node-ops-restore-clusters", "cluster", onCluster),
  ];
  return {
    stop: async () => {
      await Promise.all(consumers.map((c) => c.stop()));
    },
  };
}
