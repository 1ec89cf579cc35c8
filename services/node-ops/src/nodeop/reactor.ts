/**
 * The nodeop process manager: on each requested operation it calls the Kubernetes API
 * through the `Kube` port, then records what happened as an internal command decided by
 * the same aggregate. Every step is idempotent:
 *  - the aggregate is read first: an operation no longer in flight (already recorded,
 *    or superseded) is not carried out again;
 *  - cordon and uncordon are merge patches: doing one twice changes nothing;
 *  - the command it sends is named after the event that caused it (`derivedId`), so a
 *    redelivered event records nothing twice.
 * Transient failures (429, 5xx, connection) are thrown: the runner redelivers with
 * backoff. Permanent ones (no such node, refused) are recorded as `nodeop.failed`.
 */
import {
  type CommandDataInput,
  catalogue,
  commandCausedBy,
  describeError,
  EventStore,
  exponentialDelay,
  type Nats,
  type NodeopCommand,
  type ReactingEvent,
  RetryLaterError,
  type RunnerLogger,
  type RunningConsumer,
  startReactor,
} from "@cairn/events";
import { CORDON_REASON, CORDONED_BY, isPermanentFailure, type Kube, type PodInfo } from "../ports.ts";
import { createAdmission, type DisruptionLimit } from "./admission.ts";
import type { NodeopHandler } from "./cluster-nodes-probe.ts";
import type { NodeOperation, NodeopState } from "./decider.ts";

/** The durable consumer: kept so a deployment resumes where it was. */
export const NODEOP_REACTOR = "node-ops-reactor";

export interface NodeopReactorOptions {
  nats: Nats;
  handler: NodeopHandler;
  kube: Kube;
  logger?: RunnerLogger;
  /** A drain looks at the node again after this long, doubling per pass (default 200 ms)… */
  drainPollMs?: number;
  /** …up to this (default 5 s). */
  drainMaxPollMs?: number;
  /** The cluster-wide disruption limit (./admission.ts; default 10% of the nodes, at least 1); `false`: none. */
  limit?: DisruptionLimit | false;
  /**
   * How long a cordon, an uncordon or a label/taint change keeps trying through
   * transient Kubernetes failures (from its request) before it is recorded as failed
   * (default 10 minutes, a drain's default timeout). A drain has its own deadline.
   */
  patienceMs?: number;
}

export const drainRemediation = (pdb: string) =>
  `the PodDisruptionBudget ${pdb} allows no disruption: scale its workload up or relax the budget, or drain again with a longer timeout`;

/** The events this reactor acts on; the others (the ledger's, progress, outcomes it records) are never read. */
const ACTS_ON = [
  "nodeop.cordon-requested",
  "nodeop.uncordon-requested",
  "nodeop.drain-requested",
  "nodeop.uncordoned",
  "nodeop.failed",
  "nodeop.drain-failed",
  "nodeop.node-deleted",
  "nodeop.classification-requested",
] as const;

type Event = ReactingEvent<"nodeop">;
type Of<T extends Event["type"]> = Extract<Event, { type: T }>;
/** The internal commands that record what happened on a node. */
type NodeCommandType = NodeopCommand["type"];

