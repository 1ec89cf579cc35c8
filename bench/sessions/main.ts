/**
 * bench/sessions: the session side's hot paths, each beside the raw limit measured in the
 * same run on the same machine:
 *
 *  1. Heartbeat ingest through the API. A disposable nats-server and Postgres; the
 *     idle-detector and the projector each run as their own process (their `main.ts`, as
 *     deployed; the projector with a tokens file, the client a viewer acting on its own
 *     sessions, no rate limit). N Running sessions are recorded as their owner would
 *     (one commit of requested, admitted, running each). autocannon drives
 *     `POST /sessions/:id/heartbeat` round-robin over them: a fixed 5,000 req/s, then an
 *     open-loop run at its maximum. With N sessions at 5,000 req/s each session beats
 *     every N/5,000 s, longer than the idle-detector's coalescing window (1 s): every
 *     heartbeat is a KV write, the worst case.
 *     Raw limit: `kv.put` on the same bucket from one client, paced at 5,000/s (latency)
 *     and with 256 in flight (rate).
 *  2. One idle sweep over 100,000 sessions: `planSweep` (pure) over an index folded with
 *     the decider's own `evolve`, a third of them idle. The sweep reads no KV (each
 *     replica follows the bucket's writes into memory); the start-up catch-up that fills
 *     that memory (one KV get per live session, `startHeartbeats`) is timed beside raw
 *     gets of the same keys.
 *     Raw limit of the sweep: one bare pass over the same index with the activity lookup.
 *  3. Wake overhead (./wake.ts; alone: ./wake-main.ts): on the sim, the real idle-detector
 *     and node-ops; session.connect on a Hibernated session → Running, minus the sim's own
 *     pod-ready latency for the same pod template on the same node (a Deployment scaled
 *     0 → 1 through client-node, Ready), and each hop of the wake.
 *
 * Goals (issue 13): heartbeat p99 ≤ 5 ms at 5,000 req/s and ≥ 50 % of the raw KV put rate;
 * a sweep ≤ 200 ms; wake overhead ≤ 100 ms.
 *
 * Run: npm run bench:sessions -w @cairn/bench   (BENCH_QUICK=1: a smoke run under a minute)
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  type AggregateRef,
  Buckets,
  catalogue,
  connectNats,
  EventStore,
  ensureStreams,
  newId,
  type RawEventEnvelope,
} from "@cairn/events";
import {
  DEFAULT_SESSION_POLICY,
  planSweep,
  type SessionState,
  sessionDecider,
  startHeartbeats,
} from "@cairn/idle-detector";
import { createToken } from "@cairn/projector";
import { createDatabase, findPostgres, freePort, startNatsServer } from "@cairn/testkit";
import { Kvm } from "@nats-io/kv";
import autocannon from "autocannon";
import { bounded, type Figure, printFigures, rate, timed } from "../lib/report.ts";
import { WAKE_OVERHEAD_GOAL_MS, wakeBench, wakeFigures, wakeRows, wakeTitle } from "./wake.ts";

const QUICK = process.env.BENCH_QUICK === "1";
/** Sessions the heartbeats go to. */
const SESSIONS = Number(process.env.BENCH_SESSIONS ?? (QUICK ? 1_000 : 10_000));
const SECONDS = Number(process.env.BENCH_SECONDS ?? (QUICK ? 3 : 10));
const HB_RATE = 5_000;
const CONNECTIONS = 100;
const SWEEP_SESSIONS = QUICK ? 20_000 : 100_000;
const WAKES = Number(process.env.BENCH_WAKES ?? (QUICK ? 5 : 20));
const say = (line: string) => process.stderr.write(`bench/sessions: ${line}\n`);

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? Number.NaN;
};
const median = (xs: number[]) => pct(xs, 50);

// ── the session history, as its owner records it ────────────────────────────────────

const template = { image: "ghcr.io/acme/ide:1", cpu: "500m", memory: "1Gi", storage: "1Gi" };
const sessionId = (i: number) => `hb-${i}`;

