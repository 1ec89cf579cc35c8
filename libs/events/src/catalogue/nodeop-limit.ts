/**
 * The cluster-wide limit on disruptions: at most N nodes of a cluster cordoned or
 * draining by Cairn at once. Nodes are separate `nodeop` aggregates, so the count lives
 * on one more instance of the same aggregate type per cluster, the cluster's disruption
 * ledger (`nodeopLimitId`): admissions are its decisions, serialised by the event
 * store's optimistic concurrency like any other. No new subject, stream or permission.
 */
import { z } from "zod";
import { nodeAggregateId, tokenSafeId } from "../ids.ts";
import { type CommandOf, defineCommand, defineEvent, type EventOf } from "./define.ts";
import { nodeName } from "./node-name.ts";

/**
 * The id of a cluster's disruption ledger on the `nodeop` aggregate type. A node's id is
 * `<cluster>=<node with . as _>` and a node name never starts with `.`, so `=_disruptions`
 * is never a node's.
 *
 * @example nodeopLimitId("demo-1") // "demo-1=_disruptions"
 */
export function nodeopLimitId(clusterId: string): string {
  return `${clusterId}=_disruptions`;
}

const nodeKey = { clusterId: tokenSafeId, node: nodeName };
const byLedger = (d: { clusterId: string }) => nodeopLimitId(d.clusterId);
const limit = z.number().int().positive();
/** Set when the node is gone (its Node deleted, its instance retired) rather than let go by Cairn. */
const gone = { reason: z.string().optional() };

export const AdmitDisruption = defineCommand({
  type: "node.admit-disruption",
  aggregate: "nodeop",
  internal: true,
  schema: z.object({ ...nodeKey, limit, force: z.boolean() }),
  aggregateId: byLedger,
  description:
    "internal: the node may be cordoned or drained if fewer than `limit` nodes of the cluster are (or `force`).",
});
export const ReleaseDisruption = defineCommand({
  type: "node.release-disruption",
  aggregate: "nodeop",
  internal: true,
  schema: z.object({ ...nodeKey, ...gone }),
  aggregateId: byLedger,
  description:
    "internal: the node no longer counts against the limit: Cairn let go of it (no `reason`), or it is gone (`reason`: its Node was deleted, or its instance retired).",
});
export const RecordWaiting = defineCommand({
  type: "node.record-waiting",
  aggregate: "nodeop",
  internal: true,
  schema: z.object({ ...nodeKey, limit, waitingFor: z.array(nodeName) }),
  aggregateId: (d) => nodeAggregateId(d.clusterId, d.node),
  description: "internal: the node's cordon or drain waits for the cluster's disruption limit.",
});
export const limitCommands = [AdmitDisruption, ReleaseDisruption, RecordWaiting] as const;
export type LimitCommand = CommandOf<(typeof limitCommands)[number]>;

export const DisruptionAdmitted = defineEvent({
  type: "nodeop.disruption-admitted",
  aggregate: "nodeop",
  schema: z.object({ ...nodeKey, limit, forced: z.boolean(), holders: z.array(nodeName) }),
  description:
    "On the cluster's disruption ledger: the node may be cordoned or drained; `holders` are every node counted now (it included).",
});
export const DisruptionReleased = defineEvent({
  type: "nodeop.disruption-released",
  aggregate: "nodeop",
  schema: z.object({ ...nodeKey, ...gone }),
  description:
    "On the cluster's disruption ledger: the node no longer counts against the limit; `reason`, when set, says why it is gone (a node drained for retirement stays cordoned until its Node is deleted).",
});
export const NodeWaiting = defineEvent({
  type: "nodeop.waiting",
  aggregate: "nodeop",
  schema: z.object({
    ...nodeKey,
    operation: z.enum(["cordon", "drain"]),
    limit,
    /** The nodes Cairn holds cordoned or draining now: one of them must be released first. */
    waitingFor: z.array(nodeName),
  }),
  description:
    "The node's cordon or drain is queued: the cluster already has `limit` nodes cordoned or draining by Cairn (`waitingFor`).",
});
export const limitEvents = [DisruptionAdmitted, DisruptionReleased, NodeWaiting] as const;
export type LimitEvent = EventOf<(typeof limitEvents)[number]>;