export async function startNodeopReactor(o: NodeopReactorOptions): Promise<RunningConsumer> {
  const admission = createAdmission({
    handler: o.handler,
    store: new EventStore({ js: o.nats.js, jsm: o.nats.jsm, catalogue }),
    limit: o.limit ?? {},
  });
  /**
   * Decides an internal command on the node, named after its cause (and `key`), on a
   * state at least as fresh as the cause.
   */
  const record = <T extends NodeCommandType>(
    cause: Event,
    type: T,
    data: CommandDataInput<T>,
    key?: string,
  ) =>
    o.handler.handle(
      commandCausedBy(cause, type, data, { actor: "node-ops", ...(key !== undefined ? { key } : {}) }),
      { atLeastSequence: cause.sequence },
    );

  const pollMs = o.drainPollMs ?? 200;
  const maxPollMs = o.drainMaxPollMs ?? 5_000;
  const patienceMs = o.patienceMs ?? DEFAULT_PATIENCE_MS;
  const later = (deliveries: number, why: string) =>
    new RetryLaterError(exponentialDelay(deliveries, { baseMs: pollMs, capMs: maxPollMs }), why);

  /**
   * Calls the Kubernetes API for the operation `e` requested. Permanent failure: returned,
   * to be recorded. Transient failure: a wait (thrown) until the operation's patience
   * runs out, then returned as a failure too — an operation always ends recorded; a dead
   * letter would leave it in flight and the node refusing every other operation.
   */
  const attempt = async (
    e: Event & { data: { clusterId: string; node: string } },
    call: () => Promise<void>,
  ): Promise<{ reason: string; remediation?: string } | undefined> => {
    try {
      await call();
      return undefined;
    } catch (err) {
      if (isPermanentFailure(err))
        return { reason: err.message, ...(err.remediation ? { remediation: err.remediation } : {}) };
      const since = Date.parse(e.time);
      if (Date.now() - since < patienceMs)
        throw later(
          e.deliveries,
          `node ${e.data.node} of cluster ${e.data.clusterId}: the Kubernetes API failed (${describeError(err)}); retried until ${new Date(since + patienceMs).toISOString()}`,
        );
      return {
        reason: `the Kubernetes API kept failing for ${Math.round(patienceMs / 1000)} s: ${err instanceof Error ? err.message : String(err)}`,
        remediation: "check the cluster's API server, then try again",
      };
    }
  };

  /** Runs a cordon or uncordon; a failure (permanent, or transient past the patience) is recorded. */
  const carryOut = async (
    e: Of<"nodeop.cordon-requested" | "nodeop.uncordon-requested">,
    operation: NodeOperation & ("cordon" | "uncordon"),
    call: () => Promise<void>,
    done: () => Promise<unknown>,
  ) => {
    const { clusterId, node } = e.data;
    const failed = await attempt(e, call);
    if (!failed) return done();
    o.logger?.warn({ cluster: clusterId, node, operation, reason: failed.reason }, "node operation failed");
    return record(e, "node.record-failure", { clusterId, node, operation, ...failed });
  };

  /**
   * One pass of a drain: cordon (idempotent), list the node's pods, evict those that are
   * not yet leaving, then record drained / failed / progress. Still waiting: thrown
   * `RetryLaterError`, the event comes back later. Never waits in the handler.
   */
  const drain = async (e: Of<"nodeop.drain-requested">, state: NodeopState) => {
    const d = e.data;
    const { clusterId, node } = d;
    const inFlight = state.inFlight;
    if (inFlight?.operation !== "drain") return;
    const holder = state.cordoned ?? { by: d.by, reason: d.reason };
    const pastDeadline = () => d.deadline !== undefined && Date.now() >= Date.parse(d.deadline);
    const fail = (
      reason: string,
      remediation: string,
      leftCordoned: boolean,
      blocking: { pod: string; pdb?: string }[] = [],
    ) =>
      record(e, "node.record-drain-failure", {
        clusterId,
        node,
        reason,
        blocking,
        remediation,
        leftCordoned,
      });
    // Queued under the cluster's disruption limit: wait, but not past the drain's deadline.
    const waiting = await admission.admit(e, e.deliveries);
    if (waiting) {
      if (!pastDeadline()) throw waiting;
      return fail(
        `the drain of node ${node} timed out at ${d.deadline} waiting for the cluster's disruption limit (${waiting.message}); the node was not touched`,
        "uncordon a node Cairn holds cordoned, raise the limit, or drain again with force: true",
        false,
      );
    }
    /**
     * A transient failure is retried until the deadline, then the drain fails with it.
     * The deadline is this drain's budget, so until then it is a wait (it does not count
     * towards a dead letter, which would leave the drain in flight for good).
     */
    const transient = (err: unknown) => {
      if (d.deadline === undefined) throw err;
      if (!pastDeadline())
        throw later(
          e.deliveries,
          `node ${node}: the Kubernetes API failed (${describeError(err)}); retried until the drain's deadline ${d.deadline}`,
        );
      const why = err instanceof Error ? err.message : String(err);
      return fail(
        `the drain of node ${node} timed out at ${d.deadline}: the Kubernetes API kept failing (${why}); the node is left cordoned`,
        "check the cluster's API server, then drain again",
        true,
      );
    };
    try {
      await o.kube.cordon(clusterId, node, { [CORDONED_BY]: holder.by, [CORDON_REASON]: holder.reason });
    } catch (err) {
      if (!isPermanentFailure(err)) return transient(err);
      return fail(err.message, err.remediation ?? "check the node and try again", false);
    }
    let evictedNow = 0;
    let retryAfterMs = 0;
    const blocking: { pod: string; pdb?: string }[] = [];
    let remaining = 0;
    try {
      const listed = await o.kube.listPods(clusterId, node);
      // What kubectl drain refuses unless told: the drain fails at once, naming the pods.
      const refused = drainRefusals(listed, d);
      if (refused) {
        o.logger?.warn({ cluster: clusterId, node, pods: refused.pods }, "drain refused");
        return fail(
          refused.reason,
          refused.remediation,
          true,
          refused.pods.map((pod) => ({ pod })),
        );
      }
      const pods = listed.filter((p) => !p.daemonSet && !p.mirror);
      remaining = pods.length;
      // Evictions run side by side (as kubectl drain's do), at most EVICTIONS_IN_FLIGHT at
      // once; the API server still checks each against the budgets.
      const outcomes = await mapBounded(pods, EVICTIONS_IN_FLIGHT, (p) =>
        p.terminating
          ? Promise.resolve(undefined)
          : o.kube.evict(clusterId, p.namespace, p.name, d.gracePeriodSeconds),
      );
      pods.forEach((p, i) => {
        const pod = `${p.namespace}/${p.name}`;
        const r = outcomes[i];
        if (r && !r.evicted) {
          // Refused (a budget, a budget the server has not processed yet, throttling): this
          // pod again on a later pass, no sooner than the server's Retry-After.
          if (r.retryAfterSeconds !== undefined)
            retryAfterMs = Math.max(retryAfterMs, r.retryAfterSeconds * 1000);
          blocking.push("blockedBy" in r ? { pod, pdb: r.blockedBy } : { pod });
          return;
        }
        if (r?.evicted) evictedNow++;
        blocking.push({ pod });
      });
    } catch (err) {
      if (!isPermanentFailure(err)) return transient(err);
      return fail(err.message, err.remediation ?? "check the node and drain again", true);
    }
    const evicted = (inFlight.progress?.evicted ?? 0) + evictedNow;
    if (remaining === 0) return record(e, "node.record-drained", { clusterId, node, by: d.by, evicted });

    const pdbs = [...new Set(blocking.flatMap((b) => (b.pdb ? [b.pdb] : [])))].sort();
    if (pastDeadline()) {
      const reason = `the drain of node ${node} timed out at ${d.deadline} with ${remaining} pod(s) still on it; the node is left cordoned`;
      const remediation =
        pdbs.length > 0
          ? pdbs.map(drainRemediation).join("; ")
          : "the pods did not terminate in time: check why they are stuck terminating, or drain again with a longer timeout";
      o.logger?.warn({ cluster: clusterId, node, pdbs }, "drain timed out");
      return fail(reason, remediation, true, blocking);
    }
    const progress = { evicted, remaining, ...(pdbs.length > 0 ? { blockedBy: pdbs } : {}) };
    // Named after the cause and the content (joined as derivedId joins its parts): the
    // same progress is recorded once.
    await record(
      e,
      "node.record-drain-progress",
      { clusterId, node, ...progress },
      [String(evicted), String(remaining), pdbs.join(",")].join("\u0000"),
    );
    const next = later(e.deliveries, `node ${node}: ${remaining} pod(s) still on it`);
    // The server's Retry-After is honoured up to the drain's own longest poll.
    if (retryAfterMs > next.delayMs)
      throw new RetryLaterError(Math.min(maxPollMs, retryAfterMs), next.message);
    throw next;
  };

  const react = async (e: Event) => {
    const { state } = await o.handler.read(e.aggregate, { atLeastSequence: e.sequence });
    switch (e.type) {
      case "nodeop.cordon-requested": {
        if (state.inFlight?.operation !== "cordon") return;
        const { clusterId, node, by, reason } = e.data;
        const waiting = await admission.admit(e, e.deliveries);
        if (waiting) throw waiting;
        await carryOut(
          e,
          "cordon",
          () => o.kube.cordon(clusterId, node, { [CORDONED_BY]: by, [CORDON_REASON]: reason }),
          () => record(e, "node.record-cordoned", { clusterId, node, reason, by }),
        );
        return;
      }
      case "nodeop.uncordon-requested": {
        if (state.inFlight?.operation !== "uncordon") return;
        const { clusterId, node, by } = e.data;
        await carryOut(
          e,
          "uncordon",
          () => o.kube.uncordon(clusterId, node),
          () => record(e, "node.record-uncordoned", { clusterId, node, by }),
        );
        return;
      }
      case "nodeop.drain-requested":
        await drain(e, state);
        return;
      // Cairn let go of the node (or never took it): its place under the limit is free.
      case "nodeop.uncordoned":
      case "nodeop.failed":
      case "nodeop.drain-failed":
        return admission.release(e, state);
      // The node is gone (its instance retired or reclaimed): a drained node stays cordoned,
      // so this is when its place under the limit is given back.
      case "nodeop.node-deleted":
        return admission.releaseGone(e, `its Node was deleted: ${e.data.reason}`);
      case "nodeop.classification-requested": {
        // Labels and taints: one read-compute-patch on the node (see adapters/classification-patch.ts).
        const { clusterId, node, operation, change, by } = e.data;
        if (state.inFlight?.operation !== operation) return;
        const failed = await attempt(e, () => o.kube.applyClassification(clusterId, node, change));
        if (failed)
          await record(e, "node.record-classification-failure", { clusterId, node, operation, ...failed });
        else await record(e, "node.record-classified", { clusterId, node, operation, by });
        return;
      }
      default:
        return;
    }
  };

  return await startReactor({
    nats: o.nats,
    name: NODEOP_REACTOR,
    aggregate: "nodeop",
    types: ACTS_ON,
    // Nodes proceed side by side (a drain's waits never hold up another node); the
    // runtime keeps each node's commits in order.
    concurrency: 32,
    // A node's events depend on each other's outcome (the state read first): one after
    // another, as before.
    commitEvents: "in-order",
    ...(o.logger ? { logger: o.logger } : {}),
    react,
  });
}

