/**
 * bench/sim: how fast the simulated cloud answers what Cairn's services ask most,
 * through the official clients, so later benchmarks know the sim is never their
 * bottleneck (issue 3: it must stay ≥ 10× faster than what the services ask of it).
 *  - DescribeInstances over 10,000 instances in one region: a cluster's instances by
 *    tag (what the provisioner asks), and a full page of 1,000;
 *  - a node list over 1,000 nodes (what node-ops' informer asks on a relist).
 * Raw limit, same run: a bare node:http server answering the same bytes to the same
 * client, so the ratio says how much of the time is the sim's own work.
 * Demand: the provisioner benchmark's 100 clusters polled once a second = 100 req/s.
 *
 * Goal (issue 3): the sim answers ≥ 10× that demand.
 *
 * Run: node bench/sim/main.ts   (BENCH_SECONDS=3 per figure; BENCH_QUICK=1: 0.5 s each and
 * 500 instances, a smoke run)
 */
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { DescribeInstancesCommand, EC2Client, RunInstancesCommand } from "@aws-sdk/client-ec2";
import { SIM_CREDENTIALS, startSim, ZERO_LATENCIES } from "@cairn/sim";
import { CoreV1Api, KubeConfig } from "@kubernetes/client-node";
import { type Figure, printFigures, printResult, QUICK } from "../lib/report.ts";

const SECONDS = Number(process.env.BENCH_SECONDS ?? (QUICK ? 0.5 : 3));
/** Clusters of 50 instances: 10,000 instances, or 500 quick. */
const CLUSTERS = QUICK ? 10 : 200;
const CONCURRENCY = 16;
const DEMAND_PER_SECOND = 100;

/** Calls `f` from `CONCURRENCY` loops for SECONDS; returns calls per second. */
async function throughput(f: () => Promise<unknown>): Promise<number> {
  const end = performance.now() + SECONDS * 1000;
  let calls = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (performance.now() < end) {
        await f();
        calls++;
      }
    }),
  );
  return calls / SECONDS;
}

const sim = await startSim({ seed: 1, timeScale: 1, latencies: ZERO_LATENCIES });
const ec2 = new EC2Client({
  region: "eu-west-1",
  endpoint: sim.url,
  credentials: SIM_CREDENTIALS,
  maxAttempts: 1,
});

// 10,000 instances: 200 clusters × 50, tagged as the provisioner tags them.
for (let c = 0; c < CLUSTERS; c++) {
  await ec2.send(
    new RunInstancesCommand({
      ImageId: "ami-0abc1234def567890",
      InstanceType: "t3.large",
      MinCount: 50,
      MaxCount: 50,
      ClientToken: `bench-${c}`,
      TagSpecifications: [{ ResourceType: "instance", Tags: [{ Key: "cairn:cluster", Value: `c${c}` }] }],
    }),
  );
}
const byTag = (c: number) =>
  new DescribeInstancesCommand({ Filters: [{ Name: "tag:cairn:cluster", Values: [`c${c}`] }] });
const fullPage = new DescribeInstancesCommand({ MaxResults: 1000 });

let n = 0;
const tagRate = await throughput(() => ec2.send(byTag(n++ % CLUSTERS)));
const pageRate = await throughput(() => ec2.send(fullPage));

// 1,000 nodes in one cluster.
sim.world.kube.ensureCluster("bench");
for (let i = 0; i < 1000; i++) {
  sim.world.kube.registerNode("bench", {
    name: `ip-10-0-${Math.floor(i / 250)}-${i % 250}.eu-west-1.compute.internal`,
    role: i < 3 ? "server" : "agent",
    labels: { "cairn.dev/pool": "workers", "cairn.dev/capacity-type": i % 2 ? "spot" : "on-demand" },
    taints: [],
  });
}
const kc = new KubeConfig();
kc.loadFromString(sim.world.kube.kubeconfig("bench"));
const core = kc.makeApiClient(CoreV1Api);
const nodeRate = await throughput(() => core.listNode());

