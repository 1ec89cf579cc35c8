/**
 * bench/install (issue "Installer"): create-to-Ready of a whole cluster at realistic sim
 * latencies, time-scaled, beside the critical-path floor the sim's latencies set.
 *
 *  Everything real but the cloud: a disposable nats-server, the provisioner (EC2 SDK),
 *  node-ops (client-node, kubeconfigs from SSM) and the installer (SSM SDK) started
 *  in-process, all pointed at `libs/sim` by endpoint. One `cluster.create` goes through
 *  the CommandBus; the clock stops at the `cluster.ready` commit.
 *
 *  Floor: the first server boots, its SSM Agent registers, it runs the server install,
 *  then one agent joins (agents boot and register while the server installs, and join
 *  side by side) = instanceBoot + ssmRegistration + k3sServerInstall + k3sJoin, divided
 *  by the time scale. The sim answers every call in `apiCall` whatever the cluster's size
 *  and has no request rate limits (SSM's SendCommand, EC2's RunInstances), so the floor is
 *  the same for every N; it is printed per size so a sim that models them can say so.
 *  Goal: ≤ 1.05 × floor + 1 s, and flat from 3 to 500 nodes.
 *
 *  "Flat" is read as issue 16 reads it for the provisioner: each larger cluster ≤ 1.2 × the
 *  time of the smallest (beside the floor's own ratio, 1).
 *
 * Run: node bench/install/main.ts [--scale 100] [--runs 3] [--nodes 3,50,200,500]
 *      (BENCH_DUMP=file.json writes the last run's cluster, install and kube events;
 *      BENCH_QUICK=1: one run each of 3 and 10 nodes, no warm-up run, a smoke run;
 *      BENCH_TRACE=1: on stderr, the services' warnings and, every 500 ms, the process's
 *      CPU and its longest event-loop delay, in ms since the command: where a slow run waited)
 */
import { writeFileSync } from "node:fs";
import { availableParallelism, loadavg } from "node:os";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { parseArgs } from "node:util";
import {
  CommandBus,
  catalogue,
  connectNats,
  consumerSnapshots,
  EventStore,
  exampleClusterCreate,
  Headers,
  publisherSnapshots,
  type RecordedEvent,
} from "@cairn/events";
import { startJetStream } from "@cairn/events/testing";
import { DEFAULT_FIRST_POLL_MS, startInstaller } from "@cairn/installer";
import { listWatchSnapshots, startNodeOps } from "@cairn/node-ops";
import { FIRST_BOOT_POLL_MS, startProvisioner } from "@cairn/provisioner";
import { REALISTIC_LATENCIES, SIM_CREDENTIALS, startSim } from "@cairn/sim";
import { printResult, QUICK } from "../lib/report.ts";

const { values: args } = parseArgs({
  options: {
    scale: { type: "string", default: process.env.BENCH_SCALE ?? "100" },
    runs: { type: "string", default: process.env.BENCH_RUNS ?? (QUICK ? "1" : "3") },
    nodes: { type: "string", default: process.env.BENCH_NODES ?? (QUICK ? "3,10" : "3,50,200,500") },
  },
});
const SCALE = Number(args.scale);
const RUNS = Number(args.runs);
const SIZES = args.nodes.split(",").map(Number);

const L = REALISTIC_LATENCIES;
/** Sim seconds → real ms at this time scale. */
const real = (simSeconds: number) => (simSeconds * 1000) / SCALE;
// The API calls on the critical path that the floor counts: RunInstances, the
// DescribeInstances that sees it running, DescribeInstanceInformation, then per step a
// SendCommand and the GetCommandInvocation that sees it end (init, join), the
// kubeconfig's GetParameter. Eight round trips of `apiCall` — 0.4 sim s, kept in for honesty.
const FLOOR_API_CALLS = 8;
const floorParts = {
  "boot (launch → running)": real(L.instanceBoot),
  "SSM registration (running → online)": real(L.ssmRegistration),
  "server install (init sent → done)": real(L.k3sServerInstall),
  "agent join (join sent → done)": real(L.k3sJoin),
  "API calls": real(L.apiCall * FLOOR_API_CALLS),
};
const FLOOR_MS = Object.values(floorParts).reduce((a, b) => a + b, 0);
/** The sim's floor for a cluster of `nodes`: the same for every N (see above). */
const floorFor = (_nodes: number) => FLOOR_MS;
const goalOf = (floor: number) => 1.05 * floor + 1000;

