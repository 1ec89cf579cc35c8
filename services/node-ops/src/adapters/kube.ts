/**
 * The `Kube` port on @kubernetes/client-node v2. A cluster's kubeconfig is the SSM
 * SecureString `/cairn/<clusterId>/kubeconfig` in the cluster's region; the region comes
 * from the cluster's own history (`cluster.requested` → `spec.region`). One KubeConfig
 * per cluster is cached; a 401/403 drops it so a rotated kubeconfig is read again.
 *
 * Every API call runs under the process's resilience (kube-resilience.ts: a breaker and
 * a bulkhead per cluster, retries with full jitter, timeouts), and so does the SSM read
 * of a kubeconfig (SSM's breaker per region). Errors are classified at this boundary
 * (kube-errors.ts, one class per condition, each with a hint): 404, 401/403, 400/422 are
 * permanent; 429 (Retry-After honoured), 5xx and connection errors transient; 409 and
 * a budget's refusal of an eviction are answers the adapter handles.
 * The kubeconfig and its token are never logged.
 */
import { GetParameterCommand, SSMClient, type SSMClientConfig } from "@aws-sdk/client-ssm";
import {
  catalogue,
  clusterSecretParameters,
  EventStore,
  type Nats,
  type ObservedNode,
  observedNode,
  type PressureCondition,
  pressureCondition,
  type RunnerLogger,
} from "@cairn/events";
import { Resilience, resilienceMetricsObserver, traceAwsClient } from "@cairn/service";
import { CoreV1Api, KubeConfig, PatchStrategy, setHeaderOptions, type V1Node } from "@kubernetes/client-node";
import {
  CORDON_REASON,
  CORDONED_BY,
  type EvictionResult,
  type Kube,
  type KubeNodes,
  type NodeInfo,
  type NodeList,
  type NodeWatch,
  type NodeWatchEnd,
  type NodeWatchEvent,
  type PodInfo,
} from "../ports.ts";
import { classificationPatch } from "./classification-patch.ts";
import {
  classifyKubeconfigReadError,
  classifyKubeError,
  KubeClusterUnknown,
  KubeConflict,
  KubeconfigMissing,
  KubeconfigUnreadable,
  KubeEvictionBlocked,
  KubeForbidden,
  KubeInvalid,
  KubeNotFound,
  KubeThrottled,
  KubeUnauthorized,
  pdbOfEvictionRefusal,
} from "./kube-errors.ts";
import { guardedApi } from "./kube-resilience.ts";
import { tracedApiClient } from "./kube-trace.ts";
import { openWatch } from "./kube-watch.ts";

export { pdbOfEvictionRefusal };

/** How many times a classification patch is computed again after a 409 (another writer) before the runner retries. */
const CLASSIFY_CONFLICT_TRIES = 5;

/** The label K3s (and kubeadm) put on control-plane nodes. */
const CONTROL_PLANE_LABEL = "node-role.kubernetes.io/control-plane";
/**
 * Taints the node controllers derive from conditions and cordons
 * (`node.kubernetes.io/not-ready`, `…/unschedulable`, `…/memory-pressure`, the cloud
 * provider's `uninitialized`): they are reported as ready / pressure / unschedulable,
 * so counting them as classification would record every Ready flip twice.
 */
const SYSTEM_TAINT_PREFIXES = ["node.kubernetes.io/", "node.cloudprovider.kubernetes.io/"];

/** `aws:///eu-west-1a/i-0abc…` → `i-0abc…`; any other provider id → undefined. */
export function instanceIdOfProviderId(providerId: string | undefined): string | undefined {
  const m = providerId ? /^aws:\/\/\/[^/]*\/(i-[0-9a-f]+)$/.exec(providerId) : null;
  return m?.[1];
}

/**
 * A Node as node-ops' facts see it. Pure. Labels and taints that the schema refuses are
 * left out rather than losing the whole node (the API already validated them; this only
 * guards the log). Taints come sorted, so equal sets compare equal.
 */
