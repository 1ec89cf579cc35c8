/**
 * bench/node-ops: draining a 100-pod node on the sim.
 *  1. Drain time, `node.drain` sent → `nodeop.drained` seen, beside the floor the sim's
 *     latencies set: podTermination / timeScale (API calls cost 0 here).
 *  2. Eviction calls/s Cairn made (counted from the sim's request log), beside the raw
 *     limit: the same number of `createNamespacedPodEviction` calls made directly with
 *     client-node on a second identical node, bounded in flight, in the same run.
 *
 *  3. Labels: BENCH_LABEL_NODES (50) `node.label` commands published at once, one per node
 *     → every `nodeop.classification-applied` seen, beside the raw limit: the same
 *     read-then-patch (merge patch of metadata.labels with the read resourceVersion) sent
 *     straight with client-node to 50 other nodes, all at once, in the same run.
 *
 * No timing goal is set for these; the goals the last line reports are what the bench
 * relies on: the node drained to no pod, and every label applied.
 *
 * Run: node bench/node-ops/main.ts   (BENCH_PODS=100 BENCH_SCALE=100 BENCH_INFLIGHT=16 BENCH_LABEL_NODES=50;
 * BENCH_QUICK=1: 20 pods and 10 nodes, a smoke run)
 */
import { CommandBus, catalogue, EventStore, Headers, type Nats } from "@cairn/events";
import { recordClusterRequested, startJetStream } from "@cairn/events/testing";
import { kubeconfigParameter, startNodeOps } from "@cairn/node-ops";
import { fixturePodOwner } from "@cairn/node-ops/testing";
import { SIM_CREDENTIALS, type Sim, startSim } from "@cairn/sim";
import { CoreV1Api, KubeConfig, PatchStrategy, setHeaderOptions } from "@kubernetes/client-node";
import { bounded, printFigures, printResult, QUICK, rate, timed } from "../lib/report.ts";

const PODS = Number(process.env.BENCH_PODS ?? (QUICK ? 20 : 100));
const SCALE = Number(process.env.BENCH_SCALE ?? 100);
const IN_FLIGHT = Number(process.env.BENCH_INFLIGHT ?? 16);
const LABEL_NODES = Number(process.env.BENCH_LABEL_NODES ?? (QUICK ? 10 : 50));
const POD_TERMINATION = 2; // sim seconds: REALISTIC_LATENCIES.podTermination
const CLUSTER = "bench-drain";
const CAIRN_NODE = "drain-cairn";
const RAW_NODE = "drain-raw";

/**
 * An operation's end that is not the one waited for: the bench stops with its reason
 * rather than wait forever (a drain refused once hung it for good).
 */
const FAILURES = ["nodeop.drain-failed", "nodeop.classification-failed", "nodeop.failed", "nodeop.rejected"];

/** Resolves when `count` commits on `evt.nodeop.*` carried `type`; rejects on a failure's commit. */
function waitForEvents(nats: Nats, type: string, count: number): Promise<void> {
  let seen = 0;
  return new Promise((resolve, reject) => {
    const sub = nats.nc.subscribe("evt.nodeop.*", {
      callback: (_err, msg) => {
        const types = msg.headers?.get(Headers.eventTypes)?.split(",") ?? [];
        const failed = types.find((t) => FAILURES.includes(t));
        if (failed) {
          sub.unsubscribe();
          reject(new Error(`${failed} while waiting for ${type}: ${msg.string().slice(0, 1000)}`));
        } else if (types.includes(type) && ++seen === count) {
          sub.unsubscribe();
          resolve();
        }
      },
    });
  });
}
const waitForEvent = (nats: Nats, type: string) => waitForEvents(nats, type, 1);

const say = (line: string) => process.stderr.write(`bench/node-ops: ${line}\n`);

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
const labelNode = (who: "cairn" | "raw", i: number) => `label-${who}-${i}`;
for (let i = 0; i < LABEL_NODES; i++)
  for (const who of ["cairn", "raw"] as const)
    sim.world.kube.registerNode(CLUSTER, { name: labelNode(who, i), role: "agent", labels: {}, taints: [] });
const kubeconfig = sim.world.kube.kubeconfig(CLUSTER);
sim.world.ssm.putParameter(region, kubeconfigParameter(CLUSTER), kubeconfig, true);
const kc = new KubeConfig();
kc.loadFromString(kubeconfig);
const core = kc.makeApiClient(CoreV1Api);

