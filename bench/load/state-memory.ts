/**
 * bench/load/state-memory: the bytes a session costs in the services' memory at issue 15's
 * size, measured in one process without the stack (the load bench's RSS moves ±8 MB with the
 * machine; this does not). For N sessions (BENCH_SESSIONS_TOTAL, default 20,000: 1,000
 * clusters × 20) it builds what the services keep, from events parsed from JSON as they
 * arrive off the wire (each session's strings its own, as in a service):
 *  - idle-detector's session index: every session folded with the session decider's
 *    `evolve` (requested → admitted → running), `{ state, traceparent, version }`;
 *  - a command handler's cached aggregate (libs/events command-handler `Cached`), for
 *    min(N, 10,000) sessions (its cache's bound): the state, the last commit's id and the
 *    aggregate's recent commits (three commits, ids from `commitIdFor`), its trace;
 *  - node-ops' workload folded with the workload decider (starting → started → running),
 *    as its command handler's cache and its moves map keep it.
 * Heap from `process.memoryUsage().heapUsed` after full collections, before and after, the
 * structures kept alive; raw limit beside it: the bytes of the events' JSON (what the
 * structures were parsed from).
 *
 * Run: node --expose-gc bench/load/state-memory.ts   (BENCH_SESSIONS_TOTAL, default 20000)
 */
import { commitIdFor, RecentCommits } from "../../libs/events/src/index.ts";
import { sessionDecider } from "../../services/idle-detector/src/session/decider.ts";
import { workloadDecider } from "../../services/node-ops/src/workload/workload.decider.ts";
import { printFigures, printResult } from "../lib/report.ts";

const N = Number(process.env.BENCH_SESSIONS_TOTAL ?? 20_000);
const CACHE = Math.min(N, 10_000);
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error("run with node --expose-gc");

const heap = () => {
  gc();
  gc();
  return process.memoryUsage().heapUsed;
};
const traceparent = (i: number) =>
  `00-${i.toString(16).padStart(32, "a")}-${i.toString(16).padStart(16, "b")}-01`;
const at = (i: number, s: number) => new Date(Date.UTC(2026, 11, 4, 8, 0, s, i % 1000)).toISOString();
const template = `{"image":"ghcr.io/acme/ide:1","cpu":"100m","memory":"256Mi","storage":"1Gi"}`;
let jsonBytes = 0;
const parse = <T>(text: string): T => {
  jsonBytes += text.length;
  return JSON.parse(text) as T;
};
const meta = (i: number, cmd: string) =>
  `{"commandId":"${cmd}-${i.toString(16).padStart(8, "0")}-7000-8000-000000000000","actor":"bench","traceparent":"${traceparent(i)}"}`;

function sessionEvents(i: number) {
  const id = `s-load-${Math.floor(i / 20)}-${i % 20}`;
  const agg = `{"type":"session","id":"${id}"}`;
  return [
    `{"type":"session.requested","version":1,"position":1,"time":"${at(i, 0)}","aggregate":${agg},"meta":${meta(i, "01a24006")},"data":{"sessionId":"${id}","user":"user-${Math.floor(i / 4)}","clusterId":"load-${Math.floor(i / 20)}","template":${template},"idleTimeoutSeconds":1800,"maxLifetimeSeconds":86400,"cause":"user"}}`,
    `{"type":"session.admitted","version":1,"position":2,"time":"${at(i, 1)}","aggregate":${agg},"meta":${meta(i, "01a24007")},"data":{"sessionId":"${id}","groups":[],"cause":"user"}}`,
    `{"type":"session.running","version":1,"position":3,"time":"${at(i, 9)}","aggregate":${agg},"meta":${meta(i, "01a24008")},"data":{"sessionId":"${id}","node":"i-${(i * 7919).toString(16).padStart(17, "0")}","pod":"session-${id}-5c886f4445-gqllh","cause":"user"}}`,
  ].map((t) => parse<Parameters<typeof sessionDecider.evolve>[1]>(t));
}
function workloadEvents(i: number) {
  const id = `s-load-${Math.floor(i / 20)}-${i % 20}`;
  const key = `"sessionId":"${id}","clusterId":"load-${Math.floor(i / 20)}"`;
  const agg = `{"type":"workload","id":"${id}"}`;
  return [
    `{"type":"workload.starting","version":1,"position":1,"time":"${at(i, 1)}","aggregate":${agg},"meta":${meta(i, "01a24009")},"data":{${key},"user":"user-${Math.floor(i / 4)}","template":${template},"attempt":1}}`,
    `{"type":"workload.started","version":1,"position":2,"time":"${at(i, 2)}","aggregate":${agg},"meta":${meta(i, "01a2400a")},"data":{${key},"attempt":1,"deployment":"session-${id}","volumeClaim":"session-${id}"}}`,
    `{"type":"workload.running","version":1,"position":3,"time":"${at(i, 9)}","aggregate":${agg},"meta":${meta(i, "01a2400b")},"data":{${key},"attempt":1,"node":"i-${(i * 7919).toString(16).padStart(17, "0")}","pod":"session-${id}-5c886f4445-gqllh"}}`,
  ].map((t) => parse<Parameters<typeof workloadDecider.evolve>[1]>(t));
}
/** A command handler's cached aggregate (command-handler.ts `Cached`), three commits. */
function cached<S>(state: S, i: number, type: "session" | "workload") {
  const ref = { type, id: `s-load-${Math.floor(i / 20)}-${i % 20}` };
  const ids = [1, 2, 3].map((k) => commitIdFor(`cause-${k}-${i}`, ref));
  const commitIds = new RecentCommits();
  for (const c of ids) commitIds.add(c);
  return {
    state,
    lastSequence: i * 3 + 3,
    lastCommitId: ids[2],
    version: 3,
    commitIds,
    lifecycleTraceparent: traceparent(i),
    snapshotVersion: 0,
  };
}

