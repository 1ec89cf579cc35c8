import { z } from "zod";
import { tokenSafeId } from "../ids.ts";
import { defineRejected, labels, taint } from "./common.ts";
import { type CommandOf, defineCommand, defineEvent, type EventOf } from "./define.ts";
import { nodeName } from "./nodeop.ts";

/**
 * The `kube` aggregate (one per cluster, id = the cluster id) holds node-ops' facts
 * about the cluster's Kubernetes side: which nodes registered, which are Ready, which
 * report pressure, whether the API server answers. node-ops is its only writer (it is
 * the only service that calls the Kubernetes API); the installer and the provisioner
 * act on these facts. A fact is an event only when it changes: node-ops' watcher
 * reports what it sees through the internal `kube.observe-*` commands, and the
 * aggregate's decider turns only the differences into events.
 */

/** The node conditions that mean trouble when True (the kubelet's pressure conditions). */
export const pressureCondition = z.enum([
  "MemoryPressure",
  "DiskPressure",
  "PIDPressure",
  "NetworkUnavailable",
]);
export type PressureCondition = z.infer<typeof pressureCondition>;

/** One node as node-ops' watcher sees it. */
export const observedNode = z.object({
  node: nodeName,
  /** The EC2 instance behind the node (from `spec.providerID`), when known. */
  instanceId: z.string().optional(),
  role: z.enum(["server", "agent"]),
  labels: labels,
  taints: z.array(taint),
  unschedulable: z.boolean(),
  /** The Ready condition is True. */
  ready: z.boolean(),
  /** Why not Ready (the condition's reason and message), when not. */
  notReadyReason: z.string().optional(),
  /** Pressure conditions that are True, sorted. */
  pressure: z.array(pressureCondition),
});
export type ObservedNode = z.infer<typeof observedNode>;

const byCluster = (d: { clusterId: string }) => d.clusterId;

export const ObserveNode = defineCommand({
  type: "kube.observe-node",
  aggregate: "kube",
  internal: true,
  schema: z.object({ clusterId: tokenSafeId, ...observedNode.shape }),
  aggregateId: byCluster,
  description:
    "internal: node-ops' watcher saw a node (added or modified); facts follow only if something changed.",
});
export const ObserveNodeRemoved = defineCommand({
  type: "kube.observe-node-removed",
  aggregate: "kube",
  internal: true,
  schema: z.object({ clusterId: tokenSafeId, node: nodeName }),
  aggregateId: byCluster,
  description: "internal: node-ops' watcher saw a node deleted from the API.",
});
export const ObserveNodeList = defineCommand({
  type: "kube.observe-node-list",
  aggregate: "kube",
  internal: true,
  schema: z.object({ clusterId: tokenSafeId, nodes: z.array(observedNode) }),
  aggregateId: byCluster,
  description:
    "internal: a full list of the cluster's nodes (after a (re)list); nodes the aggregate knows that are not in it are removed.",
});
export const ObserveNodes = defineCommand({
  type: "kube.observe-nodes",
  aggregate: "kube",
  internal: true,
  schema: z.object({ clusterId: tokenSafeId, nodes: z.array(observedNode).min(1).max(1_000) }),
  aggregateId: byCluster,
  description:
    "internal: several changed nodes the watch delivered while the last observation was being recorded, in the order seen (as many kube.observe-node, in one commit; not a full list).",
});
export const ObserveApi = defineCommand({
  type: "kube.observe-api",
  aggregate: "kube",
  internal: true,
  schema: z.object({ clusterId: tokenSafeId, reachable: z.boolean(), reason: z.string().optional() }),
  aggregateId: byCluster,
  description: "internal: the cluster's API server answered, or did not (with why).",
});
export const kubeCommands = [
  ObserveNode,
  ObserveNodeRemoved,
  ObserveNodeList,
  ObserveNodes,
  ObserveApi,
] as const;
export type KubeCommand = CommandOf<(typeof kubeCommands)[number]>;

const nodeKey = { node: nodeName };
export const KubeRejected = defineRejected("kube");
export const NodeRegistered = defineEvent({
  type: "kube.node-registered",
  aggregate: "kube",
  schema: z.object({
    ...nodeKey,
    instanceId: z.string().optional(),
    role: z.enum(["server", "agent"]),
    /** From the node's `cairn.dev/pool` label, when it has one. */
    pool: z.string().optional(),
    /** From the node's `cairn.dev/capacity-type` label, when it has one. */
    capacityType: z.enum(["spot", "on-demand"]).optional(),
    labels,
    taints: z.array(taint),
    /** Cordoned already when first seen (`spec.unschedulable`); absent: false. */
    unschedulable: z.boolean().optional(),
  }),
  description:
    "A node appeared in the cluster's API (its kubelet registered), with its labels and capacity type.",
});
export const NodeReady = defineEvent({
  type: "kube.node-ready",
  aggregate: "kube",
  schema: z.object(nodeKey),
  description: "A node's Ready condition became True.",
});
export const NodeNotReady = defineEvent({
  type: "kube.node-not-ready",
  aggregate: "kube",
  schema: z.object({ ...nodeKey, reason: z.string() }),
  description:
    "A node's Ready condition stopped being True (or it registered not Ready), with the condition's reason.",
});
export const NodePressureChanged = defineEvent({
  type: "kube.node-pressure-changed",
  aggregate: "kube",
  schema: z.object({ ...nodeKey, pressure: z.array(pressureCondition) }),
  description: "The set of a node's True pressure conditions changed (empty: no pressure any more).",
});
export const NodeClassificationChanged = defineEvent({
  type: "kube.node-classification-changed",
  aggregate: "kube",
  schema: z.object({ ...nodeKey, labels, taints: z.array(taint), unschedulable: z.boolean() }),
  description: "A node's labels, taints or schedulability changed (as the API shows them now).",
});
export const NodeRemoved = defineEvent({
  type: "kube.node-removed",
  aggregate: "kube",
  schema: z.object(nodeKey),
  description: "A node left the cluster's API.",
});
export const ApiUnreachable = defineEvent({
  type: "kube.api-unreachable",
  aggregate: "kube",
  schema: z.object({ reason: z.string() }),
  description: "The cluster's API server stopped answering; the reason is the last error.",
});
export const ApiReachable = defineEvent({
  type: "kube.api-reachable",
  aggregate: "kube",
  schema: z.object({}),
  description: "The cluster's API server answers again (or for the first time).",
});
export const kubeEvents = [
  KubeRejected,
  NodeRegistered,
  NodeReady,
  NodeNotReady,
  NodePressureChanged,
  NodeClassificationChanged,
  NodeRemoved,
  ApiUnreachable,
  ApiReachable,
] as const;
export type KubeEvent = EventOf<(typeof kubeEvents)[number]>;
