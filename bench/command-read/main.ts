/**
 * bench/command-read: command → read model, measured with real commands (issue 16):
 *
 *   POST /commands (the API validates and publishes to CMD) → the owning service decides
 *   (the provisioner loads the aggregate, decides, appends the commit to EVT) → the
 *   projector applies it (one transaction with its checkpoint) → the read model is visible
 *   through the API (the command's row arrives on `GET /events/stream?resource=commands`,
 *   which the API sends once the transaction that wrote it has committed; no polling).
 *
 * The stack is test/harness/stack.ts (real processes from each service's main.ts, as
 * `cairn up` runs them) with the two services on this path: the provisioner (the owner of
 * `cluster.*` commands) and the projector (API and read models).
 *
 * The command is `cluster.scale` of a cluster that does not exist: the provisioner's
 * decision is a rejection (`not-found`), which it commits as a `cluster.rejected` event like
 * any decision, and the projector marks the command rejected. It is the whole path of a
 * command with nothing after it (a scale of a real cluster would start EC2 work whose own
 * commits would load the machine at 500/s).
 *
 * Beside it, the raw floor measured in the same run: the bare commit → read-model path,
 * the same rejection committed straight to EVT (no API, no decision) at the same rate,
 * timed from its due time to the same stream event. And the API's own hop: POST /commands
 * until its 202. Every latency runs from the send's due time (open loop at the rate, at
 * most 256 in flight), so a send that waited for a slot is not flattered.
 *
 * Beside the latencies, each process's CPU per command over each phase (/proc: utime +
 * stime), which a shared machine blurs far less than it blurs a latency: the provisioner,
 * the projector (API and read models), nats-server, the Postgres backends of the stack's
 * database, and the bench itself (its client and the stream reader's thread).
 *
 * Goal: command → read model p99 ≤ 25 ms at 500 commands/s.
 *
 * Run: node bench/command-read/main.ts (BENCH_SECONDS per phase, default 10; BENCH_RATE,
 * default 500/s; BENCH_QUICK=1: 2 s, a smoke run; BENCH_SERVICE_NODE_OPTIONS, Node flags for
 * the services, e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof`; BENCH_API_REPLICA=1: the POSTs and
 * the live stream go to a second projector process in role `api` (CAIRN_PROJECTOR_ROLE), so
 * the projecting one only projects — its CPU counts with the projector's)
 */
import { randomUUID } from "node:crypto";
import { Agent, request } from "node:http";
import { loadavg } from "node:os";
import { Worker } from "node:worker_threads";
import { eventSubject } from "@cairn/events";
import { freePort } from "@cairn/testkit";
import { ServiceProcess, type Stack, startStack } from "../../test/harness/stack.ts";
import { childrenMatching, cpuMeter, type Group, pidsMatching } from "../lib/proc.ts";
import { type Figure, printFigures, printResult, QUICK } from "../lib/report.ts";

const SECONDS = Number(process.env.BENCH_SECONDS ?? (QUICK ? 2 : 10));
const RATE = Number(process.env.BENCH_RATE ?? 500);
const say = (line: string) => process.stderr.write(`bench/command-read: ${line}\n`);

/**
 * Reads the API's live stream of command rows in a thread of its own (on the bench's thread
 * its parsing would delay, and be delayed by, the paced sends) and posts each row's command
 * id with the time it arrived (`performance.timeOrigin + now`: comparable across threads).
 */
const STREAM_WORKER = `
const { parentPort, workerData } = require("node:worker_threads");
const now = () => performance.timeOrigin + performance.now();
(async () => {
  const res = await fetch(workerData.url, { headers: { accept: "text/event-stream" } });
  parentPort.postMessage({ open: true });
  const decoder = new TextDecoder();
  let text = "";
  for await (const chunk of res.body) {
    const at = now();
    text += decoder.decode(chunk, { stream: true });
    let end;
    while ((end = text.indexOf("\\n\\n")) >= 0) {
      const block = text.slice(0, end);
      text = text.slice(end + 2);
      const data = block.split("\\n").find((l) => l.startsWith("data: "));
      if (!data) continue;
      const change = JSON.parse(data.slice(6));
      parentPort.postMessage({ id: change.id, status: change.data && change.data.status, at });
    }
  }
})().catch((err) => parentPort.postMessage({ error: String(err) }));
`;