// The raw limit: the same bytes from a bare server, to the same kind of client (one
// client per server, as above).
async function rawFloor(
  body: Buffer,
  contentType: string,
  client: (url: string) => () => Promise<unknown>,
): Promise<number> {
  const server = createServer((_req, res) => {
    res.writeHead(200, { "content-type": contentType, "content-length": body.length });
    res.end(body);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const rate = await throughput(client(`http://127.0.0.1:${(server.address() as AddressInfo).port}`));
  server.closeAllConnections();
  server.close();
  return rate;
}
const capture = async (url: string, init: RequestInit) =>
  Buffer.from(await (await fetch(url, init)).arrayBuffer());
// Signed for eu-west-1 like the SDK's calls (the sim reads the region from the credential
// scope), so the captured bytes are the same answers the SDK got.
const ec2Form = (extra: string) => ({
  method: "POST",
  headers: {
    "content-type": "application/x-www-form-urlencoded; charset=utf-8",
    authorization:
      "AWS4-HMAC-SHA256 Credential=SIMACCESSKEY/20260101/eu-west-1/ec2/aws4_request, SignedHeaders=host, Signature=0",
  },
  body: `Action=DescribeInstances&Version=2016-11-15${extra}`,
});
const tagBytes = await capture(sim.url, ec2Form("&Filter.1.Name=tag%3Acairn%3Acluster&Filter.1.Value.1=c0"));
if (!tagBytes.includes("<instanceId>"))
  throw new Error("the captured answer holds no instances: the raw floor would be meaningless");
const pageBytes = await capture(sim.url, ec2Form("&MaxResults=1000"));
const kubeconfig = sim.world.kube.kubeconfig("bench");
const token = /token: ['"]?([^\s'"]+)/.exec(kubeconfig)?.[1] ?? "";
const nodeBytes = await capture(`${sim.url}/k8s/bench/api/v1/nodes`, {
  headers: { authorization: `Bearer ${token}` },
});

const ec2At = (url: string) =>
  new EC2Client({ region: "eu-west-1", endpoint: url, credentials: SIM_CREDENTIALS, maxAttempts: 1 });
const tagRaw = await rawFloor(tagBytes, "text/xml", (url) => {
  const c = ec2At(url);
  return () => c.send(byTag(0));
});
const pageRaw = await rawFloor(pageBytes, "text/xml", (url) => {
  const c = ec2At(url);
  return () => c.send(fullPage);
});
const nodeRaw = await rawFloor(nodeBytes, "application/json", (url) => {
  const k = new KubeConfig();
  k.loadFromString(kubeconfig.replace(`${sim.url}/k8s/bench`, url));
  const api = k.makeApiClient(CoreV1Api);
  return () => api.listNode();
});

// The sim's own capacity: a plain keep-alive HTTP client (no SDK parsing), beside the
// same client reading the same bytes from the bare server. This is what bounds the
// services' calls when their SDK parsing runs in their own processes.
const tagRequest = ec2Form("&Filter.1.Name=tag%3Acairn%3Acluster&Filter.1.Value.1=c0");
const plainSim = await throughput(async () => (await fetch(sim.url, tagRequest)).arrayBuffer());
const plainRaw = await rawFloor(
  tagBytes,
  "text/xml",
  (url) => async () => (await fetch(url, tagRequest)).arrayBuffer(),
);
const plainNodes = await throughput(async () =>
  (
    await fetch(`${sim.url}/k8s/bench/api/v1/nodes`, { headers: { authorization: `Bearer ${token}` } })
  ).arrayBuffer(),
);
const plainNodesRaw = await rawFloor(
  nodeBytes,
  "application/json",
  (url) => async () => (await fetch(url)).arrayBuffer(),
);

const figures: Figure[] = [
  {
    name: `DescribeInstances by cluster tag (${CLUSTERS * 50} instances)`,
    value: tagRate,
    unit: "req/s",
    raw: tagRaw,
  },
  {
    name: `DescribeInstances, page of 1,000 (${CLUSTERS * 50} instances)`,
    value: pageRate,
    unit: "req/s",
    raw: pageRaw,
  },
  { name: "list nodes (1,000 nodes)", value: nodeRate, unit: "req/s", raw: nodeRaw },
  { name: "sim capacity: by-tag describe, plain HTTP client", value: plainSim, unit: "req/s", raw: plainRaw },
  {
    name: "sim capacity: node list, plain HTTP client",
    value: plainNodes,
    unit: "req/s",
    raw: plainNodesRaw,
  },
];
printFigures(
  `bench/sim  (zero latency, ${CONCURRENCY} concurrent callers, ${SECONDS} s each, official SDK clients)`,
  figures,
);
const headroom = plainSim / DEMAND_PER_SECOND;
console.log(
  `  headroom: the sim answers ${headroom.toFixed(0)}× the provisioner's assumed demand of ${DEMAND_PER_SECOND} by-tag describes/s ${headroom >= 10 ? "(goal ≥ 10×: met)" : "(goal ≥ 10×: NOT met)"}`,
);
console.log(
  "  (through the official SDK in the same process, the SDK's own parsing is the ceiling: see the first rows' ratios)",
);
await sim.stop();
printResult({
  bench: "sim",
  params: { quick: QUICK, seconds: SECONDS, instances: CLUSTERS * 50, nodes: 1000, concurrency: CONCURRENCY },
  figures: {
    describe_by_tag_per_s: tagRate,
    describe_page_per_s: pageRate,
    list_nodes_per_s: nodeRate,
    plain_describe_by_tag_per_s: plainSim,
    plain_list_nodes_per_s: plainNodes,
    raw_describe_by_tag_per_s: tagRaw,
    raw_describe_page_per_s: pageRaw,
    raw_list_nodes_per_s: nodeRaw,
    raw_plain_describe_by_tag_per_s: plainRaw,
    raw_plain_list_nodes_per_s: plainNodesRaw,
    demand_per_s: DEMAND_PER_SECOND,
  },
  ratios: {
    describe_by_tag_over_raw: tagRate / tagRaw,
    describe_page_over_raw: pageRate / pageRaw,
    list_nodes_over_raw: nodeRate / nodeRaw,
    plain_describe_by_tag_over_raw: plainSim / plainRaw,
    plain_list_nodes_over_raw: plainNodes / plainNodesRaw,
    headroom_over_demand: headroom,
  },
  goals: { headroom_ge_10x_demand: headroom >= 10 },
});
