/**
 * bench/sessions, part 3: the wake overhead over the sim's own pod-ready latency, and
 * where the time of a wake goes.
 *
 * On a disposable nats-server and the sim (one agent node, so every pod lands on the node
 * whose kubelet already has the image), the real idle-detector and the real node-ops
 * (client-node on the sim's Kubernetes API, kubeconfig from SSM), run together as
 * test/sessions-node-ops.int.spec.ts runs them. One session is created and reaches
 * Running; then, `wakes` times:
 *  - hibernate it, wait for `session.hibernated` and for its pod to be gone;
 *  - the floor: a Deployment with the session's own pod template, scaled 0 → 1 through
 *    client-node, timed from just before the scale until a watch of its pods (opened
 *    before) hears the pod Ready; scaled back to 0 and its pod gone;
 *  - the wake: `session.connect`, timed from just before the send until `session.running`
 *    is published on the session's event subject (a core subscription, no polling).
 * The overhead of a wake is its time minus the floor measured just before it.
 *
 * Where the time goes (each hop p50 / p99): every commit of the session and of its
 * workload as the bench's core subscription hears it, and the session's pod as a watch
 * of it hears it (created: the scale was served, since the Deployment controller makes the
 * pod in that request; Ready) — all on the bench's one clock:
 *   connect → session.waking            the idle-detector decides the connect
 *   session.waking → workload.starting  its reactor sends workload.start; node-ops decides it
 *   workload.starting → pod created     node-ops' reactor scales the Deployment to one
 *   pod created → pod Ready             the sim starts the pod (≈ the floor)
 *   pod Ready → workload.running        node-ops notices (its pod watch, else its poll) and records it
 *   workload.running → session.running  the idle-detector records the session Running
 *
 * Knobs: `BENCH_WAKE_TIME_SCALE` (20), `BENCH_WAKE_POLL_MS` (node-ops' poll as first and
 * least delay; default: node-ops' own, first after 1 s, then 5 % of the time waited, at
 * least 500 ms), `BENCH_WAKE_POD_WATCH=0` (node-ops without its pod watch: the polls alone).
 */
import { CommandBus, catalogue, EventStore } from "@cairn/events";
import { appendAsOwner, recordClusterRequested, startJetStream } from "@cairn/events/testing";
import { startIdleDetector } from "@cairn/idle-detector";
import { kubeconfigParameter, SESSIONS_NAMESPACE, startNodeOps } from "@cairn/node-ops";
import { REALISTIC_LATENCIES, SIM_CREDENTIALS, startSim } from "@cairn/sim";
import {
  AppsV1Api,
  CoreV1Api,
  KubeConfig,
  PatchStrategy,
  setHeaderOptions,
  type V1Pod,
  Watch,
} from "@kubernetes/client-node";
import type { Figure } from "../lib/report.ts";

const CLUSTER = "demo-1";
const SESSION = "wake-1";

/** The hops of a wake, in order: each from the moment named before it. */
export const HOPS = [
  ["connect → session.waking", "waking"],
  ["session.waking → workload.starting", "starting"],
  ["workload.starting → pod created", "podCreated"],
  ["pod created → pod Ready (sim)", "podReady"],
  ["pod Ready → workload.running", "workloadRunning"],
  ["workload.running → session.running", "sessionRunning"],
] as const;
type Moment = (typeof HOPS)[number][1];

export interface Spread {
  p50: number;
  p90: number;
  p99: number;
}

export interface WakeFigures {
  wake: Spread;
  /** The raw limit: the same pod template scaled 0 → 1 through client-node, Ready (a watch). */
  floor: Spread;
  overhead: Spread;
  /** Each hop's time, by HOPS' label. */
  hops: Record<string, Spread>;
  wakes: number;
  timeScale: number;
  /** The sim's configured pod start-up (deploymentReady), in wall ms at this time scale. */
  simPodReadyMs: number;
  pollMs: number | "default";
  podWatch: boolean;
  /** The idle-detector's own wake latency (connect decided → running recorded), p50. */
  recordedP50: number;
}

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)] ?? Number.NaN;
};
const spread = (xs: number[]): Spread => ({ p50: pct(xs, 50), p90: pct(xs, 90), p99: pct(xs, 99) });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(what: string, f: () => Promise<boolean>, ms = 60_000, everyMs = 5) {
  const deadline = performance.now() + ms;
  while (!(await f())) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(everyMs);
  }
}