function envelope(aggregate: AggregateRef, position: number, type: string, data: object, time: string) {
  return {
    id: newId(),
    type,
    version: 1,
    aggregate,
    position,
    time,
    data,
    meta: { causationId: `bench-${type}`, correlationId: `bench-${aggregate.id}`, actor: "bench" },
  } satisfies RawEventEnvelope;
}

/** requested → admitted → running, as the idle-detector records a session that started. */
function runningSession(id: string, time: string, user = "alice"): RawEventEnvelope[] {
  const aggregate: AggregateRef = { type: "session", id };
  return [
    envelope(
      aggregate,
      1,
      "session.requested",
      {
        sessionId: id,
        user,
        clusterId: "demo-1",
        template,
        idleTimeoutSeconds: 1800,
        maxLifetimeSeconds: 7 * 86_400,
        cause: "user",
      },
      time,
    ),
    envelope(aggregate, 2, "session.admitted", { sessionId: id, groups: [], cause: "user" }, time),
    envelope(
      aggregate,
      3,
      "session.running",
      { sessionId: id, node: "agent-a", pod: `session-${id}-0`, cause: "user" },
      time,
    ),
  ];
}

// ── 1. heartbeat ingest ──────────────────────────────────────────────────────────────

interface Run {
  p50: number;
  p99: number;
  rps: number;
  errors: number;
}

