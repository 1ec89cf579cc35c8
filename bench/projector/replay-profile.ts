/**
 * bench/projector/replay-profile: where a replay's CPU goes, per phase. One log, one replay
 * (`checkOnly`, the live schema holding the same rows so that the comparison reads both),
 * and a sampler every 100 ms of the CPU of this process (Node), of its Postgres processes
 * and of its nats-server (each read from /proc: they are this process's children). The
 * phase boundaries come from the replay's own `timings`. Never asserted: it prints.
 *
 * Its last line: per phase, wall ms and CPU ms of node, postgres and nats; and the raw COPY of
 * the same rows measured in the same run.
 * (The Postgres found may be shared with other runs: its WAL writer and checkpointer are shown
 * apart, and count everyone's writes.)
 *
 * Run: node bench/projector/replay-profile.ts --events 200000   (BENCH_QUICK=1: 20,000)
 *      … --cpu-prof /tmp/replay.cpuprofile   (Node's profile of the measured replay alone)
 */
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { Session } from "node:inspector/promises";
import { parseArgs } from "node:util";
import { connectNats, ensureStreams } from "@cairn/events";
import { migrateToLatest, openDatabase, replay } from "@cairn/projector";
import { createDatabase, findPostgres, startNatsServer } from "@cairn/testkit";
import { printResult, QUICK } from "../lib/report.ts";
import { publishBenchLog, rawCopy } from "./log.ts";

const { values: args } = parseArgs({
  options: {
    events: { type: "string", default: QUICK ? "20000" : "200000" },
    "live-rows": { type: "boolean", default: true },
    /** Write a CPU profile of the measured replay alone (not the log's publishing) here. */
    "cpu-prof": { type: "string" },
  },
});
const EVENTS = Number(args.events);

/**
 * CPU ms (user + system) from /proc: the Postgres backends of our database (their command
 * line names it), Postgres's shared writers (WAL writer, checkpointer, background writer:
 * shared with whatever else runs on this server), and our nats-server (by its port).
 */
const TICK_MS = 10; // ms per clock tick (USER_HZ 100)
/** pid → what it is, found by a scan of /proc (at most every 300 ms: a scan reads every process). */
const known = new Map<number, "postgres" | "pgShared" | "nats" | "other">();
let lastScan = 0;
const last = new Map<number, number>();
const gone = { postgres: 0, pgShared: 0, nats: 0 };
function otherCpu(dbName: string, natsPort: string): { postgres: number; pgShared: number; nats: number } {
  if (performance.now() - lastScan > 300) {
    lastScan = performance.now();
    for (const d of readdirSync("/proc")) {
      if (!/^\d+$/.test(d) || known.has(Number(d))) continue;
      try {
        const cmd = readFileSync(`/proc/${d}/cmdline`, "utf8");
        // A backend just forked still shows the postmaster's command line: looked at again next scan.
        if (cmd.includes("bin/postgres")) continue;
        known.set(
          Number(d),
          cmd.startsWith("nats-server") && cmd.includes(`\0${natsPort}\0`)
            ? "nats"
            : cmd.startsWith("postgres:") && cmd.includes(` ${dbName} `)
              ? "postgres"
              : cmd.startsWith("postgres:") && /walwriter|checkpointer|background writer/.test(cmd)
                ? "pgShared"
                : "other",
        );
      } catch {}
    }
  }
  const out = { ...gone };
  for (const [pid, kind] of known) {
    if (kind === "other") continue;
    try {
      const s = readFileSync(`/proc/${pid}/stat`, "utf8");
      const f = s.slice(s.lastIndexOf(")") + 2).split(" ");
      const cpu = (Number(f[11]) + Number(f[12])) * TICK_MS;
      last.set(pid, cpu);
      out[kind] += cpu;
    } catch {
      // Ended: its last reading stays in the sums.
      known.delete(pid);
      gone[kind] += last.get(pid) ?? 0;
      out[kind] += last.get(pid) ?? 0;
    }
  }
  return out;
}
interface Sample {
  t: number;
  node: number;
  postgres: number;
  pgShared: number;
  nats: number;
}
let dbName = "";
let natsPort = "";
const sample = (): Sample => {
  const u = process.cpuUsage();
  return { t: performance.now(), node: (u.user + u.system) / 1000, ...otherCpu(dbName, natsPort) };
};