// The pods' controller: a drain refuses pods no controller manages (they would not come
// back), and the sim's garbage collector removes pods whose owner does not exist. A
// Deployment of no replicas whose selector matches none of them, as node-ops' tests do.
const owner = await fixturePodOwner(kc);
const podName = (node: string, i: number) => `${node}-p${i}`;
const fill = (node: string) =>
  bounded(PODS, IN_FLIGHT, (i) =>
    core.createNamespacedPod({
      namespace: "default",
      body: {
        metadata: { name: podName(node, i), labels: { app: node }, ownerReferences: [owner] },
        spec: { nodeName: node, containers: [{ name: "app", image: "nginx:1.27" }] },
      },
    }),
  );
await fill(CAIRN_NODE);
await fill(RAW_NODE);
say(`two nodes of ${PODS} pods`);

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
say(`drained in ${Math.round(drain.ms)} ms`);
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

say(`raw: ${rawEvictions.length} evictions in ${Math.round(raw.ms)} ms`);

// 3. Labels across many nodes at once: through Cairn, then straight to the API.
const labelsApplied = waitForEvents(js.nats, "nodeop.classification-applied", LABEL_NODES);
const cairnLabels = await timed(async () => {
  await Promise.all(
    Array.from({ length: LABEL_NODES }, (_, i) =>
      bus.send({
        type: "node.label",
        data: { clusterId: CLUSTER, node: labelNode("cairn", i), labels: { tier: "gold" }, reason: "bench" },
        meta: { actor: "bench" },
      }),
    ),
  );
  await labelsApplied;
});
const rawLabels = await timed(() =>
  Promise.all(
    Array.from({ length: LABEL_NODES }, async (_, i) => {
      const name = labelNode("raw", i);
      const n = await core.readNode({ name });
      await core.patchNode(
        {
          name,
          body: { metadata: { resourceVersion: n.metadata?.resourceVersion, labels: { tier: "gold" } } },
        },
        setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
      );
    }),
  ),
);
const labelled = (await core.listNode({ labelSelector: "tier=gold" })).items.length;

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
    { name: `3: ${LABEL_NODES} node.label sent → all applied`, value: cairnLabels.ms, unit: "ms" },
    { name: `3: raw: ${LABEL_NODES} read + patch via client-node`, value: rawLabels.ms, unit: "ms" },
    {
      name: `3: labels applied (${LABEL_NODES} nodes at once)`,
      value: rate(LABEL_NODES, cairnLabels.ms),
      unit: "nodes/s",
      raw: rate(LABEL_NODES, rawLabels.ms),
    },
  ],
);
console.log(
  `  1: drain takes ${(drain.ms / floorMs).toFixed(2)}× the floor (${(drain.ms - floorMs).toFixed(1)} ms above it); ${passes} drain pass(es) listed the pods; ${left} pod(s) left on the node`,
);
console.log(
  `  2: raw = ${rawEvictions.length} createNamespacedPodEviction calls, ${IN_FLIGHT} in flight, on a second node of ${PODS} pods, ${raw.ms.toFixed(1)} ms`,
);
console.log(
  `  3: ${labelled} of ${2 * LABEL_NODES} nodes labelled; Cairn takes ${(cairnLabels.ms / rawLabels.ms).toFixed(1)}× the raw time (command bus, decision, commit, reactor, read + patch, record)`,
);
printResult({
  bench: "node-ops",
  params: { quick: QUICK, pods: PODS, time_scale: SCALE, in_flight: IN_FLIGHT, label_nodes: LABEL_NODES },
  figures: {
    drain_ms: drain.ms,
    drain_floor_ms: floorMs,
    evict_phase_ms: evictPhaseMs,
    evictions_per_s: rate(evictions.length, evictPhaseMs),
    raw_evictions_per_s: rate(rawEvictions.length, raw.ms),
    labels_all_applied_ms: cairnLabels.ms,
    raw_labels_ms: rawLabels.ms,
    drain_passes: passes,
    pods_left: left,
    nodes_labelled: labelled,
  },
  ratios: {
    drain_over_floor: drain.ms / floorMs,
    evictions_over_raw: rate(evictions.length, evictPhaseMs) / rate(rawEvictions.length, raw.ms),
    labels_over_raw: rawLabels.ms / cairnLabels.ms,
  },
  goals: { drained_to_no_pod: left === 0, every_label_applied: labelled === 2 * LABEL_NODES },
});
