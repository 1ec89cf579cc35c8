/**
 * Issue #15's "nothing lost": every node that joins is recorded, and promptly — never left
 * to the silence bound's relist. Nodes register while node-ops takes in its list, while
 * its watch is broken mid-stream, and past the watch cache's window (410). Real NATS, the
 * sim's Kubernetes and SSM, the real adapter; the silence bound is set far beyond the
 * test's wait, so a missed node fails the test instead of being found by a relist.
 */
import { CommandHandler, catalogue, EventStore, type KubeCommand, type KubeEvent } from "@cairn/events";
import {
  appendAsOwner,
  recordClusterRequested,
  startJetStream,
  type TestJetStream,
  until,
} from "@cairn/events/testing";
import { SIM_CREDENTIALS, type Sim, startSim } from "@cairn/sim";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createKube, kubeconfigParameter } from "../adapters/kube.ts";
import { type NodeOps, startNodeOps } from "../node-ops.ts";
import { type KubeState, kubeDecider } from "./decider.ts";
import { createNodeWatcher } from "./watcher.ts";

let js: TestJetStream;
let sim: Sim;
let store: EventStore;
let nodeOps: NodeOps;
let region: string;

const instanceId = (c: number, i: number) =>
  `i-0${c.toString(16).padStart(3, "0")}${i.toString(16).padStart(13, "0")}`;
const register = (cluster: string, c: number, i: number) =>
  sim.world.kube.registerNode(cluster, {
    name: instanceId(c, i),
    role: "agent",
    instanceId: instanceId(c, i),
    availabilityZone: `${region}a`,
    labels: {},
    taints: [],
  });

beforeAll(async () => {
  js = await startJetStream();
  sim = await startSim({ seed: 41, timeScale: 100 });
  store = new EventStore({ js: js.nats.js, jsm: js.nats.jsm, catalogue });
  nodeOps = await startNodeOps({
    nats: js.nats,
    ssm: { endpoint: sim.url, credentials: SIM_CREDENTIALS },
    facts: { backoff: { baseMs: 20, maxMs: 200 }, leaseTtlMs: 3_000, silenceMs: 600_000 },
  });
  await until("node-ops to lead", () => nodeOps.watching());
}, 30_000);
afterAll(async () => {
  await nodeOps?.stop();
  await sim?.stop();
  await js?.dispose();
});

/** A cluster with `first` nodes, its kubeconfig stored and (`publish`) published: node-ops lists and watches it. */
async function cluster(id: string, c: number, first: number, publish = true) {
  ({ region } = await recordClusterRequested(store, id));
  sim.world.kube.ensureCluster(id);
  for (let i = 0; i < first; i++) register(id, c, i);
  sim.world.ssm.putParameter(region, kubeconfigParameter(id), sim.world.kube.kubeconfig(id), true);
  if (!publish) return;
  await appendAsOwner(store, { type: "install", id }, "install.kubeconfig-published", {
    parameter: kubeconfigParameter(id),
    version: 1,
  });
}

const registered = async (id: string) =>
  new Set(
    (await store.load({ type: "kube", id })).events
      .filter((e) => e.type === "kube.node-registered")
      .map((e) => (e.data as { node: string }).node),
  );
const untilAll = (id: string, n: number, ms = 30_000) =>
  until(
    `${n} nodes registered on ${id}`,
    async () => {
      const r = await registered(id);
      return r.size >= n ? r : undefined;
    },
    ms,
  );
const requests = (id: string, action: "list nodes" | "watch nodes") =>
  sim.requests.list({ service: "kube", region: id, action });