export function observedNodeOf(n: V1Node): ObservedNode {
  const name = n.metadata?.name ?? "";
  const labels = Object.fromEntries(
    Object.entries(n.metadata?.labels ?? {}).filter(
      ([k, v]) => observedNode.shape.labels.safeParse({ [k]: v }).success,
    ),
  );
  const taints = (n.spec?.taints ?? [])
    .filter((t) => !SYSTEM_TAINT_PREFIXES.some((p) => t.key.startsWith(p)))
    .map((t) => ({ key: t.key, ...(t.value ? { value: t.value } : {}), effect: t.effect }))
    .filter((t) => observedNode.shape.taints.element.safeParse(t).success)
    .sort((a, b) =>
      `${a.key}\u0000${a.effect}\u0000${a.value ?? ""}`.localeCompare(
        `${b.key}\u0000${b.effect}\u0000${b.value ?? ""}`,
      ),
    ) as ObservedNode["taints"];
  const conditions = n.status?.conditions ?? [];
  const readyCondition = conditions.find((c) => c.type === "Ready");
  const ready = readyCondition?.status === "True";
  const pressure = conditions
    .filter((c) => c.status === "True" && pressureCondition.safeParse(c.type).success)
    .map((c) => c.type as PressureCondition)
    .sort();
  const notReadyReason = ready
    ? undefined
    : readyCondition
      ? [readyCondition.reason, readyCondition.message].filter(Boolean).join(": ") ||
        `Ready is ${readyCondition.status}`
      : "the node has not reported a Ready condition yet";
  const instanceId = instanceIdOfProviderId(n.spec?.providerID);
  return {
    node: name,
    ...(instanceId ? { instanceId } : {}),
    role: n.metadata?.labels?.[CONTROL_PLANE_LABEL] === "true" ? "server" : "agent",
    labels,
    taints,
    unschedulable: n.spec?.unschedulable === true,
    ready,
    ...(notReadyReason ? { notReadyReason } : {}),
    pressure: [...new Set(pressure)],
  };
}

/** A list or watch error, classified, its message safe to record (no bodies, no credentials). */
export function describeKubeError(clusterId: string, err: unknown): Error {
  return classifyKubeError(err, { clusterId });
}

/**
 * A refused eviction, as the drain reads it: a budget that allows no more disruptions
 * (or is still being processed: `pending`, with the server's Retry-After), or throttling.
 * An answer about this one pod, never a failure of the whole pass. Pure.
 */
export function evictionRefusal(
  err: KubeEvictionBlocked | KubeThrottled,
): EvictionResult & { evicted: false } {
  if (err instanceof KubeThrottled) {
    const s = err.retryAfterMs !== undefined ? Math.ceil(err.retryAfterMs / 1000) : undefined;
    return { evicted: false, throttled: true, ...(s !== undefined ? { retryAfterSeconds: s } : {}) };
  }
  return {
    evicted: false,
    blockedBy: err.blockedBy,
    ...(err.pending ? { pending: true as const } : {}),
    ...(err.retryAfterSeconds !== undefined ? { retryAfterSeconds: err.retryAfterSeconds } : {}),
  };
}

export interface KubeAdapterOptions {
  /** Where the cluster histories are (for the region). */
  readonly nats: Nats;
  /** The SSM endpoint (the sim's URL). Absent: the SDK's own resolution. */
  readonly endpoint?: string;
  readonly credentials?: SSMClientConfig["credentials"];
  readonly logger?: RunnerLogger;
  /**
   * Breakers and bulkheads shared with the process's other adapters (Kubernetes per
   * cluster, SSM per region). Absent: the adapter's own, with metrics and log lines.
   */
  readonly resilience?: Resilience;
}

const podLabel = (namespace: string, pod: string) => `${namespace}/${pod}`;

export const kubeconfigParameter = (clusterId: string) => clusterSecretParameters(clusterId).kubeconfig;

interface Clients {
  readonly kc: KubeConfig;
  readonly core: CoreV1Api;
}

