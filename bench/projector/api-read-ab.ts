/**
 * bench/projector/api-read-ab.ts: `GET /clusters/:id` on two API replicas (role `api`,
 * CAIRN_PROJECTOR_ROLE) over the same read model, one of this tree and one of another build
 * (BENCH_AB_MAIN: that build's `services/projector/src/main.ts`), alternated round by round
 * so both see the same minutes of a shared machine. A third process (role `all`, this tree)
 * projects a small log (BENCH_EVENTS, default 10,000: the clusters `b0`…`b999`) and then
 * idles, so what each replica spends is its reads only.
 *
 * Each round, each replica: a closed loop (2 connections, BENCH_AB_SECONDS, default 3 s) for
 * its rate and its CPU per read (utime + stime of its process from /proc over the answered
 * reads), then an open loop at 200 reads/s (4 connections) for latency p50/p99.
 *
 * BENCH_AB_COMMITS_PER_S (default 0): commits published at that rate (new clusters, the
 * bench log's shape) all through each side's round, so the reads are measured while the
 * projector projects and announces — the replicas receive every batch's rows, as in
 * bench/projector's loaded phase. Each round also reports how many answers came from the
 * replica's memory (Server-Timing `src;desc=mem`, api/cluster-cache.ts; main: none).
 *
 * BENCH_AB_MAIN_CHECK=1 runs the "main" replica with CAIRN_API_CHECK_ANSWERS=1 (plain-json.ts): with
 * BENCH_AB_MAIN this tree's own main.ts, the A/B isolates what the zod serializer costs.
 *
 * Run: BENCH_AB_MAIN=/work/ab/services/projector/src/main.ts node bench/projector/api-read-ab.ts
 */
import type { ChildProcess } from "node:child_process";
import { loadavg } from "node:os";
import { fileURLToPath } from "node:url";
import { connectNats, ensureStreams, Streams } from "@cairn/events";
import { openDatabase } from "@cairn/projector";
import { createDatabase, findPostgres, freePort, startNatsServer } from "@cairn/testkit";
import { sql } from "kysely";
import { paced, saturate } from "../lib/http-load.ts";
import { cpuMs } from "../lib/proc.ts";
import { spawnProjector, waitForHealth } from "../lib/projector-process.ts";
import { benchLog, publishBenchLog } from "./log.ts";

/** Publishes the bench log's commits (clusters `prefix…`) at `rate` a second until `stop` says so. */
async function publishWhile(rate: number, prefix: string, stop: () => boolean): Promise<number> {
  if (rate <= 0) return 0;
  const t0 = performance.now();
  let n = 0;
  for (const c of benchLog(Number.MAX_SAFE_INTEGER, 100, prefix)) {
    if (stop()) break;
    const wait = t0 + (n * 1000) / rate - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    await nats.js.publish(c.subject, c.body);
    n++;
  }
  return n;
}

const EVENTS = Number(process.env.BENCH_EVENTS ?? 10_000);
const ROUNDS = Number(process.env.BENCH_AB_ROUNDS ?? 4);
const SECONDS = Number(process.env.BENCH_AB_SECONDS ?? 3);
const COMMITS_PER_S = Number(process.env.BENCH_AB_COMMITS_PER_S ?? 0);
const OTHER = process.env.BENCH_AB_MAIN;
if (!OTHER) throw new Error("BENCH_AB_MAIN: the other build's services/projector/src/main.ts");
const THIS = fileURLToPath(new URL("../../services/projector/src/main.ts", import.meta.url));
const say = (line: string) => process.stderr.write(`api-read-ab: ${line}\n`);

const server = await startNatsServer();
const nats = await connectNats(server.url, { name: "bench-api-ab" });
await ensureStreams(nats.jsm);
const postgres = await findPostgres();
const database = await createDatabase(postgres, "bench_api_ab");
const db = openDatabase(database.url, { max: 2 });
const children: ChildProcess[] = [];

function startProjector(main: string, port: number, role: "all" | "api", env: Record<string, string> = {}) {
  const p = spawnProjector({ main, natsUrl: server.url, databaseUrl: database.url, port, role, env });
  children.push(p);
  return p;
}

const pct = (xs: number[], q: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? (s[Math.min(s.length - 1, Math.floor(q * s.length))] as number) : Number.NaN;
};
const request = () => ({ method: "GET", path: `/clusters/b${Math.floor(Math.random() * 1000)}` });

interface Round {
  cpuUsPerRead: number;
  readsPerS: number;
  p50: number;
  p99: number;
  errors: number;
  load: number;
  commitsPerS: number;
  memoryHitsSoFar: number;
}

