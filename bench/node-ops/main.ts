/**
 * bench/node-ops: draining a 100-pod node on the sim.
 *  1. Drain time, `node.drain` sent → `nodeop.drained` seen, beside the floor the sim's
 *     latencies set: podTermination / timeScale (API calls cost 0 here).
 *  2. Eviction calls/s Cairn made (counted from the sim's request log), beside the raw
 *     limit: the same number of `createNamespacedPodEviction` calls made directly with
 *     client-node on a second identical node, bounded in flight, in the same run.
 *
 * Run: node bench/node-ops/main.ts   (BENCH_PODS=100 BENCH_SCALE=100 BENCH_INFLIGHT=16)
 */
import { CommandBus, catalogue, EventStore, Headers, type Nats } from "@cairn/events";
import { recordClusterRequested, startJetStream } from "@cairn/events/testing";
import { kubeconfigParameter, startNodeOps } from "@cairn/node-ops";
import { SIM_CREDENTIALS, type Sim, startSim } from "@cairn/sim";
import { CoreV1Api, KubeConfig } from "@kubernetes/client-node";
import { bounded, printFigures, rate, timed } from "../lib/report.ts";

const PODS = Number(process.env.BENCH_PODS ?? 100);
const SCALE = Number(process.env.BENCH_SCALE ?? 100);
const IN_FLIGHT = Number(process.env.BENCH_INFLIGHT ?? 16);
const POD_TERMINATION = 2; // sim seconds: REALISTIC_LATENCIES.podTermination
const CLUSTER = "bench-drain";
const CAIRN_NODE = "drain-cairn";
const RAW_NODE = "drain-raw";

/** Resolves when a commit on `evt.nodeop.*` carries `type` (read from the commit headers). */
function waitForEvent(nats: Nats, type: string): Promise<void> {
  return new Promise((resolve) => {
    const sub = nats.nc.subscribe("evt.nodeop.*", {
      callback: (_err, msg) => {
        const types = msg.headers?.get(Headers.eventTypes)?.split(",") ?? [];
        if (types.includes(type)) {
          sub.unsubscribe();
          resolve();
        }
      },
    });
  });
}

/** Sim-time ISO → real milliseconds since the sim's epoch, unscaled. */
const realMsOf = (sim: Sim, iso: string) => sim.clock.realMs(Date.parse(iso));

const js = await startJetStream();
const sim = await startSim({
  seed: 21,
  timeScale: SCALE,
  latencies: { apiCall: 0, podTermination: POD_TERMINATION },
});
const store = new EventStore({ js: js.nats.js, jsm: js.nats.jsm, catalogue });
const { region } = await recordClusterRequested(store, CLUSTER);
sim.world.kube.ensureCluster(CLUSTER);
for (const name of [CAIRN_NODE, RAW_NODE])
  sim.world.kube.registerNode(CLUSTER, { name, role: "agent", labels: {}, taints: [] });
const kubeconfig = sim.world.kube.kubeconfig(CLUSTER);
sim.world.ssm.putParameter(region, kubeconfigParameter(CLUSTER), kubeconfig, true);
const kc = new KubeConfig();
kc.loadFromString(kubeconfig);
const core = kc.makeApiClient(CoreV1Api);

const podName = (node: string, i: number) => `${node}-p${i}`;
const fill = (node: string) =>
  bounded(PODS, IN_FLIGHT, (i) =>
    core.createNamespacedPod({
      namespace: "default",
      body: {
        metadata: { name: podName(node, i), labels: { app: node } },
        spec: { nodeName: node, containers: [{ name: "app", image: "nginx:1.27" }] },
      },
    }),
  );
await fill(CAIRN_NODE);
await fill(RAW_NODE);

const nodeOps = await startNodeOps({
  nats: js.nats,
  ssm: { endpoint: sim.url, credentials: SIM_CREDENTIALS },
  drain: { pollMs: 10, maxPollMs: 50 },
});
const bus = new CommandBus({ js: js.nats.js, catalogue });

// 1. Cairn drains CAIRN_NODE.
sim.requests.clear();
const drained = waitForEvent(js.nats, "nodeop.drained");
const drain = await timed(async () => {
  await bus.send({
    type: "node.drain",
    data: { clusterId: CLUSTER, node: CAIRN_NODE, reason: "bench" },
    meta: { actor: "bench" },
  });
  await drained;
});
const log = sim.requests.list({ service: "kube" });
const evictions = log.filter((r) => r.action.includes("evict"));
const firstEvict = evictions[0];
const lastEvict = evictions.at(-1);
if (!firstEvict || !lastEvict) throw new Error("the sim logged no eviction");
// The eviction phase: from the pod list that started the pass to the last eviction call.
const listBefore = log.filter((r) => r.action === "list pods" && r.seq < firstEvict.seq).at(-1) ?? firstEvict;
const evictPhaseMs = realMsOf(sim, lastEvict.time) - realMsOf(sim, listBefore.time);
const passes = log.filter((r) => r.action === "list pods").length;
const left = (await core.listPodForAllNamespaces({ fieldSelector: `spec.nodeName=${CAIRN_NODE}` })).items
  .length;

// 2. Raw limit: the same number of evictions straight through client-node, bounded in flight.
sim.requests.clear();
const raw = await timed(() =>
  bounded(evictions.length, IN_FLIGHT, (i) =>
    core.createNamespacedPodEviction({
      name: podName(RAW_NODE, i),
      namespace: "default",
      body: { metadata: { name: podName(RAW_NODE, i), namespace: "default" } },
    }),
  ),
);
const rawEvictions = sim.requests.list({ service: "kube" }).filter((r) => r.action.includes("evict"));

await nodeOps.stop();
await sim.stop();
await js.dispose();

const floorMs = (POD_TERMINATION * 1000) / SCALE;
printFigures(
  `bench/node-ops  (sim on loopback, apiCall 0, podTermination ${POD_TERMINATION} s, time scale ${SCALE}, ${PODS} pods)`,
  [
    { name: "1: drain, node.drain sent → nodeop.drained", value: drain.ms, unit: "ms" },
    { name: "1: floor (podTermination / timeScale)", value: floorMs, unit: "ms" },
    { name: "2: Cairn eviction phase (list → last evict)", value: evictPhaseMs, unit: "ms" },
    {
      name: `2: eviction calls (Cairn ${evictions.length}, raw ${rawEvictions.length})`,
      value: rate(evictions.length, evictPhaseMs),
      unit: "calls/s",
      raw: rate(rawEvictions.length, raw.ms),
    },
  ],
);
console.log(
  `  1: drain takes ${(drain.ms / floorMs).toFixed(2)}× the floor (${(drain.ms - floorMs).toFixed(1)} ms above it); ${passes} drain pass(es) listed the pods; ${left} pod(s) left on the node`,
);
console.log(
  `  2: raw = ${rawEvictions.length} createNamespacedPodEviction calls, ${IN_FLIGHT} in flight, on a second node of ${PODS} pods, ${raw.ms.toFixed(1)} ms`,
);
