/**
 * bench/provisioner/timeline (issue 16): one part-B run of N nodes as a timeline — each
 * commit of the cluster as the bench saw it (its event types and count), each EC2 call as
 * the provisioner sent it and got its answer (a Compute wrapped around the real adapter),
 * and each RunInstances as the sim handled it (its request log, sim time mapped to wall
 * time by a probe call). A diagnostic of docs/benchmarks.md, no goal.
 *
 * Run: node bench/provisioner/timeline.ts   (BENCH_NODES=500 BENCH_RUNS=2 BENCH_SCALE=100;
 * BENCH_EC2_BULKHEAD=n: the EC2 bulkhead's calls in flight, else the adapter's own)
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { CommandBus, catalogue, exampleClusterCreate, Headers } from "@cairn/events";
import { startJetStream } from "@cairn/events/testing";
import { type Compute, createEc2Compute, startProvisioner } from "@cairn/provisioner";
import { REALISTIC_LATENCIES, SIM_CREDENTIALS } from "@cairn/sim";
import { freePort } from "@cairn/testkit";
import { startSimProcess } from "../../cli/src/up.ts";

const NODES = Number(process.env.BENCH_NODES ?? 500);
const RUNS = Number(process.env.BENCH_RUNS ?? 2);
const SCALE = Number(process.env.BENCH_SCALE ?? 100);
const ROOT = join(import.meta.dirname, "..", "..");

async function run(nodes: number, seed: number) {
  const dir = await mkdtemp(join(tmpdir(), "cairn-timeline-sim-"));
  const configFile = join(dir, "sim.json");
  await writeFile(configFile, JSON.stringify({ seed, timeScale: SCALE, latencies: REALISTIC_LATENCIES }));
  const sim = await startSimProcess(process.env, {
    root: ROOT,
    port: await freePort(),
    configFile,
    output: 2,
  });
  const js = await startJetStream();
  const lines: [number, string][] = [];
  let t0 = 0;
  const at = (s: string) => lines.push([performance.now() - t0, s]);
  const bulkhead = process.env.BENCH_EC2_BULKHEAD;
  const real = createEc2Compute({
    endpoint: sim.url,
    credentials: SIM_CREDENTIALS,
    ...(bulkhead ? { bulkhead: { maxConcurrent: Number(bulkhead) } } : {}),
  });
  const compute: Compute = new Proxy(real, {
    get(target, p, recv) {
      const v = Reflect.get(target, p, recv);
      if (
        typeof v !== "function" ||
        !["launchBatch", "states", "describe", "describeCluster"].includes(String(p))
      )
        return typeof v === "function" ? v.bind(target) : v;
      return async (...args: unknown[]) => {
        const what =
          p === "launchBatch"
            ? `slot ${(args[0] as { slot: number }).slot} ×${(args[0] as { count: number }).count}`
            : p === "states" || p === "describe"
              ? `${(args[1] as unknown[]).length} ids`
              : "";
        at(`  ${String(p)} sent ${what}`);
        const r = await (v as (...a: unknown[]) => Promise<unknown>).apply(target, args);
        at(`  ${String(p)} answered ${what}${Array.isArray(r) ? ` → ${r.length}` : ""}`);
        return r;
      };
    },
  });
  const provisioner = await startProvisioner({ nats: js.nats, compute, pollMs: 20, maxPollMs: 100 });
  const bus = new CommandBus({ js: js.nats.js, catalogue });
  // Warm the SDK client and map sim time to wall time.
  const probeAt = performance.now();
  await real.describeImage("eu-west-1", "ami-0ca1a00000000c0de");
  const probeRtt = performance.now() - probeAt;
  const log = async (action: string) =>
    (await (await fetch(`${sim.url}/_sim/requests?action=${action}`)).json()) as {
      time: string;
      /** When the call is dated (its arrival), if it waited behind others (sim ≥ prov500g). */
      at?: string;
      ids: string[];
    }[];
  const probe = (await log("DescribeImages")).at(-1)!;
  const simZero = Date.parse(probe.time) - (probeAt + probeRtt / 2) * SCALE;
  let done!: () => void;
  const ready = new Promise<void>((r) => (done = r));
  const sub = js.nats.nc.subscribe("evt.cluster.*", {
    callback: (_e, msg) => {
      const types = msg.headers?.get(Headers.eventTypes)?.split(",") ?? [];
      const counts = new Map<string, number>();
      for (const t of types) counts.set(t, (counts.get(t) ?? 0) + 1);
      at(
        `commit ${[...counts].map(([t, n]) => `${t.replace("cluster.", "")}×${n}`).join(" ")} (${msg.data.length} B)`,
      );
      if (types.includes("cluster.instances-ready")) done();
    },
  });
  const c = exampleClusterCreate(`tl-${nodes}`, "bench");
  const cpu0 = process.cpuUsage();
  t0 = performance.now();
  at("command sent");
  await bus.send({
    ...c,
    data: {
      ...c.data,
      pools: [{ ...c.data.pools[0]!, capacityType: "on-demand" as const, count: nodes - 1 }],
    },
  });
  await ready;
  const cpu = process.cpuUsage(cpu0);
  // The run's window on the monotonic clock in µs, as a --cpu-prof profile's times are.
  const window = `${Number(process.hrtime.bigint() / 1000n) - Math.round((performance.now() - t0) * 1000)}..${Number(process.hrtime.bigint() / 1000n)}`;
  sub.unsubscribe();
  for (const r of await log("RunInstances"))
    lines.push([
      (Date.parse(r.time) - simZero) / SCALE - t0,
      `      sim: RunInstances handled → ${r.ids.length} ids${r.at ? ` (dated ${((Date.parse(r.time) - Date.parse(r.at)) / SCALE).toFixed(1)} ms earlier, at its arrival)` : ""}`,
    ]);
  lines.sort((a, b) => a[0] - b[0]);
  console.log(
    `\n${nodes} nodes, seed ${seed}, load ${loadavg()[0]!.toFixed(1)}, cpu ${((cpu.user + cpu.system) / 1000).toFixed(0)} ms (probe rtt ${probeRtt.toFixed(1)} ms, window µs ${window})`,
  );
  for (const [t, s] of lines) console.log(`${t.toFixed(1).padStart(8)}  ${s}`);
  await provisioner.stop();
  await js.dispose();
  await sim.stop();
  await rm(dir, { recursive: true, force: true });
}

await run(20, 1);
for (let i = 0; i < RUNS; i++) await run(NODES, 2 + i);
