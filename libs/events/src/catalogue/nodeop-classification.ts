/**
 * A node's classification (its labels and taints), changed through the `nodeop`
 * aggregate: the public label / unlabel / taint / untaint commands, and node-ops' own
 * restore of a pool's classification when it drifted. Kept apart from `nodeop.ts` so the
 * cordon / drain vocabulary and this one grow independently; both belong to the same
 * aggregate (one per node), so they are serialised with each other.
 */
import { z } from "zod";
import { nodeAggregateId, tokenSafeId } from "../ids.ts";
import { labelKey, labels, taint } from "./common.ts";
import { type CommandOf, defineCommand, defineEvent, type EventOf } from "./define.ts";
import { nodeName } from "./node-name.ts";

/**
 * Labels only Cairn sets: what a node's pool and capacity type are. The installer puts
 * them on at join, node-ops restores them; a public command may not change them.
 */
export const CLASSIFICATION_LABELS = ["cairn.dev/pool", "cairn.dev/capacity-type"] as const;

/** A taint as `untaint` names it: key and effect (a node has at most one taint per pair). */
export const taintRef = z.object({ key: labelKey, effect: taint.shape.effect });
export type TaintRef = z.infer<typeof taintRef>;

/** What one classification operation does to the node; each part may be empty. */
export const classificationChange = z.object({
  /** Labels set (added or overwritten). */
  setLabels: labels,
  /** Label keys removed (absent ones are ignored). */
  removeLabels: z.array(labelKey),
  /** Taints added; one with the same key and effect is replaced (its value). */
  addTaints: z.array(taint),
  /** Taints removed by key and effect (absent ones are ignored). */
  removeTaints: z.array(taintRef),
});
export type ClassificationChange = z.infer<typeof classificationChange>;

export const classificationOperation = z.enum(["label", "unlabel", "taint", "untaint", "restore"]);
export type ClassificationOperation = z.infer<typeof classificationOperation>;

const nodeKey = { clusterId: tokenSafeId, node: nodeName };
const reason = z.string().min(1).max(1024);
const by = z.string().min(1);
const byNode = (d: { clusterId: string; node: string }) => nodeAggregateId(d.clusterId, d.node);

export const LabelNode = defineCommand({
  type: "node.label",
  aggregate: "nodeop",
  schema: z.object({
    ...nodeKey,
    labels: labels.refine((l) => Object.keys(l).length > 0, "must set at least one label"),
    reason,
  }),
  aggregateId: byNode,
  description:
    "Set labels on a node (added or overwritten). Cairn's own `cairn.dev/pool` and `cairn.dev/capacity-type` are refused.",
});
export const UnlabelNode = defineCommand({
  type: "node.unlabel",
  aggregate: "nodeop",
  schema: z.object({ ...nodeKey, keys: z.array(labelKey).min(1), reason }),
  aggregateId: byNode,
  description:
    "Remove labels from a node by key (absent ones are ignored). Cairn's own classification labels are refused.",
});
export const TaintNode = defineCommand({
  type: "node.taint",
  aggregate: "nodeop",
  schema: z.object({ ...nodeKey, taints: z.array(taint).min(1), reason }),
  aggregateId: byNode,
  description: "Add taints to a node; a taint with the same key and effect is replaced.",
});
export const UntaintNode = defineCommand({
  type: "node.untaint",
  aggregate: "nodeop",
  schema: z.object({ ...nodeKey, taints: z.array(taintRef).min(1), reason }),
  aggregateId: byNode,
  description: "Remove taints from a node by key and effect (absent ones are ignored).",
});
export const RestoreClassification = defineCommand({
  type: "node.restore-classification",
  aggregate: "nodeop",
  internal: true,
  schema: z.object({ ...nodeKey, change: classificationChange, reason }),
  aggregateId: byNode,
  description:
    "internal: put the node's pool classification back (its pool's labels and taints, `cairn.dev/pool`, `cairn.dev/capacity-type`).",
});
export const RecordClassified = defineCommand({
  type: "node.record-classified",
  aggregate: "nodeop",
  internal: true,
  schema: z.object({ ...nodeKey, operation: classificationOperation, by }),
  aggregateId: byNode,
  description: "internal: the Kubernetes API shows the node's labels and taints as requested.",
});
export const RecordClassificationFailure = defineCommand({
  type: "node.record-classification-failure",
  aggregate: "nodeop",
  internal: true,
  schema: z.object({
    ...nodeKey,
    operation: classificationOperation,
    reason: z.string(),
    remediation: z.string().optional(),
  }),
  aggregateId: byNode,
  description: "internal: a label or taint change on the node failed for good.",
});
export const classificationCommands = [
  LabelNode,
  UnlabelNode,
  TaintNode,
  UntaintNode,
  RestoreClassification,
  RecordClassified,
  RecordClassificationFailure,
] as const;
export type ClassificationCommand = CommandOf<(typeof classificationCommands)[number]>;

export const NodeClassificationRequested = defineEvent({
  type: "nodeop.classification-requested",
  aggregate: "nodeop",
  schema: z.object({
    ...nodeKey,
    operation: classificationOperation,
    by,
    reason,
    change: classificationChange,
  }),
  description:
    "Cairn will change the node's labels and/or taints (`change`); records the operation, who asked and why.",
});
export const NodeClassificationApplied = defineEvent({
  type: "nodeop.classification-applied",
  aggregate: "nodeop",
  schema: z.object({ ...nodeKey, operation: classificationOperation, by }),
  description: "The node's labels and taints are as the operation asked.",
});
export const NodeClassificationFailed = defineEvent({
  type: "nodeop.classification-failed",
  aggregate: "nodeop",
  schema: z.object({
    ...nodeKey,
    operation: classificationOperation,
    reason: z.string(),
    remediation: z.string().optional(),
  }),
  description: "A label or taint change failed for good; the reason says why, the remediation what to do.",
});
export const classificationEvents = [
  NodeClassificationRequested,
  NodeClassificationApplied,
  NodeClassificationFailed,
] as const;
export type ClassificationEvent = EventOf<(typeof classificationEvents)[number]>;
