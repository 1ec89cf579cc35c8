/**
 * node-ops owns the nodeop aggregate: every call to a managed cluster's Kubernetes API.
 * Cordon and uncordon (Cairn only uncordons what it cordoned, unless forced), and drain
 * through the Eviction API honouring PodDisruptionBudgets. It also owns the kube
 * aggregate: facts about each cluster's nodes and API server, from a list + watch of
 * every live cluster. See docs/node-ops.md.
 */
export { createKube, type KubeAdapterOptions, kubeconfigParameter } from "./adapters/kube.ts";
export { type KubeState, kubeDecider, type NodeFacts } from "./kube/decider.ts";
export {
  NODE_WATCH_LEASE,
  type NodeFactsOptions,
  type NodeOps,
  type NodeOpsOptions,
  type SessionWorkloadOptions,
  startNodeOps,
} from "./node-ops.ts";
export { type NodeOperation, type NodeopState, nodeopDecider } from "./nodeop/decider.ts";
export * from "./ports.ts";
export { DEFAULT_INTERRUPTION_QUEUE, SPOT_INTAKE_LEASE, type SpotIntakeOptions } from "./spot/intake.ts";
export { listWatchSnapshots } from "./watch/list-watch.ts";
export { SESSION_MOVES_LEASE } from "./workload/moves.ts";
export * from "./workload/session-port.ts";
export { type WorkloadPhase, type WorkloadState, workloadDecider } from "./workload/workload.decider.ts";

export const capabilities: readonly string[] = [
  "node.cordon",
  "node.uncordon",
  "node.drain",
  "workload.start",
  "workload.stop",
  "workload.delete",
];
