/**
 * The session pod watch on the simulated cloud, through node-ops' real adapter (client-node
 * v2, the kubeconfig from the cluster's SecureString) and real NATS: with the reactor's
 * polls a minute apart, a start is recorded Running and a stop recorded stopped as soon as
 * the pod is Ready or gone; two replicas record each outcome once; the watch ends when
 * nothing waits; a watch ended by the server (its timeoutSeconds) is resumed and one whose
 * resourceVersion left the watch cache (410 Gone) is relisted, as against kube-apiserver,
 * and a start waiting across both is still recorded at once.
 */
import { CommandBus, catalogue, EventStore, type RunnerLogger } from "@cairn/events";
import { startJetStream, type TestJetStream, until } from "@cairn/events/testing";
import { SIM_CREDENTIALS, type Sim, startSim } from "@cairn/sim";
import type { CoreV1Api } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WATCH_TIMEOUT_SECONDS } from "../adapters/kube-watch.ts";
import { type NodeOps, startNodeOps } from "../node-ops.ts";
import { simCluster } from "../testing/sim-cluster.ts";

const CLUSTER = "watch-1";
/** The reactor's polls: so far apart that anything recorded sooner came through the watch. */
const POLL_MS = 60_000;
/** What "at once" may take on a busy machine: well inside a poll. */
const SOON_MS = 12_000;

let js: TestJetStream;
let sim: Sim;
let store: EventStore;
let bus: CommandBus;
let core: CoreV1Api;
const lines: string[] = [];
const logger: RunnerLogger = {
  info: (_o, msg) => lines.push(msg ?? ""),
  warn: (_o, msg) => lines.push(msg ?? ""),
  error: (_o, msg) => lines.push(msg ?? ""),
};
const nodeOps: NodeOps[] = [];
const startOne = async () => {
  const n = await startNodeOps({
    nats: js.nats,
    ssm: { endpoint: sim.url, credentials: SIM_CREDENTIALS },
    logger,
    facts: false,
    restore: false,
    sessions: {
      poll: { firstMs: POLL_MS, minMs: POLL_MS, maxMs: POLL_MS },
      // A pod without room waits (room may free up) rather than fail.
      unschedulableGraceMs: 600_000,
      movesIntervalMs: 60_000,
      podWatch: { lingerMs: 1_500 },
    },
  });
  nodeOps.push(n);
  return n;
};

beforeAll(async () => {
  js = await startJetStream();
  // At 5×: an image pull 1 s, a pod's start-up 2 s (wall), a bookmark every 12 s.
  sim = await startSim({ seed: 11, timeScale: 5 });
  store = new EventStore({ js: js.nats.js, jsm: js.nats.jsm, catalogue });
  ({ core } = await simCluster(sim, store, CLUSTER, ["agent-a"]));
  await startOne();
  bus = new CommandBus({ js: js.nats.js, catalogue });
}, 30_000);
afterAll(async () => {
  for (const n of nodeOps) await n.stop();
  await sim?.stop();
  await js?.dispose();
});

const template = (cpu = "100m") => ({ image: "ghcr.io/acme/ide:1", cpu, memory: "256Mi", storage: "1Gi" });
const send = (type: string, sessionId: string, data: object = {}) =>
  bus.send({ type, data: { sessionId, clusterId: CLUSTER, ...data }, meta: { actor: "idle-detector" } });
const types = async (sessionId: string) =>
  (await store.load({ type: "workload", id: sessionId })).events.map((e) => e.type);
const when = async (sessionId: string, type: string, ms = SOON_MS) => {
  await until(`${type} of ${sessionId}`, async () => (await types(sessionId)).includes(type), ms);
  return Date.now();
};
const watching = () => nodeOps.some((n) => n.sessionPodWatches().includes(CLUSTER));

