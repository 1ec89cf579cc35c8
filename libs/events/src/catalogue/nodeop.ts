import { z } from "zod";
import { nodeAggregateId, tokenSafeId } from "../ids.ts";
import { defineRejected } from "./common.ts";
import { type CommandOf, defineCommand, type EventOf } from "./define.ts";

/** A Kubernetes node name (DNS subdomain). */
export const nodeName = z
  .string()
  .max(253)
  .regex(
    /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/,
    "must be a Kubernetes node name",
  );

const nodeRef = { clusterId: tokenSafeId, node: nodeName, reason: z.string().min(1).max(1024) };
const byNode = (d: { clusterId: string; node: string }) => nodeAggregateId(d.clusterId, d.node);

export const CordonNode = defineCommand({
  type: "node.cordon",
  aggregate: "nodeop",
  schema: z.object(nodeRef),
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
export const DrainNode = defineCommand({
  type: "node.drain",
  aggregate: "nodeop",
  schema: z.object({ ...nodeRef, timeoutSeconds: z.number().int().positive().max(86_400).optional() }),
  aggregateId: byNode,
  description: "Cordon a node and evict its pods through the Eviction API, honouring PodDisruptionBudgets.",
});
export const nodeopCommands = [CordonNode, UncordonNode, DrainNode] as const;
export type NodeopCommand = CommandOf<(typeof nodeopCommands)[number]>;

export const NodeopRejected = defineRejected("nodeop");
export const nodeopEvents = [NodeopRejected] as const;
export type NodeopEvent = EventOf<(typeof nodeopEvents)[number]>;
