/**
 * bench/provisioner (issue 4):
 *  A. 100 clusters × 5 nodes created at once on the sim at zero latency: the control
 *     plane's own time per cluster and events/s, beside the raw JetStream publish rate
 *     measured in the same run.
 *  B. One cluster of N nodes at realistic latencies, time-scaled: command → every
 *     instance running, beside the floor the sim's latencies set for that N (boot + two
 *     API calls), with where the time went (command → last launch recorded → first
 *     running) and what it cost (commits, events, EC2 calls). Goal: within 5% of the
 *     floor plus one second, and flat in the number of nodes (issue 16: 20, 200 and 500
 *     nodes; 200 nodes ≤ 1.2 × the time of 20, and 500 likewise). The sim runs as its own
 *     process here, as EC2 is to a deployed provisioner (see simProcess).
 *
 * Run: node bench/provisioner/main.ts   (BENCH_CLUSTERS=100 BENCH_NODES=20,200,500 BENCH_RUNS=3
 * BENCH_SCALE=100 BENCH_LISTENER=core|headers; BENCH_QUICK=1: 10 clusters, 20 and 50 nodes once, a smoke run)
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { availableParallelism, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import {
  CommandBus,
  catalogue,
  EventStore,
  exampleClusterCreate,
  Headers,
  type Nats,
  Streams,
} from "@cairn/events";
import { startJetStream } from "@cairn/events/testing";
import { startProvisioner } from "@cairn/provisioner";
import { REALISTIC_LATENCIES, SIM_CREDENTIALS, type SimOptions, startSim, ZERO_LATENCIES } from "@cairn/sim";
import { freePort } from "@cairn/testkit";
import { DeliverPolicy } from "@nats-io/jetstream";
import type { MsgHdrs } from "@nats-io/transport-node";
import { startSimProcess } from "../../cli/src/up.ts";
import { bounded, type Figure, printFigures, printResult, QUICK, rate, timed } from "../lib/report.ts";

const CLUSTERS = Number(process.env.BENCH_CLUSTERS ?? (QUICK ? 10 : 100));
const SIZES = (process.env.BENCH_NODES ?? (QUICK ? "20,50" : "20,200,500")).split(",").map(Number);
const RUNS = Number(process.env.BENCH_RUNS ?? (QUICK ? 1 : 3));
const SCALE = Number(process.env.BENCH_SCALE ?? 100);
/** Issue 16: the largest cluster within this factor of the smallest's time. */
const FLAT = 1.2;

/**
 * How the bench hears the commits (issue 16): `core` (the default) a core subscription on
 * `evt.cluster.*`, which copies every commit's body into the provisioner's process (the
 * bench's listener shares its event loop: 5 % of a 500-node run's CPU in a profile, plus its
 * share of the NATS client's parsing); `headers` an ordered JetStream consumer that asks the
 * server for each commit's headers only (`headers_only`), a few hundred bytes a commit. An
 * A/B at load 11–19 could not tell the two apart (docs/benchmarks.md, branch prov500f), so
 * the default stays the one every earlier figure was measured with.
 */
const LISTENER = process.env.BENCH_LISTENER ?? "core";
if (LISTENER !== "headers" && LISTENER !== "core")
  throw new Error(`BENCH_LISTENER: headers or core, got ${LISTENER}`);

