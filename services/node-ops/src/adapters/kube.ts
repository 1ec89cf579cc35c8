/**
 * The `Kube` port on @kubernetes/client-node v2. A cluster's kubeconfig is the SSM
 * SecureString `/cairn/<clusterId>/kubeconfig` in the cluster's region; the region comes
 * from the cluster's own history (`cluster.requested` → `spec.region`). One KubeConfig
 * per cluster is cached; a 401/403 drops it so a rotated kubeconfig is read again.
 *
 * Errors: 404 → permanent (the node is not there); 401/403 → permanent with a hint;
 * 429, 5xx and connection errors are thrown as they are: transient, the runner retries.
 * The kubeconfig and its token are never logged.
 */
import { GetParameterCommand, SSMClient, type SSMClientConfig } from "@aws-sdk/client-ssm";
import { catalogue, EventStore, type Nats, type RunnerLogger } from "@cairn/events";
import {
  ApiException,
  CoreV1Api,
  KubeConfig,
  PatchStrategy,
  setHeaderOptions,
  type V1Node,
} from "@kubernetes/client-node";
import {
  CORDON_REASON,
  CORDONED_BY,
  type EvictionResult,
  type Kube,
  type NodeInfo,
  NodeOpFailure,
  type PodInfo,
} from "../ports.ts";

/** The PDB named in a 429 eviction answer: "The disruption budget <name> needs …". */
export function pdbOfEvictionRefusal(body: unknown): string {
  let status: unknown = body;
  if (typeof body === "string") {
    try {
      status = JSON.parse(body);
    } catch {
      status = { message: body };
    }
  }
  const s = status as { message?: string; details?: { causes?: { reason?: string; message?: string }[] } };
  const messages = [
    ...(s?.details?.causes ?? []).filter((c) => c.reason === "DisruptionBudget").map((c) => c.message ?? ""),
    s?.message ?? "",
  ];
  for (const m of messages) {
    const match = /disruption budget (\S+) needs/.exec(m);
    if (match?.[1]) return match[1];
  }
  return "unknown";
}

export interface KubeAdapterOptions {
  /** Where the cluster histories are (for the region). */
  readonly nats: Nats;
  /** The SSM endpoint (the sim's URL). Absent: the SDK's own resolution. */
  readonly endpoint?: string;
  readonly credentials?: SSMClientConfig["credentials"];
  readonly logger?: RunnerLogger;
}

const podLabel = (namespace: string, pod: string) => `${namespace}/${pod}`;

export const kubeconfigParameter = (clusterId: string) => `/cairn/${clusterId}/kubeconfig`;

