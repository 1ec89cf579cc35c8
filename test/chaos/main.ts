/**
 * `npm run chaos -- --minutes N --seed S` (or `--seconds N`): the long chaos run
 * (docs/chaos.md). Progress on stderr, the table of checks on stdout; exit code 1 when a
 * check failed. Without `--seed`, a random one (printed, to reproduce the run).
 */
import { parseArgs } from "node:util";
import { formatReport, runChaos } from "./chaos.ts";

const { values } = parseArgs({
  options: {
    minutes: { type: "string" },
    seconds: { type: "string" },
    seed: { type: "string" },
    clusters: { type: "string" },
    sessions: { type: "string" },
  },
});
const seconds = values.seconds ? Number(values.seconds) : Number(values.minutes ?? "5") * 60;
const seed = values.seed ? Number(values.seed) : Math.floor(Math.random() * 2 ** 31);
if (!(seconds > 0) || !Number.isInteger(seed)) {
  console.error("usage: npm run chaos -- --minutes N [--seed S] [--clusters C] [--sessions P]");
  process.exit(2);
}
console.error(`chaos: seed ${seed}, ${seconds} s`);
const report = await runChaos({
  seconds,
  seed,
  concurrentClusters: values.clusters ? Number(values.clusters) : Math.min(4, 2 + Math.floor(seconds / 300)),
  sessionsPerCluster: values.sessions ? Number(values.sessions) : 2,
  log: (line) => console.error(line),
});
console.log(formatReport(report));
process.exit(report.ok ? 0 : 1);