async function heartbeatIngest() {
  const server = await startNatsServer();
  const nats = await connectNats(server.url, { name: "bench-sessions" });
  await ensureStreams(nats.jsm);
  const postgres = await findPostgres();
  const database = await createDatabase(postgres, "bench_sessions");
  const tmp = mkdtempSync(join(tmpdir(), "bench-sessions-"));
  const children: ChildProcess[] = [];
  try {
    const store = new EventStore({ js: nats.js, jsm: nats.jsm, catalogue });
    const created = await timed(() =>
      bounded(SESSIONS, 128, async (i) => {
        const events = runningSession(sessionId(i), new Date().toISOString());
        await store.append({ aggregate: events[0]!.aggregate, causationId: newId(), events }, 0);
      }),
    );
    say(`${SESSIONS} Running sessions recorded in ${Math.round(created.ms)} ms`);

    const alice = createToken("alice", "viewer");
    const tokensFile = join(tmp, "tokens.json");
    writeFileSync(tokensFile, JSON.stringify({ tokens: [alice.entry] }));
    const apiPort = await freePort();
    const apiUrl = `http://127.0.0.1:${apiPort}`;
    const service = (name: string, env: Record<string, string>) => {
      const child = spawn(
        process.execPath,
        [
          // BENCH_CPU_PROF=<dir>: each service writes a CPU profile there (where the time goes).
          ...(process.env.BENCH_CPU_PROF
            ? ["--cpu-prof", `--cpu-prof-dir=${process.env.BENCH_CPU_PROF}`]
            : []),
          fileURLToPath(new URL(`../../services/${name}/src/main.ts`, import.meta.url)),
        ],
        {
          env: { ...process.env, NATS_URL: server.url, LOG_LEVEL: "warn", ...env },
          stdio: ["ignore", "inherit", "inherit"],
        },
      );
      children.push(child);
      return child;
    };
    // No sweep during the run (its lease and decisions are not what this measures).
    service("idle-detector", { CAIRN_SESSION_SWEEP_SECONDS: "3600" });
    service("projector", {
      DATABASE_URL: database.url,
      CAIRN_API_PORT: String(apiPort),
      CAIRN_TOKENS_FILE: tokensFile,
      CAIRN_API_RATE_LIMIT: "off",
    });

    // Ready: the API shows the last session Running and a heartbeat to it is answered 200.
    const last = sessionId(SESSIONS - 1);
    const beat = (id: string) =>
      fetch(`${apiUrl}/sessions/${id}/heartbeat`, {
        method: "POST",
        headers: { authorization: `Bearer ${alice.token}`, "content-type": "application/json" },
        body: JSON.stringify({ connections: 1 }),
      }).then(async (r) => ({ status: r.status, body: await r.text() }));
    const readySince = performance.now();
    for (;;) {
      for (const c of children)
        if (c.exitCode !== null) throw new Error(`a service exited with ${c.exitCode}`);
      const r = await beat(last).catch(() => undefined);
      if (r?.status === 200) break;
      if (performance.now() - readySince > 120_000)
        throw new Error(`not ready after 2 min: last answer ${r?.status} ${r?.body}`);
      await new Promise((res) => setTimeout(res, 100));
    }
    say(`API and idle-detector ready in ${Math.round(performance.now() - readySince)} ms`);

    let next = 0;
    const cannon = (o: { seconds: number; overallRate?: number }) =>
      new Promise<Run>((resolve, reject) => {
        autocannon(
          {
            url: apiUrl,
            connections: CONNECTIONS,
            duration: o.seconds,
            ...(o.overallRate ? { overallRate: o.overallRate } : {}),
            requests: [
              {
                method: "POST",
                headers: { authorization: `Bearer ${alice.token}`, "content-type": "application/json" },
                body: JSON.stringify({ connections: 1 }),
                setupRequest: (req) => ({
                  ...req,
                  path: `/sessions/${sessionId(next++ % SESSIONS)}/heartbeat`,
                }),
              },
            ],
          },
          (err, r) => {
            if (err) return reject(err);
            resolve({
              p50: r.latency.p50,
              p99: r.latency.p99,
              rps: r.requests.total / (r.duration || o.seconds),
              errors: r.errors + r.timeouts + r.non2xx,
            });
          },
        );
      });
    await cannon({ seconds: QUICK ? 1 : 3, overallRate: HB_RATE }); // warm-up (JIT, connections, pools)
    const fixed = await cannon({ seconds: SECONDS, overallRate: HB_RATE });
    say(`API at 5,000 req/s: ${JSON.stringify(fixed)}`);
    const open = await cannon({ seconds: SECONDS });
    say(`API open loop: ${JSON.stringify(open)}`);

    // Raw limit: KV puts on the same bucket, one client, the same value shape.
    const kv = await new Kvm(nats.js).open(Buckets.heartbeats);
    const value = () => JSON.stringify({ at: Date.now(), connections: 1 });
    const paced: number[] = [];
    {
      const total = HB_RATE * SECONDS;
      const t0 = performance.now();
      const inflight: Promise<unknown>[] = [];
      for (let i = 0; i < total; i++) {
        // Put i goes at t0 + i / 5,000 s: due puts leave together each time the loop wakes.
        const wait = t0 + (i * 1000) / HB_RATE - performance.now();
        if (wait > 1) await new Promise((r) => setTimeout(r, wait));
        const sent = performance.now();
        inflight.push(
          kv.put(sessionId(i % SESSIONS), value()).then(() => paced.push(performance.now() - sent)),
        );
        if (inflight.length > 4096) await Promise.all(inflight.splice(0));
      }
      await Promise.all(inflight);
    }
    const rawPuts = HB_RATE * SECONDS;
    const rawRun = await timed(() => bounded(rawPuts, 256, (i) => kv.put(sessionId(i % SESSIONS), value())));
    const raw = { p50: pct(paced, 50), p99: pct(paced, 99), rate: rate(rawPuts, rawRun.ms) };
    say(`raw KV: ${JSON.stringify(raw)}`);
    return { fixed, open, raw };
  } finally {
    for (const c of children) {
      if (c.exitCode !== null) continue;
      const exited = new Promise((r) => c.once("exit", r));
      c.kill("SIGTERM");
      await exited;
    }
    rmSync(tmp, { recursive: true, force: true });
    await nats.close();
    await server.dispose();
    await database.dispose();
    await postgres.stop();
  }
}

// ── 2. one idle sweep ────────────────────────────────────────────────────────────────

