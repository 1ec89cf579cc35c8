/**
 * The chaos run (issue 15, docs/chaos.md): the production shape (`npm run stack`: three NATS
 * servers, two processes of every service, each as its own NATS user) on the sim with faults
 * on, cluster and session lifecycles driven through the API, and a seeded chaos driver that
 * SIGKILLs service processes at random moments, stops a NATS server for a while and restarts
 * Postgres once. Then the invariants of test/harness/checks.ts, as a table.
 *
 * The seed fixes every choice the run makes (which process, how long it stays down, which
 * fault rates, which spot instance, the sim's own draws); it cannot fix how those choices
 * interleave with the processes' own timing, so a seed reproduces a run's shape, not its
 * exact event order.
 */
import { commandSubject, newId } from "@cairn/events";
import {
  type CheckRow,
  clusterEndProblems,
  deadLetterProblems,
  duplicateInstances,
  lifecycleTraceProblems,
  readModelProblems,
  replayProblems,
  sessionStateProblems,
  settledStepSendProblems,
  unansweredCommands,
  unrecordedInstances,
  watchInstances,
} from "../harness/checks.ts";
import { createCommand, nodeopEvents } from "../harness/lifecycle.ts";
import { type LoggedEvent, REGION, type Stack, startStack } from "../harness/stack.ts";

export interface ChaosOptions {
  /** How long the chaos driver runs (wall seconds); the lifecycles then get `settleSeconds` to end. */
  readonly seconds: number;
  readonly seed: number;
  /** Clusters run at once (default 2); a new lifecycle starts when one ends, while time is left. */
  readonly concurrentClusters?: number;
  /** Sessions per cluster (default 2). */
  readonly sessionsPerCluster?: number;
  readonly settleSeconds?: number;
  /** Progress lines (default: none). */
  readonly log?: (line: string) => void;
}

export interface ChaosReport {
  readonly seed: number;
  readonly seconds: number;
  readonly rows: CheckRow[];
  readonly ok: boolean;
  /** What the chaos driver did, in order (wall seconds from the start). */
  readonly actions: string[];
  readonly clusters: string[];
  readonly sessions: string[];
  readonly commands: number;
  readonly logDir: string;
}

