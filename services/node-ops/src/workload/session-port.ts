/**
 * What the session workload reactor needs from a cluster's Kubernetes API, narrowed to the
 * calls it makes. The real adapter is adapters/session-workloads.ts (client-node, the
 * kubeconfig from the cluster's SecureString through the Kube adapter's cache).
 */
import type { SessionTemplate } from "@cairn/events";
import type { WatchEnd, WatchHandle } from "../ports.ts";

/** The namespace every session's objects live in. */
export const SESSIONS_NAMESPACE = "cairn-sessions";
export const SESSION_LABEL = "cairn.dev/session";
export const USER_LABEL = "cairn.dev/user";
/** The full session id (a label value is limited to 63 characters of a narrower alphabet). */
export const SESSION_ID_ANNOTATION = "cairn.dev/session-id";

export interface SessionWorkloadSpec {
  readonly clusterId: string;
  readonly sessionId: string;
  readonly user: string;
  readonly template: SessionTemplate;
}

/** One of the session's pods, as the reactor reads it. */
export type SessionPod =
  | { readonly state: "ready"; readonly name: string; readonly node: string }
  /** Not placed: the scheduler's message (`0/3 nodes are available: 3 Insufficient cpu. …`). */
  | { readonly state: "unschedulable"; readonly name: string; readonly message: string }
  /** Its image cannot be pulled (ErrImagePull, ImagePullBackOff, InvalidImageName). */
  | { readonly state: "image"; readonly name: string; readonly reason: string; readonly message: string }
  /** On its way (pulling, starting, not ready yet) or leaving (terminating). */
  | {
      readonly state: "pending" | "terminating";
      readonly name: string;
      readonly node: string | undefined;
    };

export interface SessionLook {
  /** The Deployment exists (and is not being deleted). */
  readonly deployment: boolean;
  readonly volumeClaim: boolean;
  /** Its pods, terminating ones included. */
  readonly pods: readonly SessionPod[];
}

/** The session pods of a cluster at one moment, and the resourceVersion a watch resumes from. */
export interface SessionPodList {
  /** Each pod with its session's label value (`names(id).label`). */
  readonly pods: readonly { readonly session: string; readonly pod: SessionPod }[];
  readonly resourceVersion: string;
}

/** One change a session pod watch reports, with the resourceVersion to resume after it. */
export type SessionPodChange =
  | {
      readonly kind: "upsert";
      readonly session: string;
      readonly pod: SessionPod;
      readonly resourceVersion: string;
    }
  | {
      readonly kind: "removed";
      readonly session: string;
      readonly name: string;
      readonly resourceVersion: string;
    }
  /** Nothing changed up to here (a BOOKMARK): resume from this resourceVersion. */
  | { readonly kind: "bookmark"; readonly resourceVersion: string };

export interface SessionWorkloads {
  /** The Kubernetes names of the session's objects (Deployment and claim share one). */
  names(sessionId: string): { deployment: string; volumeClaim: string; label: string };
  /**
   * Creates what is missing (namespace, claim, Deployment) and scales the Deployment to
   * one replica. Idempotent: objects already there are adopted (409 is "there already").
   * `first`: the workload's first start (nothing was made for it before, unless by an
   * earlier delivery of the same start): the claim and the Deployment are created straight
   * away (two calls) rather than after a scale that would answer 404, and the namespace
   * once per cluster and process; a Deployment there already (409) is scaled to one.
   */
  ensure(spec: SessionWorkloadSpec, opts?: { first?: boolean }): Promise<void>;
  /** Scales the Deployment to `replicas`; a missing Deployment is left missing. */
  scale(clusterId: string, sessionId: string, replicas: number): Promise<void>;
  /** Deletes the Deployment and, with `releaseVolume`, the claim. Gone already is fine. */
  remove(clusterId: string, sessionId: string, releaseVolume: boolean): Promise<void>;
  look(clusterId: string, sessionId: string): Promise<SessionLook>;
  /** The session's pods alone (terminating ones included): one list, what a look at a start needs first. */
  pods(clusterId: string, sessionId: string): Promise<readonly SessionPod[]>;
  /** The Deployment exists (and is not being deleted). */
  hasDeployment(clusterId: string, sessionId: string): Promise<boolean>;
  /** The Ready session pods of a cluster, by session label: one list for every session (the move observer). */
  readyPods(clusterId: string): Promise<ReadonlyMap<string, { name: string; node: string }>>;
  /** Every session pod of the cluster (labelled with a session, in the sessions' namespace). */
  listSessionPods(clusterId: string): Promise<SessionPodList>;
  /**
   * Watches the cluster's session pods from `resourceVersion`: `onEvent` in order, `onEnd`
   * exactly once unless stopped first (closed: resume; expired, 410: relist; failed: the
   * API cannot be reached). Never rejects.
   */
  watchSessionPods(
    clusterId: string,
    resourceVersion: string,
    onEvent: (e: SessionPodChange) => void,
    onEnd: (end: WatchEnd) => void,
  ): Promise<WatchHandle>;
}
