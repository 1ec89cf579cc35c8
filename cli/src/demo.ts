/**
 * `cairn demo` (`npm run demo`): Cairn end to end in a minute, through the CLI's own code paths.
 *  0. A Cairn to talk to: the one the CLI is pointed at when it answers, else a stack started
 *     here on the simulated cloud (`startStack`, as `cairn up`), with a faster sim and a short
 *     idle sweep unless the environment says otherwise (DEMO_STACK_DEFAULTS).
 *  1. The design's example cluster (1 server, 2 spot workers), followed to Ready with the
 *     progress bar of `cairn cluster create --wait`.
 *  2. A few sessions on it (`cairn session create --wait`), one with a short idle timeout; the
 *     others get a heartbeat with a connection (in use).
 *  3. The short one, left without connections, idles into hibernation (the idle sweep's
 *     decision: cause `idle`), followed with `--wait`'s progress.
 *  4. A connection wakes it (`cairn session connect --wait`): the wake latency is shown.
 *  5. The summary on stdout: the cluster, the sessions, the idle round trip, the dashboard's
 *     URL and the lifecycle trace id to search (and its Jaeger link with JAEGER_UI_URL).
 * A stack started here keeps running for a look around until Ctrl-C (or stops at once with
 * `--exit`); Ctrl-C at any point stops the services, the sim, Postgres and NATS it started.
 */
import { mkdirSync, openSync } from "node:fs";
import { join, resolve } from "node:path";
import { exampleClusterCreate } from "@cairn/events";
import { type ApiClient, ApiUnreachableError, apiClient } from "./api-client.ts";
import { CLUSTER_COLUMNS, type ClusterView } from "./cluster/view.ts";
import { sendCommand } from "./command-status.ts";
import { waitForCluster } from "./commands/cluster.ts";
import { postSession, waitForSession } from "./commands/session.ts";
import type { CliConfig } from "./config.ts";
import { OutcomeError } from "./errors.ts";
import { formatList } from "./output.ts";
import { seconds } from "./progress.ts";
import { createData } from "./session/create-data.ts";
import { SESSION_COLUMNS, type SessionView } from "./session/view.ts";
import type { Stack } from "./up.ts";

/** The public contract's example command (DESIGN §7), for a given cluster id. */
export function demoCluster(clusterId: string) {
  return exampleClusterCreate(clusterId, process.env.USER ?? "demo");
}

/**
 * What a stack the demo starts runs with, unless the environment sets it: the sim ten times
 * faster than AWS (Ready in about 15 s instead of 2.5 min), and an idle sweep every second
 * with a one-second grace, so an idle session hibernates within seconds of its timeout.
 */
export const DEMO_STACK_DEFAULTS: Readonly<Record<string, string>> = {
  CAIRN_SIM_TIME_SCALE: "10",
  CAIRN_SESSION_SWEEP_SECONDS: "1",
  CAIRN_SESSION_IDLE_GRACE_SECONDS: "1",
};

const USERS = ["alice", "bob", "carol", "dave", "erin"];
export const DEMO_IMAGE = "ghcr.io/acme/ide:1";

export interface DemoOptions {
  /** Sessions to create (1 to 5). */
  readonly sessions: number;
  /** The idle timeout of the session left to idle, in seconds. */
  readonly idleTimeoutSeconds: number;
  /** Stop what the demo started once the summary is printed. */
  readonly exit: boolean;
  /** Each wait gives up after this long. */
  readonly timeoutMs: number;
}

/** What the demo saw, for the summary. */
export interface DemoResult {
  readonly cluster: ClusterView;
  readonly sessions: readonly SessionView[];
  readonly idle: {
    readonly sessionId: string;
    readonly cause: string | null;
    readonly hibernatedAfterMs: number;
    readonly wokeState: string;
    readonly wakeLatencyMs: number | null;
  };
  readonly apiUrl: string;
  readonly traceId: string | undefined;
  readonly traceEvents: number;
}

const note = (line: string) => void process.stderr.write(`demo: ${line}\n`);

/** Whether a Cairn API answers ready at `api`. Never throws. */
async function answers(api: ApiClient): Promise<boolean> {
  try {
    await api.get("/readyz");
    return true;
  } catch {
    return false;
  }
}