describe("the session pod watch", () => {
  it("a start is recorded Running as soon as its pod is Ready, not at the next poll", async () => {
    const sent = Date.now();
    await send("workload.start", "w-1", { user: "alice", template: template() });
    await when("w-1", "workload.started");
    // Watched while it waits — unless the pod was Ready by the first look (a loaded machine).
    expect(watching() || (await types("w-1")).includes("workload.running")).toBe(true);
    const running = await when("w-1", "workload.running");
    expect(running - sent).toBeLessThan(POLL_MS / 2);
    expect(await types("w-1")).toEqual(["workload.starting", "workload.started", "workload.running"]);
  });

  it("a stop is recorded as soon as its pod is gone", async () => {
    const sent = Date.now();
    await send("workload.stop", "w-1");
    const stopped = await when("w-1", "workload.stopped");
    expect(stopped - sent).toBeLessThan(POLL_MS / 2);
    const pods = await core.listNamespacedPod({
      namespace: "cairn-sessions",
      labelSelector: "cairn.dev/session=w-1",
    });
    expect(pods.items).toEqual([]);
  });

  it("with two replicas, each start is recorded Running at once, and once", async () => {
    await startOne();
    const ids = ["w-2", "w-3", "w-4", "w-5"];
    await Promise.all(ids.map((id) => send("workload.start", id, { user: "alice", template: template() })));
    // A wake too: w-1 starts again on its kept claim.
    await send("workload.start", "w-1", { user: "alice", template: template() });
    for (const id of ids) await when(id, "workload.running");
    await until("w-1 Running again", async () =>
      (await types("w-1")).filter((t) => t === "workload.running").length === 2 ? true : undefined,
    );
    await new Promise((r) => setTimeout(r, 500)); // a late duplicate would be in by now
    for (const id of ids)
      expect(await types(id)).toEqual(["workload.starting", "workload.started", "workload.running"]);
    expect((await types("w-1")).slice(5)).toEqual([
      "workload.starting",
      "workload.started",
      "workload.running",
    ]);
  });

  it("the watch ends once nothing waits on it", async () => {
    await until("no session pod watch", () => !watching(), 10_000);
    expect(lines).toContain("no session waits on its pods: watch ended");
  });

  it("a watch the server ends is resumed; one whose resourceVersion left the watch cache (410) is relisted; a start waiting across both is recorded at once", async () => {
    const listed = () => lines.filter((l) => l === "session pods listed; watching").length;
    const expired = () => lines.filter((l) => l === "session pods: resourceVersion expired (410); relisting");
    const watches = () =>
      sim.requests
        .list({ service: "kube", region: CLUSTER, action: "watch pods" })
        .filter((r) => r.status === 200).length;
    // agent-a has no room left for 1.8 CPU: the start waits, and its waiter keeps the watch open.
    const closed = listed();
    await send("workload.start", "w-big", { user: "alice", template: template("1800m") });
    await when("w-big", "workload.started");
    await until("the watch open again", () => watching() && listed() > closed);
    const lists = listed();

    // The server ends the watch at its timeoutSeconds (300 s of wall time, as kube-apiserver:
    // sim time × the scale): resumed from where it was, no relist.
    const watchLife = WATCH_TIMEOUT_SECONDS * 1000 * sim.clock.timeScale + 1_000;
    const before = watches();
    sim.clock.advance(watchLife);
    await until("the watch resumed", () => watches() > before, 5_000);
    expect(listed()).toBe(lists);

    // Many changes elsewhere while the watch hears none of them, then its end: the
    // resourceVersion it resumes from has left the pods' watch cache (100 events, 75 s).
    for (let i = 0; i < 100; i++)
      await core.createNamespacedPod({
        namespace: "default",
        body: { metadata: { name: `filler-${i}` }, spec: { containers: [{ name: "c", image: "pause:3" }] } },
      });
    sim.clock.advance(watchLife);
    await until("the 410 and the relist", () => expired().length > 0 && listed() > lists, 5_000);

    // Room at last (a second node): the pod is placed, pulls, starts; Running is recorded at once.
    const room = Date.now();
    sim.world.kube.registerNode(CLUSTER, { name: "agent-b", role: "agent", labels: {}, taints: [] });
    const running = await when("w-big", "workload.running");
    expect(running - room).toBeLessThan(POLL_MS / 2);
    const pod = await core.listNamespacedPod({
      namespace: "cairn-sessions",
      labelSelector: "cairn.dev/session=w-big",
    });
    expect(pod.items.map((p) => p.spec?.nodeName)).toEqual(["agent-b"]);
    expect(await types("w-big")).toEqual(["workload.starting", "workload.started", "workload.running"]);
  });
});
