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
  type AnyEvent,
  CommandHandler,
  catalogue,
  commandCausedBy,
  createLook,
  EventStore,
  type Nats,
  nodeAggregateId,
  type RawEventEnvelope,
  RetryLaterError,
  type RunnerLogger,
  type RunningConsumer,
  startReactor,
} from "@cairn/events";
import { kubeDecider } from "../kube/decider.ts";
import type { NodeopHandler } from "../nodeop/cluster-nodes-probe.ts";
import {
  classificationDrift,
  emptyPoolView,
  evolvePoolView,
  evolvePoolViewAll,
  type PoolView,
} from "./pool-view.ts";

export const RESTORE_REASON = "restore pool classification";
/** How long a restore waits for the operation in flight on the node before looking again. */
const BUSY_RETRY_MS = 500;
/** The durable consumers: kept so a deployment resumes where it was. */
export const RESTORE_REACTORS = {
  kube: "node-ops-restore-kube",
  clusters: "node-ops-restore-clusters",
} as const;
/** Clusters whose pool view is kept folded in memory (least recently used first out). */
const VIEWS_KEPT = 1_000;

export interface ClassificationRestoreOptions {
  nats: Nats;
  /** The nodeop aggregate's handler (the same one the command server uses). */
  handler: NodeopHandler;
  logger?: RunnerLogger;
  /** How long to wait for a node's operation in flight (default 500 ms). */
  busyRetryMs?: number;
}

type Cause = Pick<RawEventEnvelope, "id" | "meta">;

export async function startClassificationRestore(
  o: ClassificationRestoreOptions,
): Promise<{ stop(): Promise<void> }> {
  const store = new EventStore({ js: o.nats.js, jsm: o.nats.jsm, catalogue });
  // Reads only (the facts are written by the watcher's own handler): a cached view.
  const facts = new CommandHandler({ decider: kubeDecider, store, catalogue });
  const busyMs = o.busyRetryMs ?? BUSY_RETRY_MS;
  const pools = poolViews(store);

  /**
   * 1. The pools' classification (the cluster's events folded; cached, checked against the log).
   * 2. Read the kube facts, at least as fresh as the cause (when it is a kube event), else as the log has them.
   * 3. For each node (or the one named): compute the drift; none → nothing.
   * 4. The node busy with another operation → wait (retry later); else request the restore.
   */
  const check = async (
    clusterId: string,
    cause: Cause,
    at: { cluster?: number; kube?: number },
    only?: string,
  ) => {
    const view = await pools.of(clusterId, at.cluster);
    if (view.deleting) return;
    const { state } = await facts.read(
      { type: "kube", id: clusterId },
      at.kube !== undefined ? { atLeastSequence: at.kube } : {},
    );
    const nodes = only ? [only] : Object.keys(state.nodes).sort();
    let busy: string | undefined;
    for (const node of nodes) {
      const now = state.nodes[node];
      if (!now) continue;
      const change = classificationDrift(view, node, now);
      if (!change) continue;
      // Another aggregate: read as fresh as the log (another replica may have written it).
      const nodeop = await o.handler.read({ type: "nodeop", id: nodeAggregateId(clusterId, node) });
      if (nodeop.state.inFlight) {
        busy = node;
        continue;
      }
      const outcome = await o.handler.handle(
        commandCausedBy(
          cause,
          "node.restore-classification",
          { clusterId, node, change, reason: RESTORE_REASON },
          // The cause, the node and the node's version: a redelivery of the same decision is
          // one command; after a refusal (a race) the version moved and the retry is a new one.
          { actor: "node-ops", key: `${node}\u0000${nodeop.version}` },
        ),
      );
      // Another operation got in between the read and the decision (the decider then
      // changes nothing, or refuses): wait for it as well.
      if (outcome.status === "rejected" || outcome.status === "unchanged") busy = node;
      else o.logger?.info({ cluster: clusterId, node, change }, "restoring a node's pool classification");
    }
    // On the next pass the nodes restored meanwhile are busy or show no drift any more.
    if (busy) throw new RetryLaterError(busyMs, `node ${busy} has an operation in flight`);
  };

  const consumers: RunningConsumer[] = [];
  try {
    // A node registered or its classification changed: that node.
    consumers.push(
      await startReactor({
        nats: o.nats,
        name: RESTORE_REACTORS.kube,
        aggregate: "kube",
        types: ["kube.node-registered", "kube.node-classification-changed"],
        concurrency: 8,
        ...(o.logger ? { logger: o.logger } : {}),
        react: async (e) => {
          if (e.type !== "kube.node-registered" && e.type !== "kube.node-classification-changed") return;
          await check(e.aggregate.id, e, { kube: e.sequence }, e.data.node);
        },
      }),
    );
    // A pool's labels or taints changed: every node the facts know of in the cluster.
    consumers.push(
      await startReactor({
        nats: o.nats,
        name: RESTORE_REACTORS.clusters,
        aggregate: "cluster",
        types: ["cluster.pool-updated", "cluster.rollback-requested", "cluster.scale-failed"],
        concurrency: 8,
        ...(o.logger ? { logger: o.logger } : {}),
        react: async (e) => {
          await check(e.aggregate.id, e, { cluster: e.sequence });
        },
      }),
    );
  } catch (err) {
    await Promise.all(consumers.map((c) => c.stop()));
    throw err;
  }
  return {
    stop: async () => {
      await Promise.all(consumers.map((c) => c.stop()));
    },
  };
}

/**
 * The pools' classification per cluster, kept folded (createLook): a look costs one check
 * of the cluster's last sequence (or none, when the cause's sequence is already folded
 * in), and only the cluster's new commits are folded — never its whole history again,
 * and not on every kube event of its nodes. The 50 nodes of one kube commit looking at
 * once share one read (createLook's single flight), and a commit of hundreds of running
 * instances is folded with one copy of the instance map (`evolvePoolViewAll`).
 */
export function poolViews(store: Pick<EventStore<AnyEvent>, "lastSequence" | "load">) {
  const views = createLook<PoolView, AnyEvent>({
    store,
    empty: emptyPoolView,
    evolve: evolvePoolView,
    evolveAll: evolvePoolViewAll,
    keep: VIEWS_KEPT,
  });
  return {
    /** The view, including at least the commit at `atLeastSequence` (else as the log has it now). */
    async of(clusterId: string, atLeastSequence?: number): Promise<PoolView> {
      return (await views.of({ type: "cluster", id: clusterId }, atLeastSequence)).view;
    },
  };
}