/** Runs the demo (steps 0–5 above). Resolves when it is over (after Ctrl-C, if it keeps the stack). */
export async function demo(config: CliConfig, actor: string, o: DemoOptions): Promise<void> {
  // 0.
  let api = apiClient(config.apiUrl, config.token);
  let stack: Stack | undefined;
  let summarised = false;
  if (await answers(api)) note(`using the Cairn that answers at ${config.apiUrl}`);
  else if (config.from.apiUrl === "flag" || config.from.apiUrl === "env" || config.from.apiUrl === "file")
    // The user named an API: starting another one elsewhere would not be what they asked for.
    throw new ApiUnreachableError(config.apiUrl, new Error("it does not answer /readyz"));
  else {
    const { startOwnStack } = await import("./up.ts");
    const env: Record<string, string> = {};
    for (const [k, v] of Object.entries(DEMO_STACK_DEFAULTS)) env[k] = process.env[k] ?? v;
    const dataDir = resolve(process.env.CAIRN_DATA_DIR ?? ".cairn");
    mkdirSync(join(dataDir, "logs"), { recursive: true });
    const logFile = join(dataDir, "logs", "demo.log");
    note(
      `no Cairn answers at ${config.apiUrl}: starting one on the simulated cloud (time scale ${env.CAIRN_SIM_TIME_SCALE}; the services' logs go to ${logFile})`,
    );
    // Ctrl-C: stop what the demo started, then leave (130 unless the demo had finished).
    const started = await startOwnStack({
      env: { ...process.env, ...env },
      output: openSync(logFile, "a"),
      stopping: "what the demo started (services, sim, Postgres, NATS)",
      say: note,
      signalExitCode: () => (summarised ? 0 : 130),
      abortedExitCode: 130,
      onFatal: () => {},
    });
    stack = started;
    api = apiClient(started.endpoints.apiUrl, undefined);
    note(`Cairn is up at ${started.endpoints.apiUrl}`);
  }

  let result: DemoResult;
  try {
    result = await run(api, config.token !== undefined, actor, o);
  } catch (err) {
    // Ctrl-C under way: its stop ends the process; the API gone under the steps is no error.
    if (stack?.stopping()) await new Promise(() => {});
    // What the demo started must not be left running behind the error.
    if (stack) await stack.stop();
    throw err;
  }
  process.stdout.write(summary(result));
  summarised = true;
  if (!stack) return;
  if (o.exit) {
    note("stopping what the demo started (--exit)");
    await stack.stop();
    return;
  }
  note(
    `the stack keeps running for a look around (the dashboard above; ${result.idle.sessionId} hibernates again when left idle, \`cairn session connect ${result.idle.sessionId} --wait\` wakes it); Ctrl-C stops what the demo started`,
  );
  await new Promise(() => {}); // until a signal ends the process
}

