/** Shared setup for the kube int tests: a sim, one cluster, real client-node API clients. */
import { ApiException, AppsV1Api, CoreV1Api, KubeConfig, PolicyV1Api, Watch } from "@kubernetes/client-node";
import { type Sim, startSim } from "../sim.ts";
import type { NodeRegistration } from "../world.ts";
import type { Status } from "./status.ts";

export const LATENCIES = { apiCall: 0, deploymentReady: 10, podTermination: 2, pdbSync: 0.1, imagePull: 0 };

export interface KubeHarness {
  sim: Sim;
  kc: KubeConfig;
  core: CoreV1Api;
  apps: AppsV1Api;
  policy: PolicyV1Api;
}

export async function kubeSim(clusterId = "c1", timeScale = 1): Promise<KubeHarness> {
  const sim = await startSim({ seed: 7, timeScale, latencies: LATENCIES });
  sim.world.kube.ensureCluster(clusterId);
  const kc = new KubeConfig();
  kc.loadFromString(sim.world.kube.kubeconfig(clusterId));
  return {
    sim,
    kc,
    core: kc.makeApiClient(CoreV1Api),
    apps: kc.makeApiClient(AppsV1Api),
    policy: kc.makeApiClient(PolicyV1Api),
  };
}

export function agent(name: string, extra: Partial<NodeRegistration> = {}): NodeRegistration {
  return {
    name,
    role: "agent",
    labels: {},
    taints: [],
    instanceId: `i-${name.replace(/[^0-9a-f]/g, "").padEnd(17, "0")}`,
    availabilityZone: "eu-west-1a",
    internalIp: "10.0.1.10",
    ...extra,
  };
}

/** The ApiException a call rejects with, and its Status body. */
export async function apiError(
  p: Promise<unknown>,
): Promise<{ code: number; status: Status | undefined; headers: Record<string, string> }> {
  try {
    await p;
  } catch (e) {
    if (!(e instanceof ApiException)) throw e;
    const body = e.body as string | undefined;
    return {
      code: e.code,
      status: body ? (JSON.parse(body) as Status) : undefined,
      headers: e.headers as Record<string, string>,
    };
  }
  throw new Error("expected the call to fail");
}

export interface WatchEvent {
  type: string;
  object: { metadata?: { name?: string; resourceVersion?: string }; [k: string]: unknown };
}

/** Opens a watch with the real client; `events` fills as they arrive. */
export async function watch(
  kc: KubeConfig,
  path: string,
  params: Record<string, string | number | boolean | undefined> = {},
) {
  const events: WatchEvent[] = [];
  let ended: unknown = false;
  const controller = await new Watch(kc).watch(
    path,
    params,
    (type, object) => events.push({ type, object }),
    (err) => {
      ended = err ?? true;
    },
  );
  return {
    events,
    ended: () => ended,
    stop: () => controller.abort(),
  };
}

export const podSpec = (extra: Record<string, unknown> = {}) => ({
  containers: [{ name: "app", image: "nginx:1.27" }],
  ...extra,
});