/** Resolves when `count` commits carrying `type` have been appended (read from the commit headers). */
async function waitForEvents(
  nats: Nats,
  type: string,
  count: number,
): Promise<{ done: Promise<void>; events: () => number }> {
  let seen = 0;
  let events = 0;
  let resolve!: () => void;
  const done = new Promise<void>((r) => (resolve = r));
  /** True once the last awaited commit was heard. */
  const heard = (headers: MsgHdrs | undefined) => {
    const types = headers?.get(Headers.eventTypes)?.split(",") ?? [];
    events += types.length;
    return types.includes(type) && ++seen >= count;
  };
  if (LISTENER === "core") {
    const sub = nats.nc.subscribe("evt.cluster.*", {
      callback: (_err, msg) => {
        if (heard(msg.headers)) {
          sub.unsubscribe();
          resolve();
        }
      },
    });
    return { done, events: () => events };
  }
  // Each run has a JetStream of its own, so the whole stream is this run's commits.
  const consumer = await nats.js.consumers.get(Streams.events, {
    filter_subjects: "evt.cluster.*",
    deliver_policy: DeliverPolicy.All,
    headers_only: true,
  });
  const messages = await consumer.consume();
  void (async () => {
    for await (const m of messages) {
      if (heard(m.headers)) {
        resolve();
        await messages.close();
      }
    }
  })();
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
  const ready = await waitForEvents(js.nats, "cluster.instances-ready", CLUSTERS);
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

/** One run of B: its wall time, the phases read from the commits' times, and what it cost. */
interface RunB {
  ms: number;
  /** Command sent → the last instance-launched commit (every RunInstances answered and recorded). */
  launchedMs: number;
  /** Command sent → the first instance-running commit. */
  firstRunningMs: number;
  commits: number;
  events: number;
  calls: Record<string, number>;
  /**
   * CPU of this process (the provisioner, the NATS client, the bench's own listener; not
   * the sim's nor nats-server's) from the command to instances-ready: what the wall time
   * hides at high load, where a run waits for CPU the other processes use.
   */
  cpuMs: number;
}

const EC2_ACTIONS = ["RunInstances", "DescribeInstances", "DescribeInstanceStatus"];

const ROOT = join(import.meta.dirname, "..", "..");

/**
 * The sim as its own process, as EC2 is to a deployed provisioner (and as `cairn up` and
 * bench/load run it): in this process its work — 500 instances' boot timers, the XML of
 * every answer — was charged to the provisioner's event loop, and on two cores it could
 * not run beside it. Calls are counted through its admin API.
 */
async function simProcess(config: SimOptions) {
  const dir = await mkdtemp(join(tmpdir(), "cairn-bench-sim-"));
  const configFile = join(dir, "sim.json");
  await writeFile(configFile, JSON.stringify(config));
  const sim = await startSimProcess(process.env, {
    root: ROOT,
    port: await freePort(),
    configFile,
    output: 2,
  });
  return {
    url: sim.url,
    calls: async (action: string) =>
      ((await (await fetch(`${sim.url}/_sim/requests?action=${action}`)).json()) as unknown[]).length,
    stop: async () => {
      await sim.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

async function scenarioB(nodes: number, seed: number): Promise<RunB> {
  const js = await startJetStream();
  const sim = await simProcess({ seed, timeScale: SCALE, latencies: REALISTIC_LATENCIES });
  const provisioner = await startProvisioner({
    nats: js.nats,
    ec2: { endpoint: sim.url, credentials: SIM_CREDENTIALS },
    pollMs: 20,
    maxPollMs: 100,
  });
  const bus = new CommandBus({ js: js.nats.js, catalogue });
  const id = `big-${nodes}`;
  const ready = await waitForEvents(js.nats, "cluster.instances-ready", 1);
  const sentAt = Date.now();
  const cpu0 = process.cpuUsage();
  const run = await timed(async () => {
    await bus.send(clusterOf(id, nodes - 1));
    await ready.done;
  });
  const cpu = process.cpuUsage(cpu0);
  const store = new EventStore({ js: js.nats.js, jsm: js.nats.jsm, catalogue });
  const log = (await store.load({ type: "cluster", id })).events;
  const times = (type: string) => log.filter((e) => e.type === type).map((e) => Date.parse(e.time) - sentAt);
  const calls = Object.fromEntries(await Promise.all(EC2_ACTIONS.map(async (a) => [a, await sim.calls(a)])));
  await provisioner.stop();
  await sim.stop();
  await js.dispose();
  return {
    ms: run.ms,
    launchedMs: Math.max(...times("cluster.instance-launched")),
    firstRunningMs: Math.min(...times("cluster.instance-running")),
    commits: new Set(log.map((e) => e.sequence)).size,
    events: log.length,
    calls,
    cpuMs: (cpu.user + cpu.system) / 1000,
  };
}

/**
 * The sim's own floor for a cluster of `nodes`: what no provisioner can beat on it. One
 * RunInstances answer (every launch goes out at once), the boot, one DescribeInstances
 * answer that sees it running. The sim answers every call in `apiCall` whatever its size
 * and has no request rate limits, so the floor is the same for every N (on AWS it is not:
 * RunInstances' request and resource token buckets — see docs/provisioner.md).
 */
const floorOf = (_nodes: number) =>
  ((REALISTIC_LATENCIES.instanceBoot + 2 * REALISTIC_LATENCIES.apiCall) * 1000) / SCALE;

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

const a = await scenarioA();
// One discarded run first: the first cluster in a process pays for compiling the SDK's
// and the services' modules, which no later one does.
if (!QUICK) await scenarioB(20, 1);
const sizes: { nodes: number; runs: RunB[]; floorMs: number }[] = [];
for (const nodes of SIZES) {
  const runs: RunB[] = [];
  for (let i = 0; i < RUNS; i++) runs.push(await scenarioB(nodes, 2 + i));
  sizes.push({ nodes, runs, floorMs: floorOf(nodes) });
}
const med = (s: (typeof sizes)[number], f: (r: RunB) => number) => median(s.runs.map(f));
const bound = (floor: number) => floor * 1.05 + 1000;
printFigures(
  `bench/provisioner  (sim on loopback, nats-server 2.9, time scale ${SCALE} for B, median of ${RUNS})`,
  [
    ...a.rows,
    ...sizes.flatMap((s) => [
      { name: `B: ${s.nodes} nodes, command → all running`, value: med(s, (r) => r.ms), unit: "ms" },
      { name: `B: ${s.nodes} nodes, sim floor (boot + 2 API calls)`, value: s.floorMs, unit: "ms" },
    ]),
  ],
);
console.log(`  load average (1 min): ${loadavg()[0]!.toFixed(1)} on ${availableParallelism()} cores`);
console.log(
  `\n  ${"nodes".padStart(5)} ${"all running".padStart(11)} ${"floor".padStart(6)} ${"ratio".padStart(6)} ${"→ last launched".padStart(16)} ${"→ first running".padStart(16)} ${"commits".padStart(8)} ${"events".padStart(7)} ${"RunInst".padStart(8)} ${"DescInst".padStart(8)} ${"DescStat".padStart(8)} ${"cpu ms".padStart(7)}   runs (ms)`,
);
for (const s of sizes) {
  const ms = med(s, (r) => r.ms);
  console.log(
    `  ${String(s.nodes).padStart(5)} ${ms.toFixed(0).padStart(11)} ${s.floorMs.toFixed(0).padStart(6)} ${(ms / s.floorMs).toFixed(2).padStart(5)}× ${med(
      s,
      (r) => r.launchedMs,
    )
      .toFixed(0)
      .padStart(16)} ${med(s, (r) => r.firstRunningMs)
      .toFixed(0)
      .padStart(16)} ${med(s, (r) => r.commits)
      .toFixed(0)
      .padStart(8)} ${med(s, (r) => r.events)
      .toFixed(0)
      .padStart(7)} ${med(s, (r) => r.calls.RunInstances ?? 0)
      .toFixed(0)
      .padStart(8)} ${med(s, (r) => r.calls.DescribeInstances ?? 0)
      .toFixed(0)
      .padStart(8)} ${med(s, (r) => r.calls.DescribeInstanceStatus ?? 0)
      .toFixed(0)
      .padStart(8)} ${med(s, (r) => r.cpuMs)
      .toFixed(0)
      .padStart(7)}   ${s.runs.map((r) => r.ms.toFixed(0)).join(", ")}`,
  );
}
const small = sizes[0]!;
const smallMs = med(small, (r) => r.ms);
for (const s of sizes.slice(1)) {
  const ms = med(s, (r) => r.ms);
  console.log(
    `  flat in nodes: ${s.nodes} nodes take ${(ms / smallMs).toFixed(2)}× the time of ${small.nodes} (the floor: ${(s.floorMs / small.floorMs).toFixed(2)}×); goal ≤ ${FLAT}×: ${ms <= FLAT * smallMs ? "met" : "NOT met"}`,
  );
}
const k = (s: (typeof sizes)[number]) => `${s.nodes}_nodes`;
printResult({
  bench: "provisioner",
  params: { quick: QUICK, clusters: CLUSTERS, nodes: SIZES.join(","), runs: RUNS, time_scale: SCALE },
  figures: {
    a_all_configuring_s: a.ms / 1000,
    a_ms_per_cluster: a.ms / CLUSTERS,
    a_events_per_s: a.eventsPerS,
    a_raw_publish_per_s: a.rawPerS,
    ...Object.fromEntries(
      sizes.flatMap((s) => [
        [`b_all_running_ms_${k(s)}`, med(s, (r) => r.ms)],
        [`b_floor_ms_${k(s)}`, s.floorMs],
        [`b_last_launched_ms_${k(s)}`, med(s, (r) => r.launchedMs)],
        [`b_commits_${k(s)}`, med(s, (r) => r.commits)],
        [`b_run_instances_calls_${k(s)}`, med(s, (r) => r.calls.RunInstances ?? 0)],
        [`b_describe_instances_calls_${k(s)}`, med(s, (r) => r.calls.DescribeInstances ?? 0)],
        [`b_describe_instance_status_calls_${k(s)}`, med(s, (r) => r.calls.DescribeInstanceStatus ?? 0)],
        [`b_provisioner_cpu_ms_${k(s)}`, med(s, (r) => r.cpuMs)],
      ]),
    ),
  },
  ratios: {
    a_events_over_raw: a.eventsPerS / a.rawPerS,
    ...Object.fromEntries(sizes.map((s) => [`b_over_floor_${k(s)}`, med(s, (r) => r.ms) / s.floorMs])),
    ...Object.fromEntries(
      sizes.slice(1).flatMap((s) => [
        [`b_${s.nodes}_over_${small.nodes}`, med(s, (r) => r.ms) / smallMs],
        [`b_floor_${s.nodes}_over_${small.nodes}`, s.floorMs / small.floorMs],
      ]),
    ),
  },
  goals: {
    ...Object.fromEntries(
      sizes.map((s) => [`b_le_floor_bound_${k(s)}`, med(s, (r) => r.ms) <= bound(s.floorMs)]),
    ),
    ...Object.fromEntries(
      sizes
        .slice(1)
        .map((s) => [`b_${s.nodes}_le_1_2x_${small.nodes}`, med(s, (r) => r.ms) <= FLAT * smallMs]),
    ),
  },
});
