/**
 * The `Workloads` port on @kubernetes/client-node v2 (apps/v1 Deployments, their scale
 * subresource, nodes). Kubeconfigs come from the Kube adapter's cache. A spot twin is
 * `<name>-spot`: the Deployment's pod template with `nodeSelector
 * cairn.dev/capacity-type: spot` and an extra `cairn.dev/placement: spot` label (so the
 * two Deployments' selectors do not overlap), owned by the Deployment (deleted with it).
 * Every call runs under the resilience of the cluster's API server (kube-resilience.ts),
 * shared with the Kube adapter; failures are classified (kube-errors.ts).
 */

import { Resilience, resilienceMetricsObserver } from "@cairn/service";
import {
  AppsV1Api,
  CoreV1Api,
  type KubeConfig,
  PatchStrategy,
  setHeaderOptions,
  type V1Deployment,
} from "@kubernetes/client-node";
import type { PlacedDeployment, Workloads } from "../ports.ts";
import { SPOT_PERCENTAGE } from "../workload/placement.ts";
import { SESSIONS_NAMESPACE } from "../workload/session-port.ts";
import { KubeNotFound } from "./kube-errors.ts";
import { guardedApi } from "./kube-resilience.ts";
import { tracedApiClient } from "./kube-trace.ts";

export const CAPACITY_TYPE_LABEL = "cairn.dev/capacity-type";
/** Marks the twins node-ops makes (and the part of the pods' labels that tells them apart). */
export const PLACEMENT_LABEL = "cairn.dev/placement";
export const TWIN_OF = "cairn.dev/spot-twin-of";

export const twinName = (name: string) => `${name}-spot`;

const merge = setHeaderOptions("Content-Type", PatchStrategy.MergePatch);

export function createWorkloads(o: {
  kubeConfig(clusterId: string): Promise<KubeConfig>;
  /** Shared with the Kube adapter (one breaker per cluster); absent: its own. */
  readonly resilience?: Resilience;
}): Workloads {
  const resilience = o.resilience ?? new Resilience({ observer: resilienceMetricsObserver() });
  const apis = async (clusterId: string) => {
    const kc = await o.kubeConfig(clusterId);
    return {
      apps: guardedApi(resilience, clusterId, tracedApiClient(kc, AppsV1Api, clusterId)),
      core: guardedApi(resilience, clusterId, tracedApiClient(kc, CoreV1Api, clusterId)),
    };
  };
  const placed = (d: V1Deployment): PlacedDeployment => ({
    namespace: d.metadata?.namespace ?? "default",
    name: d.metadata?.name ?? "",
    annotations: d.metadata?.annotations ?? {},
    replicas: d.spec?.replicas ?? 1,
    pinnedOnDemand: d.spec?.template?.spec?.nodeSelector?.[CAPACITY_TYPE_LABEL] === "on-demand",
  });

  return {
    async listOptedIn(clusterId) {
      const { apps } = await apis(clusterId);
      // Not the sessions' namespace: its Deployments (20 a cluster and more) are Cairn's own,
      // never opted in, and listing them every pass was most of the list's cost.
      const list = await apps.listDeploymentForAllNamespaces({
        fieldSelector: `metadata.namespace!=${SESSIONS_NAMESPACE}`,
      });
      return list.items
        .filter((d) => d.metadata?.annotations?.[SPOT_PERCENTAGE] !== undefined)
        .filter((d) => d.metadata?.annotations?.[TWIN_OF] === undefined)
        .map(placed);
    },

    async spotCapacity(clusterId) {
      const { core } = await apis(clusterId);
      const nodes = await core.listNode({ labelSelector: `${CAPACITY_TYPE_LABEL}=spot` });
      return nodes.items.some(
        (n) =>
          n.spec?.unschedulable !== true &&
          (n.status?.conditions ?? []).some((c) => c.type === "Ready" && c.status === "True"),
      );
    },

    async ensureTwin(clusterId, d) {
      const { apps } = await apis(clusterId);
      const { namespace, name } = d;
      const deployment = await apps.readNamespacedDeployment({ namespace, name });
      // 1. The twin, if missing: the same pods, on spot nodes.
      let twin: V1Deployment | undefined;
      try {
        twin = await apps.readNamespacedDeployment({ namespace, name: twinName(name) });
      } catch (err) {
        if (!(err instanceof KubeNotFound)) throw err;
      }
      if (!twin) {
        const template = structuredClone(deployment.spec?.template ?? {});
        const labels = { ...(template.metadata?.labels ?? {}), [PLACEMENT_LABEL]: "spot" };
        template.metadata = { ...template.metadata, labels };
        template.spec = {
          ...(template.spec ?? { containers: [] }),
          nodeSelector: { ...(template.spec?.nodeSelector ?? {}), [CAPACITY_TYPE_LABEL]: "spot" },
        };
        const matchLabels = {
          ...(deployment.spec?.selector?.matchLabels ?? {}),
          [PLACEMENT_LABEL]: "spot",
        };
        twin = await apps.createNamespacedDeployment({
          namespace,
          body: {
            metadata: {
              name: twinName(name),
              annotations: { [TWIN_OF]: name },
              labels: { [PLACEMENT_LABEL]: "spot" },
              ...(deployment.metadata?.uid
                ? {
                    ownerReferences: [
                      {
                        apiVersion: "apps/v1",
                        kind: "Deployment",
                        name,
                        uid: deployment.metadata.uid,
                        controller: true,
                      },
                    ],
                  }
                : {}),
            },
            spec: { replicas: 0, selector: { matchLabels }, template },
          },
        });
      }
      // 2. The Deployment itself on on-demand nodes.
      if (!d.pinnedOnDemand)
        await apps.patchNamespacedDeployment(
          {
            namespace,
            name,
            body: { spec: { template: { spec: { nodeSelector: { [CAPACITY_TYPE_LABEL]: "on-demand" } } } } },
          },
          merge,
        );
      return twin.spec?.replicas ?? 0;
    },

    async scale(clusterId, namespace, name, replicas) {
      const { apps } = await apis(clusterId);
      await apps.patchNamespacedDeploymentScale({ namespace, name, body: { spec: { replicas } } }, merge);
    },

    async annotate(clusterId, namespace, name, annotations) {
      const { apps } = await apis(clusterId);
      await apps.patchNamespacedDeployment({ namespace, name, body: { metadata: { annotations } } }, merge);
    },
  };
}