function measure<T>(build: () => T): { bytes: number; kept: T } {
  const before = heap();
  const kept = build();
  return { bytes: heap() - before, kept };
}

const index = measure(() => {
  const m = new Map<string, { state: unknown; traceparent: string | undefined; version: number }>();
  for (let i = 0; i < N; i++) {
    const events = sessionEvents(i);
    const state = events.reduce((s, e) => sessionDecider.evolve(s, e), sessionDecider.initialState());
    m.set(events[0]!.aggregate.id, { state, traceparent: events[0]!.meta.traceparent, version: 3 });
  }
  return m;
});
const jsonSessions = jsonBytes;
const sessionCache = measure(() => {
  const m = new Map<string, unknown>();
  for (let i = 0; i < CACHE; i++) {
    const events = sessionEvents(i);
    const state = events.reduce((s, e) => sessionDecider.evolve(s, e), sessionDecider.initialState());
    m.set(`session.${events[0]!.aggregate.id}`, cached(state, i, "session"));
  }
  return m;
});
const workloads = measure(() => {
  const m = new Map<string, unknown>();
  for (let i = 0; i < N; i++) {
    const events = workloadEvents(i);
    m.set(
      events[0]!.aggregate.id,
      events.reduce((s, e) => workloadDecider.evolve(s, e), workloadDecider.initialState()),
    );
  }
  return m;
});
const workloadCache = measure(() => {
  const m = new Map<string, unknown>();
  for (let i = 0; i < CACHE; i++) {
    const events = workloadEvents(i);
    const state = events.reduce((s, e) => workloadDecider.evolve(s, e), workloadDecider.initialState());
    m.set(`workload.${events[0]!.aggregate.id}`, cached(state, i, "workload"));
  }
  return m;
});
// Kept alive until every figure is taken.
const sizes = [index.kept.size, sessionCache.kept.size, workloads.kept.size, workloadCache.kept.size];

const MB = 1024 * 1024;
const idle = index.bytes + sessionCache.bytes;
const nodeOps = workloads.bytes + workloadCache.bytes;
printFigures(`${N} sessions (caches ${CACHE}); raw: the JSON of one session's three events`, [
  { name: "idle-detector index, per session", value: index.bytes / N, unit: "B", raw: jsonSessions / N },
  { name: "idle-detector command cache, per cached session", value: sessionCache.bytes / CACHE, unit: "B" },
  { name: "node-ops workload fold, per session", value: workloads.bytes / N, unit: "B" },
  { name: "node-ops command cache, per cached workload", value: workloadCache.bytes / CACHE, unit: "B" },
  { name: "idle-detector, all", value: idle / MB, unit: "MB" },
  { name: "node-ops, all", value: nodeOps / MB, unit: "MB" },
]);
printResult({
  bench: "load-state-memory",
  params: { sessions: N, cache: CACHE, kept: sizes.join("/") },
  figures: {
    index_bytes_per_session: index.bytes / N,
    session_cache_bytes_per_entry: sessionCache.bytes / CACHE,
    workload_bytes_per_session: workloads.bytes / N,
    workload_cache_bytes_per_entry: workloadCache.bytes / CACHE,
    idle_detector_mb: idle / MB,
    node_ops_mb: nodeOps / MB,
    json_bytes_per_session: jsonSessions / N,
  },
  ratios: {},
  goals: {},
});