async function sweep() {
  const now = Date.now();
  const index = new Map<string, { state: SessionState }>();
  const activity = new Map<string, number>();
  for (let i = 0; i < SWEEP_SESSIONS; i++) {
    const id = `sw-${i}`;
    // Started between 1 and 3 hours ago; a third idle past timeout + grace, the rest active.
    const started = new Date(now - 3_600_000 - (i % 7_200) * 1000).toISOString();
    let state = sessionDecider.initialState();
    const events = runningSession(id, started);
    const commit = catalogue.parseCommitTrusted({ commitId: id, aggregate: events[0]!.aggregate, events });
    for (const e of commit.events) state = sessionDecider.evolve(state, e as never);
    index.set(id, { state });
    activity.set(id, i % 3 === 0 ? now - 3_000_000 : now - (i % 600) * 1000);
  }
  const lastActivity = (id: string) => activity.get(id);
  const runs: number[] = [];
  let proposals = 0;
  for (let r = 0; r < (QUICK ? 3 : 7); r++) {
    const t = await timed(async () => planSweep(index, lastActivity, now, DEFAULT_SESSION_POLICY));
    runs.push(t.ms);
    proposals = t.result.length;
  }
  // Raw: one pass over the same index with the same activity lookup, nothing decided.
  const rawRuns: number[] = [];
  let sink = 0;
  for (let r = 0; r < (QUICK ? 3 : 7); r++) {
    const t0 = performance.now();
    for (const [id, { state }] of index) if ((lastActivity(id) ?? 0) < now && state.status) sink++;
    rawRuns.push(performance.now() - t0);
  }
  if (sink === 0) throw new Error("the raw pass saw nothing");
  say(`sweep of ${SWEEP_SESSIONS}: ${runs.map(Math.round).join(", ")} ms; ${proposals} proposals`);
  if (proposals < SWEEP_SESSIONS / 3) throw new Error(`the sweep proposed ${proposals}, expected a third`);
  return { ms: median(runs), worst: Math.max(...runs), raw: median(rawRuns), proposals, index };
}

/** The start-up catch-up the sweep relies on: one KV get per live session. */
async function catchUp(index: Map<string, { state: SessionState }>) {
  const server = await startNatsServer();
  const nats = await connectNats(server.url, { name: "bench-sessions-kv" });
  try {
    await ensureStreams(nats.jsm);
    await new Kvm(nats.nc).create(Buckets.heartbeats, { history: 1 });
    const kv = await new Kvm(nats.js).open(Buckets.heartbeats);
    const ids = [...index.keys()];
    await bounded(ids.length, 256, (i) =>
      kv.put(ids[i]!, JSON.stringify({ at: Date.now() - i, connections: 1 })),
    );
    const raw = await timed(() => bounded(ids.length, 64, (i) => kv.get(ids[i]!)));
    const live = index as unknown as Map<string, never>;
    const hb = await startHeartbeats({
      nc: nats.nc,
      index: {
        get: (id) => live.get(id),
        live: () => live.entries(),
        size: () => live.size,
        caughtUp: Promise.resolve(),
        stop: async () => {},
      },
    });
    const caught = await timed(() => hb.caughtUp);
    const seen = ids.filter((id) => hb.lastActivity(id) !== undefined).length;
    await hb.stop();
    if (seen !== ids.length) throw new Error(`the catch-up saw ${seen} of ${ids.length} sessions`);
    return { ms: caught.ms, raw: raw.ms };
  } finally {
    await nats.close();
    await server.dispose();
  }
}

// ── run ──────────────────────────────────────────────────────────────────────────────

const hb = await heartbeatIngest();
const sw = await sweep();
const cu = await catchUp(sw.index);
const wake = await wakeBench({ wakes: WAKES, quick: QUICK, say });

