/**
 * bench/projector: the projector's rates over one log, each beside the raw limit
 * measured in the same run on the same machine:
 *
 *  1. Write the log: `--events` events (default 1,000,000) in commits of many clusters,
 *     published with async `js.publish` in windows into a disposable nats-server.
 *  2. Raw read: an ordered consumer over the whole stream doing nothing but JSON.parse.
 *     Raw write: COPY of the same event-index rows into a table shaped like `event_index`
 *     (same indexes), 50,000 rows per COPY, only the COPY timed.
 *     The raw limit of a projection is the slower of the two (reading and writing overlap).
 *  3. Live apply: the projector, run as its own process (`services/projector/src/main.ts`,
 *     as deployed), from an empty database to the head; timed from its first applied
 *     batch (process start-up excluded).
 *  4. Replay: asked of that projector over the bus (`cairn.admin.projector.replay`, as
 *     `cairn replay` does): rebuild into a fresh schema and swap; its rate counts
 *     everything (migrations, load, index builds, comparison with live, swap).
 *  5. Command → read model: commits published at 500/s; latency from just before
 *     `js.publish` until Postgres shows the live checkpoint covering the commit (the rows
 *     commit together with the checkpoint, so that is when a reader sees them), observed
 *     with LISTEN/NOTIFY (a trigger the bench adds; delivered at commit, no polling). Then the same with 4 concurrent API readers (GET /clusters/:id in a
 *     loop), whose p50/p99 is the "API read under load" figure; and the same again with the
 *     readers on a second projector process in role `api` (CAIRN_PROJECTOR_ROLE: it serves the
 *     API and never projects), the "API replica" figures. BENCH_API_ROUNDS (default 1) rounds
 *     of the two, alternated (odd rounds start with the replica), pooled. Then once more on
 *     the replica with the readers paced (BENCH_PACED_READS_PER_S, default 200 reads/s in all,
 *     each read timed from when it was due: readers.ts), the latency a dashboard or CLI sees
 *     while the control plane is busy, without a saturating client's own queue in it.
 *     The readers are a child process of their own (readers.ts; until 2026-12-04 a worker
 *     thread of this process, beside the publisher): what they see is the server, the
 *     loopback and their own delays, all on the same cores as everything else here. So each
 *     run also prints the server's own time (Server-Timing `app`, p99), the readers' own
 *     event-loop delay p99, the share of the replica's answers from memory, and the server's
 *     event-loop delay p99 and cluster-cache counters over the run (its /metrics).
 *     BENCH_PROJECTOR_MAIN: another build's projector entry point (both processes), for an
 *     A/B of the server under this same harness.
 *  Goals: replay ≥ 50,000 events/s and ≥ 50% of raw; command → read model p99 ≤ 25 ms;
 *  (issue 16) live apply ≥ 35% of raw; API GET /clusters/:id p99 under load ≤ 10 ms.
 *
 * Run: npm run bench:projector -w @cairn/bench -- --events 100000
 *      (BENCH_QUICK=1: 5,000 events and 1 s latency runs, a smoke run)
 */
import { type ChildProcess, fork } from "node:child_process";
import { loadavg } from "node:os";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { connectNats, ensureStreams, Streams } from "@cairn/events";
import {
  DEFAULT_SCHEMA,
  migrateToLatest,
  openDatabase,
  REPLAY_SUBJECT,
  type ReplayReply,
} from "@cairn/projector";
import { createDatabase, findPostgres, freePort, startNatsServer } from "@cairn/testkit";
import { DeliverPolicy } from "@nats-io/jetstream";
import { sql } from "kysely";
import pg from "pg";
import { spawnProjector, waitForHealth } from "../lib/projector-process.ts";
import { type Figure, printFigures, printResult, QUICK, rate, timed } from "../lib/report.ts";
import { benchLog, publishBenchLog, rawCopy } from "./log.ts";

const { values: args } = parseArgs({
  options: {
    events: { type: "string", default: process.env.BENCH_EVENTS ?? (QUICK ? "5000" : "1000000") },
    "latency-seconds": { type: "string", default: QUICK ? "1" : "10" },
  },
});
const EVENTS = Number(args.events);
const LATENCY_SECONDS = Number(args["latency-seconds"]);
/** Rounds of the loaded run, each on the projecting process and on the API replica. */
const API_ROUNDS = Number(process.env.BENCH_API_ROUNDS ?? 1);
/** The paced readers' rate, reads/s in all (BENCH_PACED_READS_PER_S). */
const PACED_READS_PER_S = Number(process.env.BENCH_PACED_READS_PER_S ?? 200);
const say = (line: string) => process.stderr.write(`bench/projector: ${line}\n`);

