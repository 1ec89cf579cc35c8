/**
 * bench/provisioner/boot-look (issue 16): what one boot-poll look at 100 running instances
 * costs, through the real SDK client against the sim in this process (so the CPU is the
 * client's and the sim's answer together, as they share this machine's cores): the look as
 * it is (`Compute.states`: DescribeInstanceStatus) beside the look it replaced (`describe`:
 * DescribeInstances with the instance-id and instance-state-name filters), alternated in
 * rounds, CPU per call (`process.cpuUsage`) and the answer's bytes. No goal: a diagnostic
 * of docs/provisioner.md "What a 500-node cluster costs per instance".
 *
 * Run: node bench/provisioner/boot-look.ts   (BENCH_INSTANCES=100 BENCH_CALLS=40 BENCH_ROUNDS=8)
 */
import { loadavg } from "node:os";
import { createEc2Compute, type InstanceState, launchBatchToken } from "@cairn/provisioner";
import { SIM_CREDENTIALS, startSim, ZERO_LATENCIES } from "@cairn/sim";
import { printFigures, printResult, QUICK } from "../lib/report.ts";

const N = Number(process.env.BENCH_INSTANCES ?? 100);
const CALLS = Number(process.env.BENCH_CALLS ?? (QUICK ? 5 : 40));
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? (QUICK ? 2 : 8));
const region = "eu-west-1";
const NOT_PENDING: InstanceState[] = ["running", "shutting-down", "stopping", "stopped", "terminated"];

const sim = await startSim({ seed: 1, latencies: ZERO_LATENCIES });
const ec2 = createEc2Compute({ endpoint: sim.url, credentials: SIM_CREDENTIALS });
const launched = await ec2.launchBatch({
  region,
  clusterId: "look",
  pool: "agents",
  slot: 1000,
  count: N,
  attempt: 0,
  role: "agent",
  instanceType: "t3.medium",
  capacityType: "on-demand",
  imageId: "ami-0ca1a00000000c0de",
  clientToken: launchBatchToken("look", 1000, 0, N),
});
const ids = launched.map((i) => i.instanceId);
// Zero latencies: every instance runs at once.
const running = await ec2.states(region, ids, { states: ["running"] });
if (running.length !== N) throw new Error(`expected ${N} running, saw ${running.length}`);

const cpuPerCall = async (f: () => Promise<unknown>) => {
  const c0 = process.cpuUsage();
  for (let i = 0; i < CALLS; i++) await f();
  const c = process.cpuUsage(c0);
  return (c.user + c.system) / 1000 / CALLS;
};
const look = {
  states: () => ec2.states(region, ids, { states: NOT_PENDING }),
  describe: () => ec2.describe(region, ids, { states: NOT_PENDING }),
};
// Warm both paths (JIT) before measuring.
await cpuPerCall(look.states);
await cpuPerCall(look.describe);
const rounds: { states: number; describe: number }[] = [];
for (let r = 0; r < ROUNDS; r++) {
  const first = r % 2 === 0 ? "states" : "describe";
  const second = first === "states" ? "describe" : "states";
  const a = await cpuPerCall(look[first]);
  const b = await cpuPerCall(look[second]);
  rounds.push({ [first]: a, [second]: b } as { states: number; describe: number });
}
const bytes = async (action: string) => {
  const body = new URLSearchParams({ Action: action, Version: "2016-11-15", IncludeAllInstances: "true" });
  for (const [i, id] of ids.entries()) body.set(`InstanceId.${i + 1}`, id);
  const res = await fetch(sim.url, {
    method: "POST",
    headers: {
      "content-type": "application/x-www-form-urlencoded",
      authorization: `AWS4-HMAC-SHA256 Credential=${SIM_CREDENTIALS.accessKeyId}/20260101/${region}/ec2/aws4_request`,
    },
    body,
  });
  return (await res.arrayBuffer()).byteLength;
};
const statusBytes = await bytes("DescribeInstanceStatus");
const describeBytes = await bytes("DescribeInstances");
await sim.stop();

const median = (xs: number[]) => {
  const s = [...xs].sort((x, y) => x - y);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const states = median(rounds.map((r) => r.states));
const describe = median(rounds.map((r) => r.describe));
printFigures(
  `bench/provisioner boot-look  (${N} running instances, ${CALLS} calls × ${ROUNDS} rounds, median)`,
  [
    { name: "states (DescribeInstanceStatus), CPU per look", value: states, unit: "ms" },
    { name: "describe (DescribeInstances), CPU per look", value: describe, unit: "ms" },
    { name: "DescribeInstanceStatus answer", value: statusBytes / 1024, unit: "KiB" },
    { name: "DescribeInstances answer", value: describeBytes / 1024, unit: "KiB" },
  ],
);
console.log(
  `  rounds (states / describe, ms): ${rounds.map((r) => `${r.states.toFixed(2)}/${r.describe.toFixed(2)}`).join("  ")}`,
);
console.log(`  load average (1 min): ${loadavg()[0]!.toFixed(1)}`);
printResult({
  bench: "provisioner-boot-look",
  params: { quick: QUICK, instances: N, calls: CALLS, rounds: ROUNDS },
  figures: {
    states_cpu_ms_per_look: states,
    describe_cpu_ms_per_look: describe,
    status_answer_bytes: statusBytes,
    describe_answer_bytes: describeBytes,
  },
  ratios: { states_over_describe: states / describe },
  goals: {},
});
