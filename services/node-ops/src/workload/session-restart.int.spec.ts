/**
 * node-ops killed (SIGKILL) while a session's start waits for its pod, on real NATS and
 * the simulated cloud: node-ops runs as its own process (its main.ts, as deployed: the
 * real adapter, the kubeconfig from the cluster's SecureString, its default polls). Its
 * waiter on the pod watch dies with it; the pod becomes Ready while no node-ops runs; the
 * restarted process still notices and records the session Running, once.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { CommandBus, catalogue, EventStore } from "@cairn/events";
import { startJetStream, type TestJetStream, until } from "@cairn/events/testing";
import { SIM_CREDENTIALS, type Sim, startSim } from "@cairn/sim";
import type { CoreV1Api } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { simCluster } from "../testing/sim-cluster.ts";
import { SESSIONS_NAMESPACE } from "./session-port.ts";

const CLUSTER = "restart-1";
const MAIN = fileURLToPath(new URL("../main.ts", import.meta.url));

let js: TestJetStream;
let sim: Sim;
let store: EventStore;
let bus: CommandBus;
let core: CoreV1Api;
let env: NodeJS.ProcessEnv;
const children: ChildProcess[] = [];

/** node-ops as its own process; resolves once it says it serves. */
function startNodeOpsProcess(): Promise<ChildProcess> {
  const child = spawn(process.execPath, [MAIN], {
    env,
    stdio: ["ignore", "ignore", "pipe", "ipc"],
    detached: true, // its own process group: the kill reaches it and nothing else
  });
  children.push(child);
  let err = "";
  child.stderr?.on("data", (d: Buffer) => {
    err = (err + d.toString("utf8")).slice(-4_000);
  });
  return new Promise((resolve, reject) => {
    child.on("message", (m: unknown) => {
      if ((m as { type?: string })?.type === "cairn.ready") resolve(child);
    });
    child.once("exit", (code, signal) => reject(new Error(`node-ops exited (${signal ?? code}): ${err}`)));
  });
}
const kill = (child: ChildProcess) =>
  new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once("exit", () => resolve());
    process.kill(-child.pid!, "SIGKILL");
  });

beforeAll(async () => {
  js = await startJetStream();
  // At 5×: an image pull 1 s, a pod's start-up 2 s (wall).
  sim = await startSim({ seed: 13, timeScale: 5 });
  store = new EventStore({ js: js.nats.js, jsm: js.nats.jsm, catalogue });
  const cluster = await simCluster(sim, store, CLUSTER, ["agent-a"]);
  core = cluster.core;
  bus = new CommandBus({ js: js.nats.js, catalogue });
  env = {};
  for (const [k, v] of Object.entries(process.env))
    if (!k.startsWith("VITEST") && !k.startsWith("AWS_") && k !== "NODE_OPTIONS") env[k] = v;
  Object.assign(env, {
    NATS_URL: js.server.url,
    AWS_ENDPOINT_URL_SSM: sim.url,
    AWS_ENDPOINT_URL_SQS: sim.url,
    AWS_ENDPOINT_URL_EC2: sim.url,
    AWS_ACCESS_KEY_ID: SIM_CREDENTIALS.accessKeyId,
    AWS_SECRET_ACCESS_KEY: SIM_CREDENTIALS.secretAccessKey,
    AWS_REGION: cluster.region,
    CAIRN_HEALTH_PORT: "0",
    LOG_LEVEL: "warn",
  });
}, 30_000);
afterAll(async () => {
  for (const c of children) await kill(c);
  await sim?.stop();
  await js?.dispose();
});

const types = async (sessionId: string) =>
  (await store.load({ type: "workload", id: sessionId })).events.map((e) => e.type);

describe("node-ops killed while a start waits for its pod", () => {
  it("the restarted process notices the pod Ready and records the session Running, once", async () => {
    // A pod of the test's holds a CPU of agent-a's two: the session's 1.5 CPU must wait for room.
    await core.createNamespacedPod({
      namespace: "default",
      body: {
        metadata: { name: "holder" },
        spec: {
          containers: [{ name: "c", image: "pause:3", resources: { requests: { cpu: "1" } } }],
        },
      },
    });
    const first = await startNodeOpsProcess();
    await bus.send({
      type: "workload.start",
      data: {
        sessionId: "r-1",
        clusterId: CLUSTER,
        user: "alice",
        template: { image: "ghcr.io/acme/ide:1", cpu: "1500m", memory: "256Mi", storage: "1Gi" },
      },
      meta: { actor: "idle-detector" },
    });
    await until("r-1 started", async () => (await types("r-1")).includes("workload.started"), 30_000);
    await until("r-1's pod Unschedulable", async () => {
      const pods = await core.listNamespacedPod({
        namespace: SESSIONS_NAMESPACE,
        labelSelector: "cairn.dev/session=r-1",
      });
      return pods.items.some((p) =>
        p.status?.conditions?.some((c) => c.type === "PodScheduled" && c.reason === "Unschedulable"),
      );
    });
    await new Promise((r) => setTimeout(r, 300)); // its look done, its waiter left
    await kill(first);

    // Room while no node-ops runs: the pod is placed and becomes Ready.
    await core.deleteNamespacedPod({ namespace: "default", name: "holder" });
    await until(
      "r-1's pod Ready",
      async () => {
        const pods = await core.listNamespacedPod({
          namespace: SESSIONS_NAMESPACE,
          labelSelector: "cairn.dev/session=r-1",
        });
        return pods.items.some((p) =>
          p.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True"),
        );
      },
      15_000,
    );
    expect(await types("r-1")).not.toContain("workload.running");

    await startNodeOpsProcess();
    await until("r-1 Running", async () => (await types("r-1")).includes("workload.running"), 20_000);
    await new Promise((r) => setTimeout(r, 500));
    expect(await types("r-1")).toEqual(["workload.starting", "workload.started", "workload.running"]);
  }, 90_000);
});
