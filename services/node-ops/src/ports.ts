/**
 * What node-ops needs from the world, narrowed to the calls it makes. The decider never
 * sees these; the reactor calls them and records the outcome.
 */

/** Annotations Cairn puts on a node it cordons: who asked and why. */
export const CORDONED_BY = "cairn.dev/cordoned-by";
export const CORDON_REASON = "cairn.dev/cordon-reason";

export interface NodeInfo {
  readonly name: string;
  readonly unschedulable: boolean;
  readonly annotations: Readonly<Record<string, string>>;
}

/** A pod bound to a node, as a drain sees it. */
export interface PodInfo {
  readonly namespace: string;
  readonly name: string;
  /** Already being deleted (`metadata.deletionTimestamp` set). */
  readonly terminating: boolean;
  /** Owned by a DaemonSet: its controller would put it straight back, a drain leaves it. */
  readonly daemonSet: boolean;
  /** A static pod's mirror (`kubernetes.io/config.mirror`): the API cannot evict it for real. */
  readonly mirror: boolean;
}

/** The outcome of one eviction: done (or the pod is gone already), or refused by a PDB. */
export type EvictionResult =
  | { readonly evicted: true }
  | { readonly evicted: false; readonly blockedBy: string };

/** The Kubernetes API of a managed cluster, as node-ops uses it. */
export interface Kube {
  /** Marks the node unschedulable and sets `annotations` on it. Idempotent. */
  cordon(clusterId: string, node: string, annotations: Readonly<Record<string, string>>): Promise<void>;
  /** Makes the node schedulable and removes Cairn's cordon annotations. Idempotent. */
  uncordon(clusterId: string, node: string): Promise<void>;
  /** The node, or undefined when the cluster has no such node. */
  getNode(clusterId: string, node: string): Promise<NodeInfo | undefined>;
  /** The pods bound to the node, in every namespace. */
  listPods(clusterId: string, node: string): Promise<readonly PodInfo[]>;
  /**
   * Evicts the pod (policy/v1 Eviction). A PodDisruptionBudget refusing it (429) is an
   * answer, not an error: `{ evicted: false, blockedBy: <the PDB's name> }`.
   */
  evict(
    clusterId: string,
    namespace: string,
    pod: string,
    gracePeriodSeconds?: number,
  ): Promise<EvictionResult>;
}

/**
 * A failure the adapter understood. `transient: false` is permanent: retrying will not
 * help, the reactor records it (`nodeop.failed`). Anything else thrown is retried.
 */
export class NodeOpFailure extends Error {
  override readonly name = "NodeOpFailure";
  readonly transient: boolean;
  readonly remediation: string | undefined;
  constructor(message: string, o: { transient: boolean; remediation?: string; cause?: unknown }) {
    super(message, o.cause !== undefined ? { cause: o.cause } : undefined);
    this.transient = o.transient;
    this.remediation = o.remediation;
  }
}

export const isPermanentFailure = (e: unknown): e is NodeOpFailure =>
  e instanceof NodeOpFailure && !e.transient;