const wall = () => performance.timeOrigin + performance.now();

function pct(xs: readonly number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? Number.NaN;
}

/** The commit the provisioner makes of a refused scale: a `cluster.rejected` on a fresh aggregate. */
function rejectionCommit(clusterId: string, commandId: string) {
  const time = new Date().toISOString();
  return JSON.stringify({
    commitId: randomUUID(),
    aggregate: { type: "cluster", id: clusterId },
    events: [
      {
        id: randomUUID(),
        type: "cluster.rejected",
        version: 1,
        aggregate: { type: "cluster", id: clusterId },
        position: 1,
        time,
        data: {
          commandId,
          commandType: "cluster.scale",
          code: "not-found",
          reason: `cluster ${clusterId} does not exist`,
        },
        meta: { commandId, causationId: commandId, correlationId: commandId, actor: "bench" },
      },
    ],
  });
}

/** Sends in flight at most: past it a send waits, and its wait counts in its latency. */
const MAX_IN_FLIGHT = 256;

/**
 * Sends `count` at `RATE`/s, open loop (each at its due time, whether or not the previous
 * answered, up to MAX_IN_FLIGHT), and returns each one's latency from its DUE time (so a
 * send that had to wait is not flattered) until its row was on the stream. A send that
 * fails is counted, not timed.
 */
async function paced(
  seen: Map<string, number>,
  waiters: Map<string, (at: number) => void>,
  count: number,
  send: (i: number) => Promise<string>,
): Promise<{ latencies: number[]; sendMs: number[]; failed: number }> {
  const latencies: number[] = [];
  const sendMs: number[] = [];
  let failed = 0;
  const inFlight = new Set<Promise<void>>();
  const t0 = performance.now();
  const wall0 = wall();
  for (let i = 0; i < count; i++) {
    const dueIn = (i * 1000) / RATE;
    const wait = t0 + dueIn - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    while (inFlight.size >= MAX_IN_FLIGHT) await Promise.race(inFlight);
    const due = wall0 + dueIn;
    const one = (async () => {
      let id: string;
      try {
        id = await send(i);
      } catch {
        failed++;
        return;
      }
      sendMs.push(wall() - due);
      const at = seen.get(id) ?? (await new Promise<number>((r) => waiters.set(id, r)));
      seen.delete(id);
      latencies.push(at - due);
    })();
    inFlight.add(one);
    void one.finally(() => inFlight.delete(one));
  }
  await Promise.all(inFlight);
  return { latencies, sendMs, failed };
}

const API_REPLICA = process.env.BENCH_API_REPLICA === "1";

