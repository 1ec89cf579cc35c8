/**
 * Classification drift restore on the simulated cloud: real NATS, the sim's Kubernetes
 * and SSM, the node facts watcher. Someone removes a node's `cairn.dev/pool` label with
 * client-node → node-ops puts it back; a pool's labels and taints change
 * (`cluster.pool-updated`) → its nodes get them, and lose the pool's old ones only.
 */
import {
  CommandBus,
  catalogue,
  clusterSpec,
  EventStore,
  exampleClusterCreate,
  nodeAggregateId,
} from "@cairn/events";
import { appendAsOwner, startJetStream, type TestJetStream, until } from "@cairn/events/testing";
import { SIM_CREDENTIALS, type Sim, startSim } from "@cairn/sim";
import { CoreV1Api, KubeConfig, PatchStrategy, setHeaderOptions } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { kubeconfigParameter } from "../adapters/kube.ts";
import { type NodeOps, startNodeOps } from "../node-ops.ts";
import { RESTORE_REASON } from "./restore.ts";

const CLUSTER = "restore-1";
const NODES = ["i-0aaa0000000000001", "i-0bbb0000000000002"] as const;
const [FIRST, SECOND] = NODES;

let js: TestJetStream;
let sim: Sim;
let store: EventStore;
let nodeOps: NodeOps;
let core: CoreV1Api;

const appendEvent = (aggregate: { type: "install" | "cluster"; id: string }, type: string, data: object) =>
  appendAsOwner(store, aggregate, type, data);
const nodeopEvents = async (node: string) =>
  (await store.load({ type: "nodeop", id: nodeAggregateId(CLUSTER, node) })).events;
const readNode = (name: string) => core.readNode({ name });
const taintsOf = async (name: string) =>
  ((await readNode(name)).spec?.taints ?? [])
    .filter((t) => !t.key.startsWith("node.kubernetes.io/"))
    .map((t) => `${t.key}=${t.value ?? ""}:${t.effect}`)
    .sort();

beforeAll(async () => {
  js = await startJetStream();
  sim = await startSim({ seed: 13, timeScale: 100 });
  store = new EventStore({ js: js.nats.js, jsm: js.nats.jsm, catalogue });
  // The cluster's history as the provisioner records it: a pool with labels and a taint, two instances running.
  const spec = clusterSpec.parse({
    ...exampleClusterCreate(CLUSTER).data,
    pools: [
      {
        name: "workers",
        capacityType: "spot",
        instanceTypes: ["t3.large"],
        count: 2,
        labels: { tier: "batch" },
        taints: [{ key: "dedicated", value: "batch", effect: "NoSchedule" }],
      },
    ],
  });
  const cluster = { type: "cluster" as const, id: CLUSTER };
  await appendEvent(cluster, "cluster.requested", { spec });
  for (const [i, instanceId] of NODES.entries())
    await appendEvent(cluster, "cluster.instance-running", {
      slot: 1000 + i,
      instanceId,
      role: "agent",
      pool: "workers",
      capacityType: "spot",
    });
  // The nodes as the installer joins them.
  sim.world.kube.ensureCluster(CLUSTER);
  for (const name of NODES)
    sim.world.kube.registerNode(CLUSTER, {
      name,
      role: "agent",
      instanceId: name,
      availabilityZone: `${spec.region}a`,
      labels: { "cairn.dev/pool": "workers", "cairn.dev/capacity-type": "spot", tier: "batch" },
      taints: [{ key: "dedicated", value: "batch", effect: "NoSchedule" }],
    });
  const kubeconfig = sim.world.kube.kubeconfig(CLUSTER);
  sim.world.ssm.putParameter(spec.region, kubeconfigParameter(CLUSTER), kubeconfig, true);
  const kc = new KubeConfig();
  kc.loadFromString(kubeconfig);
  core = kc.makeApiClient(CoreV1Api);
  nodeOps = await startNodeOps({
    nats: js.nats,
    ssm: { endpoint: sim.url, credentials: SIM_CREDENTIALS },
    facts: { backoff: { baseMs: 20, maxMs: 200 }, leaseTtlMs: 3_000 },
    restore: { busyRetryMs: 50 },
  });
  await appendEvent({ type: "install", id: CLUSTER }, "install.kubeconfig-published", {
    parameter: kubeconfigParameter(CLUSTER),
    version: 1,
  });
  // Both nodes registered in the facts, with their classification: nothing to restore.
  await until("both nodes registered", async () => {
    const facts = (await store.load({ type: "kube", id: CLUSTER })).events;
    return facts.filter((e) => e.type === "kube.node-registered").length === 2;
  });
}, 30_000);
afterAll(async () => {
  await nodeOps?.stop();
  await sim?.stop();
  await js?.dispose();
});

