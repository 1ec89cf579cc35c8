/**
 * The `SessionWorkloads` port on @kubernetes/client-node v2: one PersistentVolumeClaim and
 * one Deployment (one replica, `Recreate`: a ReadWriteOnce volume cannot be attached to
 * an old and a new pod at once) per session, in the namespace `cairn-sessions`, labelled
 * `cairn.dev/session` and `cairn.dev/user`. Kubeconfigs come from the Kube adapter's
 * cache (the cluster's SecureString; a 401/403 there drops it so a rotated one is read).
 *
 * Errors, classified here: 401/403 → `SessionKubeRefused` (permanent); 422 →
 * `SessionObjectInvalid` (permanent: the template cannot be run as given); 409 on a
 * create is "there already" (adopted); anything else (429, 5xx, connection) →
 * `SessionKubeUnavailable` (transient), its message never holding a response body.
 */
import { createHash } from "node:crypto";
import { CairnError, PermanentError, TransientError } from "@cairn/events";
import {
  ApiException,
  AppsV1Api,
  CoreV1Api,
  type KubeConfig,
  PatchStrategy,
  setHeaderOptions,
  type V1Deployment,
  type V1PersistentVolumeClaim,
  type V1Pod,
} from "@kubernetes/client-node";
import {
  SESSION_ID_ANNOTATION,
  SESSION_LABEL,
  SESSIONS_NAMESPACE,
  type SessionPod,
  type SessionPodList,
  type SessionWorkloadSpec,
  type SessionWorkloads,
  USER_LABEL,
} from "../workload/session-port.ts";
import { tracedApiClient } from "./kube-trace.ts";
import { openWatch } from "./kube-watch.ts";

export class SessionKubeRefused extends PermanentError {
  override readonly name = "SessionKubeRefused";
}
export class SessionObjectInvalid extends PermanentError {
  override readonly name = "SessionObjectInvalid";
}
export class SessionKubeUnavailable extends TransientError {
  override readonly name = "SessionKubeUnavailable";
}

