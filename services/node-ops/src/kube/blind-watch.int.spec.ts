/**
 * A watch that cannot see: the cluster's datastore was replaced (a K3s server rebuilt),
 * so the resourceVersion node-ops resumes from is ahead of the server's. The real API
 * server keeps such a watch open and silent for good; node-ops must notice the silence
 * and relist. Real NATS, the sim's Kubernetes and SSM, the real adapter.
 */
import { catalogue, EventStore, type RecordedEvent } from "@cairn/events";
import {
  appendAsOwner,
  recordClusterRequested,
  startJetStream,
  type TestJetStream,
  until,
} from "@cairn/events/testing";
import { SIM_CREDENTIALS, type Sim, startSim } from "@cairn/sim";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { kubeconfigParameter } from "../adapters/kube.ts";
import { type NodeOps, startNodeOps } from "../node-ops.ts";

const CLUSTER = "blind-1";
const NODES = ["i-0aaa0000000000011", "i-0bbb0000000000012"] as const;

let js: TestJetStream;
let sim: Sim;
let store: EventStore;
let nodeOps: NodeOps;

beforeAll(async () => {
  js = await startJetStream();
  sim = await startSim({ seed: 23, timeScale: 100 });
  store = new EventStore({ js: js.nats.js, jsm: js.nats.jsm, catalogue });
  const { region } = await recordClusterRequested(store, CLUSTER);
  sim.world.kube.ensureCluster(CLUSTER);
  for (const name of NODES)
    sim.world.kube.registerNode(CLUSTER, {
      name,
      role: "agent",
      instanceId: name,
      availabilityZone: `${region}a`,
      labels: {},
      taints: [],
    });
  sim.world.ssm.putParameter(region, kubeconfigParameter(CLUSTER), sim.world.kube.kubeconfig(CLUSTER), true);
  nodeOps = await startNodeOps({
    nats: js.nats,
    ssm: { endpoint: sim.url, credentials: SIM_CREDENTIALS },
    facts: { backoff: { baseMs: 20, maxMs: 200 }, leaseTtlMs: 3_000, silenceMs: 4_000 },
  });
}, 30_000);
afterAll(async () => {
  await nodeOps?.stop();
  await sim?.stop();
  await js?.dispose();
});

const facts = async (): Promise<RecordedEvent[]> => (await store.load({ type: "kube", id: CLUSTER })).events;
const untilFact = (type: string, node: string, count = 1) =>
  until(
    `${count} × ${type} on ${node}`,
    async () => {
      const events = await facts();
      return events.filter((e) => e.type === type && (e.data as { node?: string }).node === node).length >=
        count
        ? events
        : undefined;
    },
    20_000,
  );
const requests = (action: "list nodes" | "watch nodes") =>
  sim.requests.list({ service: "kube", region: CLUSTER, action });

describe("a node watch left blind by a replaced datastore", () => {
  it("is relisted after the silence bound, and what changed since is recorded", async () => {
    await until("node-ops to lead", () => nodeOps.watching());
    await appendAsOwner(store, { type: "install", id: CLUSTER }, "install.kubeconfig-published", {
      parameter: kubeconfigParameter(CLUSTER),
      version: 1,
    });
    await untilFact("kube.node-ready", NODES[1]);
    // Move the old datastore's resourceVersion well ahead, as a busy cluster's is.
    for (let i = 0; i < 50; i++) sim.world.kube.setNodeReady(CLUSTER, NODES[0], i % 2 === 1);
    await untilFact("kube.node-ready", NODES[0], 2);
    const lists = requests("list nodes").length;

    sim.world.kube.replaceDatastore(CLUSTER);
    // On the new datastore a node goes NotReady: the resumed watch (from the old,
    // larger resourceVersion) never hears of it; only a relist does.
    sim.world.kube.setNodeReady(CLUSTER, NODES[1], false);
    const events = await untilFact("kube.node-not-ready", NODES[1]);
    expect(requests("list nodes").length).toBeGreaterThan(lists);
    // The resumed watch came first and saw nothing: the relist found the change.
    const watchesAfter = requests("watch nodes").filter((r) => r.status === 200);
    expect(watchesAfter.length).toBeGreaterThan(0);
    expect(
      events.filter(
        (e) => e.type === "kube.node-not-ready" && (e.data as { node: string }).node === NODES[1],
      ),
    ).toHaveLength(1);
  });
});
