import { z } from "zod";
import { nodeAggregateId, tokenSafeId } from "../ids.ts";
import { defineRejected } from "./common.ts";
import { type CommandOf, defineCommand, defineEvent, type EventOf } from "./define.ts";
import { nodeName } from "./node-name.ts";
import { classificationCommands, classificationEvents } from "./nodeop-classification.ts";
import { limitCommands, limitEvents } from "./nodeop-limit.ts";

export { nodeName };

const nodeRef = { clusterId: tokenSafeId, node: nodeName, reason: z.string().min(1).max(1024) };
const byNode = (d: { clusterId: string; node: string }) => nodeAggregateId(d.clusterId, d.node);

/** Past the cluster's disruption limit (see nodeop-limit.ts): not queued, carried out at once. */
const forceLimit = { force: z.boolean().optional() };

export const CordonNode = defineCommand({
  type: "node.cordon",
  aggregate: "nodeop",
  schema: z.object({ ...nodeRef, ...forceLimit }),
  aggregateId: byNode,
  description: "Mark a node unschedulable; the log records who and why.",
});
export const UncordonNode = defineCommand({
  type: "node.uncordon",
  aggregate: "nodeop",
  schema: z.object({ ...nodeRef, force: z.boolean().default(false) }),
  aggregateId: byNode,
  description: "Make a node schedulable again (only what Cairn cordoned, unless forced).",
});
/**
 * What a drain may do with pods `kubectl drain` refuses by default: pods no controller
 * would recreate (`forceUnmanaged`, kubectl's `--force`), pods whose emptyDir data would
 * be lost (`deleteEmptyDirData`), and DaemonSet pods, which are left in place when
 * ignored (the default, as `--ignore-daemonsets`) and refuse the drain when not.
 */
const drainPolicy = {
  forceUnmanaged: z.boolean().optional(),
  deleteEmptyDirData: z.boolean().optional(),
  ignoreDaemonSets: z.boolean().optional(),
};
export const DrainNode = defineCommand({
  type: "node.drain",
  aggregate: "nodeop",
  schema: z.object({
    ...nodeRef,
    ...forceLimit,
    ...drainPolicy,
    timeoutSeconds: z.number().int().positive().max(86_400).optional(),
    gracePeriodSeconds: z.number().int().nonnegative().max(86_400).optional(),
  }),
  aggregateId: byNode,
  description:
    "Cordon a node and evict its pods through the Eviction API, honouring PodDisruptionBudgets, as `kubectl drain` does: mirror pods and (with `ignoreDaemonSets`, the default) DaemonSet pods are left alone; pods no controller recreates need `forceUnmanaged`, pods with emptyDir data `deleteEmptyDirData`; fails after `timeoutSeconds` (default 600).",
});

const nodeKey = { clusterId: tokenSafeId, node: nodeName };
/** Who asked: the command's `meta.actor`. */
const by = z.string().min(1);

