/**
 * Runs every bench under bench/ and prints a summary of their results (issue 16).
 *
 *   node bench/run.ts                 every bench at full size (`npm run bench`)
 *   node bench/run.ts --quick         every bench at its smoke size, BENCH_QUICK=1 (`npm run bench:smoke`, CI)
 *   --only sim,projector              just those
 *   --timeout-seconds N               per bench (default 180 quick, 3,600 full)
 *   --out results.json                the results, the machine and the date, for docs/benchmarks.md
 *
 * Exits 1 when a bench crashes, hangs past its timeout or prints no valid last line —
 * never because of a timing: goals not met are in the summary, not the exit code.
 */
import { writeFileSync } from "node:fs";
import { availableParallelism, cpus, loadavg, totalmem } from "node:os";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { type BenchSpec, killRunning, type Outcome, runBench, summary } from "./lib/runner.ts";

const here = (path: string) => fileURLToPath(new URL(path, import.meta.url));

/** Every bench, in the order they run. sessions/wake-main.ts is part 3 of sessions on its own: not repeated. */
const BENCHES: BenchSpec[] = [
  { name: "event-store", file: here("./event-store/main.ts") },
  { name: "sim", file: here("./sim/main.ts") },
  { name: "provisioner", file: here("./provisioner/main.ts") },
  { name: "node-ops", file: here("./node-ops/main.ts") },
  { name: "spot", file: here("./node-ops/spot.ts") },
  { name: "install", file: here("./install/main.ts") },
  { name: "projector", file: here("./projector/main.ts") },
  { name: "command-read", file: here("./command-read/main.ts") },
  { name: "growth", file: here("./growth/main.ts") },
  // One boot-poll look, DescribeInstanceStatus beside DescribeInstances (docs/provisioner.md): no goals.
  { name: "provisioner-boot-look", file: here("./provisioner/boot-look.ts") },
  // A 500-node cluster's commits read back, parseCommit beside parseCommitTrusted (docs/architecture.md): no goals.
  { name: "provisioner-read-back", file: here("./provisioner/read-back.ts") },
  // Three diagnostics of the replay (docs/projector.md): no goals, run so they never rot.
  { name: "prepare", file: here("./projector/prepare.ts") },
  { name: "replay-ab", file: here("./projector/replay-ab.ts") },
  { name: "replay-profile", file: here("./projector/replay-profile.ts") },
  // The live apply of two builds, alternated batch by batch in process (docs/projector.md): no goals.
  { name: "live-ab", file: here("./projector/live-ab.ts") },
  // The live batch's exact statements replayed beside raw COPY: the write shape's ceiling (docs/projector.md).
  { name: "write-shape", file: here("./projector/write-shape.ts") },
  // Issue 16's "replay flat as the log grows": 100,000 then 1,000,000 events.
  { name: "replay-growth", file: here("./projector/replay-growth.ts") },
  {
    name: "sessions",
    file: here("./sessions/main.ts"),
    // Its own quick size (10,000 sessions, 2 rounds, 5 wakes) takes 1–2 minutes here:
    // smaller still for the smoke run, through the knobs it reads.
    smokeEnv: { BENCH_SESSIONS: "2000", BENCH_ROUNDS: "1", BENCH_SECONDS: "1", BENCH_WAKES: "2" },
  },
  {
    name: "load",
    file: here("./load/main.ts"),
    // Two stacks booted and filled (5 and 10 clusters) take minutes at the quick size: the
    // smoke run keeps it to two tiny sizes and a few seconds of traffic, so it never rots.
    smokeEnv: { BENCH_CLUSTERS: "1,2", BENCH_SESSIONS: "5", BENCH_SECONDS: "1", BENCH_IDLE_SECONDS: "1" },
  },
];

const { values: args } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    only: { type: "string" },
    "timeout-seconds": { type: "string" },
    out: { type: "string" },
  },
});
const quick = args.quick;
// Quick runs take seconds on a quiet machine; the margin is for a loaded one (a slow bench is not a hang).
const timeoutMs = Number(args["timeout-seconds"] ?? (quick ? 180 : 3_600)) * 1000;
const only = args.only?.split(",").map((s) => s.trim());
const unknown = only?.filter((n) => !BENCHES.some((b) => b.name === n)) ?? [];
if (unknown.length > 0) {
  console.error(`unknown bench(es): ${unknown.join(", ")}; known: ${BENCHES.map((b) => b.name).join(", ")}`);
  process.exit(2);
}
const chosen = only ? BENCHES.filter((b) => only.includes(b.name)) : BENCHES;

// Each bench runs in its own process group, out of reach of a Ctrl-C: take it down with us.
for (const signal of ["SIGINT", "SIGTERM"] as const)
  process.on(signal, () => {
    killRunning();
    process.exit(130);
  });

const startedAt = new Date().toISOString();
const machine = {
  cores: availableParallelism(),
  cpu: cpus()[0]?.model ?? "unknown",
  memoryGiB: Math.round(totalmem() / 2 ** 30),
  loadAtStart: loadavg().map((l) => Number(l.toFixed(2))),
  node: process.version,
};
console.log(
  `bench/run: ${chosen.length} bench(es), ${quick ? "quick (BENCH_QUICK=1)" : "full size"}, ${machine.cores} cores, load ${machine.loadAtStart.join(" ")}, ${startedAt}`,
);
const outcomes: Outcome[] = [];
for (const spec of chosen) {
  console.log(`\n── ${spec.name} ${"─".repeat(Math.max(0, 70 - spec.name.length))}`);
  const outcome = await runBench(spec, { quick, timeoutMs });
  console.log(
    `── ${spec.name}: ${outcome.ok ? "ok" : `FAILED (${outcome.reason})`} in ${(outcome.ms / 1000).toFixed(1)} s`,
  );
  outcomes.push(outcome);
}
console.log(summary(outcomes, quick));
if (args.out)
  writeFileSync(
    args.out,
    `${JSON.stringify({ startedAt, quick, machine, loadAtEnd: loadavg().map((l) => Number(l.toFixed(2))), outcomes }, null, 2)}\n`,
  );
process.exitCode = outcomes.every((o) => o.ok) ? 0 : 1;