export function createKube(o: KubeAdapterOptions): Kube {
  const store = new EventStore({ js: o.nats.js, jsm: o.nats.jsm, catalogue });
  const ssmClients = new Map<string, SSMClient>();
  const apis = new Map<string, Promise<CoreV1Api>>();

  const ssm = (region: string) => {
    let c = ssmClients.get(region);
    if (!c) {
      c = new SSMClient({
        region,
        maxAttempts: 1,
        ...(o.endpoint !== undefined ? { endpoint: o.endpoint } : {}),
        ...(o.credentials !== undefined ? { credentials: o.credentials } : {}),
      });
      ssmClients.set(region, c);
    }
    return c;
  };

  const regionOf = async (clusterId: string): Promise<string> => {
    const history = await store.load({ type: "cluster", id: clusterId });
    const first = history.events[0];
    if (first?.type !== "cluster.requested")
      throw new NodeOpFailure(`cluster ${clusterId} does not exist`, {
        transient: false,
        remediation: "check the cluster id (cairn cluster list)",
      });
    return (first.data as { spec: { region: string } }).spec.region;
  };

  const load = async (clusterId: string): Promise<CoreV1Api> => {
    const region = await regionOf(clusterId);
    const name = kubeconfigParameter(clusterId);
    let yaml: string | undefined;
    try {
      const out = await ssm(region).send(new GetParameterCommand({ Name: name, WithDecryption: true }));
      yaml = out.Parameter?.Value;
    } catch (err) {
      const e = err as { name?: string; $metadata?: { httpStatusCode?: number } };
      if (e.name === "ParameterNotFound") yaml = undefined;
      else if (e.name === "AccessDeniedException" || e.$metadata?.httpStatusCode === 403)
        throw new NodeOpFailure(`node-ops may not read ${name} in ${region}`, {
          transient: false,
          remediation:
            "grant node-ops ssm:GetParameter and kms:Decrypt on the cluster's kubeconfig parameter",
          cause: err,
        });
      else throw err; // throttling, 5xx, network: transient
    }
    if (!yaml)
      throw new NodeOpFailure(`cluster ${clusterId} has no kubeconfig yet (${name} in ${region})`, {
        transient: false,
        remediation: "wait until the cluster is Ready, then try again",
      });
    const kc = new KubeConfig();
    try {
      kc.loadFromString(yaml);
    } catch {
      // The parse error may quote the document: never pass it on.
      throw new NodeOpFailure(`the kubeconfig of cluster ${clusterId} (${name}) cannot be read`, {
        transient: false,
        remediation: "re-publish the cluster's kubeconfig",
      });
    }
    return kc.makeApiClient(CoreV1Api);
  };

  const api = (clusterId: string): Promise<CoreV1Api> => {
    let p = apis.get(clusterId);
    if (!p) {
      p = load(clusterId);
      apis.set(clusterId, p);
      // A failed load is not cached: the next call tries again.
      p.catch(() => apis.delete(clusterId));
    }
    return p;
  };

  /** Classifies a Kubernetes API error; returns only for a 404. */
  const classify = (clusterId: string, node: string, err: unknown): "not-found" => {
    if (!(err instanceof ApiException)) throw err; // connection errors: transient
    if (err.code === 404) return "not-found";
    if (err.code === 401 || err.code === 403) {
      apis.delete(clusterId);
      throw new NodeOpFailure(
        `the Kubernetes API of cluster ${clusterId} refused node-ops (${err.code}) on node ${node}`,
        {
          transient: false,
          remediation:
            err.code === 401
              ? "the kubeconfig's credentials are not accepted: re-publish the cluster's kubeconfig"
              : "give the kubeconfig's user RBAC permission to get and patch nodes",
        },
      );
    }
    // 409, 429, 5xx and the rest: transient, without the body (it may echo the request).
    throw new Error(`Kubernetes API of cluster ${clusterId} answered ${err.code} on node ${node}`);
  };
  const notFound = (clusterId: string, node: string) =>
    new NodeOpFailure(`node ${node} not found in cluster ${clusterId}`, {
      transient: false,
      remediation: "check the node name (kubectl get nodes)",
    });

  const patch = async (clusterId: string, node: string, body: object) => {
    const core = await api(clusterId);
    try {
      await core.patchNode({ name: node, body }, setHeaderOptions("Content-Type", PatchStrategy.MergePatch));
    } catch (err) {
      classify(clusterId, node, err);
      throw notFound(clusterId, node);
    }
  };

  return {
    cordon: (clusterId, node, annotations) =>
      patch(clusterId, node, { metadata: { annotations }, spec: { unschedulable: true } }),
    uncordon: (clusterId, node) =>
      patch(clusterId, node, {
        metadata: { annotations: { [CORDONED_BY]: null, [CORDON_REASON]: null } },
        spec: { unschedulable: false },
      }),
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
      };
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
        if (err instanceof ApiException && err.code === 429) {
          const blockedBy = pdbOfEvictionRefusal(err.body);
          // A throttle (Retry-After) names no budget: a transient error, retried.
          if (blockedBy === "unknown")
            throw new Error(`Kubernetes API of cluster ${clusterId} throttled an eviction`);
          return { evicted: false, blockedBy };
        }
        if (err instanceof ApiException && err.code === 404) return { evicted: true }; // gone already
        classify(clusterId, `(pod ${podLabel(namespace, pod)})`, err);
        return { evicted: true };
      }
    },
  };
}