export const RecordCordoned = defineCommand({
  type: "node.record-cordoned",
  aggregate: "nodeop",
  internal: true,
  schema: z.object({ ...nodeKey, reason: z.string().min(1).max(1024), by }),
  aggregateId: byNode,
  description: "internal: the Kubernetes API marked the node unschedulable.",
});
export const RecordUncordoned = defineCommand({
  type: "node.record-uncordoned",
  aggregate: "nodeop",
  internal: true,
  schema: z.object({ ...nodeKey, by }),
  aggregateId: byNode,
  description: "internal: the Kubernetes API made the node schedulable again.",
});
export const RecordNodeopFailure = defineCommand({
  type: "node.record-failure",
  aggregate: "nodeop",
  internal: true,
  schema: z.object({
    ...nodeKey,
    operation: z.enum(["cordon", "uncordon"]),
    reason: z.string(),
    remediation: z.string().optional(),
  }),
  aggregateId: byNode,
  description: "internal: an operation on the node failed for good.",
});
/** A pod the drain could not evict, and the PodDisruptionBudget that forbade it (if one did). */
const blockingPod = z.object({ pod: z.string().min(1), pdb: z.string().min(1).optional() });
const drainCounts = {
  evicted: z.number().int().nonnegative(),
  remaining: z.number().int().nonnegative(),
  /** The PodDisruptionBudgets that refused an eviction in the last pass. */
  blockedBy: z.array(z.string().min(1)).optional(),
};
export const RecordDrainProgress = defineCommand({
  type: "node.record-drain-progress",
  aggregate: "nodeop",
  internal: true,
  schema: z.object({ ...nodeKey, ...drainCounts }),
  aggregateId: byNode,
  description: "internal: a drain pass evicted what it could; recorded only when the counts changed.",
});
export const RecordDrained = defineCommand({
  type: "node.record-drained",
  aggregate: "nodeop",
  internal: true,
  schema: z.object({ ...nodeKey, by, evicted: z.number().int().nonnegative() }),
  aggregateId: byNode,
  description: "internal: every evictable pod has left the node.",
});
export const RecordDrainFailure = defineCommand({
  type: "node.record-drain-failure",
  aggregate: "nodeop",
  internal: true,
  schema: z.object({
    ...nodeKey,
    reason: z.string(),
    blocking: z.array(blockingPod),
    remediation: z.string(),
    leftCordoned: z.boolean(),
  }),
  aggregateId: byNode,
  description: "internal: the drain ran out of time or failed for good.",
});
/** A spot interruption notice as the intake read it (EventBridge → SQS). */
const interruptionNotice = {
  /** The EC2 instance behind the node (Cairn names nodes after their instance). */
  instanceId: z.string().regex(/^i-[0-9a-f]{8,17}$/, "must be an EC2 instance id"),
  region: z.string().min(1),
  /** The EventBridge event's id: one notice, one record. */
  noticeId: z.string().min(1).max(128),
  /** ISO 8601, AWS's clock: when the warning was given (the event's `time`). */
  noticeTime: z.string().datetime(),
  /** ISO 8601, AWS's clock: when the instance is reclaimed (two minutes after the notice). */
  terminationTime: z.string().datetime(),
};
export const RecordInterruption = defineCommand({
  type: "node.record-interruption",
  aggregate: "nodeop",
  internal: true,
  schema: z.object({ ...nodeKey, ...interruptionNotice }),
  aggregateId: byNode,
  description:
    "internal: the node's spot instance got its two-minute interruption notice; drain it now (idempotent per notice).",
});
export const RecordNodeDeleted = defineCommand({
  type: "node.record-deleted",
  aggregate: "nodeop",
  internal: true,
  schema: z.object({ ...nodeKey, reason: z.string().min(1).max(1024) }),
  aggregateId: byNode,
  description:
    "internal: the Node object of an instance that is gone (reclaimed after an interruption, or terminated by the provisioner) was deleted from the API.",
});
export const nodeopCommands = [
  CordonNode,
  UncordonNode,
  DrainNode,
  RecordCordoned,
  RecordUncordoned,
  RecordNodeopFailure,
  RecordDrainProgress,
  RecordDrained,
  RecordDrainFailure,
  ...classificationCommands,
  ...limitCommands,
  RecordInterruption,
  RecordNodeDeleted,
] as const;
export type NodeopCommand = CommandOf<(typeof nodeopCommands)[number]>;