let stack: Stack | undefined;
let apiReplica: ServiceProcess | undefined;
let stream: Worker | undefined;
let result: Parameters<typeof printResult>[0] | undefined;
try {
  say("starting the stack (provisioner, projector)");
  stack = await startStack({
    replicas: { provisioner: 1, projector: 1, installer: 0, "node-ops": 0, "idle-detector": 0 },
    logLevel: "warn",
    // Node flags for the services (e.g. --cpu-prof), as bench/load takes them.
    ...(process.env.BENCH_SERVICE_NODE_OPTIONS
      ? { env: { NODE_OPTIONS: process.env.BENCH_SERVICE_NODE_OPTIONS } }
      : {}),
  });
  let api = stack.api();
  if (API_REPLICA) {
    // As the stack's projector, but serving the API only, on a port of its own.
    const first = stack.proc("projector");
    const port = await freePort();
    apiReplica = new ServiceProcess(
      "projector",
      1,
      { ...first.env, CAIRN_API_PORT: String(port), CAIRN_PROJECTOR_ROLE: "api" },
      stack.logDir,
    );
    await apiReplica.start();
    api = `http://127.0.0.1:${port}`;
    say(`the API replica (role api) serves the POSTs and the live stream: ${api}`);
  }
  const seen = new Map<string, number>();
  const waiters = new Map<string, (at: number) => void>();
  stream = new Worker(STREAM_WORKER, {
    eval: true,
    workerData: { url: `${api}/events/stream?resource=commands` },
  });
  await new Promise<void>((resolve, reject) => {
    stream!.on("message", (m: { open?: boolean; id?: string; at?: number; error?: string }) => {
      if (m.open) return resolve();
      if (m.error) return reject(new Error(`the live stream failed: ${m.error}`));
      if (m.id === undefined || m.at === undefined) return;
      const w = waiters.get(m.id);
      if (w) {
        waiters.delete(m.id);
        w(m.at);
      } else seen.set(m.id, m.at);
    });
    stream!.once("error", reject);
  });
  const s = stack;
  const run = Date.now().toString(36);
  const command = (i: number, phase: string) => ({
    type: "cluster.scale",
    data: { clusterId: `${phase}-${run}-${i}`, pool: "workers", count: 1 },
  });
  const floorSend = async (i: number, phase: string) => {
    const commandId = randomUUID();
    const clusterId = `${phase}-${run}-${i}`;
    await s.nats.js.publish(
      eventSubject({ type: "cluster", id: clusterId }),
      rejectionCommit(clusterId, commandId),
    );
    return commandId;
  };
  // node:http on a keep-alive pool rather than fetch (the harness's `post`): fetch cost this
  // process ~0.5 ms of CPU per POST, a quarter of a core at 500/s on the same two cores as
  // the stack it measures.
  const apiUrl = new URL(api);
  const agent = new Agent({ keepAlive: true, maxSockets: MAX_IN_FLIGHT });
  const post = (body: string) =>
    new Promise<string>((resolve, reject) => {
      const req = request(
        {
          agent,
          host: apiUrl.hostname,
          port: apiUrl.port,
          path: "/commands",
          method: "POST",
          headers: { "content-type": "application/json", "content-length": Buffer.byteLength(body) },
        },
        (res) => {
          let text = "";
          res.setEncoding("utf8");
          res.on("data", (d: string) => (text += d));
          res.on("end", () =>
            res.statusCode === 202
              ? resolve((JSON.parse(text) as { commandId: string }).commandId)
              : reject(new Error(`POST /commands answered ${res.statusCode}: ${text}`)),
          );
          res.on("error", reject);
        },
      );
      req.on("error", reject);
      req.end(body);
    });
  const commandSend = (i: number, phase: string) =>
    post(JSON.stringify({ meta: { actor: "bench" }, ...command(i, phase) }));

  // Warm up both paths (JIT, connections, plans) before anything is timed.
  await paced(seen, waiters, Math.min(200, RATE), (i) => floorSend(i, "warm-raw"));
  await paced(seen, waiters, Math.min(200, RATE), (i) => commandSend(i, "warm-cmd"));

  const dbName = new URL(s.databaseUrl).pathname.slice(1);
  const pidsOf = (service: "provisioner" | "projector") => () =>
    s.of(service).flatMap((p) => (p.pid !== undefined ? [p.pid] : []));
  const groups: Group[] = [
    { name: "provisioner", pids: pidsOf("provisioner") },
    {
      name: "projector",
      pids: () => [...pidsOf("projector")(), ...(apiReplica?.pid !== undefined ? [apiReplica.pid] : [])],
    },
    { name: "nats", pids: () => childrenMatching(/nats-server/) },
    { name: "postgres", pids: () => pidsMatching(new RegExp(`^postgres: .* ${dbName} `)) },
    { name: "bench", self: true },
  ];
  /** µs of CPU per operation, per process group, and their sum. */
  const perOp = (ms: Record<string, number>, n: number) => {
    const out: Record<string, number> = {};
    let total = 0;
    for (const [k, v] of Object.entries(ms)) {
      out[k] = (v * 1000) / n;
      total += v;
    }
    out.total = (total * 1000) / n;
    return out;
  };

  const count = SECONDS * RATE;
  say(`raw floor: ${count} commits straight to EVT at ${RATE}/s`);
  const load0 = loadavg()[0]!;
  let meter = cpuMeter(groups);
  const floor = await paced(seen, waiters, count, (i) => floorSend(i, "raw"));
  const floorCpu = perOp(meter.stop(), count);
  say(`commands: ${count} POST /commands at ${RATE}/s`);
  meter = cpuMeter(groups);
  const real = await paced(seen, waiters, count, (i) => commandSend(i, "cmd"));
  const realCpu = perOp(meter.stop(), count);
  const load1 = loadavg()[0]!;
  const cpuLine = (c: Record<string, number>) =>
    Object.entries(c)
      .map(([k, v]) => `${k} ${Math.round(v)}`)
      .join(" · ");
  say(`CPU per command, µs: ${cpuLine(realCpu)}`);
  say(`CPU per raw commit, µs: ${cpuLine(floorCpu)}`);

  const figures: Figure[] = [
    {
      name: "command → read model p50 (API → decision → read model)",
      value: pct(real.latencies, 50),
      unit: "ms",
    },
    { name: "command → read model p99", value: pct(real.latencies, 99), unit: "ms" },
    { name: "  of which POST /commands → 202, p50", value: pct(real.sendMs, 50), unit: "ms" },
    { name: "  of which POST /commands → 202, p99", value: pct(real.sendMs, 99), unit: "ms" },
    { name: "raw floor: commit → read model p50", value: pct(floor.latencies, 50), unit: "ms" },
    { name: "raw floor: commit → read model p99", value: pct(floor.latencies, 99), unit: "ms" },
    { name: "commands that failed (POST refused or reset)", value: real.failed, unit: "" },
    ...Object.entries(realCpu).map(([k, v]) => ({ name: `CPU per command: ${k}`, value: v, unit: "µs" })),
    ...Object.entries(floorCpu).map(([k, v]) => ({ name: `CPU per raw commit: ${k}`, value: v, unit: "µs" })),
  ];
  printFigures(
    `bench/command-read  (${count.toLocaleString("en-US")} commands and as many raw commits at ${RATE}/s; load average ${load0.toFixed(1)} → ${load1.toFixed(1)})`,
    figures,
  );
  result = {
    bench: "command-read",
    params: { quick: QUICK, seconds: SECONDS, rate: RATE, commands: count, api_replica: API_REPLICA ? 1 : 0 },
    figures: {
      command_to_read_model_p50_ms: pct(real.latencies, 50),
      command_to_read_model_p99_ms: pct(real.latencies, 99),
      post_command_p50_ms: pct(real.sendMs, 50),
      post_command_p99_ms: pct(real.sendMs, 99),
      raw_commit_to_read_model_p50_ms: pct(floor.latencies, 50),
      raw_commit_to_read_model_p99_ms: pct(floor.latencies, 99),
      commands_failed: real.failed,
      raw_commits_failed: floor.failed,
      load_average: load1,
      ...Object.fromEntries(Object.entries(realCpu).map(([k, v]) => [`cpu_us_per_command_${k}`, v])),
      ...Object.fromEntries(Object.entries(floorCpu).map(([k, v]) => [`cpu_us_per_raw_commit_${k}`, v])),
    },
    ratios: {
      command_over_raw_p99: pct(real.latencies, 99) / pct(floor.latencies, 99),
    },
    goals: {
      command_to_read_model_p99_le_25ms: pct(real.latencies, 99) <= 25 && real.failed === 0,
    },
  };
} finally {
  await stream?.terminate();
  await apiReplica?.stop();
  await stack?.stop();
}
if (result) printResult(result);