/** How long an operation without a deadline keeps trying through transient API failures. */
export const DEFAULT_PATIENCE_MS = 10 * 60_000;

/** How many evictions one drain pass has in flight at most. */
const EVICTIONS_IN_FLIGHT = 16;

/** `f` over `items` with at most `limit` running at once; results in the items' order. */
async function mapBounded<T, R>(
  items: readonly T[],
  limit: number,
  f: (item: T) => Promise<R>,
): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < items.length; i = next++) out[i] = await f(items[i] as T);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

/**
 * The pods `kubectl drain` would refuse to evict under this drain's policy, and why:
 * unmanaged pods (no controller recreates them) without `forceUnmanaged`, pods with
 * emptyDir data without `deleteEmptyDirData`, DaemonSet pods when they are not ignored.
 * Mirror pods and pods already terminating never count. Undefined: nothing is refused.
 */
export function drainRefusals(
  pods: readonly PodInfo[],
  policy: { forceUnmanaged?: boolean; deleteEmptyDirData?: boolean; ignoreDaemonSets?: boolean },
): { reason: string; remediation: string; pods: string[] } | undefined {
  const live = pods.filter((p) => !p.mirror && !p.terminating);
  const name = (p: PodInfo) => `${p.namespace}/${p.name}`;
  const rules: { pods: PodInfo[]; what: string; fix: string }[] = [
    {
      pods: policy.ignoreDaemonSets === false ? live.filter((p) => p.daemonSet) : [],
      what: "DaemonSet-managed pods",
      fix: "drain with ignoreDaemonSets: true (they stay on the node)",
    },
    {
      pods: policy.forceUnmanaged ? [] : live.filter((p) => p.unmanaged && !p.daemonSet),
      what: "pods no controller manages (they would not come back)",
      fix: "drain with forceUnmanaged: true to evict them anyway, or give them a controller",
    },
    {
      pods: policy.deleteEmptyDirData ? [] : live.filter((p) => p.emptyDir && !p.daemonSet),
      what: "pods with emptyDir data (it would be lost)",
      fix: "drain with deleteEmptyDirData: true to evict them anyway",
    },
  ].filter((r) => r.pods.length > 0);
  if (rules.length === 0) return undefined;
  return {
    reason: `the drain cannot evict ${rules.map((r) => `${r.what}: ${r.pods.map(name).join(", ")}`).join("; ")}; the node is left cordoned`,
    remediation: rules.map((r) => r.fix).join("; "),
    pods: [...new Set(rules.flatMap((r) => r.pods.map(name)))],
  };
}