const tick = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("every node that joins is recorded", () => {
  it.each([
    [300, 20, 10, 15],
    [500, 100, 10, 30],
    [200, 60, 5, 40],
  ])(
    "nodes joining in waves while the list is taken in and the watch opens (%i, then %i waves of %i every %i ms)",
    async (first, waves, per, every) => {
      const id = `lost-waves-${first}-${waves}`;
      const c = 10 + waves;
      await cluster(id, c, first);
      // Waves of joins from the moment node-ops lists: some before its list, some while its
      // records go in, some after its watch opened.
      for (let w = 0; w < waves; w++) {
        for (let i = 0; i < per; i++) register(id, c, first + w * per + i);
        await tick(every);
      }
      const r = await untilAll(id, first + waves * per);
      expect(r.size).toBe(first + waves * per);
    },
    60_000,
  );

  it("past the watch cache's window while the list is taken in (410): relisted, nothing lost", async () => {
    const id = "lost-window";
    await cluster(id, 2, 200);
    await until("the first list", () => requests(id, "list nodes").length > 0);
    // > WATCH_CACHE_MIN node events, older than WATCH_CACHE_FRESH_MS, right after the list.
    for (let i = 0; i < 250; i++) register(id, 2, 200 + i);
    await tick(1_000); // 100 sim s at scale 100: the events left the window
    for (let i = 0; i < 50; i++) register(id, 2, 450 + i);
    const r = await untilAll(id, 500);
    expect(r.size).toBe(500);
  }, 60_000);

  it("the watch broken mid-stream, nodes joining meanwhile: resumed, nothing lost", async () => {
    const id = "lost-broken";
    await cluster(id, 3, 50);
    await untilAll(id, 50);
    await until("a watch open", () => requests(id, "watch nodes").some((r) => r.status === 200));
    for (let round = 0; round < 5; round++) {
      // The API server down for 30 sim s (300 ms): its open watches end, calls get 503.
      sim.faults.add({
        kind: "kube-down",
        rate: 1,
        service: "kube",
        region: id,
        until: sim.clock.now() + 30_000,
      });
      for (let i = 0; i < 20; i++) register(id, 3, 50 + round * 20 + i);
      await tick(400);
    }
    const r = await untilAll(id, 150);
    expect(r.size).toBe(150);
  }, 60_000);
});

describe("a list taken in slowly (a busy bus)", () => {
  it("is not relisted because nodes kept joining while its records went in: the watch opened with it (one list, nothing lost)", async () => {
    const id = "lost-slow-list";
    // Not published: only this test's watcher watches it (not the node-ops of the others).
    await cluster(id, 9, 300, false);
    const handler = new CommandHandler({ decider: kubeDecider, store, catalogue });
    // Every record 150 ms late (NATS round trips of a loaded machine): the 300-node list's
    // seven records take ~1 s, 100 sim s at time scale 100 — past the watch cache's
    // freshness (75 sim s).
    const slow = {
      handle: async (c: Parameters<typeof handler.handle>[0]) => {
        await tick(150);
        return await handler.handle(c);
      },
    } as unknown as CommandHandler<KubeCommand, KubeEvent, KubeState>;
    const kube = createKube({ nats: js.nats, endpoint: sim.url, credentials: SIM_CREDENTIALS });
    const watcher = createNodeWatcher({
      handler: slow,
      nodes: kube,
      backoff: { baseMs: 20, maxMs: 200 },
      silenceMs: 600_000,
    });
    const lists = () => requests(id, "list nodes").length;
    const before = lists();
    try {
      watcher.watch(id, { parameter: kubeconfigParameter(id), version: 1 });
      await until("the watcher's list", () => lists() > before, 10_000);
      // Right after the list, more than the watch cache keeps (WATCH_CACHE_MIN) join.
      for (let i = 0; i < 150; i++) register(id, 9, 300 + i);
      const r = await untilAll(id, 450);
      expect(r.size).toBe(450);
      // One list: the watch from its resourceVersion opened before the window moved on.
      // (Opened after the records, it met a 410 and the loop relisted all 450 nodes.)
      expect(lists() - before).toBe(1);
    } finally {
      await watcher.stop();
    }
  }, 60_000);
});