const server = await startNatsServer();
const nats = await connectNats(server.url, { name: "bench-projector" });
await ensureStreams(nats.jsm);
const postgres = await findPostgres();
const database = await createDatabase(postgres, "bench_projector");
const db = openDatabase(database.url, { max: 4 });
let projector: ChildProcess | undefined;
let apiReplica: ChildProcess | undefined;
let listener: pg.Client | undefined;
/** Printed after the clean-up: the projector process writes to this stdout until it exits. */
let result: Parameters<typeof printResult>[0] | undefined;

try {
  // 1. The log.
  say(`publishing ${EVENTS.toLocaleString("en-US")} events`);
  let commits = 0;
  const publish = await timed(async () => {
    commits = await publishBenchLog(nats.js, EVENTS);
  });
  const head = (await nats.jsm.streams.info(Streams.events)).state.last_seq;
  say(`${commits} commits in ${Math.round(publish.ms)} ms`);

  // 2a. Raw read: the same messages, an ordered consumer, JSON.parse only.
  const rawRead = await timed(async () => {
    const consumer = await nats.js.consumers.get(Streams.events, { deliver_policy: DeliverPolicy.All });
    const it = await consumer.consume({ max_messages: 10_000 });
    let n = 0;
    for await (const m of it) {
      m.json();
      if (++n >= commits) break;
    }
    await it.close();
  });

  // 2b. Raw write: COPY of the same rows into a table like event_index.
  // The same table as the projector's (migrated from its code), in a schema of its own.
  await migrateToLatest(db, "raw");
  const { ms: copyMs } = await rawCopy(database.url, EVENTS);
  const rawReadRate = rate(EVENTS, rawRead.ms);
  const rawCopyRate = rate(EVENTS, copyMs);
  const rawLimit = Math.min(rawReadRate, rawCopyRate);
  say(`raw read ${Math.round(rawReadRate)} events/s, raw COPY ${Math.round(rawCopyRate)} events/s`);

  // 3. Live apply: the projector process, from an empty database to the head.
  const apiPort = await freePort();
  const apiUrl = `http://127.0.0.1:${apiPort}`;
  projector = startProjector(apiPort, "all");
  let firstBatchAt = 0;
  for (let cp = 0; cp < head; cp = (await liveCheckpoint(db)) ?? 0) {
    if (cp > 0 && firstBatchAt === 0) firstBatchAt = performance.now();
    if (projector.exitCode !== null) throw new Error(`the projector exited with ${projector.exitCode}`);
    await new Promise((r) => setTimeout(r, 10));
  }
  const liveMs = performance.now() - firstBatchAt;
  say(`live apply: ${Math.round(rate(EVENTS, liveMs))} events/s`);

  // 4. Replay, asked of the projector over the bus, with its live projection running.
  const reply = (
    await nats.nc.request(REPLAY_SUBJECT, JSON.stringify({}), { timeout: 60 * 60_000 })
  ).json<ReplayReply>();
  if (!reply.ok) throw new Error(`replay failed: ${reply.error}: ${reply.message}`);
  const rebuilt = reply.result;
  say(
    `replay: ${rebuilt.eventsPerSecond} events/s (${JSON.stringify(rebuilt.timings)}), comparison equal: ${rebuilt.comparison.compared && rebuilt.comparison.equal}`,
  );

  // 5. Command → read model at 500 commits/s, then with API readers as well.
  // The replay just wrote two million rows: let Postgres write them back before the
  // latency runs, so they measure steady state rather than the bulk load's checkpoint.
  await sql`checkpoint`.execute(db);
  // The bench observes the live checkpoint with LISTEN/NOTIFY: Postgres delivers a
  // notification when the transaction that raised it commits, which is the moment any
  // reader can see the batch's rows. Polling (as before) added its own interval and a
  // query per millisecond competing for the same two cores. The trigger is the bench's,
  // made on the schema the replay just swapped in.
  await sql`create or replace function public.bench_checkpoint_notify() returns trigger
    language plpgsql as $$ begin
      perform pg_notify('bench_checkpoint', new.last_sequence::text); return null; end $$`.execute(db);
  await sql`create trigger bench_checkpoint_notify after update on ${sql.table(`${DEFAULT_SCHEMA}.projector_checkpoint`)}
    for each row execute function public.bench_checkpoint_notify()`.execute(db);
  listener = new pg.Client({ connectionString: database.url });
  await listener.connect();
  await listener.query("listen bench_checkpoint");
  // A second replica that serves the API only (CAIRN_PROJECTOR_ROLE=api): it never folds a
  // batch, so its reads do not wait behind the projection on one event loop.
  const apiReplicaPort = await freePort();
  const apiReplicaUrl = `http://127.0.0.1:${apiReplicaPort}`;
  apiReplica = startProjector(apiReplicaPort, "api");
  await waitForHealth(apiReplicaUrl, apiReplica);
  const quiet = await latencyRun(nats, listener, LATENCY_SECONDS, 0, apiUrl, "lat");
  // The readers on the projecting process, then on the API replica, alternated round by
  // round (the second round starts with the replica), so both see the same minutes.
  const onProjecting: Run[] = [];
  const onReplica: Run[] = [];
  for (let round = 0; round < API_ROUNDS; round++) {
    const a = () => latencyRun(nats, listener!, LATENCY_SECONDS, 4, apiUrl, `load${round}-`);
    const b = () => latencyRun(nats, listener!, LATENCY_SECONDS, 4, apiReplicaUrl, `rep${round}-`);
    if (round % 2 === 0) {
      onProjecting.push(await a());
      onReplica.push(await b());
    } else {
      onReplica.push(await b());
      onProjecting.push(await a());
    }
    const [x, y] = [onProjecting.at(-1)!, onReplica.at(-1)!];
    say(
      `round ${round + 1}: reads p50/p99 projecting ${x.readP50.toFixed(1)}/${x.readP99.toFixed(1)} ms (server p99 ${x.serverP99.toFixed(1)}, readers' loop delay p99 ${x.loopDelayP99.toFixed(1)}), API replica ${y.readP50.toFixed(1)}/${y.readP99.toFixed(1)} ms (server p99 ${y.serverP99.toFixed(1)}, readers' loop delay p99 ${y.loopDelayP99.toFixed(1)}, ${(y.memoryShare * 100).toFixed(0)} % from memory) (load ${loadavg()[0]!.toFixed(1)})`,
    );
  }
  const loaded = pooled(onProjecting);
  const loadedReplica = pooled(onReplica);
  // The same 500 commits/s with readers paced at PACED_READS_PER_S on the replica: the
  // latency a dashboard or CLI sees while the control plane is busy, without the closed-loop
  // readers' own saturation of the two cores in it (readers.ts).
  const paced = await latencyRun(
    nats,
    listener,
    LATENCY_SECONDS,
    4,
    apiReplicaUrl,
    "paced-",
    PACED_READS_PER_S,
  );
  say(
    `paced ${PACED_READS_PER_S} reads/s on the API replica: p50/p99 ${paced.readP50.toFixed(1)}/${paced.readP99.toFixed(1)} ms (server p99 ${paced.serverP99.toFixed(1)}, readers' loop delay p99 ${paced.loopDelayP99.toFixed(1)}, ${(paced.memoryShare * 100).toFixed(0)} % from memory, ${Math.round(paced.readsPerSecond)} reads/s) (load ${loadavg()[0]!.toFixed(1)})`,
  );

  const figures: Figure[] = [
    { name: "raw read: ordered consumer + JSON.parse", value: rawReadRate, unit: "events/s" },
    { name: "raw write: COPY into an event_index-shaped table", value: rawCopyRate, unit: "events/s" },
    {
      name: "live apply: projector process, batch = 1 tx",
      value: rate(EVENTS, liveMs),
      unit: "events/s",
      raw: rawLimit,
    },
    {
      name: "replay: rebuild + compare + swap",
      value: rebuilt.eventsPerSecond,
      unit: "events/s",
      raw: rawLimit,
      goal: 0.5,
    },
    {
      name: "replay: load phase alone",
      value: rate(rebuilt.events, rebuilt.timings.load),
      unit: "events/s",
      raw: rawLimit,
      goal: 0.5,
    },
    { name: "command → read model p50 (500 commits/s)", value: quiet.p50, unit: "ms" },
    { name: "command → read model p99 (500 commits/s)", value: quiet.p99, unit: "ms" },
    { name: "command → read model p99 (+4 API readers)", value: loaded.p99, unit: "ms" },
    { name: "API GET /clusters/:id p50 under load", value: loaded.readP50, unit: "ms" },
    { name: "API GET /clusters/:id p99 under load", value: loaded.readP99, unit: "ms" },
    { name: "API reads under load", value: loaded.readsPerSecond, unit: "req/s" },
    {
      name: "command → read model p99 (+4 readers on the API replica)",
      value: loadedReplica.p99,
      unit: "ms",
    },
    {
      name: "API replica (role api) GET /clusters/:id p50 under load",
      value: loadedReplica.readP50,
      unit: "ms",
    },
    {
      name: "API replica (role api) GET /clusters/:id p99 under load",
      value: loadedReplica.readP99,
      unit: "ms",
    },
    { name: "API replica reads under load", value: loadedReplica.readsPerSecond, unit: "req/s" },
    {
      name: `API replica GET /clusters/:id p50, ${PACED_READS_PER_S} reads/s paced, under load`,
      value: paced.readP50,
      unit: "ms",
    },
    {
      name: `API replica GET /clusters/:id p99, ${PACED_READS_PER_S} reads/s paced, under load`,
      value: paced.readP99,
      unit: "ms",
    },
  ];
  printFigures(
    `bench/projector  (${EVENTS.toLocaleString("en-US")} events in ${commits.toLocaleString("en-US")} commits; raw limit = min(raw read, raw COPY); replay goal ≥ 50,000 events/s: ${rebuilt.eventsPerSecond >= 50_000 ? "met" : "NOT met"}; p99 goal ≤ 25 ms: ${quiet.p99 <= 25 ? "met" : "NOT met"})`,
    figures,
  );
  const liveRate = rate(EVENTS, liveMs);
  const loadRate = rate(rebuilt.events, rebuilt.timings.load);
  result = {
    bench: "projector",
    params: {
      quick: QUICK,
      events: EVENTS,
      commits,
      latency_seconds: LATENCY_SECONDS,
      api_rounds: API_ROUNDS,
      paced_reads_per_s: PACED_READS_PER_S,
    },
    figures: {
      raw_read_per_s: rawReadRate,
      raw_copy_per_s: rawCopyRate,
      raw_limit_per_s: rawLimit,
      live_apply_per_s: liveRate,
      replay_per_s: rebuilt.eventsPerSecond,
      replay_load_per_s: loadRate,
      command_to_read_model_p50_ms: quiet.p50,
      command_to_read_model_p99_ms: quiet.p99,
      command_to_read_model_p99_ms_loaded: loaded.p99,
      api_read_p50_ms_loaded: loaded.readP50,
      api_read_p99_ms_loaded: loaded.readP99,
      api_reads_per_s_loaded: loaded.readsPerSecond,
      command_to_read_model_p99_ms_loaded_api_replica: loadedReplica.p99,
      api_replica_read_p50_ms_loaded: loadedReplica.readP50,
      api_replica_read_p99_ms_loaded: loadedReplica.readP99,
      api_replica_reads_per_s_loaded: loadedReplica.readsPerSecond,
      api_replica_read_p50_ms_paced: paced.readP50,
      api_replica_read_p99_ms_paced: paced.readP99,
      api_replica_reads_per_s_paced: paced.readsPerSecond,
      // Absent when the build measured sends no Server-Timing (BENCH_PROJECTOR_MAIN).
      ...finite({
        api_read_server_p99_ms_loaded: loaded.serverP99,
        api_replica_read_server_p99_ms_loaded: loadedReplica.serverP99,
        api_readers_loop_delay_p99_ms: Math.max(loaded.loopDelayP99, loadedReplica.loopDelayP99),
        api_replica_read_server_p99_ms_paced: paced.serverP99,
        api_paced_readers_loop_delay_p99_ms: paced.loopDelayP99,
      }),
      api_replica_reads_from_memory_share: loadedReplica.memoryShare,
    },
    ratios: {
      live_apply_over_raw: liveRate / rawLimit,
      replay_over_raw: rebuilt.eventsPerSecond / rawLimit,
      replay_load_over_raw: loadRate / rawLimit,
    },
    goals: {
      live_apply_ge_35pct_raw: liveRate / rawLimit >= 0.35,
      replay_ge_50pct_raw: rebuilt.eventsPerSecond / rawLimit >= 0.5,
      replay_ge_50000_per_s: rebuilt.eventsPerSecond >= 50_000,
      replay_equal_to_live: rebuilt.comparison.compared && rebuilt.comparison.equal,
      command_to_read_model_p99_le_25ms: quiet.p99 <= 25,
      api_read_p99_le_10ms_loaded: loaded.readP99 <= 10,
      api_replica_read_p99_le_10ms_loaded: loadedReplica.readP99 <= 10,
      api_replica_read_p99_le_10ms_paced: paced.readP99 <= 10,
    },
  };
} finally {
  await listener?.end().catch(() => {});
  for (const p of [apiReplica, projector]) {
    if (p && p.exitCode === null) {
      const exited = new Promise((r) => p.once("exit", r));
      p.kill("SIGTERM");
      await exited;
    }
  }
  await db.destroy();
  await nats.close();
  await server.dispose();
  await database.dispose();
  await postgres.stop();
}
if (result) printResult(result);