/** mulberry32: small, fast, and the same sequence for a seed on every machine. */
export function seededRandom(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    between: (lo: number, hi: number) => lo + next() * (hi - lo),
    pick: <T>(xs: readonly T[]): T => xs[Math.floor(next() * xs.length)]!,
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface SentCommand {
  readonly commandId: string;
  readonly type: string;
  readonly traceId: string | undefined;
}

/** The faults the sim has on for the whole run (libs/sim/src/faults.ts), rates drawn from the seed. */
function faultRules(rnd: ReturnType<typeof seededRandom>) {
  return [
    { kind: "throttle", service: "ec2", rate: Number(rnd.between(0.03, 0.08).toFixed(3)) },
    { kind: "throttle", service: "ssm", rate: Number(rnd.between(0.03, 0.08).toFixed(3)) },
    { kind: "insufficient-capacity", service: "ec2", action: "RunInstances", count: 2 },
    {
      kind: "command-slow",
      service: "ssm",
      action: "SendCommand",
      rate: Number(rnd.between(0.1, 0.2).toFixed(3)),
      delaySeconds: Math.round(rnd.between(60, 240)),
    },
    { kind: "command-hang", service: "ssm", action: "SendCommand", count: 1 },
  ];
}

/**
 * Runs the whole thing and returns the checks; stops the stack whatever happens (its logs stay
 * in `logDir`).
 */
export async function runChaos(opts: ChaosOptions): Promise<ChaosReport> {
  const log = opts.log ?? (() => {});
  const rnd = seededRandom(opts.seed);
  const started = Date.now();
  const at = () => ((Date.now() - started) / 1000).toFixed(1);
  const stack = await startStack({
    production: true,
    replicas: 2,
    postgres: "embedded",
    timeScale: 50,
    simSeed: opts.seed,
    env: {
      // Idle in seconds, not half an hour: a session's idle → hibernate → wake fits in the run.
      CAIRN_SESSION_IDLE_GRACE_SECONDS: "1",
      CAIRN_SESSION_SWEEP_SECONDS: "1",
    },
  });
  log(`stack up in ${at()} s (logs in ${stack.logDir})`);
  try {
    return await drive(stack, opts, rnd, log, started);
  } finally {
    await stack.stop();
  }
}

async function drive(
  stack: Stack,
  opts: ChaosOptions,
  rnd: ReturnType<typeof seededRandom>,
  log: (line: string) => void,
  started: number,
): Promise<ChaosReport> {
  const at = () => ((Date.now() - started) / 1000).toFixed(1);
  const end = Date.now() + opts.seconds * 1000;
  const actions: string[] = [];
  const act = (line: string) => {
    actions.push(`+${at()}s ${line}`);
    log(`+${at()}s ${line}`);
  };
  const sent: SentCommand[] = [];
  const lifecycleTrace = new Map<string, string>();
  const clusters: string[] = [];
  const sessions: string[] = [];
  const watchers = new Map<string, ReturnType<typeof watchInstances>>();

  for (const rule of faultRules(rnd)) await stack.sim("faults", rule);
  act(`faults on: ${JSON.stringify((await stack.sim<{ rules: unknown[] }>("faults")).rules)}`);

  /** POST /commands with a fixed id, again on a network error or 5xx (a projector killed mid-request): the id makes it once. */
  const command = async (type: string, data: unknown): Promise<SentCommand> => {
    const id = newId();
    for (let tries = 0; ; tries++) {
      try {
        const r = await stack.post({ id, type, data, meta: { actor: "chaos" } });
        const s = { commandId: r.commandId, type, traceId: r.traceId };
        sent.push(s);
        return s;
      } catch (err) {
        if (tries > 40 || /answered 4\d\d/.test((err as Error).message)) throw err;
        await sleep(500);
      }
    }
  };

  /** Waits for what the command led to on the cluster: ready, failed, deleted or its rejection. */
  const outcome = async (clusterId: string, commandId: string, ms = 120_000): Promise<string> => {
    const deadline = Date.now() + ms;
    while (Date.now() < deadline) {
      const events = await stack.events({ type: "cluster", id: clusterId }).catch(() => []);
      const i = events.findIndex((e) => e.meta.commandId === commandId);
      if (i >= 0) {
        const done = events
          .slice(i)
          .find(
            (e) =>
              ["cluster.ready", "cluster.failed", "cluster.deleted"].includes(e.type) ||
              (e.type === "cluster.rejected" && e.meta.commandId === commandId),
          );
        if (done) return done.type;
      }
      await sleep(300);
    }
    return "timed out";
  };
  const sessionState = async (sessionId: string) => {
    // One try: a wait that polls must not stop its heartbeats for a projector that is down.
    const r = await stack.get(`/sessions/${sessionId}`).catch(() => undefined);
    return r?.status === 200 ? String(r.body.state) : undefined;
  };
  const untilSession = async (sessionId: string, states: string[], ms: number, beat = false) => {
    const deadline = Date.now() + ms;
    while (Date.now() < deadline) {
      const s = await sessionState(sessionId);
      if (s && states.includes(s)) return s;
      if (s === "Failed" || s === "Terminated") return s;
      if (beat) void heartbeat(sessionId);
      await sleep(500);
    }
    const history = (await stack.events({ type: "session", id: sessionId }).catch(() => []))
      .map((e) => e.type.replace("session.", ""))
      .join(" → ");
    return `timed out (${await sessionState(sessionId)}; history ${history})`;
  };
  const heartbeat = async (sessionId: string) => {
    await fetch(`${stack.api()}/sessions/${sessionId}/heartbeat`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ connections: 1 }),
      signal: AbortSignal.timeout(2_000),
    }).catch(() => {});
  };

  /**
   * One session: create and Running (awaited: a cluster that is Scaling admits no new
   * session), then, returned to run beside the cluster's own steps: heartbeats while it
   * works, idle until hibernated, wake, terminate.
   */
  const sessionLifecycle = async (
    clusterId: string,
    sessionId: string,
    keep: boolean,
  ): Promise<() => Promise<void>> => {
    sessions.push(sessionId);
    const create = await command("session.create", {
      sessionId,
      user: `chaos-${sessionId.slice(-1)}`,
      clusterId,
      template: { image: "ghcr.io/acme/ide:1", cpu: "250m", memory: "512Mi", storage: "1Gi" },
      idleTimeoutSeconds: 5,
    });
    if (create.traceId) lifecycleTrace.set(`session/${sessionId}`, create.traceId);
    const running = await untilSession(sessionId, ["Running"], 60_000, true);
    act(`${sessionId}: create → ${running}`);
    if (running !== "Running") return async () => {};
    return () => sessionRest(sessionId, keep);
  };
  const sessionRest = async (sessionId: string, keep: boolean) => {
    // Busy for a while: heartbeats keep it Running.
    const busyUntil = Date.now() + rnd.between(2_000, 6_000);
    while (Date.now() < busyUntil) {
      void heartbeat(sessionId);
      await sleep(700);
    }
    // Idle: no heartbeat; the idle-detector's sweep hibernates it.
    const idled = await untilSession(sessionId, ["Hibernated"], 120_000);
    act(`${sessionId}: idle → ${idled}`);
    if (idled !== "Hibernated") return;
    await command("session.wake", { sessionId });
    act(`${sessionId}: wake → ${await untilSession(sessionId, ["Running"], 60_000, true)}`);
    if (!keep) {
      await command("session.terminate", { sessionId });
      act(`${sessionId}: terminate → ${await untilSession(sessionId, ["Terminated"], 60_000)}`);
    }
  };

  /** One cluster: create, sessions on it, scale up and down, rollback, delete (the first one is kept). */
  const clusterLifecycle = async (n: number) => {
    const clusterId = `chaos-${opts.seed}-c${n}`;
    const keep = n === 0;
    clusters.push(clusterId);
    watchers.set(clusterId, watchInstances(stack, clusterId));
    const create = await command("cluster.create", createCommand(clusterId, 2).data);
    if (create.traceId) lifecycleTrace.set(`cluster/${clusterId}`, create.traceId);
    const created = await outcome(clusterId, create.commandId);
    act(`${clusterId}: create → ${created}`);
    if (created !== "cluster.ready") {
      if (!keep) {
        const del = await command("cluster.delete", { clusterId, force: true });
        act(`${clusterId}: delete → ${await outcome(clusterId, del.commandId, 180_000)}`);
      }
      return;
    }
    const firstReady = (await stack.events({ type: "cluster", id: clusterId })).findLast(
      (e) => e.type === "cluster.ready",
    );
    const perCluster = opts.sessionsPerCluster ?? 2;
    const sessionRuns: Promise<unknown>[] = [];
    for (let j = 0; j < perCluster; j++) {
      const rest = await sessionLifecycle(clusterId, `s-${clusterId}-${j}`, keep && j === 0).catch(
        (err: Error) => {
          act(`${clusterId}/session ${j}: ${err.message}`);
          return async () => {};
        },
      );
      sessionRuns.push(rest().catch((err: Error) => act(`${clusterId}/session ${j}: ${err.message}`)));
    }
    const steps: [string, () => Promise<SentCommand>][] = [
      ["scale 2 → 3", () => command("cluster.scale", { clusterId, pool: "workers", count: 3 })],
      ["scale 3 → 1", () => command("cluster.scale", { clusterId, pool: "workers", count: 1 })],
      [
        `rollback to v${firstReady?.position}`,
        () => command("cluster.rollback", { clusterId, toVersion: firstReady?.position ?? 1 }),
      ],
    ];
    for (const [what, send] of steps) {
      const c = await send();
      act(`${clusterId}: ${what} → ${await outcome(clusterId, c.commandId)}`);
    }
    await Promise.all(sessionRuns);
    if (keep) return;
    const del = await command("cluster.delete", { clusterId, force: true });
    act(`${clusterId}: delete → ${await outcome(clusterId, del.commandId, 180_000)}`);
  };

  // Deliberately bad: a command body that is no JSON, and one for an unknown type. Both belong
  // in the dead-letter stream, and nothing else does.
  const deliberate: { subject: string; data: string }[] = [
    { subject: commandSubject("cluster.create"), data: "{ this is not json" },
    { subject: commandSubject("cluster.create"), data: JSON.stringify({ id: "not-a-uuid", type: 42 }) },
  ];
  for (const d of deliberate) await stack.nats.js.publish(d.subject, d.data, { msgID: newId() });
  act(`sent ${deliberate.length} deliberately bad commands`);

  // The workload: lifecycles back to back, `concurrent` at once, while the chaos lasts.
  let next = 0;
  const lanes = Array.from({ length: opts.concurrentClusters ?? 2 }, async () => {
    do {
      const n = next++;
      await clusterLifecycle(n).catch((err) => act(`cluster ${n}: ${(err as Error).message}`));
    } while (Date.now() < end - 20_000);
  });

  // The chaos driver.
  const chaos = (async () => {
    const natsAt = Date.now() + opts.seconds * 1000 * rnd.between(0.2, 0.4);
    const pgAt = Date.now() + opts.seconds * 1000 * rnd.between(0.55, 0.75);
    let natsDone = false;
    let pgDone = false;
    const restarts: Promise<unknown>[] = [];
    while (Date.now() < end) {
      await sleep(rnd.between(1_500, 5_000));
      if (Date.now() >= end) break;
      if (!natsDone && Date.now() >= natsAt) {
        natsDone = true;
        const node = rnd.pick(stack.natsCluster?.nodes ?? []);
        const down = rnd.between(8_000, 15_000);
        act(`NATS ${node.name} stopped for ${(down / 1000).toFixed(1)} s`);
        await node.stop();
        restarts.push(
          sleep(down).then(async () => {
            await node.start();
            act(`NATS ${node.name} back`);
          }),
        );
        continue;
      }
      if (!pgDone && Date.now() >= pgAt) {
        pgDone = true;
        act("Postgres restarting");
        await stack.restartPostgres();
        act("Postgres back");
        continue;
      }
      if (rnd.next() < 0.15) {
        // A spot interruption of a running worker, as AWS gives it.
        const id = rnd.pick(clusters);
        const workers = (await watchers.get(id)?.peek()) ?? [];
        const live = workers.filter((i) => i.state === "running" && i.pool === "workers");
        if (live.length === 0) continue;
        const victim = rnd.pick(live);
        const r = await stack
          .sim("ec2/interrupt-spot", { region: REGION, instanceId: victim.instanceId })
          .then(() => "noticed")
          .catch((err: Error) => err.message.slice(0, 80));
        act(`spot interruption of ${victim.instanceId} (${id}): ${r}`);
        continue;
      }
      const up = stack.processes.filter((p) => p.child);
      if (up.length === 0) continue;
      const victim = rnd.pick(up);
      const downFor = rnd.between(200, 3_000);
      act(`SIGKILL ${victim.name} (pid ${victim.pid}), back in ${(downFor / 1000).toFixed(1)} s`);
      await victim.kill("SIGKILL");
      restarts.push(
        sleep(downFor).then(() =>
          victim
            .start()
            .catch((err: Error) => act(`${victim.name} did not start: ${err.message.split("\n")[0]}`)),
        ),
      );
    }
    await Promise.all(restarts);
    // Whatever is down comes back before the checks.
    for (const node of stack.natsCluster?.nodes ?? []) if (!node.running()) await node.start();
    await Promise.all(stack.processes.map((p) => (p.child ? p.ready() : p.start())));
    act("chaos over: every process and server up");
  })();

  await chaos;
  const settle = Promise.all(lanes);
  const settled = await Promise.race([
    settle.then(() => true),
    sleep((opts.settleSeconds ?? 180) * 1000).then(() => false),
  ]);
  act(settled ? "every lifecycle ended" : "lifecycles still running at the settle deadline");

  // The checks.
  const rows: CheckRow[] = [];
  const row = (check: string, problems: string[], detail: string) =>
    rows.push({ check, ok: problems.length === 0, detail, problems });

  // First: every cluster where it ends (a self-healing under way gets to finish), so the other
  // checks read the log as it stays.
  const endProblems = await clusterEndProblems(stack, clusters);
  const seenBy = new Map(
    await Promise.all(clusters.map(async (id) => [id, await watchers.get(id)!.stop()] as const)),
  );
  const seen = [...seenBy.values()].flat();
  const clusterEvents = new Map<string, LoggedEvent[]>();
  for (const id of clusters) clusterEvents.set(id, await stack.events({ type: "cluster", id }));
  const sessionEvents = new Map<string, LoggedEvent[]>();
  for (const id of sessions) sessionEvents.set(id, await stack.events({ type: "session", id }));
  const allClusterEvents = [...clusterEvents.values()].flat();

  row(
    "no duplicate instances (one per slot and attempt; one reservation per ClientToken, one instance per launch index)",
    // Per cluster: slots are numbered within a cluster.
    clusters.flatMap((id) =>
      [
        ...duplicateInstances(seenBy.get(id) ?? []),
        ...unrecordedInstances(seenBy.get(id) ?? [], clusterEvents.get(id) ?? []),
      ].map((p) => `${id}: ${p}`),
    ),
    `${seen.length} instances`,
  );
  const steps = await settledStepSendProblems(
    stack,
    clusters,
    seen.map((i) => i.instanceId),
  );
  const installEvents = steps.installEvents;
  row(
    "no install step sent twice without a recorded timeout or failure",
    steps.problems,
    `${steps.commands.length} SSM commands`,
  );
  row(
    "every command answered (accepted with events, or rejected with a reason)",
    await unansweredCommands(stack, sent, [...allClusterEvents, ...[...sessionEvents.values()].flat()]),
    `${sent.length} commands`,
  );
  row(
    "every cluster Ready, Deleted, or Failed with a remediation hint",
    endProblems,
    `${clusters.length} clusters`,
  );
  row(
    "every session in a state its history explains",
    await sessionStateProblems(stack, sessions),
    `${sessions.length} sessions`,
  );
  const dead = await stack.deadLetters();
  row(
    "the dead-letter stream holds only what the run sent bad",
    deadLetterProblems(dead, deliberate),
    `${dead.length} dead letters, ${deliberate.length} sent bad`,
  );
  const readModels = [
    ...(await Promise.all(clusters.map((id) => readModelProblems(stack, id, 30_000)))).flat(),
    ...(await replayProblems(stack)),
  ];
  row("the read models equal a fresh replay (content hash)", readModels, "every table");
  const traces: string[] = [];
  for (const id of clusters) {
    const traceId = lifecycleTrace.get(`cluster/${id}`);
    const events = [
      ...(clusterEvents.get(id) ?? []),
      ...(installEvents.get(id) ?? []),
      ...(await nodeopEvents(stack, id)),
    ];
    traces.push(...lifecycleTraceProblems(`cluster ${id}`, events, traceId));
  }
  for (const id of sessions)
    traces.push(
      ...lifecycleTraceProblems(
        `session ${id}`,
        sessionEvents.get(id) ?? [],
        lifecycleTrace.get(`session/${id}`),
      ),
    );
  row(
    "every event of a lifecycle carries its lifecycle's trace id",
    traces,
    `${clusters.length + sessions.length} lifecycles`,
  );
  row(
    "no process crashed on its own (only the driver's SIGKILLs)",
    stack
      .crashes()
      .map(
        (c) =>
          `${c.process} (pid ${c.pid}) exited ${c.signal ?? c.code} at +${((c.at - started) / 1000).toFixed(1)}s`,
      ),
    `${actions.filter((a) => a.includes("SIGKILL")).length} SIGKILLs`,
  );
  if (!settled) row("every lifecycle ended before the settle deadline", ["see the actions"], "");

  return {
    seed: opts.seed,
    seconds: opts.seconds,
    rows,
    ok: rows.every((r) => r.ok),
    actions,
    clusters,
    sessions,
    commands: sent.length,
    logDir: stack.logDir,
  };
}

/** The checks as a table, then each failing check's problems. */
export function formatReport(r: ChaosReport): string {
  const w = Math.max(...r.rows.map((x) => x.check.length));
  const lines = [
    `chaos seed ${r.seed}, ${r.seconds} s: ${r.clusters.length} clusters, ${r.sessions.length} sessions, ${r.commands} commands`,
    `${"check".padEnd(w)} | result | detail`,
    `${"-".repeat(w)}-|--------|-------`,
    ...r.rows.map((x) => `${x.check.padEnd(w)} | ${x.ok ? "ok    " : "FAILED"} | ${x.detail}`),
  ];
  for (const x of r.rows.filter((x) => !x.ok)) {
    lines.push("", `FAILED: ${x.check} (${x.problems.length})`);
    for (const p of x.problems.slice(0, 20)) lines.push(`  - ${p}`);
    if (x.problems.length > 20) lines.push(`  … and ${x.problems.length - 20} more`);
  }
  if (!r.ok)
    lines.push("", `reproduce: npm run chaos -- --seconds ${r.seconds} --seed ${r.seed} (logs: ${r.logDir})`);
  return lines.join("\n");
}
