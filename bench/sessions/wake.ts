/**
 * bench/sessions, part 3: the wake overhead over the sim's own pod-ready latency.
 *
 * On a disposable nats-server and the sim (one agent node, so every pod lands on the node
 * whose kubelet already has the image), the real idle-detector and the real node-ops
 * (client-node on the sim's Kubernetes API, kubeconfig from SSM), run together as
 * test/sessions-node-ops.int.spec.ts runs them. One session is created and reaches
 * Running; then, `wakes` times:
 *  - hibernate it, wait for `session.hibernated` and for its pod to be gone;
 *  - the floor: a Deployment with the session's own pod template, scaled 0 → 1 through
 *    client-node, polled every 5 ms until Ready; scaled back to 0 and its pod gone;
 *  - the wake: `session.connect`, timed from just before the send until `session.running`
 *    is published on the session's event subject (a core subscription, no polling).
 * The overhead of a wake is its time minus the floor measured just before it.
 *
 * node-ops polls work under way (`sessions.poll`); its defaults (first poll after 1 s,
 * then 5 % of the time waited, at least 500 ms) are in real milliseconds while the sim
 * runs faster, so the run says which poll it used: `BENCH_WAKE_POLL_MS` sets first/min
 * poll (default: node-ops' own defaults, as deployed).
 */
import { CommandBus, catalogue, EventStore } from "@cairn/events";
import { appendAsOwner, recordClusterRequested, startJetStream } from "@cairn/events/testing";
import { startIdleDetector } from "@cairn/idle-detector";
import { kubeconfigParameter, SESSIONS_NAMESPACE, startNodeOps } from "@cairn/node-ops";
import { SIM_CREDENTIALS, startSim } from "@cairn/sim";
import {
  AppsV1Api,
  CoreV1Api,
  KubeConfig,
  PatchStrategy,
  setHeaderOptions,
  type V1Deployment,
} from "@kubernetes/client-node";

const CLUSTER = "demo-1";
const SESSION = "wake-1";

export interface WakeFigures {
  wake: { p50: number; p90: number };
  floor: { p50: number; p90: number };
  overhead: { p50: number; p90: number };
  wakes: number;
  timeScale: number;
  pollMs: number | "default";
  /** The idle-detector's own wake latency (connect decided → running recorded), p50. */
  recordedP50: number;
}

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? Number.NaN;
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(what: string, f: () => Promise<boolean>, ms = 60_000, everyMs = 5) {
  const deadline = performance.now() + ms;
  while (!(await f())) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(everyMs);
  }
}