const server = await startNatsServer();
const nats = await connectNats(server.url, { name: "bench-replay-profile" });
await ensureStreams(nats.jsm);
const postgres = await findPostgres();
const database = await createDatabase(postgres, "bench_replay_profile");
const db = openDatabase(database.url, { max: 2 });
dbName = new URL(database.url).pathname.slice(1);
natsPort = new URL(server.url.replace(/^nats:/, "http:")).port;
const samples: Sample[] = [];
let result: Awaited<ReturnType<typeof replay>>;
let rawPerS: number;
let rawCpu: { node: number; postgres: number };
let tStart: number;
try {
  await publishBenchLog(nats.js, EVENTS);
  await migrateToLatest(db, "cairn");
  await migrateToLatest(db, "raw");
  const timer = setInterval(() => samples.push(sample()), 100);
  const c0 = sample();
  const copy = await rawCopy(database.url, EVENTS);
  const c1 = sample();
  rawCpu = { node: c1.node - c0.node, postgres: c1.postgres - c0.postgres + (c1.pgShared - c0.pgShared) };
  rawPerS = Math.round((copy.rows * 1000) / copy.ms);
  if (args["live-rows"]) {
    // Live holds what a replay would build: a first replay, swapped in (so the comparison digests both).
    await replay({ databaseUrl: database.url, nats });
  }
  await db.destroy();
  samples.push(sample());
  tStart = performance.now();
  const profiler = args["cpu-prof"] ? new Session() : undefined;
  if (profiler) {
    profiler.connect();
    await profiler.post("Profiler.enable");
    await profiler.post("Profiler.start");
  }
  result = await replay({ databaseUrl: database.url, nats, checkOnly: true });
  if (profiler) {
    const { profile } = await profiler.post("Profiler.stop");
    writeFileSync(args["cpu-prof"]!, JSON.stringify(profile));
    profiler.disconnect();
  }
  samples.push(sample());
  clearInterval(timer);
} finally {
  await nats.close();
  await server.dispose();
  await database.dispose();
  await postgres.stop();
}

/** CPU between two instants, interpolated linearly between samples. */
const at = (t: number): Sample => {
  const i = samples.findIndex((s) => s.t >= t);
  if (i <= 0) return samples[Math.max(0, i)]!;
  const a = samples[i - 1]!;
  const b = samples[i]!;
  const f = (t - a.t) / (b.t - a.t || 1);
  const mix = (k: keyof Sample) => a[k] + (b[k] - a[k]) * f;
  return { t, node: mix("node"), postgres: mix("postgres"), pgShared: mix("pgShared"), nats: mix("nats") };
};
const tm = result.timings;
const phases = ["load", "indexes", "catchUp", "compare", "swap", "cleanUp"] as const;
const sum = phases.reduce((s, p) => s + tm[p], 0);
const bounds: [string, number][] = [
  ["setup", result.ms - sum],
  ...phases.map((p) => [p, tm[p]] as [string, number]),
];
const table: Record<
  string,
  { wall: number; node: number; postgres: number; pgShared: number; nats: number }
> = {};
let t = tStart;
process.stdout.write(
  `replay of ${result.events} events: ${result.eventsPerSecond}/s all in; raw COPY ${rawPerS}/s (ratio ${(result.eventsPerSecond / rawPerS).toFixed(3)}); loadSplit ${JSON.stringify(tm.loadSplit)}\n`,
);
process.stdout.write(
  `raw COPY CPU per event: node ${((rawCpu.node * 1000) / EVENTS).toFixed(1)} µs, postgres ${((rawCpu.postgres * 1000) / EVENTS).toFixed(1)} µs (its writers included)\n`,
);
process.stdout.write(
  "phase      wall ms   node cpu ms   postgres cpu ms   pg shared writers   nats cpu ms\n",
);
for (const [name, ms] of bounds) {
  const a = at(t);
  const b = at(t + ms);
  t += ms;
  table[name] = {
    wall: Math.round(ms),
    node: Math.round(b.node - a.node),
    postgres: Math.round(b.postgres - a.postgres),
    pgShared: Math.round(b.pgShared - a.pgShared),
    nats: Math.round(b.nats - a.nats),
  };
  const r = table[name]!;
  process.stdout.write(
    `${name.padEnd(9)} ${String(r.wall).padStart(8)} ${String(r.node).padStart(13)} ${String(r.postgres).padStart(17)} ${String(r.pgShared).padStart(19)} ${String(r.nats).padStart(13)}\n`,
  );
}
const snake = (s: string) => s.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
printResult({
  bench: "replay-profile",
  params: { quick: QUICK, events: EVENTS },
  figures: {
    replay_per_s: result.eventsPerSecond,
    replay_load_per_s: Math.round((result.events * 1000) / tm.load),
    raw_copy_per_s: rawPerS,
    raw_copy_node_cpu_us_per_event: (rawCpu.node * 1000) / EVENTS,
    raw_copy_postgres_cpu_us_per_event: (rawCpu.postgres * 1000) / EVENTS,
    ...Object.fromEntries(
      Object.entries(table).flatMap(([p, r]) => [
        [`${snake(p)}_wall_ms`, r.wall],
        [`${snake(p)}_node_cpu_ms`, r.node],
        [`${snake(p)}_postgres_cpu_ms`, r.postgres],
        [`${snake(p)}_pg_shared_cpu_ms`, r.pgShared],
        [`${snake(p)}_nats_cpu_ms`, r.nats],
      ]),
    ),
  },
  ratios: { replay_over_raw: result.eventsPerSecond / rawPerS },
  goals: {},
});
