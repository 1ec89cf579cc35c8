/**
 * bench/sessions part 3 on its own: the wake overhead over the sim's pod-ready latency,
 * and where a wake's time goes (./wake.ts). Prints the table, then one machine-readable
 * line: `{ bench: "sessions-wake", figures, ratios, goals, met }`.
 *
 * Run: npm run bench:sessions:wake -w @cairn/bench
 *   BENCH_WAKES (20; 5 with BENCH_QUICK=1), BENCH_WAKE_TIME_SCALE (20),
 *   BENCH_WAKE_POLL_MS, BENCH_WAKE_POD_WATCH=0 (node-ops' polls alone, to compare)
 */
import { printFigures, printResult } from "../lib/report.ts";
import { WAKE_OVERHEAD_GOAL_MS, wakeBench, wakeFigures, wakeRows, wakeTitle } from "./wake.ts";

const QUICK = process.env.BENCH_QUICK === "1";
const WAKES = Number(process.env.BENCH_WAKES ?? (QUICK ? 5 : 20));

const wake = await wakeBench({
  wakes: WAKES,
  quick: QUICK,
  say: (line) => process.stderr.write(`bench/sessions wake: ${line}\n`),
});
printFigures(`bench/sessions — ${wakeTitle(wake)}`, wakeRows(wake));
const figures = wakeFigures(wake);
const ratios = { wake_over_floor: wake.wake.p50 / wake.floor.p50 };
const goals = { wake_overhead_le_100ms: wake.overhead.p50 <= WAKE_OVERHEAD_GOAL_MS };
console.log(`\ngoals: ${JSON.stringify(goals)}`);
printResult({ bench: "sessions-wake", params: { quick: QUICK }, figures, ratios, goals });
