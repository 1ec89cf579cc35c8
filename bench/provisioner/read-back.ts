/**
 * bench/provisioner/read-back (issue 16): what a reactor pays to read a 500-node
 * cluster's commits back — `parseCommit` (every event's data against its zod schema, as
 * for a commit of another process) against `parseCommitTrusted` (the envelopes only, as
 * for one this process appended: own-commits.ts). The commits are a real 500-node launch's,
 * made by the provisioner against the sim at zero latency; CPU per pass over all of them,
 * the two alternated. A diagnostic of docs/benchmarks.md, no goal.
 *
 * Run: node bench/provisioner/read-back.ts   (BENCH_NODES=500 BENCH_ROUNDS=8 BENCH_PASSES=10)
 */
import { loadavg } from "node:os";
import { CommandBus, catalogue, exampleClusterCreate, Headers } from "@cairn/events";
import { startJetStream } from "@cairn/events/testing";
import { startProvisioner } from "@cairn/provisioner";
import { SIM_CREDENTIALS, startSim, ZERO_LATENCIES } from "@cairn/sim";
import { printResult, QUICK } from "../lib/report.ts";

const NODES = Number(process.env.BENCH_NODES ?? (QUICK ? 50 : 500));
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? (QUICK ? 2 : 8));
const PASSES = Number(process.env.BENCH_PASSES ?? (QUICK ? 2 : 10));

const js = await startJetStream();
const sim = await startSim({ seed: 1, latencies: ZERO_LATENCIES });
const provisioner = await startProvisioner({
  nats: js.nats,
  ec2: { endpoint: sim.url, credentials: SIM_CREDENTIALS },
  pollMs: 5,
  maxPollMs: 50,
});
const id = `rb-${NODES}`;
const texts: { subject: string; text: string }[] = [];
const ready = new Promise<void>((resolve) => {
  const sub = js.nats.nc.subscribe(`evt.cluster.${id}`, {
    callback: (_e, m) => {
      texts.push({ subject: m.subject, text: new TextDecoder().decode(m.data) });
      if (m.headers?.get(Headers.eventTypes)?.split(",").includes("cluster.instances-ready")) {
        sub.unsubscribe();
        resolve();
      }
    },
  });
});
const c = exampleClusterCreate(id, "bench");
await new CommandBus({ js: js.nats.js, catalogue }).send({
  ...c,
  data: { ...c.data, pools: [{ ...c.data.pools[0]!, capacityType: "on-demand" as const, count: NODES - 1 }] },
});
await ready;
await provisioner.stop();
await sim.stop();
await js.dispose();

const events = texts.reduce((n, t) => n + (JSON.parse(t.text) as { events: unknown[] }).events.length, 0);
const pass = (trusted: boolean) => {
  const t0 = process.cpuUsage();
  for (let p = 0; p < PASSES; p++)
    for (const { subject, text } of texts) {
      const raw = JSON.parse(text);
      if (trusted) catalogue.parseCommitTrusted(raw, { subject });
      else catalogue.parseCommit(raw, { subject });
    }
  const d = process.cpuUsage(t0);
  return (d.user + d.system) / 1000 / PASSES;
};
const full: number[] = [];
const trusted: number[] = [];
const load0 = loadavg()[0]!;
for (let r = 0; r < ROUNDS; r++) {
  if (r % 2) {
    trusted.push(pass(true));
    full.push(pass(false));
  } else {
    full.push(pass(false));
    trusted.push(pass(true));
  }
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
console.log(
  `read-back: ${NODES} nodes, ${texts.length} commits, ${events} events; load ${load0.toFixed(1)}..${loadavg()[0]!.toFixed(1)}`,
);
console.log(
  `  JSON.parse + parseCommit (full):       ${median(full).toFixed(1)} ms CPU per pass  (${full.map((x) => x.toFixed(1)).join(", ")})`,
);
console.log(
  `  JSON.parse + parseCommitTrusted (own): ${median(trusted).toFixed(1)} ms CPU per pass  (${trusted.map((x) => x.toFixed(1)).join(", ")})`,
);
printResult({
  bench: "provisioner-read-back",
  params: { quick: QUICK, nodes: NODES, rounds: ROUNDS, passes: PASSES },
  figures: { commits: texts.length, events, full_ms: median(full), trusted_ms: median(trusted) },
  ratios: { trusted_over_full: median(trusted) / median(full) },
  goals: {},
});