try {
  await publishBenchLog(nats.js, EVENTS);
  const head = (await nats.jsm.streams.info(Streams.events)).state.last_seq;
  const projector = startProjector(THIS, await freePort(), "all");
  for (;;) {
    if (projector.exitCode !== null) throw new Error(`the projector exited with ${projector.exitCode}`);
    const r = await sql<{ last_sequence: number }>`select last_sequence from cairn.projector_checkpoint`
      .execute(db)
      .catch(() => ({ rows: [] as { last_sequence: number }[] }));
    if (Number(r.rows[0]?.last_sequence ?? 0) >= head) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  say(`projected ${EVENTS} events`);
  const replicas = { main: OTHER, branch: THIS };
  const running: Record<string, { url: string; p: ChildProcess }> = {};
  for (const [name, main] of Object.entries(replicas)) {
    const port = await freePort();
    // BENCH_AB_MAIN_CHECK=1: the "main" replica checks its plain answers against zod's
    // encoding (CAIRN_API_CHECK_ANSWERS=1): with BENCH_AB_MAIN this tree's, the serializer's cost.
    const check = name === "main" && process.env.BENCH_AB_MAIN_CHECK === "1";
    const p = startProjector(main, port, "api", check ? { CAIRN_API_CHECK_ANSWERS: "1" } : {});
    running[name] = { url: `http://127.0.0.1:${port}`, p };
    await waitForHealth(running[name].url, p);
  }
  // The contract: both builds answer with the same bytes (`etaSeconds` counts down between
  // the two reads, so a body that differs is read again once).
  let sameBodies = 0;
  const ids = Array.from({ length: 100 }, (_, i) => `b${i * 10}`);
  for (const id of ids) {
    for (let attempt = 0; attempt < 2; attempt++) {
      const [a, b] = await Promise.all(
        [running.main!, running.branch!].map((r) => fetch(`${r.url}/clusters/${id}`).then((x) => x.text())),
      );
      if (a === b) {
        sameBodies++;
        break;
      }
      if (attempt === 1) say(`${id} differs:\n  main   ${a}\n  branch ${b}`);
    }
  }
  say(`same bodies: ${sameBodies} of ${ids.length}`);
  const rounds: Record<string, Round[]> = { main: [], branch: [] };
  // Warm-up: JIT, pools, the prepared statement on each connection.
  for (const { url } of Object.values(running)) await saturate({ url, connections: 2, seconds: 1, request });
  for (let round = 0; round < ROUNDS; round++) {
    const order = round % 2 === 0 ? ["main", "branch"] : ["branch", "main"];
    for (const name of order) {
      const { url, p } = running[name]!;
      let publishing = true;
      const published = publishWhile(COMMITS_PER_S, `w${round}${name}-`, () => !publishing);
      const cpu0 = cpuMs(p.pid!);
      const sat = await saturate({ url, connections: 2, seconds: SECONDS, request });
      const cpu = cpuMs(p.pid!) - cpu0;
      const lat = await paced({ url, connections: 4, rate: 200, seconds: SECONDS, request });
      publishing = false;
      const commits = await published;
      const metrics = await fetch(`${url}/metrics`).then((m) => m.text());
      const mem = Number(
        /cairn_projector_cluster_cache_total\{outcome="hit"\} (\d+)/.exec(metrics)?.[1] ?? 0,
      );
      const r: Round = {
        cpuUsPerRead: Math.round((cpu * 1000) / sat.ok),
        readsPerS: Math.round((sat.ok * 1000) / sat.ms),
        p50: Number(pct(lat.latencies, 0.5).toFixed(2)),
        p99: Number(pct(lat.latencies, 0.99).toFixed(2)),
        errors: sat.errors + lat.errors + (sat.sent - sat.ok) + (lat.sent - lat.ok),
        load: Number(loadavg()[0]!.toFixed(1)),
        commitsPerS: Math.round(commits / (2 * SECONDS)),
        memoryHitsSoFar: mem,
      };
      rounds[name]!.push(r);
      say(`round ${round + 1} ${name}: ${JSON.stringify(r)}`);
    }
  }
  const med = (xs: number[]) => pct(xs, 0.5);
  const summary = Object.fromEntries(
    Object.entries(rounds).map(([name, rs]) => [
      name,
      {
        cpu_us_per_read_median: med(rs.map((r) => r.cpuUsPerRead)),
        reads_per_s_median: med(rs.map((r) => r.readsPerS)),
        p50_ms_median: med(rs.map((r) => r.p50)),
        p99_ms_median: med(rs.map((r) => r.p99)),
        errors: rs.reduce((a, r) => a + r.errors, 0),
        rounds: rs,
      },
    ]),
  );
  console.log(
    JSON.stringify({
      bench: "api-read-ab",
      events: EVENTS,
      seconds: SECONDS,
      same_bodies: `${sameBodies}/${ids.length}`,
      ...summary,
    }),
  );
} finally {
  for (const p of children) if (p.exitCode === null) p.kill("SIGTERM");
  await Promise.all(
    children.map((p) => (p.exitCode === null ? new Promise((r) => p.once("exit", r)) : undefined)),
  );
  await db.destroy();
  await nats.close();
  await server.dispose();
  await database.dispose();
  await postgres.stop();
}