interface Run {
  nodes: number;
  ms: number;
  /** Named intervals along the critical path, real ms, from the events' times. */
  phases: Record<string, number>;
  /** Calls the services made to the sim's polled actions: how much looking the waits cost. */
  calls: Record<string, number>;
}

/** The sim's actions counted per run: the polled ones, and node-ops' node lists and watches (a relist after a 410 is one more list). */
const POLLED = [
  "DescribeInstances",
  "DescribeInstanceInformation",
  "GetCommandInvocation",
  "SendCommand",
  "ListCommandInvocations",
  "list nodes",
  "watch nodes",
];

/** BENCH_TRACE: the services' warnings and errors on stderr, with the ms since `origin.t0`. */
const TRACE = process.env.BENCH_TRACE === "1";
const origin = { t0: performance.now() };
const since0 = () => Math.round(performance.now() - origin.t0);
const traceLogger = TRACE
  ? {
      logger: {
        info() {},
        warn: (obj: object, msg?: string) =>
          process.stderr.write(`  [${since0()} ms] warn ${msg} ${JSON.stringify(obj)}\n`),
        error: (obj: object, msg?: string) =>
          process.stderr.write(`  [${since0()} ms] error ${msg} ${JSON.stringify(obj)}\n`),
      },
    }
  : {};

/** BENCH_TRACE: every 500 ms, this process's CPU (ms of the interval) and its longest event-loop delay. */
function traceProcess(): () => void {
  if (!TRACE) return () => {};
  const h = monitorEventLoopDelay({ resolution: 10 });
  h.enable();
  let cpu = process.cpuUsage();
  const every = setInterval(() => {
    const d = process.cpuUsage(cpu);
    cpu = process.cpuUsage();
    process.stderr.write(
      `  [${since0()} ms] cpu ${Math.round((d.user + d.system) / 1000)} ms/500, loop delay max ${Math.round(h.max / 1e6)} ms, load ${loadavg()[0]!.toFixed(1)}\n`,
    );
    h.reset();
  }, 500);
  return () => {
    clearInterval(every);
    h.disable();
  };
}

/**
 * BENCH_TRACE: when the event stream takes no message for 3 s, print (on a connection of its
 * own) every consumer's pending, ack-pending, redelivered and waiting pulls, and the stream's
 * last messages: who holds what in a gap where nothing is recorded.
 */