describe("classification drift restore on the sim", () => {
  it("a node that lost cairn.dev/pool gets it back, and only it", async () => {
    await core.patchNode(
      { name: FIRST, body: { metadata: { labels: { "cairn.dev/pool": null, team: "data" } } } },
      setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
    );
    await until(
      "cairn.dev/pool back",
      async () => (await readNode(FIRST)).metadata?.labels?.["cairn.dev/pool"],
    );
    expect((await readNode(FIRST)).metadata?.labels).toMatchObject({
      "cairn.dev/pool": "workers",
      "cairn.dev/capacity-type": "spot",
      tier: "batch",
      team: "data", // not Cairn's: left alone
    });
    const events = await until("the restore recorded", async () => {
      const all = await nodeopEvents(FIRST);
      return all.some((e) => e.type === "nodeop.classification-applied") ? all : undefined;
    });
    const requested = events.find((e) => e.type === "nodeop.classification-requested");
    expect(requested?.meta.actor).toBe("node-ops");
    expect(requested?.data).toMatchObject({
      operation: "restore",
      by: "node-ops",
      reason: RESTORE_REASON,
      change: {
        setLabels: { "cairn.dev/pool": "workers" },
        removeLabels: [],
        addTaints: [],
        removeTaints: [],
      },
    });
    // Nothing was restored on the node that did not drift.
    expect(await nodeopEvents(SECOND)).toEqual([]);
  });

  it("pool-updated: every node of the pool gets the new labels and taints and loses the pool's old ones", async () => {
    await appendEvent({ type: "cluster", id: CLUSTER }, "cluster.pool-updated", {
      pool: "workers",
      labels: { tier: "gold", gpu: "a100" },
      taints: [{ key: "gpu", value: "a100", effect: "NoSchedule" }],
    });
    for (const node of NODES) {
      await until(
        `${node} reclassified`,
        async () => (await readNode(node)).metadata?.labels?.gpu === "a100",
      );
      await until(`${node} retainted`, async () => (await taintsOf(node)).join() === "gpu=a100:NoSchedule");
      expect((await readNode(node)).metadata?.labels).toMatchObject({
        "cairn.dev/pool": "workers",
        tier: "gold",
        gpu: "a100",
      });
    }
    expect((await readNode(FIRST)).metadata?.labels?.team).toBe("data");
  });

  it("a node Cairn is cordoning meanwhile: restored without a refusal, and still cordoned", async () => {
    // The restore queues behind the cordon if it is still in flight (it waits, it is not refused).
    const bus = new CommandBus({ js: js.nats.js, catalogue });
    await bus.send({
      type: "node.cordon",
      data: { clusterId: CLUSTER, node: SECOND, reason: "maintenance" },
      meta: { actor: "alice" },
    });
    await core.patchNode(
      { name: SECOND, body: { metadata: { labels: { "cairn.dev/pool": null } } } },
      setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
    );
    await until(
      "cairn.dev/pool back on the cordoned node",
      async () => (await readNode(SECOND)).metadata?.labels?.["cairn.dev/pool"],
    );
    const types = (await nodeopEvents(SECOND)).map((e) => e.type);
    expect(types).toContain("nodeop.cordoned");
    expect(types).not.toContain("nodeop.rejected");
    expect((await readNode(SECOND)).spec?.unschedulable).toBe(true);
  });
});