export async function wakeBench(o: {
  wakes: number;
  quick: boolean;
  say: (line: string) => void;
}): Promise<WakeFigures> {
  const timeScale = Number(process.env.BENCH_WAKE_TIME_SCALE ?? 20);
  const pollEnv = process.env.BENCH_WAKE_POLL_MS;
  const pollMs = pollEnv ? Number(pollEnv) : ("default" as const);
  const js = await startJetStream();
  const sim = await startSim({ seed: 7, timeScale });
  const store = new EventStore({ js: js.nats.js, jsm: js.nats.jsm, catalogue });
  const { region } = await recordClusterRequested(store, CLUSTER);
  await appendAsOwner(store, { type: "cluster", id: CLUSTER }, "cluster.ready", {
    nodes: 1,
    k3sVersion: "v1.31.4+k3s1",
  });
  sim.world.kube.ensureCluster(CLUSTER);
  sim.world.kube.registerNode(CLUSTER, { name: "agent-a", role: "agent", labels: {}, taints: [] });
  const kubeconfig = sim.world.kube.kubeconfig(CLUSTER);
  sim.world.ssm.putParameter(region, kubeconfigParameter(CLUSTER), kubeconfig, true);
  const kc = new KubeConfig();
  kc.loadFromString(kubeconfig);
  const core = kc.makeApiClient(CoreV1Api);
  const apps = kc.makeApiClient(AppsV1Api);

  const nodeOps = await startNodeOps({
    nats: js.nats,
    ssm: { endpoint: sim.url, credentials: SIM_CREDENTIALS },
    facts: false,
    restore: false,
    sessions: {
      ...(pollMs === "default" ? {} : { poll: { firstMs: pollMs, minMs: pollMs, maxMs: 200 } }),
      unschedulableGraceMs: 0,
    },
  });
  const detector = await startIdleDetector({ nats: js.nats, sweepIntervalMs: 3_600_000 });
  const bus = new CommandBus({ js: js.nats.js, catalogue });
  const send = (type: string, extra: object = {}) =>
    bus.send({ type, data: { sessionId: SESSION, ...extra }, meta: { actor: "alice" } });

  // Every event of the session as it is published: the bench waits on these, no polling.
  const seen: { type: string; data: Record<string, unknown>; at: number }[] = [];
  const sub = js.nats.nc.subscribe(`evt.session.${SESSION}`, {
    callback: (err, m) => {
      if (err) return;
      const at = performance.now();
      const c = m.json<{ events: { type: string; data: Record<string, unknown> }[] }>();
      for (const e of c.events) seen.push({ type: e.type, data: e.data, at });
    },
  });
  const next = async (type: string, from: number) => {
    await until(type, async () => seen.slice(from).some((e) => e.type === type), 60_000, 1);
    return seen.slice(from).find((e) => e.type === type)!;
  };
  const podsOf = async (selector: string) =>
    (await core.listNamespacedPod({ namespace: SESSIONS_NAMESPACE, labelSelector: selector })).items;
  const ready = (d: V1Deployment) => (d.status?.readyReplicas ?? 0) >= 1;

  const wakes: number[] = [];
  const floors: number[] = [];
  const overheads: number[] = [];
  const recorded: number[] = [];
  try {
    let from = seen.length;
    await send("session.create", {
      user: "alice",
      clusterId: CLUSTER,
      template: { image: "ghcr.io/acme/ide:1", cpu: "500m", memory: "1Gi", storage: "1Gi" },
    });
    await next("session.running", from);
    // The floor's Deployment: the session's own pod template, its own labels, zero replicas.
    const session = await apps.readNamespacedDeployment({
      namespace: SESSIONS_NAMESPACE,
      name: `session-${SESSION}`,
    });
    const labels = { app: "bench-floor" };
    const template = structuredClone(session.spec!.template);
    template.metadata = { labels };
    // The floor pod mounts no claim: the session's claim is ReadWriteOnce and held by it.
    template.spec!.volumes = [];
    for (const c of template.spec!.containers) c.volumeMounts = [];
    await apps.createNamespacedDeployment({
      namespace: SESSIONS_NAMESPACE,
      body: {
        metadata: { name: "bench-floor", namespace: SESSIONS_NAMESPACE },
        spec: { replicas: 0, selector: { matchLabels: labels }, template },
      },
    });
    const scaleFloor = (replicas: number) =>
      apps.patchNamespacedDeploymentScale(
        { namespace: SESSIONS_NAMESPACE, name: "bench-floor", body: { spec: { replicas } } },
        setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
      );

    for (let i = 0; i < o.wakes; i++) {
      from = seen.length;
      await send("session.hibernate");
      await next("session.hibernated", from);
      await until(
        "the session's pod gone",
        async () => (await podsOf(`cairn.dev/session=${SESSION}`)).length === 0,
      );

      const f0 = performance.now();
      await scaleFloor(1);
      await until("the floor Ready", async () =>
        ready(await apps.readNamespacedDeployment({ namespace: SESSIONS_NAMESPACE, name: "bench-floor" })),
      );
      const floor = performance.now() - f0;
      await scaleFloor(0);
      await until("the floor's pod gone", async () => (await podsOf("app=bench-floor")).length === 0);

      from = seen.length;
      const w0 = performance.now();
      await send("session.connect");
      const running = await next("session.running", from);
      const wake = running.at - w0;
      floors.push(floor);
      wakes.push(wake);
      overheads.push(wake - floor);
      if (typeof running.data.wakeLatencyMs === "number") recorded.push(running.data.wakeLatencyMs);
      o.say(`wake ${i + 1}: ${Math.round(wake)} ms, floor ${Math.round(floor)} ms`);
    }
  } finally {
    sub.unsubscribe();
    await detector.stop();
    await nodeOps.stop();
    await sim.stop();
    await js.dispose();
  }
  return {
    wake: { p50: pct(wakes, 50), p90: pct(wakes, 90) },
    floor: { p50: pct(floors, 50), p90: pct(floors, 90) },
    overhead: { p50: pct(overheads, 50), p90: pct(overheads, 90) },
    wakes: wakes.length,
    timeScale,
    pollMs,
    recordedP50: pct(recorded, 50),
  };
}