const merge = setHeaderOptions("Content-Type", PatchStrategy.MergePatch);
const IMAGE_FAILURES = new Set(["ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"]);
const LABEL_VALUE = /^[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?$/;
const DNS_LABEL = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/;

/**
 * The Kubernetes names of a session's objects: `session-<id>` when the id is a DNS label
 * short enough (pod names append 17 characters), else a readable prefix and a hash of
 * the id, so two ids never share a name. The label is the id when it is a valid label value.
 */
export function sessionNames(sessionId: string): { deployment: string; volumeClaim: string; label: string } {
  let name: string;
  if (DNS_LABEL.test(sessionId) && sessionId.length <= 38) name = `session-${sessionId}`;
  else {
    const readable = sessionId
      .toLowerCase()
      .replaceAll(/[^a-z0-9-]+/g, "-")
      .slice(0, 26)
      .replaceAll(/^-+|-+$/g, "");
    const hash = createHash("sha256").update(sessionId).digest("hex").slice(0, 10);
    name = `session-${readable ? `${readable}-` : ""}${hash}`;
  }
  return { deployment: name, volumeClaim: name, label: LABEL_VALUE.test(sessionId) ? sessionId : name };
}

/** A pod as the reactor reads it. Pure. */
export function sessionPodOf(p: V1Pod): SessionPod {
  const name = p.metadata?.name ?? "";
  const node = p.spec?.nodeName ?? undefined;
  if (p.metadata?.deletionTimestamp) return { state: "terminating", name, node };
  const conditions = p.status?.conditions ?? [];
  if (node && conditions.some((c) => c.type === "Ready" && c.status === "True"))
    return { state: "ready", name, node };
  for (const c of p.status?.containerStatuses ?? []) {
    const w = c.state?.waiting;
    if (w?.reason && IMAGE_FAILURES.has(w.reason))
      return { state: "image", name, reason: w.reason, message: w.message ?? w.reason };
  }
  const scheduled = conditions.find((c) => c.type === "PodScheduled");
  if (!node && scheduled?.status === "False" && scheduled.reason === "Unschedulable")
    return { state: "unschedulable", name, message: scheduled.message ?? "the pod cannot be scheduled" };
  return { state: "pending", name, node };
}

export function createSessionWorkloads(o: {
  kubeConfig(clusterId: string): Promise<KubeConfig>;
  /** Drops the cluster's cached kubeconfig (after a 401/403). */
  forgetKubeconfig?(clusterId: string): void;
}): SessionWorkloads {
  const apis = async (clusterId: string) => {
    const kc = await o.kubeConfig(clusterId);
    return {
      apps: tracedApiClient(kc, AppsV1Api, clusterId),
      core: tracedApiClient(kc, CoreV1Api, clusterId),
    };
  };
  const ns = SESSIONS_NAMESPACE;

  /** Classifies a failed call; returns for the codes the caller named as answers. */
  const failed = (clusterId: string, what: string, err: unknown, answers: readonly number[] = []): number => {
    if (!(err instanceof ApiException))
      throw new SessionKubeUnavailable(
        `the Kubernetes API of cluster ${clusterId} did not answer (${what})`,
        {
          cause: err,
        },
      );
    if (answers.includes(err.code)) return err.code;
    if (err.code === 401 || err.code === 403) {
      o.forgetKubeconfig?.(clusterId);
      throw new SessionKubeRefused(
        `the Kubernetes API of cluster ${clusterId} refused node-ops (${err.code}) on ${what}`,
        {
          remediation:
            err.code === 401
              ? "the kubeconfig's credentials are not accepted: re-publish the cluster's kubeconfig"
              : `give the kubeconfig's user RBAC permission on deployments, pods and persistentvolumeclaims in ${ns}`,
        },
      );
    }
    if (err.code === 422)
      throw new SessionObjectInvalid(
        `the Kubernetes API of cluster ${clusterId} refused ${what} as invalid`,
        {
          remediation: "check the session template (image reference, cpu, memory and storage quantities)",
        },
      );
    throw new SessionKubeUnavailable(
      `the Kubernetes API of cluster ${clusterId} answered ${err.code} on ${what}`,
    );
  };

  /** A watch refused (401/403: the kubeconfig is dropped, as on any call) or not answered. */
  const watchFailure = (clusterId: string, status: unknown, err: unknown): Error => {
    if (status === 401 || status === 403) {
      o.forgetKubeconfig?.(clusterId);
      return new SessionKubeRefused(
        `the Kubernetes API of cluster ${clusterId} refused node-ops (${status}) a watch of the session pods`,
        { remediation: `give the kubeconfig's user RBAC permission to list and watch pods in ${ns}` },
      );
    }
    if (typeof status === "number")
      return new SessionKubeUnavailable(
        `the Kubernetes API of cluster ${clusterId} answered ${status} to a watch of the session pods`,
      );
    // No answer at all (no kubeconfig, no connection): the cause holds no response body.
    return err instanceof CairnError
      ? err
      : new SessionKubeUnavailable(`the Kubernetes API of cluster ${clusterId} did not answer a watch`, {
          cause: err,
        });
  };

  const labels = (spec: SessionWorkloadSpec) => ({
    [SESSION_LABEL]: sessionNames(spec.sessionId).label,
    ...(LABEL_VALUE.test(spec.user) ? { [USER_LABEL]: spec.user } : {}),
    "app.kubernetes.io/managed-by": "cairn",
  });

  const claimOf = (spec: SessionWorkloadSpec): V1PersistentVolumeClaim => ({
    metadata: {
      name: sessionNames(spec.sessionId).volumeClaim,
      labels: labels(spec),
      annotations: { [SESSION_ID_ANNOTATION]: spec.sessionId },
    },
    spec: { accessModes: ["ReadWriteOnce"], resources: { requests: { storage: spec.template.storage } } },
  });

  const deploymentOf = (spec: SessionWorkloadSpec): V1Deployment => {
    const n = sessionNames(spec.sessionId);
    const resources = { cpu: spec.template.cpu, memory: spec.template.memory };
    return {
      metadata: {
        name: n.deployment,
        labels: labels(spec),
        annotations: { [SESSION_ID_ANNOTATION]: spec.sessionId },
      },
      spec: {
        replicas: 1,
        strategy: { type: "Recreate" },
        selector: { matchLabels: { [SESSION_LABEL]: n.label } },
        template: {
          metadata: { labels: labels(spec), annotations: { [SESSION_ID_ANNOTATION]: spec.sessionId } },
          spec: {
            containers: [
              {
                name: "session",
                image: spec.template.image,
                resources: { requests: resources, limits: resources },
                volumeMounts: [{ name: "home", mountPath: "/home/cairn" }],
              },
            ],
            volumes: [{ name: "home", persistentVolumeClaim: { claimName: n.volumeClaim } }],
          },
        },
      },
    };
  };

  /** Scales the Deployment; false when it is not there (404). */
  const scaleIfThere = async (clusterId: string, name: string, replicas: number): Promise<boolean> => {
    const { apps } = await apis(clusterId);
    try {
      await apps.patchNamespacedDeploymentScale({ namespace: ns, name, body: { spec: { replicas } } }, merge);
      return true;
    } catch (err) {
      failed(clusterId, `deployment ${name}`, err, [404]);
      return false;
    }
  };
  const scale = async (clusterId: string, sessionId: string, replicas: number) => {
    await scaleIfThere(clusterId, sessionNames(sessionId).deployment, replicas);
  };

  const hasDeployment = async (clusterId: string, sessionId: string): Promise<boolean> => {
    const { apps } = await apis(clusterId);
    const name = sessionNames(sessionId).deployment;
    return await apps.readNamespacedDeployment({ namespace: ns, name }).then(
      (d) => !d.metadata?.deletionTimestamp,
      (err) => {
        failed(clusterId, `deployment ${name}`, err, [404]); // throws unless 404
        return false;
      },
    );
  };
  const podsOf = async (clusterId: string, sessionId: string): Promise<SessionPod[]> => {
    const { core } = await apis(clusterId);
    const n = sessionNames(sessionId);
    return await core.listNamespacedPod({ namespace: ns, labelSelector: `${SESSION_LABEL}=${n.label}` }).then(
      (l) => l.items.map(sessionPodOf),
      (err): SessionPod[] => {
        failed(clusterId, `the pods of ${n.deployment}`, err, [404]);
        return [];
      },
    );
  };

  /**
   * Clusters whose sessions' namespace this process made or found there: a first start
   * does not ask again (one call fewer per session). Dropped when a create answers 404
   * (the namespace deleted by hand): the retry makes it again.
   */
  const namespaceThere = new Set<string>();
  const ensureNamespace = async (clusterId: string) => {
    if (namespaceThere.has(clusterId)) return;
    const { core } = await apis(clusterId);
    try {
      await core.createNamespace({
        body: { metadata: { name: ns, labels: { "app.kubernetes.io/managed-by": "cairn" } } },
      });
    } catch (err) {
      failed(clusterId, `namespace ${ns}`, err, [409]);
    }
    namespaceThere.add(clusterId);
  };
  /** A create answered 404: its namespace is not there (any more). */
  const namespaceGone = (clusterId: string, what: string): never => {
    namespaceThere.delete(clusterId);
    throw new SessionKubeUnavailable(
      `the Kubernetes API of cluster ${clusterId} has no namespace ${ns} for ${what}: made again on the retry`,
    );
  };

  return {
    names: sessionNames,

    async ensure(spec, opts) {
      const { apps, core } = await apis(spec.clusterId);
      const n = sessionNames(spec.sessionId);
      if (opts?.first) {
        // A first start: the namespace (once per cluster), the claim, the Deployment.
        await ensureNamespace(spec.clusterId);
        try {
          await core.createNamespacedPersistentVolumeClaim({ namespace: ns, body: claimOf(spec) });
        } catch (err) {
          const code = failed(spec.clusterId, `persistentvolumeclaim ${n.volumeClaim}`, err, [409, 404]);
          if (code === 404) namespaceGone(spec.clusterId, `persistentvolumeclaim ${n.volumeClaim}`);
        }
        try {
          await apps.createNamespacedDeployment({ namespace: ns, body: deploymentOf(spec) });
          return;
        } catch (err) {
          const code = failed(spec.clusterId, `deployment ${n.deployment}`, err, [409, 404]);
          if (code === 404) namespaceGone(spec.clusterId, `deployment ${n.deployment}`);
        }
        // There already (an earlier delivery of this start made it): one replica again.
        await scale(spec.clusterId, spec.sessionId, 1);
        return;
      }
      // A wake: the Deployment is there (scaled to zero), so scaling it is the whole start
      // and goes first (one call before the pod is on its way, not four). Its claim is
      // made again only if someone deleted it (the pod waits for it, as the scheduler does).
      if (await scaleIfThere(spec.clusterId, n.deployment, 1)) {
        try {
          await core.createNamespacedPersistentVolumeClaim({ namespace: ns, body: claimOf(spec) });
        } catch (err) {
          failed(spec.clusterId, `persistentvolumeclaim ${n.volumeClaim}`, err, [409]); // there: as expected
        }
        return;
      }
      // A first start: the namespace, the claim, then the Deployment (one replica).
      namespaceThere.delete(spec.clusterId); // asked again: this path is rare (a start after a failure)
      await ensureNamespace(spec.clusterId);
      try {
        await core.createNamespacedPersistentVolumeClaim({ namespace: ns, body: claimOf(spec) });
      } catch (err) {
        failed(spec.clusterId, `persistentvolumeclaim ${n.volumeClaim}`, err, [409]); // there already: adopted
      }
      try {
        await apps.createNamespacedDeployment({ namespace: ns, body: deploymentOf(spec) });
        return;
      } catch (err) {
        failed(spec.clusterId, `deployment ${n.deployment}`, err, [409]);
      }
      // Made meanwhile (a redelivered start racing this one): one replica again.
      await scale(spec.clusterId, spec.sessionId, 1);
    },

    scale,

    async remove(clusterId, sessionId, releaseVolume) {
      const { apps, core } = await apis(clusterId);
      const n = sessionNames(sessionId);
      try {
        await apps.deleteNamespacedDeployment({
          namespace: ns,
          name: n.deployment,
          propagationPolicy: "Background",
        });
      } catch (err) {
        failed(clusterId, `deployment ${n.deployment}`, err, [404]);
      }
      if (!releaseVolume) return;
      try {
        await core.deleteNamespacedPersistentVolumeClaim({ namespace: ns, name: n.volumeClaim });
      } catch (err) {
        failed(clusterId, `persistentvolumeclaim ${n.volumeClaim}`, err, [404]);
      }
    },

    async look(clusterId, sessionId) {
      const { core } = await apis(clusterId);
      const n = sessionNames(sessionId);
      // Three independent reads, side by side: a look costs one round trip, not three.
      const [deployment, volumeClaim, pods] = await Promise.all([
        hasDeployment(clusterId, sessionId),
        core.readNamespacedPersistentVolumeClaim({ namespace: ns, name: n.volumeClaim }).then(
          () => true,
          (err) => {
            failed(clusterId, `persistentvolumeclaim ${n.volumeClaim}`, err, [404]);
            return false;
          },
        ),
        podsOf(clusterId, sessionId),
      ]);
      return { deployment, volumeClaim, pods };
    },

    pods: podsOf,
    hasDeployment,

    async listSessionPods(clusterId): Promise<SessionPodList> {
      const { core } = await apis(clusterId);
      try {
        const list = await core.listNamespacedPod({ namespace: ns, labelSelector: SESSION_LABEL });
        return {
          pods: list.items.map((p) => ({
            session: p.metadata?.labels?.[SESSION_LABEL] ?? "",
            pod: sessionPodOf(p),
          })),
          resourceVersion: list.metadata?.resourceVersion ?? "",
        };
      } catch (err) {
        failed(clusterId, "the session pods", err);
        throw err; // not reached: `failed` throws for every code not named
      }
    },

    watchSessionPods: (clusterId, resourceVersion, onEvent, onEnd) =>
      openWatch({
        clusterId,
        kubeConfig: () => o.kubeConfig(clusterId),
        path: `/api/v1/namespaces/${ns}/pods`,
        resourceVersion,
        labelSelector: SESSION_LABEL,
        onObject: (phase, obj) => {
          const p = obj as V1Pod;
          const rv = p?.metadata?.resourceVersion ?? "";
          if (phase === "BOOKMARK") {
            if (rv) onEvent({ kind: "bookmark", resourceVersion: rv });
            return;
          }
          const session = p.metadata?.labels?.[SESSION_LABEL] ?? "";
          if (phase === "DELETED")
            onEvent({ kind: "removed", session, name: p.metadata?.name ?? "", resourceVersion: rv });
          else onEvent({ kind: "upsert", session, pod: sessionPodOf(p), resourceVersion: rv });
        },
        onEnd,
        // A watch that could not open fails with the HTTP status as `statusCode`, not an ApiException.
        classify: (err) =>
          watchFailure(
            clusterId,
            err instanceof ApiException ? err.code : (err as { statusCode?: unknown })?.statusCode,
            err,
          ),
      }),

    async readyPods(clusterId) {
      const { core } = await apis(clusterId);
      const out = new Map<string, { name: string; node: string }>();
      let pods: V1Pod[] = [];
      try {
        pods = (await core.listNamespacedPod({ namespace: ns, labelSelector: SESSION_LABEL })).items;
      } catch (err) {
        failed(clusterId, "the session pods", err, [404]);
      }
      for (const p of pods) {
        const s = sessionPodOf(p);
        const label = p.metadata?.labels?.[SESSION_LABEL];
        if (s.state === "ready" && label) out.set(label, { name: s.name, node: s.node });
      }
      return out;
    },
  };
}