async function watchStalls(url: string, sim: { state(): unknown }): Promise<() => Promise<void>> {
  if (!TRACE) return async () => {};
  const own = await connectNats(url);
  let lastSeq = -1;
  let still = 0;
  let busy = false;
  const every = setInterval(async () => {
    if (busy) return;
    busy = true;
    try {
      const evt = await own.jsm.streams.info("EVT");
      if (evt.state.last_seq !== lastSeq) {
        lastSeq = evt.state.last_seq;
        still = 0;
        return;
      }
      still += 1;
      if (still !== 3 && still % 10 !== 3) return;
      const lines: string[] = [`  [${since0()} ms] STALL: EVT last_seq ${lastSeq} for ${still} s`];
      for (const stream of ["EVT", "CMD"]) {
        for await (const c of own.jsm.consumers.list(stream)) {
          if (c.num_pending || c.num_ack_pending || c.num_redelivered)
            lines.push(
              `    ${stream}/${c.name}: pending ${c.num_pending}, ack-pending ${c.num_ack_pending}, redelivered ${c.num_redelivered}, waiting ${c.num_waiting}, delivered ${c.delivered.stream_seq}, ack floor ${c.ack_floor.stream_seq}`,
            );
        }
      }
      for (let s = Math.max(1, lastSeq - 2); s <= lastSeq; s++) {
        const m = await own.jsm.streams.getMessage("EVT", { seq: s }).catch(() => undefined);
        if (m) lines.push(`    EVT #${s} ${m.subject} ${m.header?.get(Headers.eventTypes)?.slice(0, 120)}`);
      }
      for (const c of consumerSnapshots())
        if (c.held || c.handling.length || c.pullsOpen === 0)
          lines.push(
            `    here ${c.consumer}: held ${c.held}, buffered ${c.buffered}, pulls open ${c.pullsOpen} (outstanding ${c.outstanding})${c.stopping ? ", stopping" : ""}; in handlers: ${c.handling
              .slice(0, 6)
              .map((h) => `#${h.sequence} ${h.subject} ${h.heldMs} ms`)
              .join(", ")}${c.handling.length > 6 ? ` … (${c.handling.length})` : ""}`,
          );
      for (const l of listWatchSnapshots())
        lines.push(
          `    list-watch ${l.what}: ${l.phase} for ${l.sinceMs} ms, from rv ${l.rv}, ${l.taken} changes taken in`,
        );
      const simKube = (
        sim.state() as {
          kube?: { clusters?: Record<string, { resourceVersion: string; nodes: { ready: boolean }[] }> };
        }
      ).kube;
      for (const [id, c] of Object.entries(simKube?.clusters ?? {}))
        lines.push(
          `    sim cluster ${id}: rv ${c.resourceVersion}, ${c.nodes.length} nodes, ${c.nodes.filter((n) => n.ready).length} Ready`,
        );
      for (const p of publisherSnapshots())
        if (Object.keys(p.waiting).length || p.queued)
          lines.push(
            `    publisher (timeout ${p.timeoutMs} ms, queued ${p.queued}): ${Object.entries(p.waiting)
              .map(([s, w]) => `${s} ×${w.count} oldest ${w.oldestMs} ms`)
              .join(", ")}`,
          );
      process.stderr.write(`${lines.join("\n")}\n`);
    } catch (err) {
      process.stderr.write(`  [${since0()} ms] stall watch: ${String(err)}\n`);
    } finally {
      busy = false;
    }
  }, 1000);
  return async () => {
    clearInterval(every);
    await own.close();
  };
}

async function once(nodes: number, seed: number): Promise<Run> {
  const js = await startJetStream();
  const sim = await startSim({ seed, timeScale: SCALE, latencies: REALISTIC_LATENCIES });
  const aws = { endpoint: sim.url, credentials: SIM_CREDENTIALS };
  // Polls scaled with the clock: what a 1 s first look and a 15 s ceiling are in real time.
  const pollMs = Math.max(1, 1000 / SCALE);
  const maxPollMs = Math.max(pollMs, 15_000 / SCALE);
  // The first look at a booting instance is what the provisioner's main gives on AWS, scaled alike.
  const provisioner = await startProvisioner({
    nats: js.nats,
    ec2: aws,
    pollMs,
    maxPollMs,
    firstBootPollMs: FIRST_BOOT_POLL_MS / SCALE,
    ...traceLogger,
  });
  const nodeOps = await startNodeOps({ nats: js.nats, ssm: aws, ...traceLogger });
  const installer = await startInstaller({
    nats: js.nats,
    ssm: aws,
    // Every agent of the 50-node cluster joins at once: the floor has one join, not three waves.
    policy: { maxParallelJoins: Math.max(49, nodes) },
    ...traceLogger,
    // SSM's own timeout is counted in sim seconds, which pass SCALE times faster: scale the backstop.
    // The steps' first looks (their typical durations on AWS) shortened alike.
    reactor: {
      pollMs,
      maxPollMs,
      executionTimeoutFactor: 2 * SCALE,
      firstPollMs: Object.fromEntries(
        Object.entries(DEFAULT_FIRST_POLL_MS).map(([k, ms]) => [k, ms / SCALE]),
      ),
    },
  });
  const bus = new CommandBus({ js: js.nats.js, catalogue });
  const clusterId = `bench-${nodes}`;

  let resolveReady!: () => void;
  const ready = new Promise<void>((r) => (resolveReady = r));
  const sub = js.nats.nc.subscribe(`evt.cluster.${clusterId}`, {
    callback: (_err, msg) => {
      if (msg.headers?.get(Headers.eventTypes)?.split(",").includes("cluster.ready")) resolveReady();
    },
  });
  const c = exampleClusterCreate(clusterId, "bench");
  const t0 = performance.now();
  origin.t0 = t0;
  const untrace = traceProcess();
  const unwatch = await watchStalls(js.server.url, sim);
  const sentAt = Date.now();
  await bus.send({
    ...c,
    data: {
      ...c.data,
      pools: [{ ...c.data.pools[0]!, capacityType: "on-demand" as const, count: nodes - 1 }],
    },
  });
  // Not an assertion on time: a cluster that never gets Ready must not hang the bench.
  const giveUpMs = 20 * FLOOR_MS + 60_000;
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      ready,
      new Promise((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`${clusterId} not Ready after ${giveUpMs} ms: the services are stuck`)),
          giveUpMs,
        );
      }),
    ]);
  } catch (err) {
    // The events of a stuck run are what says where it stuck.
    if (process.env.BENCH_DUMP) {
      const store = new EventStore({ js: js.nats.js, jsm: js.nats.jsm, catalogue });
      const load = async (type: "cluster" | "install" | "kube") =>
        (await store.load({ type, id: clusterId })).events;
      writeFileSync(
        process.env.BENCH_DUMP,
        JSON.stringify({
          sentAt,
          cluster: await load("cluster"),
          install: await load("install"),
          kube: await load("kube"),
        }),
      );
    }
    throw err;
  }
  clearTimeout(timer);
  const ms = performance.now() - t0;
  untrace();
  await unwatch();
  sub.unsubscribe();

  const store = new EventStore({ js: js.nats.js, jsm: js.nats.jsm, catalogue });
  const cluster = (await store.load({ type: "cluster", id: clusterId })).events;
  const install = (await store.load({ type: "install", id: clusterId })).events;
  const phases = breakdown(sentAt, cluster, install);
  if (process.env.BENCH_DUMP) {
    const kube = (await store.load({ type: "kube", id: clusterId })).events;
    writeFileSync(process.env.BENCH_DUMP, JSON.stringify({ sentAt, cluster, install, kube }));
  }

  const calls = Object.fromEntries(POLLED.map((a) => [a, sim.requests.list({ action: a }).length]));

  // Each stop timed: a run at load 13-26 sat a minute or more after Ready (docs/installer.md,
  // "The join results of a 500-node install"); a slow one says which it was, on stderr.
  const timed = async (what: string, stop: () => Promise<unknown>) => {
    const at = performance.now();
    const slow = setInterval(
      () =>
        process.stderr.write(
          `  (${what}.stop() still running after ${Math.round(performance.now() - at)} ms)\n${consumerSnapshots()
            .filter((c) => c.held || c.handling.length || c.stopping)
            .map(
              (c) =>
                `    ${c.consumer}: held ${c.held}, pulls open ${c.pullsOpen}${c.stopping ? ", stopping" : ""}; in handlers: ${c.handling
                  .slice(0, 4)
                  .map((h) => `#${h.sequence} ${h.subject} ${h.heldMs} ms`)
                  .join(", ")}\n`,
            )
            .join("")}${publisherSnapshots()
            .filter((p) => Object.keys(p.waiting).length || p.queued)
            .map(
              (p) =>
                `    publisher: ${Object.entries(p.waiting)
                  .map(([s, w]) => `${s} ×${w.count} oldest ${w.oldestMs} ms`)
                  .join(", ")}\n`,
            )
            .join("")}${listWatchSnapshots()
            .map(
              (l) =>
                `    list-watch ${l.what} ${JSON.stringify(l.fields)}: ${l.phase} for ${l.sinceMs} ms${l.stopped ? ", stopped" : ""}\n`,
            )
            .join("")}`,
        ),
      5_000,
    );
    try {
      await stop();
    } finally {
      clearInterval(slow);
    }
  };
  await timed("installer", () => installer.stop());
  await timed("node-ops", () => nodeOps.stop());
  await timed("provisioner", () => provisioner.stop());
  await timed("sim", () => sim.stop());
  await timed("nats", () => js.dispose());
  return { nodes, ms, phases, calls };
}

/** The critical path, read from the events' times (wall clock, ms). */
function breakdown(sentAt: number, cluster: RecordedEvent[], install: RecordedEvent[]) {
  const at = (e: RecordedEvent | undefined) => (e ? Date.parse(e.time) : Number.NaN);
  const all = [...cluster, ...install];
  const find = (type: string, p: (d: Record<string, unknown>) => boolean = () => true) =>
    all.filter((e) => e.type === type && p(e.data as Record<string, unknown>));
  const first = (es: RecordedEvent[]) =>
    es.map(at).reduce((a, b) => Math.min(a, b), Number.POSITIVE_INFINITY);
  const last = (es: RecordedEvent[]) => es.map(at).reduce((a, b) => Math.max(a, b), Number.NEGATIVE_INFINITY);
  const server = (d: Record<string, unknown>) => d.slot === 0;
  const isStep = (step: string) => (d: Record<string, unknown>) => d.step === step;

  const launchRequested = first(find("cluster.instance-launch-requested", server));
  const launched = first(find("cluster.instance-launched", server));
  const running = first(find("cluster.instance-running", server));
  const online = first(find("install.node-online", server));
  const initSent = first(find("install.step-sent", isStep("k3s-server-init")));
  const initDone = first(find("install.step-succeeded", isStep("k3s-server-init")));
  const kubeconfig = first(find("install.kubeconfig-published"));
  const joinSent = first(find("install.step-sent", isStep("k3s-agent-join")));
  const lastJoinSent = last(find("install.step-sent", isStep("k3s-agent-join")));
  const joinDone = last(find("install.step-succeeded", isStep("k3s-agent-join")));
  const lastReady = last(find("install.node-ready"));
  const completed = first(find("install.completed"));
  const clusterReady = first(find("cluster.ready"));
  const lastAgentOnline = last(find("install.node-online", (d) => !server(d)));
  return {
    "command → server launch requested": launchRequested - sentAt,
    "launch requested → RunInstances answered": launched - launchRequested,
    "launched → running (boot)": running - launched,
    "running → SSM online": online - running,
    "online → init sent": initSent - online,
    "init sent → succeeded": initDone - initSent,
    "init succeeded → kubeconfig published": kubeconfig - initDone,
    "init succeeded → first join sent": joinSent - initDone,
    "first join sent → last join succeeded": joinDone - joinSent,
    "  of which first join sent → last join sent": lastJoinSent - joinSent,
    "last join succeeded → last node Ready": lastReady - joinDone,
    "last node Ready → install completed": completed - lastReady,
    "install completed → cluster Ready": clusterReady - completed,
    "(last agent online, after init succeeded by)": lastAgentOnline - initDone,
    "(last agent launched, after server launched by)":
      last(find("cluster.instance-launched", (d) => !server(d))) - launched,
    "(last agent running, after server running by)":
      last(find("cluster.instance-running", (d) => !server(d))) - running,
    "(last agent added, after server running by)":
      last(find("install.node-added", (d) => !server(d))) - running,
    "(last agent online, after server online by)": lastAgentOnline - online,
    // A count, not a time: the install's commits, each one append decided in turn.
    "# install commits": new Set(install.map((e) => e.sequence)).size,
  };
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const fmt = (ms: number) => (Number.isFinite(ms) ? Math.round(ms).toLocaleString("en-US") : "—");
const sim = (ms: number) => (Number.isFinite(ms) ? ((ms * SCALE) / 1000).toFixed(1) : "—");

// One discarded run first: the first cluster in a process pays for loading and compiling
// the SDKs and the services' modules, which no later cluster does. Not in a smoke run,
// whose figures only show the bench works.
if (!QUICK) await once(3, 99);
const load = loadavg()[0]!.toFixed(1);
const results: Run[][] = [];
for (const nodes of SIZES) {
  const runs: Run[] = [];
  for (let i = 0; i < RUNS; i++) {
    const r = await once(nodes, 100 + i);
    console.error(`  ${nodes} nodes, run ${i + 1}/${RUNS}: ${fmt(r.ms)} ms`);
    runs.push(r);
  }
  results.push(runs);
}

console.log(
  `\nbench/install  (sim at REALISTIC_LATENCIES, time scale ${SCALE}: 1 real ms = ${SCALE / 1000} sim s; median of ${RUNS} runs)`,
);
// Every figure is wall time on a machine others may share: the load says how much.
console.log(`  load average (1 min) at the start: ${load} on ${availableParallelism()} cores`);
console.log(
  `  floor = boot ${L.instanceBoot} + SSM registration ${L.ssmRegistration} + server install ${L.k3sServerInstall} + join ${L.k3sJoin} + ${FLOOR_API_CALLS} API calls × ${L.apiCall} = ${((FLOOR_MS * SCALE) / 1000).toFixed(1)} sim s = ${fmt(FLOOR_MS)} real ms`,
);
console.log(
  `\n  ${"nodes".padStart(5)}  ${"create→Ready ms".padStart(15)}  ${"(sim s)".padStart(8)}  ${"floor ms".padStart(8)}  ${"ratio".padStart(6)}  ${"goal ms".padStart(8)}  goal met   runs (ms)`,
);
for (const runs of results) {
  const ms = median(runs.map((r) => r.ms));
  const floor = floorFor(runs[0]!.nodes);
  const goal = goalOf(floor);
  console.log(
    `  ${String(runs[0]!.nodes).padStart(5)}  ${fmt(ms).padStart(15)}  ${sim(ms).padStart(8)}  ${fmt(floor).padStart(8)}  ${(ms / floor).toFixed(2).padStart(5)}×  ${fmt(goal).padStart(8)}  ${(ms <= goal ? "met" : "NOT met").padEnd(9)}  ${runs.map((r) => fmt(r.ms)).join(", ")}`,
  );
}

console.log("\n  critical path, median real ms (sim s), from the events' times:");
const names = Object.keys(results[0]![0]!.phases);
console.log(
  `  ${"phase".padEnd(48)}${results.map((runs) => `${runs[0]!.nodes} nodes`.padStart(18)).join("")}   floor`,
);
const floorOf: Record<string, number> = {
  "launched → running (boot)": real(L.instanceBoot),
  "running → SSM online": real(L.ssmRegistration),
  "init sent → succeeded": real(L.k3sServerInstall),
  "first join sent → last join succeeded": real(L.k3sJoin),
};
for (const name of names) {
  const cells = results.map((runs) => {
    const m = median(runs.map((r) => r.phases[name] ?? Number.NaN));
    return (name.startsWith("#") ? fmt(m) : `${fmt(m)} (${sim(m)})`).padStart(18);
  });
  const f = floorOf[name];
  console.log(`  ${name.padEnd(48)}${cells.join("")}   ${f !== undefined ? fmt(f) : ""}`);
}
console.log(
  "\n  calls to the sim's polled actions and node-ops' node lists and watches, median per cluster:",
);
for (const a of POLLED)
  console.log(
    `  ${a.padEnd(48)}${results.map((runs) => fmt(median(runs.map((r) => r.calls[a] ?? 0))).padStart(18)).join("")}`,
  );

const FLAT = 1.2;
const medians = results.map((runs) => ({ nodes: runs[0]!.nodes, ms: median(runs.map((r) => r.ms)) }));
const smallest = medians[0]!;
for (const m of medians.slice(1))
  console.log(
    `  flat in nodes: ${m.nodes} nodes take ${(m.ms / smallest.ms).toFixed(2)}× the time of ${smallest.nodes} (the floor: ${(floorFor(m.nodes) / floorFor(smallest.nodes)).toFixed(2)}×); goal ≤ ${FLAT}×: ${m.ms <= FLAT * smallest.ms ? "met" : "NOT met"}`,
  );
printResult({
  bench: "install",
  params: { quick: QUICK, time_scale: SCALE, runs: RUNS, nodes: SIZES.join(",") },
  figures: {
    floor_ms: FLOOR_MS,
    goal_ms: goalOf(FLOOR_MS),
    ...Object.fromEntries(
      medians.flatMap((m) => [
        [`create_to_ready_ms_${m.nodes}_nodes`, m.ms],
        [`floor_ms_${m.nodes}_nodes`, floorFor(m.nodes)],
      ]),
    ),
  },
  ratios: {
    ...Object.fromEntries(
      medians.map((m) => [`ready_over_floor_${m.nodes}_nodes`, m.ms / floorFor(m.nodes)]),
    ),
    ...Object.fromEntries(
      medians.slice(1).flatMap((m) => [
        [`ready_${m.nodes}_over_${smallest.nodes}`, m.ms / smallest.ms],
        [`floor_${m.nodes}_over_${smallest.nodes}`, floorFor(m.nodes) / floorFor(smallest.nodes)],
      ]),
    ),
  },
  goals: {
    ...Object.fromEntries(
      medians.map((m) => [`ready_le_goal_${m.nodes}_nodes`, m.ms <= goalOf(floorFor(m.nodes))]),
    ),
    ...Object.fromEntries(
      medians.slice(1).map((m) => [`flat_${m.nodes}_le_1_2x_${smallest.nodes}`, m.ms <= FLAT * smallest.ms]),
    ),
  },
});