/** Steps 1–4 against a Cairn that answers. */
async function run(api: ApiClient, hasToken: boolean, actor: string, o: DemoOptions): Promise<DemoResult> {
  const began = Date.now();
  // 1.
  const clusterId = `demo-${Date.now().toString(36)}`;
  const example = demoCluster(clusterId);
  note(`creating cluster ${clusterId}: 1 server, a pool of 2 spot workers, in ${example.data.region}`);
  const sent = await sendCommand(api, "cluster.create", example.data, actor);
  note(`command ${sent.commandId}, trace ${sent.traceId ?? "(none)"}`);
  let cluster = await waitForCluster(api, clusterId, "Ready", {
    commandId: sent.commandId,
    timeoutMs: o.timeoutMs,
  });
  note(`cluster/${clusterId} Ready in ${seconds(Date.now() - began)}`);

  // 2.
  const users = USERS.slice(0, o.sessions);
  const created: { id: string; commandId: string }[] = [];
  for (const [i, user] of users.entries()) {
    const data = await createData(
      `${clusterId}-${user}`,
      {
        cluster: clusterId,
        image: DEMO_IMAGE,
        cpu: "500m",
        memory: "1Gi",
        storage: "5Gi",
        ...(hasToken ? {} : { user }),
        ...(i === 0 ? { idleTimeout: `${o.idleTimeoutSeconds}s` } : {}),
      },
      hasToken,
    );
    const answer = await postSession(api, data);
    created.push({ id: answer.sessionId, commandId: answer.commandId });
    note(
      `session ${answer.sessionId} for ${hasToken ? "the token's holder" : user}${i === 0 ? ` (idle timeout ${o.idleTimeoutSeconds}s)` : ""}: ${answer.state}`,
    );
  }
  for (const c of created)
    await waitForSession(api, c.id, "Running", {
      commandId: c.commandId,
      timeoutMs: o.timeoutMs,
      creating: true,
    });
  // In use: a connection each (the idle one gets none).
  for (const c of created.slice(1))
    await api.post(`/sessions/${encodeURIComponent(c.id)}/heartbeat`, { connections: 1 });

  // 3.
  const idleId = created[0]!.id;
  note(
    `session ${idleId} has no connection: the idle sweep hibernates it past its ${o.idleTimeoutSeconds}s timeout and the idle-detector's grace`,
  );
  const idleFrom = Date.now();
  const hibernated = await waitForSession(api, idleId, "Hibernated", { timeoutMs: o.timeoutMs });
  const hibernatedAfterMs = Date.now() - idleFrom;
  if (hibernated.cause !== "idle")
    throw new OutcomeError(
      `session/${idleId} was hibernated, but not for idleness (cause ${hibernated.cause})`,
      {
        hint: `see its history: \`cairn session history ${idleId}\``,
      },
    );

  // 4.
  note(`connecting to ${idleId}: the connection wakes it`);
  const connect = await api.post<{ commandId: string }>(
    `/sessions/${encodeURIComponent(idleId)}/connect`,
    {},
  );
  const woke = await waitForSession(api, idleId, "Running", {
    commandId: connect.commandId,
    timeoutMs: o.timeoutMs,
  });

  cluster = await api.get<ClusterView>(`/clusters/${encodeURIComponent(clusterId)}`);
  const sessions = await Promise.all(
    created.map((c) => api.get<SessionView>(`/sessions/${encodeURIComponent(c.id)}`)),
  );
  const trace = sent.traceId
    ? await api
        .get<{ items: unknown[] }>(`/traces/${encodeURIComponent(sent.traceId)}`)
        .catch(() => ({ items: [] }))
    : { items: [] };
  return {
    cluster,
    sessions,
    idle: {
      sessionId: idleId,
      cause: hibernated.cause,
      hibernatedAfterMs,
      wokeState: woke.state,
      wakeLatencyMs: woke.wakeLatencyMs,
    },
    apiUrl: api.base,
    traceId: sent.traceId,
    traceEvents: trace.items.length,
  };
}

/**
 * The demo's last words, on stdout: what it made and where to look.
 * @example summary(result) // "Cairn demo: done\n  cluster    demo-1 Ready …"
 */
export function summary(r: DemoResult, env: NodeJS.ProcessEnv = process.env): string {
  const jaeger = env.JAEGER_UI_URL?.replace(/\/$/, "");
  const lines = [
    "",
    formatList([r.cluster], "table", CLUSTER_COLUMNS).trimEnd(),
    "",
    formatList(r.sessions, "wide", SESSION_COLUMNS).trimEnd(),
    "",
    "Cairn demo: done",
    `  cluster    ${r.cluster.id} ${r.cluster.state}`,
    `  sessions   ${r.sessions.map((s) => `${s.id} ${s.state}`).join(", ")}`,
    `  idle       ${r.idle.sessionId} went Hibernated (cause: ${r.idle.cause}) after ${seconds(r.idle.hibernatedAfterMs)}, then ${r.idle.wokeState} on connect: woke in ${r.idle.wakeLatencyMs ?? "?"} ms`,
    `  dashboard  ${r.apiUrl}/`,
    `  trace      ${r.traceId ?? "(none)"}${r.traceId ? `  (${r.traceEvents} events: \`cairn trace ${r.traceId}\`, ${r.apiUrl}/traces/${r.traceId})` : ""}`,
    ...(jaeger && r.traceId ? [`  jaeger     ${jaeger}/trace/${r.traceId}`] : []),
    "",
  ];
  return lines.join("\n");
}
