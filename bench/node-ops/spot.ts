/**
 * bench/node-ops spot: a spot interruption on the sim, notice → replacement Ready.
 * A cluster (1 server + a spot pool of 2) becomes Ready with a 6-replica Deployment;
 * one spot instance gets its two-minute notice through the sim (EventBridge → SQS);
 * the figure is the sim time from the notice to the cluster's `cluster.ready` after the
 * replacement, beside the floor the sim's latencies set (instance boot + SSM agent
 * registration + K3s join) and the 120 s notice. Real provisioner, installer and
 * node-ops in this process, NATS on loopback.
 *
 * Goal (docs/node-ops.md): the replacement Ready inside the notice, every run.
 *
 * Run: node bench/node-ops/spot.ts   (BENCH_SCALE=20 BENCH_RUNS=3; BENCH_QUICK=1: one run, a
 * smoke run)
 */
import { CommandBus, catalogue, EventStore, exampleClusterCreate, nodeAggregateId } from "@cairn/events";
import { startJetStream } from "@cairn/events/testing";
import { createSsmRemoteExec, startInstaller } from "@cairn/installer";
import { startNodeOps } from "@cairn/node-ops";
import { createEc2Compute, startProvisioner } from "@cairn/provisioner";
import { REALISTIC_LATENCIES, SIM_CREDENTIALS, startSim } from "@cairn/sim";
import { AppsV1Api, KubeConfig } from "@kubernetes/client-node";
import { printFigures, printResult, QUICK } from "../lib/report.ts";

const SCALE = Number(process.env.BENCH_SCALE ?? 20);
const RUNS = Number(process.env.BENCH_RUNS ?? (QUICK ? 1 : 3));
const REGION = "eu-west-1";
const L = REALISTIC_LATENCIES;
const FLOOR_S = L.instanceBoot + L.ssmRegistration + L.k3sJoin;

const js = await startJetStream();
const sim = await startSim({ seed: 5, timeScale: SCALE });
const aws = { endpoint: sim.url, credentials: SIM_CREDENTIALS };
const quiet = { info: () => {}, warn: () => {}, error: () => {} };
const provisioner = await startProvisioner({
  nats: js.nats,
  compute: createEc2Compute(aws),
  logger: quiet,
  pollMs: 20,
  maxPollMs: 100,
});
const nodeOps = await startNodeOps({
  nats: js.nats,
  logger: quiet,
  ssm: aws,
  drain: { pollMs: 20, maxPollMs: 100 },
  spot: { sqs: aws },
});
const installer = await startInstaller({
  nats: js.nats,
  logger: quiet,
  remote: createSsmRemoteExec(aws),
  // The first looks at each step (its typical duration on AWS: a join 24 s) scaled with the
  // clock, as the installer's tests do: unscaled, a join was first looked at 480 sim s late.
  reactor: { pollMs: 20, maxPollMs: 100, executionTimeoutFactor: 2 * SCALE, timeScale: SCALE },
});
const bus = new CommandBus({ js: js.nats.js, catalogue });
const store = new EventStore({ js: js.nats.js, jsm: js.nats.jsm, catalogue });

/** What the cluster and the victim's node operation recorded: the reason of a timeout. */
let lastSeen = async () => "";
async function until<T>(what: string, f: () => Promise<T | undefined>, ms = 120_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}; ${await lastSeen()}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}
const state = async (id: string) =>
  (await provisioner.handler.read({ type: "cluster", id }, { atLeastSequence: Number.MAX_SAFE_INTEGER }))
    .state;

const say = (line: string) => process.stderr.write(`bench/spot: ${line}\n`);

