/**
 * A session's whole life across the two services that own it, on real NATS JetStream and
 * the simulated cloud: the real idle-detector (the session) and the real node-ops (its
 * workload, through client-node on the sim's Kubernetes API, the kubeconfig from the
 * cluster's SecureString). create → Running on a node → hibernate → Hibernated (zero
 * replicas, the claim kept) → connect → Running (wake latency recorded) → terminate →
 * Terminated, the claim released.
 */
import { CommandBus, catalogue, EventStore } from "@cairn/events";
import {
  appendAsOwner,
  recordClusterRequested,
  startJetStream,
  type TestJetStream,
  until,
} from "@cairn/events/testing";
import { type IdleDetector, startIdleDetector } from "@cairn/idle-detector";
import { kubeconfigParameter, type NodeOps, SESSIONS_NAMESPACE, startNodeOps } from "@cairn/node-ops";
import { SIM_CREDENTIALS, type Sim, startSim } from "@cairn/sim";
import { AppsV1Api, CoreV1Api, KubeConfig } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const CLUSTER = "demo-1";
let js: TestJetStream;
let sim: Sim;
let store: EventStore;
let bus: CommandBus;
let nodeOps: NodeOps;
let detector: IdleDetector;
let core: CoreV1Api;
let apps: AppsV1Api;

beforeAll(async () => {
  js = await startJetStream();
  sim = await startSim({ seed: 3, timeScale: 100 });
  store = new EventStore({ js: js.nats.js, jsm: js.nats.jsm, catalogue });
  // A Ready cluster: its history, its API server with three nodes, its kubeconfig in SSM.
  const { region } = await recordClusterRequested(store, CLUSTER);
  await appendAsOwner(store, { type: "cluster", id: CLUSTER }, "cluster.ready", {
    nodes: 3,
    k3sVersion: "v1.31.4+k3s1",
  });
  sim.world.kube.ensureCluster(CLUSTER);
  for (const name of ["agent-a", "agent-b", "agent-c"])
    sim.world.kube.registerNode(CLUSTER, { name, role: "agent", labels: {}, taints: [] });
  const kubeconfig = sim.world.kube.kubeconfig(CLUSTER);
  sim.world.ssm.putParameter(region, kubeconfigParameter(CLUSTER), kubeconfig, true);
  const kc = new KubeConfig();
  kc.loadFromString(kubeconfig);
  core = kc.makeApiClient(CoreV1Api);
  apps = kc.makeApiClient(AppsV1Api);

  nodeOps = await startNodeOps({
    nats: js.nats,
    ssm: { endpoint: sim.url, credentials: SIM_CREDENTIALS },
    facts: false,
    restore: false,
    sessions: { poll: { firstMs: 20, minMs: 20, maxMs: 200 }, unschedulableGraceMs: 0, movesIntervalMs: 200 },
  });
  detector = await startIdleDetector({ nats: js.nats, sweepIntervalMs: 200, leaseTtlMs: 1_500 });
  bus = new CommandBus({ js: js.nats.js, catalogue });
}, 30_000);
afterAll(async () => {
  await detector?.stop();
  await nodeOps?.stop();
  await sim?.stop();
  await js?.dispose();
});

const statusOf = async (id: string) => (await detector.handler.read({ type: "session", id })).state.status;
const reach = (id: string, status: string) =>
  until(`session ${id} ${status}`, async () => (await statusOf(id)) === status, 30_000);
const send = (type: string, sessionId: string, extra: object = {}) =>
  bus.send({ type, data: { sessionId, ...extra }, meta: { actor: "alice" } });
const claimExists = async (name: string) =>
  core.readNamespacedPersistentVolumeClaim({ namespace: SESSIONS_NAMESPACE, name }).then(
    () => true,
    (err: { code?: number }) => {
      if (err.code === 404) return false;
      throw err;
    },
  );

describe("idle-detector + node-ops on the sim", () => {
  it("create → Running → hibernate → Hibernated → connect → Running → terminate → Terminated, the volume released", async () => {
    await send("session.create", "e2e-1", {
      user: "alice",
      clusterId: CLUSTER,
      template: { image: "ghcr.io/acme/ide:1", cpu: "500m", memory: "1Gi", storage: "1Gi" },
    });
    await reach("e2e-1", "Running");
    const pods = await core.listNamespacedPod({
      namespace: SESSIONS_NAMESPACE,
      labelSelector: "cairn.dev/session=e2e-1",
    });
    expect(pods.items).toHaveLength(1);
    const running = (await store.load({ type: "session", id: "e2e-1" })).events.find(
      (e) => e.type === "session.running",
    );
    expect((running?.data as { node?: string } | undefined)?.node).toBe(pods.items[0]?.spec?.nodeName);

    await send("session.hibernate", "e2e-1");
    await reach("e2e-1", "Hibernated");
    expect(
      (await apps.readNamespacedDeployment({ namespace: SESSIONS_NAMESPACE, name: "session-e2e-1" })).spec
        ?.replicas,
    ).toBe(0);
    expect(await claimExists("session-e2e-1")).toBe(true);

    await send("session.connect", "e2e-1");
    await reach("e2e-1", "Running");
    const woke = (await store.load({ type: "session", id: "e2e-1" })).events
      .filter((e) => e.type === "session.running")
      .at(-1);
    expect((woke?.data as { wakeLatencyMs?: number } | undefined)?.wakeLatencyMs).toBeGreaterThan(0);

    await send("session.terminate", "e2e-1");
    await reach("e2e-1", "Terminated");
    const terminated = (await store.load({ type: "session", id: "e2e-1" })).events.find(
      (e) => e.type === "session.terminated",
    );
    expect((terminated?.data as { volumeReleased?: boolean } | undefined)?.volumeReleased).toBe(true);
    expect(await claimExists("session-e2e-1")).toBe(false);
    await expect(
      apps.readNamespacedDeployment({ namespace: SESSIONS_NAMESPACE, name: "session-e2e-1" }),
    ).rejects.toMatchObject({ code: 404 });
  });
});