/**
 * A watch of the pods with `selector` from the list's resourceVersion: when each pod was
 * first heard of and first heard Ready (performance.now()).
 */
async function watchPods(kc: KubeConfig, core: CoreV1Api, selector: string) {
  const created = new Map<string, number>();
  const ready = new Map<string, number>();
  const list = await core.listNamespacedPod({ namespace: SESSIONS_NAMESPACE, labelSelector: selector });
  const controller = await new Watch(kc).watch(
    `/api/v1/namespaces/${SESSIONS_NAMESPACE}/pods`,
    { labelSelector: selector, resourceVersion: list.metadata?.resourceVersion },
    (type, obj: V1Pod) => {
      const at = performance.now();
      const name = obj.metadata?.name ?? "";
      if (type === "DELETED") return;
      if (!created.has(name)) created.set(name, at);
      const isReady = obj.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True");
      if (isReady && !ready.has(name)) ready.set(name, at);
    },
    () => {},
  );
  return {
    created,
    ready,
    /** The first pod heard Ready: its name, when it was created and when Ready. */
    firstReady: () => {
      const [name, at] = [...ready].sort((a, b) => a[1] - b[1])[0] ?? [];
      return name === undefined ? undefined : { name, created: created.get(name)!, ready: at! };
    },
    stop: () => controller.abort(),
  };
}

export async function wakeBench(o: {
  wakes: number;
  quick: boolean;
  say: (line: string) => void;
}): Promise<WakeFigures> {
  const timeScale = Number(process.env.BENCH_WAKE_TIME_SCALE ?? 20);
  const pollEnv = process.env.BENCH_WAKE_POLL_MS;
  const pollMs = pollEnv ? Number(pollEnv) : ("default" as const);
  const podWatch = process.env.BENCH_WAKE_POD_WATCH !== "0";
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
      ...(podWatch ? {} : { podWatch: false }),
      unschedulableGraceMs: 0,
    },
  });
  const detector = await startIdleDetector({ nats: js.nats, sweepIntervalMs: 3_600_000 });
  const bus = new CommandBus({ js: js.nats.js, catalogue });
  const send = (type: string, extra: object = {}) =>
    bus.send({ type, data: { sessionId: SESSION, ...extra }, meta: { actor: "alice" } });

  // Every commit of the session and of its workload as it is published: the bench waits
  // on these, no polling, and times the hops by them.
  const seen: { type: string; data: Record<string, unknown>; at: number }[] = [];
  const subs = ["session", "workload"].map((aggregate) =>
    js.nats.nc.subscribe(`evt.${aggregate}.${SESSION}`, {
      callback: (err, m) => {
        if (err) return;
        const at = performance.now();
        const c = m.json<{ events: { type: string; data: Record<string, unknown> }[] }>();
        for (const e of c.events) seen.push({ type: e.type, data: e.data, at });
      },
    }),
  );
  const next = async (type: string, from: number) => {
    await until(type, async () => seen.slice(from).some((e) => e.type === type), 60_000, 1);
    return seen.slice(from).find((e) => e.type === type)!;
  };
  const podsOf = async (selector: string) =>
    (await core.listNamespacedPod({ namespace: SESSIONS_NAMESPACE, labelSelector: selector })).items;

  const wakes: number[] = [];
  const floors: number[] = [];
  const overheads: number[] = [];
  const recorded: number[] = [];
  const hops = new Map<Moment, number[]>(HOPS.map(([, m]) => [m, []]));
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

      const floorPods = await watchPods(kc, core, "app=bench-floor");
      const f0 = performance.now();
      await scaleFloor(1);
      await until("the floor Ready", async () => floorPods.firstReady() !== undefined, 60_000, 1);
      const floor = floorPods.firstReady()!.ready - f0;
      floorPods.stop();
      await scaleFloor(0);
      await until("the floor's pod gone", async () => (await podsOf("app=bench-floor")).length === 0);

      const pods = await watchPods(kc, core, `cairn.dev/session=${SESSION}`);
      from = seen.length;
      const w0 = performance.now();
      await send("session.connect");
      const running = await next("session.running", from);
      const pod = pods.firstReady();
      pods.stop();
      const wake = running.at - w0;
      floors.push(floor);
      wakes.push(wake);
      overheads.push(wake - floor);
      if (typeof running.data.wakeLatencyMs === "number") recorded.push(running.data.wakeLatencyMs);
      const at = (type: string) => seen.slice(from).find((e) => e.type === type)?.at ?? Number.NaN;
      const moments: Record<Moment, number> = {
        waking: at("session.waking"),
        starting: at("workload.starting"),
        podCreated: pod?.created ?? Number.NaN,
        podReady: pod?.ready ?? Number.NaN,
        workloadRunning: at("workload.running"),
        sessionRunning: running.at,
      };
      let before = w0;
      for (const [, m] of HOPS) {
        hops.get(m)!.push(moments[m] - before);
        before = moments[m];
      }
      o.say(
        `wake ${i + 1}: ${Math.round(wake)} ms, floor ${Math.round(floor)} ms, overhead ${Math.round(wake - floor)} ms (${HOPS.map(([, m]) => `${m} +${Math.round(hops.get(m)!.at(-1)!)}`).join(", ")})`,
      );
    }
  } finally {
    for (const s of subs) s.unsubscribe();
    await detector.stop();
    await nodeOps.stop();
    await sim.stop();
    await js.dispose();
  }
  return {
    wake: spread(wakes),
    floor: spread(floors),
    overhead: spread(overheads),
    hops: Object.fromEntries(HOPS.map(([label, m]) => [label, spread(hops.get(m)!)])),
    wakes: wakes.length,
    timeScale,
    simPodReadyMs: (REALISTIC_LATENCIES.deploymentReady * 1000) / timeScale,
    pollMs,
    podWatch,
    recordedP50: pct(recorded, 50),
  };
}