export function createKube(
  o: KubeAdapterOptions,
): Kube &
  KubeNodes & { kubeConfig(clusterId: string): Promise<KubeConfig>; readonly resilience: Resilience } {
  const store = new EventStore({ js: o.nats.js, jsm: o.nats.jsm, catalogue });
  const resilience = o.resilience ?? new Resilience({ observer: resilienceMetricsObserver(o.logger) });
  const ssmClients = new Map<string, SSMClient>();
  const apis = new Map<string, Promise<Clients>>();

  const ssm = (region: string) => {
    let c = ssmClients.get(region);
    if (!c) {
      c = new SSMClient({
        region,
        maxAttempts: 1,
        ...(o.endpoint !== undefined ? { endpoint: o.endpoint } : {}),
        ...(o.credentials !== undefined ? { credentials: o.credentials } : {}),
      });
      traceAwsClient(c);
      ssmClients.set(region, c);
    }
    return c;
  };

  const regionOf = async (clusterId: string): Promise<string> => {
    // Its first event is enough: a cluster never changes region.
    const history = await store.load({ type: "cluster", id: clusterId }, { toVersion: 1 });
    const first = history.events[0];
    if (first?.type !== "cluster.requested") throw new KubeClusterUnknown(clusterId);
    return first.data.spec.region;
  };

  const load = async (clusterId: string, name: string): Promise<Clients> => {
    const region = await regionOf(clusterId);
    const where = { clusterId, parameter: name, region };
    let yaml: string | undefined;
    try {
      const out = await resilience.run(
        { service: "ssm", region, operation: "GetParameter" },
        "aws",
        (abortSignal) =>
          ssm(region).send(new GetParameterCommand({ Name: name, WithDecryption: true }), { abortSignal }),
        (e) =>
          (e as { name?: unknown })?.name === "ParameterNotFound"
            ? new KubeconfigMissing(where, e)
            : classifyKubeconfigReadError(e, where),
      );
      yaml = out.Parameter?.Value;
    } catch (err) {
      if (!(err instanceof KubeconfigMissing)) throw err; // throttling, 5xx, network: transient
    }
    if (!yaml) throw new KubeconfigMissing(where);
    const kc = new KubeConfig();
    try {
      kc.loadFromString(yaml);
    } catch {
      // The parse error may quote the document: never pass it on.
      throw new KubeconfigUnreadable(where);
    }
    return { kc, core: guardedApi(resilience, clusterId, tracedApiClient(kc, CoreV1Api, clusterId)) };
  };

  const clients = (clusterId: string, parameter = kubeconfigParameter(clusterId)): Promise<Clients> => {
    const k = `${clusterId}\u0000${parameter}`;
    let p = apis.get(k);
    if (!p) {
      p = load(clusterId, parameter);
      apis.set(k, p);
      // A failed load is not cached: the next call tries again.
      p.catch(() => {
        if (apis.get(k) === p) apis.delete(k);
      });
    }
    return p;
  };
  const api = async (clusterId: string): Promise<CoreV1Api> => (await clients(clusterId)).core;
  /** Drops every cached client of the cluster: the next call reads its kubeconfig again. */
  const forget = (clusterId: string) => {
    for (const k of apis.keys()) if (k.startsWith(`${clusterId}\u0000`)) apis.delete(k);
  };

  /**
   * A classified Kubernetes failure: returns only for a 404; a refusal (401/403) drops
   * the cluster's cached kubeconfig so a rotated one is read again; the rest is thrown.
   */
  const classify = (clusterId: string, node: string, err: unknown): "not-found" => {
    const c = classifyKubeError(err, { clusterId, target: node });
    if (c instanceof KubeNotFound) return "not-found";
    if (c instanceof KubeUnauthorized || c instanceof KubeForbidden) forget(clusterId);
    throw c;
  };
  const notFound = (clusterId: string, node: string, cause?: unknown) =>
    new KubeNotFound(
      { clusterId, target: `node ${node}` },
      { status: 404, cause },
      "check the node name (kubectl get nodes)",
    );

  const patch = async (clusterId: string, node: string, body: object) => {
    const core = await api(clusterId);
    try {
      await core.patchNode({ name: node, body }, setHeaderOptions("Content-Type", PatchStrategy.MergePatch));
    } catch (err) {
      classify(clusterId, node, err);
      throw notFound(clusterId, node, err);
    }
  };

  /** 401/403 on a list or watch: permanent for this kubeconfig, which is dropped so a new one is read. */
  const refusedOrRaw = (clusterId: string, err: unknown): Error => {
    const c = classifyKubeError(err, { clusterId });
    if (c instanceof KubeUnauthorized || c instanceof KubeForbidden) forget(clusterId);
    return c;
  };

  const listNodes = async (clusterId: string, parameter?: string): Promise<NodeList> => {
    const { core } = await clients(clusterId, parameter);
    try {
      const list = await core.listNode();
      return {
        nodes: list.items.map(observedNodeOf),
        resourceVersion: list.metadata?.resourceVersion ?? "",
      };
    } catch (err) {
      // A cluster that does not answer may have moved (a replaced server, a re-published
      // kubeconfig): the next attempt reads the kubeconfig again.
      forget(clusterId);
      throw refusedOrRaw(clusterId, err);
    }
  };

  const watchNodes = (
    clusterId: string,
    resourceVersion: string,
    onEvent: (e: NodeWatchEvent) => void,
    onEnd: (end: NodeWatchEnd) => void,
    parameter?: string,
  ): Promise<NodeWatch> =>
    openWatch({
      clusterId,
      kubeConfig: async () => (await clients(clusterId, parameter)).kc,
      path: "/api/v1/nodes",
      resourceVersion,
      onObject: (phase, obj) => {
        const n = obj as V1Node;
        const rv = n?.metadata?.resourceVersion ?? "";
        if (phase === "BOOKMARK") {
          if (rv) onEvent({ kind: "bookmark", resourceVersion: rv });
        } else if (phase === "DELETED") {
          onEvent({ kind: "removed", node: n.metadata?.name ?? "", resourceVersion: rv });
        } else {
          onEvent({ kind: "upsert", node: observedNodeOf(n), resourceVersion: rv });
        }
      },
      onEnd,
      classify: (err) => refusedOrRaw(clusterId, err),
    });

  return {
    listNodes,
    watchNodes,
    forgetKubeconfig: forget,
    /** The cluster's KubeConfig (cached), for adapters of other APIs (workloads). */
    kubeConfig: async (clusterId) => (await clients(clusterId)).kc,
    /** The breakers and bulkheads, for adapters of other APIs of the same clusters (workloads). */
    resilience,
    cordon: (clusterId, node, annotations) =>
      patch(clusterId, node, { metadata: { annotations }, spec: { unschedulable: true } }),
    uncordon: (clusterId, node) =>
      patch(clusterId, node, {
        metadata: { annotations: { [CORDONED_BY]: null, [CORDON_REASON]: null } },
        spec: { unschedulable: false },
      }),
    applyClassification: async (clusterId, node, change) => {
      const core = await api(clusterId);
      // Read, compute, patch with the read resourceVersion; a 409 (a write in between) reads again.
      for (let attempt = 1; ; attempt++) {
        let n: V1Node;
        try {
          n = await core.readNode({ name: node });
        } catch (err) {
          classify(clusterId, node, err);
          throw notFound(clusterId, node, err);
        }
        const body = classificationPatch(
          {
            resourceVersion: n.metadata?.resourceVersion ?? "",
            labels: n.metadata?.labels ?? {},
            taints: n.spec?.taints ?? [],
          },
          change,
        );
        if (!body) return; // the node shows the change already
        try {
          await core.patchNode(
            { name: node, body },
            setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
          );
          return;
        } catch (err) {
          if (err instanceof KubeConflict && attempt < CLASSIFY_CONFLICT_TRIES) continue;
          if (err instanceof KubeInvalid)
            throw new KubeInvalid(
              { clusterId, operation: "patchNode", target: `the labels or taints of node ${node}` },
              { status: err.status, cause: err },
              "check the label keys and values and the taints against the Kubernetes rules",
            );
          classify(clusterId, node, err);
          throw notFound(clusterId, node, err);
        }
      }
    },
    getNode: async (clusterId, node): Promise<NodeInfo | undefined> => {
      const core = await api(clusterId);
      let n: V1Node;
      try {
        n = await core.readNode({ name: node });
      } catch (err) {
        classify(clusterId, node, err);
        return undefined;
      }
      return {
        name: n.metadata?.name ?? node,
        unschedulable: n.spec?.unschedulable === true,
        annotations: n.metadata?.annotations ?? {},
        ready: (n.status?.conditions ?? []).some((c) => c.type === "Ready" && c.status === "True"),
      };
    },
    deleteNode: async (clusterId, node): Promise<void> => {
      const core = await api(clusterId);
      try {
        await core.deleteNode({ name: node });
      } catch (err) {
        classify(clusterId, node, err); // 404: gone already, which is what was asked
      }
    },
    listPods: async (clusterId, node): Promise<readonly PodInfo[]> => {
      const core = await api(clusterId);
      let list: Awaited<ReturnType<CoreV1Api["listPodForAllNamespaces"]>>;
      try {
        list = await core.listPodForAllNamespaces({ fieldSelector: `spec.nodeName=${node}` });
      } catch (err) {
        classify(clusterId, node, err);
        return [];
      }
      return list.items.map((p) => ({
        namespace: p.metadata?.namespace ?? "default",
        name: p.metadata?.name ?? "",
        terminating: p.metadata?.deletionTimestamp != null,
        daemonSet: (p.metadata?.ownerReferences ?? []).some((r) => r.kind === "DaemonSet"),
        mirror: p.metadata?.annotations?.["kubernetes.io/config.mirror"] !== undefined,
        unmanaged: !(p.metadata?.ownerReferences ?? []).some((r) => r.controller === true),
        emptyDir: (p.spec?.volumes ?? []).some((v) => v.emptyDir !== undefined),
      }));
    },
    evict: async (clusterId, namespace, pod, gracePeriodSeconds): Promise<EvictionResult> => {
      const core = await api(clusterId);
      try {
        await core.createNamespacedPodEviction({
          name: pod,
          namespace,
          body: {
            apiVersion: "policy/v1",
            kind: "Eviction",
            metadata: { name: pod, namespace },
            ...(gracePeriodSeconds !== undefined ? { deleteOptions: { gracePeriodSeconds } } : {}),
          },
        });
        return { evicted: true };
      } catch (err) {
        // A 429 is about this pod (a budget, a budget not processed yet, or throttling that
        // outlasted the resilience's retries): the pass goes on with the others and tries
        // this one again later.
        if (err instanceof KubeEvictionBlocked || err instanceof KubeThrottled) return evictionRefusal(err);
        if (err instanceof KubeNotFound) return { evicted: true }; // gone already
        classify(clusterId, `(pod ${podLabel(namespace, pod)})`, err);
        return { evicted: true };
      }
    },
  };
}