/** A projector process (`services/projector/src/main.ts`, as deployed) in `role`, its API on `port`. */
function startProjector(port: number, role: "all" | "api"): ChildProcess {
  // BENCH_PROJECTOR_MAIN: another build's entry point, for an A/B of the live apply.
  const main =
    process.env.BENCH_PROJECTOR_MAIN ??
    fileURLToPath(new URL("../../services/projector/src/main.ts", import.meta.url));
  return spawnProjector({ main, natsUrl: server.url, databaseUrl: database.url, port, role });
}

async function liveCheckpoint(d: typeof db): Promise<number | undefined> {
  const r = await d
    .withSchema(DEFAULT_SCHEMA)
    .selectFrom("projector_checkpoint")
    .select("last_sequence")
    .where("name", "=", "projector")
    .executeTakeFirst()
    .catch(() => undefined);
  return r?.last_sequence;
}

/** The entries whose value is a finite number. */
function finite(o: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => Number.isFinite(v)));
}

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? Number.NaN;
}

/**
 * Publishes commits at 500/s for `seconds`, timing each from just before `js.publish`
 * until the notification of the checkpoint that covers it (`listener` LISTENs).
 */
async function latencyRun(
  n: typeof nats,
  listener: pg.Client,
  seconds: number,
  readers: number,
  apiUrl: string,
  prefix: string,
  /** Reads/s in all, paced (readers.ts); 0: closed loop, each reader as fast as it can. */
  readRate = 0,
) {
  const total = seconds * 500;
  // Published, not yet seen; the ack gives the sequence, so an entry may arrive after
  // the notification that covers it: the highest checkpoint seen settles it then.
  const waiting: { seq: number; t0: number }[] = [];
  const latencies: number[] = [];
  let checkpoint = 0;
  let published = 0;
  let done = false;
  let allSeen: () => void = () => {};
  const settle = (now: number) => {
    while (waiting.length > 0 && waiting[0]!.seq <= checkpoint) latencies.push(now - waiting.shift()!.t0);
    if (done && waiting.length === 0) allSeen();
  };
  const onNotification = (m: pg.Notification) => {
    const now = performance.now();
    checkpoint = Math.max(checkpoint, Number(m.payload));
    settle(now);
  };
  listener.on("notification", onNotification);
  const seen = new Promise<void>((r) => (allSeen = r));
  // The API readers run in a process of their own (readers.ts): on this thread they would
  // delay the notification handler, and in a worker of this process they shared its heap,
  // its libuv pool and its scheduling with the publisher.
  const readerProcess =
    readers > 0
      ? fork(fileURLToPath(new URL("./readers.ts", import.meta.url)), {
          env: {
            ...process.env,
            READERS_API_URL: apiUrl,
            READERS: String(readers),
            READERS_RATE: String(readRate),
          },
          stdio: ["ignore", "inherit", "inherit", "ipc"],
        })
      : undefined;
  type Reads = { reads: number[]; server: number[]; fromMemory: number; loopDelayP99: number };
  let readersReady: () => void = () => {};
  const ready = new Promise<void>((r) => (readersReady = r));
  const readsDone = new Promise<Reads>((resolve, reject) => {
    if (!readerProcess) {
      readersReady();
      return resolve({ reads: [], server: [], fromMemory: 0, loopDelayP99: Number.NaN });
    }
    readerProcess
      .on("message", (m: Reads | { ready: true }) => ("ready" in m ? readersReady() : resolve(m)))
      .once("error", reject)
      .once("exit", (code) => reject(new Error(`the readers' process exited with ${code}`)));
  });
  readsDone.catch(() => readersReady());
  await ready;
  // The server's own figures over the run: its /metrics before (prom-client's loop-delay
  // histogram restarts at each scrape) and after.
  const before = readers > 0 ? await serverMetrics(apiUrl) : undefined;
  const t0 = performance.now();
  const log = benchLog(total, 100, `${prefix}${Date.now().toString(36)}`);
  for (const c of log) {
    // Paced: commit i goes at t0 + 2 ms · i.
    const due = t0 + published * 2;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const sent = performance.now();
    const ack = await n.js.publish(c.subject, c.body);
    waiting.push({ seq: ack.seq, t0: sent });
    published++;
    // Already covered by a notification that came before the ack: seen now (an upper bound).
    settle(performance.now());
  }
  const ms = performance.now() - t0;
  done = true;
  settle(performance.now());
  await seen;
  listener.off("notification", onNotification);
  readerProcess?.send("stop");
  const reads = await readsDone;
  const after = before ? await serverMetrics(apiUrl) : undefined;
  if (before && after) {
    const d = (k: string) => (after.cache[k] ?? 0) - (before.cache[k] ?? 0);
    say(
      `${prefix} server ${apiUrl}: event-loop delay p99 ${after.loopDelayP99Ms.toFixed(1)} ms; cluster cache over the run hit ${d("hit")}, miss ${d("miss")}, fill ${d("fill")}, reset ${d("reset")} (since start: ${JSON.stringify(after.cache)})`,
    );
  }
  return summary(latencies, reads, published, ms);
}

