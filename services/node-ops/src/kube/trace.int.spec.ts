/**
 * The kube facts stay on the cluster's lifecycle trace (issue 11, finding 9): whoever
 * watches the cluster — the first node-ops, a second one that took the lease over, a
 * restarted one — every `kube.*` event carries the trace of the cluster's creating
 * command (its first event's `meta.traceparent`) or a link to it. Before, a re-watch
 * recorded its facts on a new root trace with neither.
 */
import {
  type AggregateRef,
  catalogue,
  clusterSpec,
  EventStore,
  exampleClusterCreate,
  newId,
  type RecordedEvent,
  traceIdOf,
} from "@cairn/events";
import {
  appendAsOwner,
  startJetStream,
  type TestJetStream,
  until,
  useTestTracing,
} from "@cairn/events/testing";
import { SIM_CREDENTIALS, type Sim, startSim } from "@cairn/sim";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { kubeconfigParameter } from "../adapters/kube.ts";
import { type NodeOps, startNodeOps } from "../node-ops.ts";

const CLUSTER = "trace-1";
const NODES = ["i-0aaa0000000000011", "i-0bbb0000000000012"];
/** The creating command's trace, as the provisioner recorded it on `cluster.requested`. */
const LIFECYCLE = `00-${"4b".repeat(16)}-${"1c".repeat(8)}-01`;
const CORRELATION = `create-${CLUSTER}`;

let js: TestJetStream;
let sim: Sim;
let store: EventStore;
const running: NodeOps[] = [];

const start = async () => {
  const n = await startNodeOps({
    nats: js.nats,
    ssm: { endpoint: sim.url, credentials: SIM_CREDENTIALS },
    facts: { backoff: { baseMs: 20, maxMs: 200 }, leaseTtlMs: 3_000 },
    restore: false,
  });
  running.push(n);
  return n;
};
const stop = async (n: NodeOps) => {
  running.splice(running.indexOf(n), 1);
  await n.stop();
};

const facts = async (): Promise<RecordedEvent[]> => (await store.load({ type: "kube", id: CLUSTER })).events;
const count = (events: RecordedEvent[], type: string, node: string) =>
  events.filter((e) => e.type === type && (e.data as { node?: string }).node === node).length;
const untilFacts = (type: string, n: number, node: string) =>
  until(`${n} × ${type} on ${node}`, async () => {
    const events = await facts();
    return count(events, type, node) >= n ? events : undefined;
  });

/** `cluster.requested` as the provisioner records it: in the creating command's trace. */
async function recordClusterRequested(): Promise<string> {
  const spec = clusterSpec.parse(exampleClusterCreate(CLUSTER).data);
  const aggregate: AggregateRef = { type: "cluster", id: CLUSTER };
  await store.append(
    {
      aggregate,
      causationId: newId(),
      events: [
        {
          id: newId(),
          type: "cluster.requested",
          version: 1,
          aggregate,
          position: 1,
          time: new Date().toISOString(),
          data: { spec },
          meta: {
            causationId: CORRELATION,
            correlationId: CORRELATION,
            actor: "fixture",
            traceparent: LIFECYCLE,
          },
        },
      ],
    },
    0,
  );
  return spec.region;
}

beforeAll(async () => {
  useTestTracing();
  js = await startJetStream();
  sim = await startSim({ seed: 33, timeScale: 100 });
  store = new EventStore({ js: js.nats.js, jsm: js.nats.jsm, catalogue });
  const region = await recordClusterRequested();
  sim.world.kube.ensureCluster(CLUSTER);
  for (const [i, name] of NODES.entries())
    sim.world.kube.registerNode(CLUSTER, {
      name,
      role: i === 0 ? "server" : "agent",
      instanceId: name,
      availabilityZone: `${region}a`,
      labels: { "cairn.dev/pool": i === 0 ? "servers" : "workers", "cairn.dev/capacity-type": "on-demand" },
      taints: [],
    });
  sim.world.ssm.putParameter(region, kubeconfigParameter(CLUSTER), sim.world.kube.kubeconfig(CLUSTER), true);
}, 30_000);
afterAll(async () => {
  for (const n of [...running]) await n.stop();
  await sim?.stop();
  await js?.dispose();
});

describe("kube facts on the cluster's lifecycle trace", () => {
  it("first watch, lease taken over, restart: every kube.* event continues the creating trace or links to it", async () => {
    const [server, agent] = NODES as [string, string];
    // 1. The first node-ops watches once the kubeconfig is published (by a command on
    //    another trace: the publication's trace is not the lifecycle's).
    const first = await start();
    await until("node-ops to lead", () => first.watching());
    await appendAsOwner(store, { type: "install", id: CLUSTER }, "install.kubeconfig-published", {
      parameter: kubeconfigParameter(CLUSTER),
      version: 1,
    });
    await untilFacts("kube.node-ready", 1, agent);

    // 2. A second process takes the lease over when the first lets go: it watches anew.
    const second = await start();
    await stop(first);
    await until("the second node-ops to watch", () => second.watchedClusters().includes(CLUSTER));
    sim.world.kube.setNodeReady(CLUSTER, agent, false);
    await untilFacts("kube.node-not-ready", 1, agent);

    // 3. It restarts (a new process: nothing cached) and watches again.
    await stop(second);
    const third = await start();
    await until("the restarted node-ops to watch", () => third.watchedClusters().includes(CLUSTER));
    sim.world.kube.setNodeReady(CLUSTER, agent, true);
    sim.world.kube.setNodeReady(CLUSTER, server, false);
    await untilFacts("kube.node-not-ready", 1, server);
    const events = await untilFacts("kube.node-ready", 2, agent);

    // Every fact, whichever process recorded it, is on the lifecycle's trace (or links to it).
    const lifecycle = traceIdOf(LIFECYCLE);
    const offTrace = events
      .filter(
        (e) =>
          traceIdOf(e.meta.traceparent) !== lifecycle &&
          !(e.meta.links ?? []).some((l) => traceIdOf(l) === lifecycle),
      )
      .map((e) => `${e.type} #${e.position}: ${e.meta.traceparent ?? "no traceparent"}`);
    expect(events.length).toBeGreaterThanOrEqual(6);
    expect(offTrace).toEqual([]);
    // Continued, in fact: and correlated with the cluster's lifecycle.
    expect(new Set(events.map((e) => traceIdOf(e.meta.traceparent)))).toEqual(new Set([lifecycle]));
    expect(new Set(events.map((e) => e.meta.correlationId))).toEqual(new Set([CORRELATION]));
  });
});
