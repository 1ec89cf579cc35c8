/**
 * bench/provisioner (issue 4):
 *  A. 100 clusters × 5 nodes created at once on the sim at zero latency: the control
 *     plane's own time per cluster and events/s, beside the raw JetStream publish rate
 *     measured in the same run.
 *  B. One cluster of N nodes at realistic latencies, time-scaled: command → every
 *     instance running, beside the floor the sim's latencies set (boot + one API call).
 *     Goal: within 5% of the floor plus one second, and flat in the number of nodes
 *     (run for 20 and for 200 nodes; issue 16: 200 nodes ≤ 1.2 × the time of 20).
 *
 * Run: node bench/provisioner/main.ts   (BENCH_CLUSTERS=100 BENCH_BIG=200 BENCH_SCALE=100;
 * BENCH_QUICK=1: 10 clusters and 50 nodes, a smoke run)
 */
import { CommandBus, catalogue, exampleClusterCreate, Headers, type Nats } from "@cairn/events";
import { startJetStream } from "@cairn/events/testing";
import { startProvisioner } from "@cairn/provisioner";
import { REALISTIC_LATENCIES, SIM_CREDENTIALS, startSim, ZERO_LATENCIES } from "@cairn/sim";
import { bounded, type Figure, printFigures, printResult, QUICK, rate, timed } from "../lib/report.ts";

const CLUSTERS = Number(process.env.BENCH_CLUSTERS ?? (QUICK ? 10 : 100));
const BIG = Number(process.env.BENCH_BIG ?? (QUICK ? 50 : 200));
const SCALE = Number(process.env.BENCH_SCALE ?? 100);

/** Resolves when `count` commits carrying `type` have been appended (read from the commit headers). */
function waitForEvents(
  nats: Nats,
  type: string,
  count: number,
): { done: Promise<void>; events: () => number } {
  let seen = 0;
  let events = 0;
  let resolve!: () => void;
  const done = new Promise<void>((r) => (resolve = r));
  const sub = nats.nc.subscribe("evt.cluster.*", {
    callback: (_err, msg) => {
      const types = msg.headers?.get(Headers.eventTypes)?.split(",") ?? [];
      events += types.length;
      if (types.includes(type) && ++seen >= count) {
        sub.unsubscribe();
        resolve();
      }
    },
  });
  return { done, events: () => events };
}

function clusterOf(id: string, workers: number) {
  const c = exampleClusterCreate(id, "bench");
  return {
    ...c,
    data: { ...c.data, pools: [{ ...c.data.pools[0]!, capacityType: "on-demand" as const, count: workers }] },
  };
}

async function scenarioA(): Promise<{ rows: Figure[]; ms: number; eventsPerS: number; rawPerS: number }> {
  const js = await startJetStream();
  const sim = await startSim({ seed: 1, latencies: ZERO_LATENCIES });
  const provisioner = await startProvisioner({
    nats: js.nats,
    ec2: { endpoint: sim.url, credentials: SIM_CREDENTIALS },
    pollMs: 5,
    maxPollMs: 50,
  });
  const bus = new CommandBus({ js: js.nats.js, catalogue });
  const ready = waitForEvents(js.nats, "cluster.instances-ready", CLUSTERS);
  const run = await timed(async () => {
    await bounded(CLUSTERS, 32, (i) => bus.send(clusterOf(`bench-${i}`, 4)));
    await ready.done;
  });
  // Raw limit: the same number of messages published to JetStream, same server, same run.
  const n = ready.events();
  const body = JSON.stringify({ pad: "x".repeat(600) });
  const raw = await timed(() => bounded(n, 64, (i) => js.nats.js.publish(`evt.rawbench.${i % 100}`, body)));
  await provisioner.stop();
  await sim.stop();
  await js.dispose();
  return {
    rows: [
      { name: `A: ${CLUSTERS} clusters × 5 nodes, all Configuring`, value: run.ms / 1000, unit: "s" },
      { name: "A: control-plane time per cluster", value: run.ms / CLUSTERS, unit: "ms" },
      { name: "A: events appended", value: rate(n, run.ms), unit: "events/s", raw: rate(n, raw.ms) },
    ],
    ms: run.ms,
    eventsPerS: rate(n, run.ms),
    rawPerS: rate(n, raw.ms),
  };
}

async function scenarioB(nodes: number): Promise<{ ms: number; floorMs: number }> {
  const js = await startJetStream();
  const sim = await startSim({ seed: 2, timeScale: SCALE, latencies: REALISTIC_LATENCIES });
  const provisioner = await startProvisioner({
    nats: js.nats,
    ec2: { endpoint: sim.url, credentials: SIM_CREDENTIALS },
    pollMs: 20,
    maxPollMs: 100,
  });
  const bus = new CommandBus({ js: js.nats.js, catalogue });
  const ready = waitForEvents(js.nats, "cluster.instances-ready", 1);
  const run = await timed(async () => {
    await bus.send(clusterOf("big", nodes - 1));
    await ready.done;
  });
  await provisioner.stop();
  await sim.stop();
  await js.dispose();
  const floorMs = ((REALISTIC_LATENCIES.instanceBoot + REALISTIC_LATENCIES.apiCall) * 1000) / SCALE;
  return { ms: run.ms, floorMs };
}

const a = await scenarioA();
const small = await scenarioB(20);
const big = await scenarioB(BIG);
const bound = (floor: number) => floor * 1.05 + 1000;
printFigures(`bench/provisioner  (sim on loopback, nats-server 2.9, time scale ${SCALE} for B)`, [
  ...a.rows,
  { name: "B: 20 nodes, command → all running", value: small.ms, unit: "ms" },
  { name: `B: ${BIG} nodes, command → all running`, value: big.ms, unit: "ms" },
  { name: "B: floor (boot + API call, scaled)", value: big.floorMs, unit: "ms" },
]);
for (const [n, r] of [
  [20, small],
  [BIG, big],
] as const) {
  console.log(
    `  B ${n} nodes: ${(r.ms / r.floorMs).toFixed(2)}× the floor; goal ≤ 1.05 × floor + 1 s = ${bound(r.floorMs).toFixed(0)} ms: ${r.ms <= bound(r.floorMs) ? "met" : "NOT met"}`,
  );
}
console.log(`  flat in nodes: ${BIG} nodes take ${(big.ms / small.ms).toFixed(2)}× the time of 20`);
printResult({
  bench: "provisioner",
  params: { quick: QUICK, clusters: CLUSTERS, big: BIG, time_scale: SCALE },
  figures: {
    a_all_configuring_s: a.ms / 1000,
    a_ms_per_cluster: a.ms / CLUSTERS,
    a_events_per_s: a.eventsPerS,
    a_raw_publish_per_s: a.rawPerS,
    b_small_all_running_ms: small.ms,
    b_big_all_running_ms: big.ms,
    b_floor_ms: big.floorMs,
  },
  ratios: {
    a_events_over_raw: a.eventsPerS / a.rawPerS,
    b_small_over_floor: small.ms / small.floorMs,
    b_big_over_floor: big.ms / big.floorMs,
    b_big_over_small: big.ms / small.ms,
  },
  goals: {
    b_small_le_floor_bound: small.ms <= bound(small.floorMs),
    b_big_le_floor_bound: big.ms <= bound(big.floorMs),
    b_big_le_1_2x_small: big.ms <= 1.2 * small.ms,
  },
});
