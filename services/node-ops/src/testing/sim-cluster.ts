/**
 * A managed cluster on the sim as node-ops finds one: its `cluster.requested` in the log
 * (where the region comes from), an API server with these nodes registered, and its
 * kubeconfig in the cluster's SecureString parameter. Returns a client-node CoreV1Api on
 * that API server for the test's own reads and writes.
 */
import type { EventStore } from "@cairn/events";
import { recordClusterRequested } from "@cairn/events/testing";
import type { Sim } from "@cairn/sim";
import { CoreV1Api, KubeConfig } from "@kubernetes/client-node";
import { kubeconfigParameter } from "../adapters/kube.ts";

type NodeRegistration = Parameters<Sim["world"]["kube"]["registerNode"]>[1];

export async function simCluster(
  sim: Sim,
  store: EventStore,
  clusterId: string,
  nodes: readonly (string | NodeRegistration)[],
  /** The sim whose Kubernetes serves the cluster (default `sim`): one with other latencies. */
  apiSim: Sim = sim,
): Promise<{ region: string; kubeconfig: string; core: CoreV1Api; kc: KubeConfig }> {
  const { region } = await recordClusterRequested(store, clusterId);
  apiSim.world.kube.ensureCluster(clusterId);
  for (const n of nodes)
    apiSim.world.kube.registerNode(
      clusterId,
      typeof n === "string" ? { name: n, role: "agent", labels: {}, taints: [] } : n,
    );
  const kubeconfig = apiSim.world.kube.kubeconfig(clusterId);
  sim.world.ssm.putParameter(region, kubeconfigParameter(clusterId), kubeconfig, true);
  const kc = new KubeConfig();
  kc.loadFromString(kubeconfig);
  return { region, kubeconfig, core: kc.makeApiClient(CoreV1Api), kc };
}
