/**
 * bench/projector/replay-ab: replay alone, in this process, over one log — the trusted
 * read (`parseCommitTrusted`, the default) against the validating one (`parseCommit`),
 * alternated so that both see the same machine. No live projection, no comparison
 * with live (`checkOnly` with an empty live schema): the load phase is the figure.
 * Never asserted: it prints.
 *
 * Its last line: the median load rate of each, and trusted over validating; no goals.
 *
 * Run: node bench/projector/replay-ab.ts --events 200000 --rounds 2   (BENCH_QUICK=1: 20,000
 * events, one round)
 */
import { parseArgs } from "node:util";
import { connectNats, ensureStreams } from "@cairn/events";
import { migrateToLatest, openDatabase, replay } from "@cairn/projector";
import { createDatabase, findPostgres, startNatsServer } from "@cairn/testkit";
import { printResult, QUICK } from "../lib/report.ts";
import { publishBenchLog } from "./log.ts";

const { values: args } = parseArgs({
  options: {
    events: { type: "string", default: QUICK ? "20000" : "200000" },
    rounds: { type: "string", default: QUICK ? "1" : "2" },
  },
});
const loads: Record<"trusted" | "validating", number[]> = { trusted: [], validating: [] };
const EVENTS = Number(args.events);
const server = await startNatsServer();
const nats = await connectNats(server.url, { name: "bench-replay-ab" });
await ensureStreams(nats.jsm);
const postgres = await findPostgres();
const database = await createDatabase(postgres, "bench_replay_ab");
const db = openDatabase(database.url, { max: 2 });
try {
  await publishBenchLog(nats.js, EVENTS);
  await migrateToLatest(db, "cairn");
  for (let round = 0; round < Number(args.rounds); round++) {
    for (const trustLog of [false, true]) {
      const r = await replay({ databaseUrl: database.url, nats, trustLog, checkOnly: true });
      const load = Math.round((r.events * 1000) / r.timings.load);
      loads[trustLog ? "trusted" : "validating"].push(load);
      process.stdout.write(
        `${trustLog ? "trusted   " : "validating"} load ${load} events/s, all in ${r.eventsPerSecond} events/s ${JSON.stringify(r.timings.loadSplit)}\n`,
      );
    }
  }
} finally {
  await db.destroy();
  await nats.close();
  await server.dispose();
  await database.dispose();
  await postgres.stop();
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN;
printResult({
  bench: "replay-ab",
  params: { quick: QUICK, events: EVENTS, rounds: Number(args.rounds) },
  figures: {
    trusted_load_per_s: median(loads.trusted),
    validating_load_per_s: median(loads.validating),
  },
  ratios: { trusted_over_validating: median(loads.trusted) / median(loads.validating) },
  goals: {},
});