/** A process's event-loop delay p99 since its last scrape, and its cluster cache's counters. */
async function serverMetrics(url: string) {
  const text = await fetch(`${url}/metrics`).then(
    (r) => r.text(),
    () => "",
  );
  const lag = /^nodejs_eventloop_lag_p99_seconds(?:\{[^}]*\})? ([0-9.eE+-]+)$/m.exec(text);
  const cache: Record<string, number> = {};
  for (const m of text.matchAll(
    /^cairn_projector_cluster_cache_total\{[^}]*outcome="(\w+)"[^}]*\} ([0-9.eE+]+)$/gm,
  ))
    cache[m[1]!] = Number(m[2]);
  return { loopDelayP99Ms: lag ? Number(lag[1]) * 1000 : Number.NaN, cache };
}

type Run = ReturnType<typeof summary>;

function summary(
  latencies: number[],
  r: { reads: number[]; server: number[]; fromMemory: number; loopDelayP99: number },
  published: number,
  ms: number,
) {
  const { reads, server } = r;
  return {
    latencies,
    reads,
    server,
    fromMemory: r.fromMemory,
    loopDelayP99: r.loopDelayP99,
    /** The server's own time (Server-Timing `app`), p99. */
    serverP99: pct(server, 99),
    memoryShare: reads.length ? r.fromMemory / reads.length : 0,
    published,
    ms,
    p50: pct(latencies, 50),
    p99: pct(latencies, 99),
    rate: rate(published, ms),
    readP50: pct(reads, 50),
    readP99: pct(reads, 99),
    readsPerSecond: rate(reads.length, ms),
  };
}

/** Several runs as one: their latencies and reads together, over their summed time. */
function pooled(runs: readonly Run[]): Run {
  return summary(
    runs.flatMap((r) => r.latencies),
    {
      reads: runs.flatMap((r) => r.reads),
      server: runs.flatMap((r) => r.server),
      fromMemory: runs.reduce((n, r) => n + r.fromMemory, 0),
      loopDelayP99: Math.max(...runs.map((r) => r.loopDelayP99)),
    },
    runs.reduce((n, r) => n + r.published, 0),
    runs.reduce((n, r) => n + r.ms, 0),
  );
}
