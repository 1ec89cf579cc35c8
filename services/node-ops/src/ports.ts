/**
 * What node-ops needs from the world, narrowed to the calls it makes. The decider never
 * sees these; the reactor calls them and records the outcome.
 */
import { type ClassificationChange, type ObservedNode, PermanentError } from "@cairn/events";
import { type KubeFailure, PermanentKubeError, TransientKubeError } from "./adapters/kube-errors.ts";

/** Annotations Cairn puts on a node it cordons: who asked and why. */
export const CORDONED_BY = "cairn.dev/cordoned-by";
export const CORDON_REASON = "cairn.dev/cordon-reason";

export interface NodeInfo {
  readonly name: string;
  readonly unschedulable: boolean;
  readonly annotations: Readonly<Record<string, string>>;
  /** The Ready condition is True (undefined: not known to this adapter). */
  readonly ready?: boolean;
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
  /** No controller owns it: evicted, it is gone for good (kubectl drain wants `--force`). */
  readonly unmanaged: boolean;
  /** It has an emptyDir volume, whose data goes with it (kubectl drain wants `--delete-emptydir-data`). */
  readonly emptyDir: boolean;
}

/**
 * The outcome of one eviction: done (or the pod is gone already); refused by a PDB
 * (`blockedBy`; `pending` when the budget is "still being processed by the server", a
 * moment after it was created or changed); or refused by the API server's rate limits
 * (`throttled`). Every refusal means "this pod again later"; `retryAfterSeconds` is the
 * server's Retry-After, when it sent one.
 */
export type EvictionResult =
  | { readonly evicted: true }
  | {
      readonly evicted: false;
      readonly blockedBy: string;
      readonly pending?: true;
      readonly retryAfterSeconds?: number;
    }
  | { readonly evicted: false; readonly throttled: true; readonly retryAfterSeconds?: number };

/** The Kubernetes API of a managed cluster, as node-ops uses it. */
export interface Kube {
  /** Marks the node unschedulable and sets `annotations` on it. Idempotent. */
  cordon(clusterId: string, node: string, annotations: Readonly<Record<string, string>>): Promise<void>;
  /** Makes the node schedulable and removes Cairn's cordon annotations. Idempotent. */
  uncordon(clusterId: string, node: string): Promise<void>;
  /**
   * Applies a label/taint change to the node: read it, compute its labels and its whole
   * taint list, patch with the read resourceVersion as precondition (a 409 reads again).
   * Idempotent: a node that already shows the change is not patched.
   */
  applyClassification(clusterId: string, node: string, change: ClassificationChange): Promise<void>;
  /** The node, or undefined when the cluster has no such node. */
  getNode(clusterId: string, node: string): Promise<NodeInfo | undefined>;
  /**
   * Deletes the Node object (its kubelet is gone, or it would register it again).
   * Idempotent: a node already gone is fine.
   */
  deleteNode(clusterId: string, node: string): Promise<void>;
  /** The pods bound to the node, in every namespace. */
  listPods(clusterId: string, node: string): Promise<readonly PodInfo[]>;
  /**
   * Evicts the pod (policy/v1 Eviction). A 429 (a PodDisruptionBudget refusing it, or the
   * API server's throttling) is an answer about this pod, not an error of the pass:
   * `{ evicted: false, blockedBy: <the PDB's name> }` or `{ evicted: false, throttled: true }`.
   */
  evict(
    clusterId: string,
    namespace: string,
    pod: string,
    gracePeriodSeconds?: number,
  ): Promise<EvictionResult>;
}

/** A full list of a cluster's nodes, and the resourceVersion a watch resumes from. */
export interface NodeList {
  readonly nodes: readonly ObservedNode[];
  readonly resourceVersion: string;
}

/** One change a node watch reports, with the resourceVersion to resume after it. */
export type NodeWatchEvent =
  | { readonly kind: "upsert"; readonly node: ObservedNode; readonly resourceVersion: string }
  | { readonly kind: "removed"; readonly node: string; readonly resourceVersion: string }
  /** Nothing changed up to here (a BOOKMARK): resume from this resourceVersion. */
  | { readonly kind: "bookmark"; readonly resourceVersion: string };

/**
 * How a watch ended:
 *  - `closed`: the stream ended (server timeout, inactivity, a dropped connection after it
 *    was established): resume from the last resourceVersion;
 *  - `expired`: the resourceVersion is too old (410 Gone): relist;
 *  - `failed`: the watch could not be established (connection refused, 5xx, refused,
 *    no kubeconfig): the API is unreachable for node-ops. `error` is safe to record.
 */
export type WatchEnd =
  | { readonly reason: "closed" }
  | { readonly reason: "expired" }
  | { readonly reason: "failed"; readonly error: Error };