export const NodeopRejected = defineRejected("nodeop");
export const NodeCordonRequested = defineEvent({
  type: "nodeop.cordon-requested",
  aggregate: "nodeop",
  schema: z.object({ ...nodeKey, reason: z.string(), by, ...forceLimit }),
  description: "Cairn will mark the node unschedulable; records who asked and why.",
});
export const NodeCordoned = defineEvent({
  type: "nodeop.cordoned",
  aggregate: "nodeop",
  schema: z.object({ ...nodeKey, reason: z.string(), by }),
  description: "The node is unschedulable, cordoned by Cairn (annotated with who and why).",
});
export const NodeUncordonRequested = defineEvent({
  type: "nodeop.uncordon-requested",
  aggregate: "nodeop",
  schema: z.object({ ...nodeKey, reason: z.string(), by, forced: z.boolean() }),
  description: "Cairn will make the node schedulable; `forced` when Cairn had not cordoned it.",
});
export const NodeUncordoned = defineEvent({
  type: "nodeop.uncordoned",
  aggregate: "nodeop",
  schema: z.object({ ...nodeKey, by }),
  description: "The node is schedulable again.",
});
export const NodeopFailed = defineEvent({
  type: "nodeop.failed",
  aggregate: "nodeop",
  schema: z.object({
    ...nodeKey,
    operation: z.enum(["cordon", "uncordon"]),
    reason: z.string(),
    remediation: z.string().optional(),
  }),
  description: "An operation on the node failed for good; the reason says why, the remediation what to do.",
});
export const NodeDrainRequested = defineEvent({
  type: "nodeop.drain-requested",
  aggregate: "nodeop",
  schema: z.object({
    ...nodeKey,
    reason: z.string(),
    by,
    /** ISO 8601: when the drain gives up (decision time + `timeoutSeconds`, default 10 minutes). */
    deadline: z.string().datetime().optional(),
    gracePeriodSeconds: z.number().int().nonnegative().optional(),
    ...forceLimit,
    ...drainPolicy,
  }),
  description:
    "Cairn will cordon the node (unless it holds it cordoned already) and evict its pods; records who asked, why and until when.",
});
export const NodeDrainProgress = defineEvent({
  type: "nodeop.drain-progress",
  aggregate: "nodeop",
  schema: z.object({ ...nodeKey, ...drainCounts }),
  description:
    "A drain is under way: pods evicted so far, pods still on the node, and the PodDisruptionBudgets holding it up. Emitted only when this changes.",
});
export const NodeDrained = defineEvent({
  type: "nodeop.drained",
  aggregate: "nodeop",
  schema: z.object({ ...nodeKey, by, evicted: z.number().int().nonnegative() }),
  description: "Every evictable pod has left the node; it stays cordoned.",
});
export const NodeDrainFailed = defineEvent({
  type: "nodeop.drain-failed",
  aggregate: "nodeop",
  schema: z.object({
    ...nodeKey,
    reason: z.string(),
    blocking: z.array(blockingPod),
    remediation: z.string(),
    /** Whether the node is left cordoned (the default policy: yes, once the drain cordoned it). */
    leftCordoned: z.boolean(),
  }),
  description:
    "The drain gave up: the pods still on the node and the PodDisruptionBudgets that kept them, what to do, and whether the node is left cordoned.",
});
export const NodeInterruptionNoticed = defineEvent({
  type: "nodeop.interruption-noticed",
  aggregate: "nodeop",
  schema: z.object({ ...nodeKey, ...interruptionNotice }),
  description:
    "The node's spot instance will be reclaimed at `terminationTime`: node-ops drains it at once (a `nodeop.drain-requested` follows) and the provisioner launches its replacement.",
});
export const NodeDeleted = defineEvent({
  type: "nodeop.node-deleted",
  aggregate: "nodeop",
  schema: z.object({ ...nodeKey, reason: z.string() }),
  description:
    "The Node object is gone from the API: its instance was reclaimed after an interruption, or terminated as surplus or replaced.",
});
export const nodeopEvents = [
  NodeopRejected,
  NodeCordonRequested,
  NodeCordoned,
  NodeUncordonRequested,
  NodeUncordoned,
  NodeopFailed,
  NodeDrainRequested,
  NodeDrainProgress,
  NodeDrained,
  NodeDrainFailed,
  ...classificationEvents,
  ...limitEvents,
  NodeInterruptionNoticed,
  NodeDeleted,
] as const;
export type NodeopEvent = EventOf<(typeof nodeopEvents)[number]>;