/** The goal of issue 13: a wake costs at most 100 ms over the pod's own start-up. */
export const WAKE_OVERHEAD_GOAL_MS = 100;

/** The wake's figures for the machine-readable line. */
export function wakeFigures(w: WakeFigures) {
  return {
    wake_ms_p50: w.wake.p50,
    wake_ms_p99: w.wake.p99,
    pod_ready_floor_ms_p50: w.floor.p50,
    pod_ready_floor_ms_p99: w.floor.p99,
    sim_pod_ready_ms: w.simPodReadyMs,
    wake_overhead_ms_p50: w.overhead.p50,
    wake_overhead_ms_p90: w.overhead.p90,
    wake_overhead_ms_p99: w.overhead.p99,
    wakes: w.wakes,
    wake_recorded_ms_p50: w.recordedP50,
    wake_poll_ms: w.pollMs === "default" ? -1 : w.pollMs,
    // 1 with node-ops' pod watch, 0 with its polls alone: figures are numbers (bench/lib/report.ts).
    wake_pod_watch: w.podWatch ? 1 : 0,
    sim_time_scale: w.timeScale,
    // Each hop flat, `wake_hop_<moment>_ms_p50`/`_p99`: figures are one level of numbers.
    ...Object.fromEntries(
      HOPS.flatMap(([label, m]) => {
        const hop = `wake_hop_${m.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)}_ms`;
        return [
          [`${hop}_p50`, w.hops[label]!.p50],
          [`${hop}_p99`, w.hops[label]!.p99],
        ];
      }),
    ),
  };
}

/** The rows of the printed table: the wake beside its floor, the overhead, then each hop. */
export function wakeRows(w: WakeFigures): Figure[] {
  const row = (name: string, value: number, raw?: number): Figure => ({
    name,
    value,
    unit: "ms",
    ...(raw !== undefined ? { raw } : {}),
  });
  return [
    row("connect → Running, p50", w.wake.p50, w.floor.p50),
    row("connect → Running, p99", w.wake.p99, w.floor.p99),
    row(`wake overhead over pod-ready, p50 (goal ≤ ${WAKE_OVERHEAD_GOAL_MS} ms)`, w.overhead.p50),
    row("wake overhead over pod-ready, p99", w.overhead.p99),
    ...HOPS.flatMap(([label]) => [
      row(`  ${label}, p50`, w.hops[label]!.p50),
      row(`  ${label}, p99`, w.hops[label]!.p99),
    ]),
  ];
}

export const wakeTitle = (w: WakeFigures) =>
  `wake on the sim (time scale ${w.timeScale}: pod start-up ${w.simPodReadyMs} ms; ${w.wakes} wakes; node-ops ${w.podWatch ? "pod watch on" : "pod watch off"}, poll ${w.pollMs === "default" ? "default (first 1 s, then ≥ 500 ms)" : `${w.pollMs} ms`}; raw = the same pod template scaled 0 → 1 on the same node through client-node, Ready heard by a watch)`;
