/**
 * bench/node-ops spot: a spot interruption on the sim, notice → replacement Ready.
 * A cluster (1 server + a spot pool of 2) becomes Ready with a 6-replica Deployment;
 * one spot instance gets its two-minute notice through the sim (EventBridge → SQS);
 * the figure is the sim time from the notice to the cluster's `cluster.ready` after the
 * replacement, beside the floor the sim's latencies set (instance boot + SSM agent
 * registration + K3s join) and the 120 s notice. Real provisioner, installer and
 * node-ops in this process, NATS on loopback.
 *
 * Run: node bench/node-ops/spot.ts   (BENCH_SCALE=20 BENCH_RUNS=3)
 */
import { CommandBus, catalogue, EventStore, exampleClusterCreate } from "@cairn/events";
import { startJetStream } from "@cairn/events/testing";
import { createSsmRemoteExec, startInstaller } from "@cairn/installer";
import { startNodeOps } from "@cairn/node-ops";
import { createEc2Compute, startProvisioner } from "@cairn/provisioner";
import { REALISTIC_LATENCIES, SIM_CREDENTIALS, startSim } from "@cairn/sim";
import { AppsV1Api, KubeConfig } from "@kubernetes/client-node";
import { printFigures } from "../lib/report.ts";

const SCALE = Number(process.env.BENCH_SCALE ?? 20);
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
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
  reactor: { pollMs: 20, maxPollMs: 100, executionTimeoutFactor: 2 * SCALE },
});
const bus = new CommandBus({ js: js.nats.js, catalogue });
const store = new EventStore({ js: js.nats.js, jsm: js.nats.jsm, catalogue });

async function until<T>(what: string, f: () => Promise<T | undefined>, ms = 120_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}
const state = async (id: string) =>
  (await provisioner.handler.read({ type: "cluster", id }, { atLeastSequence: Number.MAX_SAFE_INTEGER }))
    .state;

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
  await until("Ready", async () => ((await state(id)).status === "Ready" ? true : undefined));
  await until("intake", async () => (nodeOps.spotRegions().includes(REGION) ? true : undefined));
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
  const s = await state(id);
  if (s.status === "Absent") throw new Error("no cluster");
  const victim = Object.values(s.slots).find((x) => x.placement.capacityType === "spot")?.instanceId ?? "";
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