const figures = {
  heartbeat_p50_ms_at_5000: hb.fixed.p50,
  heartbeat_p99_ms_at_5000: hb.fixed.p99,
  heartbeat_rps_at_5000: hb.fixed.rps,
  heartbeat_errors_at_5000: hb.fixed.errors,
  heartbeat_max_rps: hb.open.rps,
  heartbeat_p99_ms_max: hb.open.p99,
  heartbeat_errors_max: hb.open.errors,
  raw_kv_put_p50_ms_at_5000: hb.raw.p50,
  raw_kv_put_p99_ms_at_5000: hb.raw.p99,
  raw_kv_puts_per_s: hb.raw.rate,
  sweep_ms: sw.ms,
  sweep_worst_ms: sw.worst,
  sweep_sessions: SWEEP_SESSIONS,
  sweep_proposals: sw.proposals,
  raw_index_pass_ms: sw.raw,
  catch_up_ms: cu.ms,
  raw_kv_gets_ms: cu.raw,
  ...wakeFigures(wake),
};
const ratios = {
  heartbeat_max_rps_over_raw_kv: hb.open.rps / hb.raw.rate,
  heartbeat_p99_over_raw_kv_p99: hb.fixed.p99 / hb.raw.p99,
  sweep_over_raw_pass: sw.ms / sw.raw,
  catch_up_over_raw_gets: cu.ms / cu.raw,
  wake_over_floor: wake.wake.p50 / wake.floor.p50,
};
const goals = {
  heartbeat_p99_le_5ms_at_5000: hb.fixed.p99 <= 5 && hb.fixed.errors === 0 && hb.fixed.rps >= HB_RATE * 0.95,
  heartbeat_ge_50pct_raw_kv: ratios.heartbeat_max_rps_over_raw_kv >= 0.5 && hb.open.errors === 0,
  sweep_le_200ms: sw.ms <= 200,
  wake_overhead_le_100ms: wake.overhead.p50 <= WAKE_OVERHEAD_GOAL_MS,
};

const row = (name: string, value: number, unit: string, raw?: number, goal?: number): Figure => ({
  name,
  value,
  unit,
  ...(raw !== undefined ? { raw } : {}),
  ...(goal !== undefined ? { goal } : {}),
});
printFigures(
  `bench/sessions — 1. heartbeats through the API (${SESSIONS.toLocaleString("en-US")} sessions, ${CONNECTIONS} connections, ${SECONDS} s runs; raw = kv.put on the same bucket, one client)`,
  [
    row("POST heartbeat p50 at 5,000 req/s", hb.fixed.p50, "ms", hb.raw.p50),
    row("POST heartbeat p99 at 5,000 req/s (goal ≤ 5 ms)", hb.fixed.p99, "ms", hb.raw.p99),
    row("POST heartbeat rate asked 5,000 req/s", hb.fixed.rps, "req/s"),
    row("POST heartbeat non-2xx/errors at 5,000 req/s", hb.fixed.errors, "requests"),
    row("POST heartbeat open loop (goal ≥ 50% raw)", hb.open.rps, "req/s", hb.raw.rate, 0.5),
    row("POST heartbeat open loop p99", hb.open.p99, "ms"),
    row("POST heartbeat non-2xx/errors, open loop", hb.open.errors, "requests"),
  ],
);
printFigures(
  `2. one idle sweep (${SWEEP_SESSIONS.toLocaleString("en-US")} sessions; raw = a bare pass over the index with the activity lookup)`,
  [
    row("planSweep, median (goal ≤ 200 ms)", sw.ms, "ms", sw.raw),
    row("planSweep, worst", sw.worst, "ms"),
    row("proposals", sw.proposals, "sessions"),
    row("start-up catch-up: a KV get per session", cu.ms, "ms", cu.raw),
  ],
);
printFigures(`3. ${wakeTitle(wake)}`, wakeRows(wake));
const met = Object.values(goals).every(Boolean);
console.log(`\ngoals: ${JSON.stringify(goals)}`);
console.log(JSON.stringify({ bench: "sessions", figures, ratios, goals, met }));
