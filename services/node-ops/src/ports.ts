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

/** The Kubernetes API of a managed cluster, as node-ops uses it. */
export interface Kube {
  /** Marks the node unschedulable and sets `annotations` on it. Idempotent. */
  cordon(clusterId: string, node: string, annotations: Readonly<Record<string, string>>): Promise<void>;
  /** Makes the node schedulable and removes Cairn's cordon annotations. Idempotent. */
  uncordon(clusterId: string, node: string): Promise<void>;
  /** The node, or undefined when the cluster has no such node. */
  getNode(clusterId: string, node: string): Promise<NodeInfo | undefined>;
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