/** An open watch; `stop()` ends it, and no callback runs after it. Idempotent. */
export interface WatchHandle {
  stop(): void;
}

/** How a node watch ended (see `WatchEnd`). */
export type NodeWatchEnd = WatchEnd;
/** An open node watch. */
export type NodeWatch = WatchHandle;

/** Reading a cluster's nodes, as node-ops' watcher does (list, then watch from its resourceVersion). */
export interface KubeNodes {
  /**
   * Every node of the cluster. Throws a `NodeOpFailure` (kube-errors.ts) whose message
   * is safe to record (no response bodies, no credentials). `kubeconfigParameter`: the SSM
   * parameter to read the kubeconfig from (default `/cairn/<clusterId>/kubeconfig`).
   */
  listNodes(clusterId: string, kubeconfigParameter?: string): Promise<NodeList>;
  /**
   * Watches the cluster's nodes from `resourceVersion`. `onEvent` gets each change in order;
   * `onEnd` is called exactly once (unless stopped first). Never rejects: a watch that cannot
   * start ends with `failed`.
   */
  watchNodes(
    clusterId: string,
    resourceVersion: string,
    onEvent: (e: NodeWatchEvent) => void,
    onEnd: (end: NodeWatchEnd) => void,
    kubeconfigParameter?: string,
  ): Promise<NodeWatch>;
  /** Forgets the cluster's cached kubeconfig: the next list or watch reads it again (it was re-published). */
  forgetKubeconfig(clusterId: string): void;
}

/**
 * A failure the adapters understood: one class per condition (adapters/kube-errors.ts,
 * adapters/sqs-errors.ts), each a `TransientError` or `PermanentError` of @cairn/events
 * with a remediation hint. `transient: false` is permanent: retrying will not help, the
 * reactor records it (`nodeop.failed`). Anything else thrown is retried by the runtime.
 */
export type NodeOpFailure = KubeFailure;

export const isNodeOpFailure = (e: unknown): e is NodeOpFailure =>
  e instanceof TransientKubeError || e instanceof PermanentKubeError;

/** A permanent failure (of any adapter: Kubernetes, SSM, SQS): record it, do not retry. */
export const isPermanentFailure = (e: unknown): e is PermanentError => e instanceof PermanentError;

/** A Deployment that opted in to spot/on-demand placement, as the placement loop sees it. */
export interface PlacedDeployment {
  readonly namespace: string;
  readonly name: string;
  readonly annotations: Readonly<Record<string, string>>;
  /** `spec.replicas` of the Deployment itself (its on-demand part once taken over). */
  readonly replicas: number;
  /** Its pod template pins `cairn.dev/capacity-type: on-demand` already. */
  readonly pinnedOnDemand: boolean;
}

/** The Kubernetes API as the placement loop uses it (Deployments and their spot twins). */
export interface Workloads {
  /** Deployments carrying `cairn.dev/spot-percentage` (not the twins node-ops made). */
  listOptedIn(clusterId: string): Promise<readonly PlacedDeployment[]>;
  /** Whether a Ready, schedulable node labelled `cairn.dev/capacity-type: spot` exists. */
  spotCapacity(clusterId: string): Promise<boolean>;
  /**
   * Takes the Deployment over (idempotent): pins its template to on-demand nodes and
   * creates its twin `<name>-spot` (same template on spot nodes, owned by it, 0
   * replicas) if missing. Returns the twin's replicas.
   */
  ensureTwin(clusterId: string, d: PlacedDeployment): Promise<number>;
  /** Sets a Deployment's replicas through the scale subresource. */
  scale(clusterId: string, namespace: string, name: string, replicas: number): Promise<void>;
  /** Merges annotations into the Deployment. */
  annotate(
    clusterId: string,
    namespace: string,
    name: string,
    annotations: Record<string, string>,
  ): Promise<void>;
}

/** One message of the spot interruption queue: its body, and what deleting it needs. */
export interface QueuedNotice {
  readonly messageId: string | undefined;
  readonly body: string;
  readonly receipt: string | undefined;
}

/**
 * The queue spot interruption warnings arrive on, per region (on AWS: an EventBridge
 * rule into SQS). A received message stays hidden until it is deleted or its visibility
 * timeout passes.
 */
export interface NoticeQueue {
  readonly name: string;
  /** Long-polls the region's queue; a missing queue is `SqsQueueMissing` (adapters/sqs-errors.ts). */
  receive(region: string, signal: AbortSignal): Promise<readonly QueuedNotice[]>;
  delete(region: string, notice: QueuedNotice, signal: AbortSignal): Promise<void>;
  close(): void;
}