const results: number[] = [];
for (let run = 0; run < RUNS; run++) {
  const id = `spot-bench-${run}`;
  const c = exampleClusterCreate(id);
  await bus.send({
    ...c,
    data: {
      ...c.data,
      region: REGION,
      pools: [{ name: "workers", capacityType: "spot", instanceTypes: ["t3.large"], count: 2 }],
    },
  });
  lastSeen = async () =>
    `cluster ${id}: ${(await store.load({ type: "cluster", id })).events.map((e) => e.type.split(".")[1]).join(", ")}`;
  await until("Ready", async () => ((await state(id)).status === "Ready" ? true : undefined));
  say(`${id} Ready`);
  await until("intake", async () => (nodeOps.spotRegions().includes(REGION) ? true : undefined));
  say(`${id}: the spot intake follows ${REGION}`);
  const kc = new KubeConfig();
  kc.loadFromString(sim.world.kube.kubeconfig(id));
  const apps = kc.makeApiClient(AppsV1Api);
  await apps.createNamespacedDeployment({
    namespace: "default",
    body: {
      metadata: { name: "web" },
      spec: {
        replicas: 6,
        selector: { matchLabels: { app: "web" } },
        template: {
          metadata: { labels: { app: "web" } },
          spec: { containers: [{ name: "a", image: "nginx" }] },
        },
      },
    },
  });
  // Its pods placed and Ready before the notice, as test/spot-interruption.int.spec.ts does:
  // the drain then has real pods to move.
  await until("web ready", async () => {
    const d = await apps.readNamespacedDeployment({ name: "web", namespace: "default" });
    return d.status?.readyReplicas === 6 ? true : undefined;
  });
  say(`${id}: its Deployment Ready; the notice goes out`);
  const s = await state(id);
  if (s.status === "Absent") throw new Error("no cluster");
  const victim = Object.values(s.slots).find((x) => x.placement.capacityType === "spot")?.instanceId ?? "";
  lastSeen = async () => {
    const types = async (type: "cluster" | "nodeop", aggregateId: string) =>
      (await store.load({ type, id: aggregateId })).events.map((e) => e.type.split(".")[1]).join(", ");
    return `cluster ${id}: ${await types("cluster", id)}; node ${victim}: ${await types("nodeop", nodeAggregateId(id, victim))}`;
  };
  const res = await fetch(`${sim.adminUrl}/ec2/interrupt-spot`, {
    method: "POST",
    body: JSON.stringify({ region: REGION, instanceId: victim }),
  });
  const notice = (await res.json()) as { noticeTime: string };
  const readyAt = await until("Ready again", async () => {
    const events = (await store.load({ type: "cluster", id })).events;
    const i = events.findIndex((e) => e.type === "cluster.node-replacement-requested");
    return i >= 0 && events.slice(i).some((e) => e.type === "cluster.ready") ? sim.clock.now() : undefined;
  });
  results.push((readyAt - Date.parse(notice.noticeTime)) / 1000);
}

const sorted = [...results].sort((a, b) => a - b);
printFigures(`bench/node-ops spot  (sim at time scale ${SCALE}, realistic latencies, ${RUNS} run(s))`, [
  {
    name: "notice → replacement Ready, median",
    value: sorted[Math.floor(sorted.length / 2)] ?? 0,
    unit: "sim s",
  },
  { name: "notice → replacement Ready, worst", value: sorted.at(-1) ?? 0, unit: "sim s" },
  { name: "floor (boot + SSM registration + K3s join)", value: FLOOR_S, unit: "sim s" },
  { name: "the notice (termination after)", value: L.spotInterruptionNotice, unit: "sim s" },
]);
console.log(`  runs: ${results.map((r) => r.toFixed(1)).join(", ")} sim s`);

await installer.stop();
await nodeOps.stop();
await provisioner.stop();
await sim.stop();
await js.dispose();

const medianS = sorted[Math.floor(sorted.length / 2)] ?? 0;
const worstS = sorted.at(-1) ?? 0;
printResult({
  bench: "spot",
  params: { quick: QUICK, time_scale: SCALE, runs: RUNS },
  figures: {
    notice_to_ready_median_sim_s: medianS,
    notice_to_ready_worst_sim_s: worstS,
    floor_sim_s: FLOOR_S,
    notice_sim_s: L.spotInterruptionNotice,
  },
  ratios: { median_over_floor: medianS / FLOOR_S, worst_over_notice: worstS / L.spotInterruptionNotice },
  goals: { replacement_ready_inside_notice: results.length === RUNS && worstS <= L.spotInterruptionNotice },
});
