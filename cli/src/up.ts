/**
 * `cairn up`: the whole control plane on one machine (DESIGN §8).
 *  0. The API's port (CAIRN_API_PORT) must be free: nothing else starts otherwise.
 *  1. NATS: NATS_URL, else a private nats-server (JetStream in <data dir>/nats).
 *  2. Postgres: DATABASE_URL, else the local server (database `cairn`), else an
 *     embedded one in <data dir>/postgres.
 *  3. The cloud: AWS as the SDK finds it (credentials and a region), else libs/sim as
 *     its own process on CAIRN_SIM_PORT, handed to the services through the SDK's own
 *     variables (AWS_ENDPOINT_URL_EC2, AWS_ENDPOINT_URL_SSM, AWS_ENDPOINT_URL_SQS, credentials).
 *  4. The five services as separate processes, supervised: one that crashes is restarted
 *     with backoff (supervisor.ts) while the rest keeps running.
 *  5. Where everything is, printed and written to <data dir>/endpoints.json (each service's
 *     /metrics as it comes up: its health port is any free one); "Cairn is up" only once our
 *     own projector said it serves and its /readyz answers 200.
 * Ctrl-C or SIGTERM stops the services first (pending restarts cancelled), then what it
 * started; a second Ctrl-C kills the services at once.
 */
import { spawn } from "node:child_process";
import { mkdir } from "node:fs/promises";
import { createServer } from "node:net";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { ensureDatabase, findPostgres, freePort, type PostgresServer, startNatsServer } from "@cairn/testkit";
import { writeEndpointsFile } from "./endpoints-file.ts";
import { SERVICE_MALLOC_ENV, SIM_NODE_FLAGS } from "./stack/shape.ts";
import { supervise } from "./supervisor.ts";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
export const SERVICES = ["provisioner", "installer", "idle-detector", "node-ops", "projector"] as const;

export interface Endpoints {
  natsUrl: string;
  databaseUrl: string;
  /** The simulated cloud's endpoint, when Cairn runs against the sim. */
  simUrl?: string;
  apiUrl: string;
  docsUrl: string;
  /**
   * Prometheus endpoints: `api` (the API's own /metrics) and each service's health port's
   * /metrics, by service name, as each said it is ready (a restarted service gets a new port).
   */
  metrics: Record<string, string>;
}

/** The API cannot listen: another process holds its port. */
export class ApiPortTakenError extends Error {
  readonly port: number;
  readonly host: string;
  constructor(port: number, host: string) {
    super(
      `the API's port ${port} on ${host} (CAIRN_API_PORT) is taken by another process; stop that process or set CAIRN_API_PORT to a free port`,
    );
    this.name = "ApiPortTakenError";
    this.port = port;
    this.host = host;
  }
}

async function portFree(port: number): Promise<boolean> {
  return await new Promise((res) => {
    const s = createServer();
    s.once("error", () => res(false));
    s.listen(port, "127.0.0.1", () => s.close(() => res(true)));
  });
}

/**
 * True when another process listens on host:port. Any other refusal (a host that is not ours,
 * a privileged port) is left to the projector, which names it when it fails to listen.
 */
async function portTaken(port: number, host: string): Promise<boolean> {
  return await new Promise((res) => {
    const s = createServer();
    s.once("error", (err: NodeJS.ErrnoException) => res(err.code === "EADDRINUSE"));
    s.listen(port, host, () => s.close(() => res(false)));
  });
}

function sayOnStderr(line: string) {
  process.stderr.write(`cairn: ${line}\n`);
}
const say = sayOnStderr;

/** How a stack is started: `cairn up` and `cairn demo`. */
export interface StackOptions {
  /** Over this process's environment: CAIRN_DATA_DIR, CAIRN_API_PORT, NATS_URL, DATABASE_URL… */
  readonly env?: NodeJS.ProcessEnv;
  /** Where the services' and the sim's own output goes (an open file descriptor); default: ours. */
  readonly output?: number;
  /** Lines about the stack (what started where, restarts); default: stderr, `cairn: `. */
  readonly say?: (line: string) => void;
  /** The stack cannot go on (the API's port lost before it ever served): the caller stops it. */
  readonly onFatal?: (err: Error) => void;
  /**
   * Ctrl-C while it starts: what was started so far is stopped and `startStack` throws
   * StackAbortedError; once the services run, the stack stops (`ready` resolves false).
   */
  readonly signal?: AbortSignal;
}

/** `startStack` was aborted (Ctrl-C) before the services ran; what it had started is stopped. */
export class StackAbortedError extends Error {
  override readonly name = "StackAbortedError";
  constructor() {
    super("stopped while starting: what was started is stopped again");
  }
}

/** A stack started by this process. */
export interface Stack {
  readonly endpoints: Endpoints;
  /** True once our projector serves and its /readyz answers 200; false when stopped first. */
  readonly ready: Promise<boolean>;
  /**
   * Stops the services (pending restarts cancelled, each drained), then what was started for
   * them (the sim, Postgres, NATS), in reverse order. Idempotent; never throws.
   */
  stop(): Promise<void>;
  /** A signal to every service process now (SIGKILL by default: a second Ctrl-C). Synchronous. */
  kill(signal?: NodeJS.Signals): void;
  stopping(): boolean;
}

/**
 * Starts the whole control plane (steps 0–5 above) and returns while the API comes up
 * (`ready`). Installs no signal handler and never exits the process: the caller decides (a
 * failure part-way stops what was started, then throws).
 */
export async function startStack(opts: StackOptions = {}): Promise<Stack> {
  const env = { ...process.env, ...opts.env };
  const say = opts.say ?? sayOnStderr;
  const dataDir = resolve(env.CAIRN_DATA_DIR ?? ".cairn");
  const apiPort = Number(env.CAIRN_API_PORT ?? 8080);
  const apiHost = env.CAIRN_API_HOST ?? "127.0.0.1";

  // 0. Before anything starts: a projector that cannot bind would crash-loop behind a stack
  //    that looks up, and whatever holds the port would answer our readiness probes.
  if (await portTaken(apiPort, apiHost)) throw new ApiPortTakenError(apiPort, apiHost);

  await mkdir(dataDir, { recursive: true });
  const stops: (() => Promise<void>)[] = [];
  const stopStarted = async () => {
    for (const stop of stops.splice(0).reverse()) await stop().catch(() => {});
  };
  let natsUrl: string;
  let databaseUrl: string;
  let cloudEnv: NodeJS.ProcessEnv = {};
  let simUrl: string | undefined;
  const aborted = () => {
    if (opts.signal?.aborted) throw new StackAbortedError();
  };
  try {
    aborted();
    // 1.
    natsUrl = env.NATS_URL ?? "";
    if (!natsUrl) {
      const port = (await portFree(4222)) ? 4222 : await freePort();
      const nats = await startNatsServer({ port, storeDir: join(dataDir, "nats") });
      stops.push(() => nats.stop());
      natsUrl = nats.url;
      say(`started nats-server with JetStream at ${natsUrl} (store ${join(dataDir, "nats")})`);
    } else say(`using NATS at ${natsUrl}`);
    aborted();

    // 2.
    databaseUrl = env.DATABASE_URL ?? "";
    if (!databaseUrl) {
      const pg: PostgresServer = await findPostgres({
        dataDir: join(dataDir, "postgres"),
        useDatabaseUrl: false,
      });
      if (pg.embedded) stops.push(() => pg.stop());
      databaseUrl = await ensureDatabase(pg, "cairn");
      say(
        `${pg.embedded ? "started an embedded Postgres" : "using the local Postgres"}: database ${redactUrl(databaseUrl)}`,
      );
    } else say(`using Postgres at ${redactUrl(databaseUrl)}`);
    aborted();

    // 3.
    if (usesRealAws(env)) {
      say(
        `using AWS as the SDK finds it (${env.AWS_PROFILE ? `profile ${env.AWS_PROFILE}` : "credentials from the environment"})`,
      );
    } else {
      const simPort = Number(env.CAIRN_SIM_PORT ?? 4566);
      if (!(await portFree(simPort)))
        throw new Error(`CAIRN_SIM_PORT ${simPort} is taken; set CAIRN_SIM_PORT to a free port`);
      const sim = await startSimProcess(env, {
        root,
        dataDir,
        port: simPort,
        ...(opts.output !== undefined ? { output: opts.output } : {}),
      });
      stops.push(sim.stop);
      simUrl = sim.url;
      cloudEnv = {
        AWS_ENDPOINT_URL_EC2: simUrl,
        AWS_ENDPOINT_URL_SSM: simUrl,
        AWS_ENDPOINT_URL_SQS: simUrl,
        AWS_ACCESS_KEY_ID: "SIMACCESSKEY",
        AWS_SECRET_ACCESS_KEY: "simsecretkey",
        AWS_REGION: env.AWS_REGION ?? "eu-west-1",
      };
      say(
        `started the simulated cloud at ${simUrl} (time scale ${env.CAIRN_SIM_TIME_SCALE ?? 1}; admin ${simUrl}/_sim)`,
      );
    }
    aborted();
  } catch (err) {
    // Nothing half-started is left behind: the caller only sees the error.
    await stopStarted();
    throw err;
  }

  // 4.
  const childEnv = {
    // glibc's arenas as deploy/ sets them (stack/shape.ts); a variable already set wins.
    ...SERVICE_MALLOC_ENV,
    ...env,
    ...cloudEnv,
    NATS_URL: natsUrl,
    DATABASE_URL: databaseUrl,
    CAIRN_API_PORT: String(apiPort),
    CAIRN_DATA_DIR: dataDir,
  };
  let stopping = false;
  // 5. (as they come) Where each service's metrics are: its health port is any free one.
  const apiUrl = `http://127.0.0.1:${apiPort}`;
  const endpoints: Endpoints = {
    natsUrl,
    databaseUrl,
    apiUrl,
    docsUrl: `${apiUrl}/docs`,
    ...(simUrl ? { simUrl } : {}),
    metrics: { api: `${apiUrl}/metrics` },
  };
  const writeEndpoints = () => writeEndpointsFile(dataDir, endpoints);
  let written = Promise.resolve();
  const onMetrics = (service: string, url: string) => {
    if (endpoints.metrics[service] === url) return;
    endpoints.metrics[service] = url;
    // Said once the file holds it: whoever reads the line (a person, a test) finds it there
    // (a CI run read the file between the line and its write, and missed node-ops).
    written = written
      .then(writeEndpoints)
      .catch(() => {})
      .then(() => say(`${service} metrics at ${url}`));
  };
  // The projector process that last said it serves; its /readyz is then ours, not a stranger's.
  let apiServedBy: number | undefined;
  let apiEverReady = false;
  const supervisor = supervise(
    SERVICES.map((name) => ({
      name,
      command: process.execPath,
      args: [join(root, "services", name, "src", "main.ts")],
      env: childEnv,
      ...(opts.output !== undefined ? { output: opts.output } : {}),
    })),
    {
      log: say,
      onEvent: (e) => {
        if (e.type === "ready" && e.health) onMetrics(e.service, `${e.health}/metrics`);
        if (e.service !== "projector") return;
        if (e.type === "ready") apiServedBy = e.pid;
        if (e.type !== "exited" || stopping) return;
        apiServedBy = undefined;
        // The port was free at step 0; a projector that exits holding nothing and finds it taken
        // lost a race for it. Before the API ever served that is fatal (nothing to keep up);
        // afterwards the stack stays up and the projector keeps being retried.
        void portTaken(apiPort, apiHost).then((taken) => {
          if (!taken || stopping) return;
          const err = new ApiPortTakenError(apiPort, apiHost);
          if (apiEverReady) return say(`!!! ${err.message}`);
          opts.onFatal?.(err);
        });
      },
    },
  );

  let stopped: Promise<void> | undefined;
  const stop = () => {
    stopping = true;
    stopped ??= (async () => {
      await supervisor.stop();
      await stopStarted();
    })();
    return stopped;
  };

  opts.signal?.addEventListener("abort", () => void stop(), { once: true });
  if (opts.signal?.aborted) void stop(); // aborted after the last check: no event comes any more

  // 5.
  const ready = (async () => {
    written = written.then(writeEndpoints);
    await written.catch(() => {});
    await waitForApi(
      apiUrl,
      {
        served: () => apiServedBy !== undefined,
        cancelled: () => stopping,
      },
      say,
    );
    if (stopping) return false;
    apiEverReady = true;
    return true;
  })();
  return {
    endpoints,
    ready,
    stop,
    kill: (signal) => supervisor.kill(signal),
    stopping: () => stopping,
  };
}

/**
 * The stack of a command that owns it (`cairn up`, `cairn demo`), started in the
 * foreground: Ctrl-C or SIGTERM stops what was started (still starting: what was started
 * so far) and exits; a second one kills the services at once; a fatal error stops the stack
 * and exits 1; the services never outlive this process. Resolves once the API is ready.
 */
export async function startOwnStack(o: {
  env: NodeJS.ProcessEnv;
  /** Where the services' output goes (an open file descriptor); default: ours. */
  output?: number;
  /** Names what a stop stops, in the line a signal prints. */
  stopping: string;
  say: (line: string) => void;
  /** The exit code of a stop by signal once the services run (before: `abortedExitCode`). */
  signalExitCode: () => number;
  abortedExitCode: number;
  /** Told of a fatal error before the stack stops (default: said at once). */
  onFatal?: (err: Error) => void;
}): Promise<Stack> {
  const abort = new AbortController();
  let stack: Stack | undefined;
  let exiting = false;
  const stopAndExit = async (code: number, after?: () => void) => {
    if (exiting) return;
    exiting = true;
    abort.abort();
    await stack?.stop();
    after?.();
    process.exit(code);
  };
  const onSignal = (signal: NodeJS.Signals) => {
    if (!exiting) {
      o.say(`${signal}: stopping ${o.stopping}`);
      // Still starting: startStack stops what it started, then throws (below).
      if (!stack) {
        exiting = true;
        return abort.abort();
      }
      return void stopAndExit(o.signalExitCode());
    }
    o.say(`${signal} again: killing the services now`);
    stack?.kill();
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  try {
    stack = await startStack({
      env: o.env,
      ...(o.output !== undefined ? { output: o.output } : {}),
      signal: abort.signal,
      onFatal: (err) => {
        if (o.onFatal) {
          o.onFatal(err);
          void stopAndExit(1, () => process.stderr.write(`cairn: ${err.message}\n`));
        } else {
          o.say(err.message);
          void stopAndExit(1);
        }
      },
    });
  } catch (err) {
    if (err instanceof StackAbortedError) process.exit(o.abortedExitCode);
    throw err;
  }
  const started = stack;
  // However the command ends (an uncaught error included), its detached services must not
  // outlive it: they drain on SIGTERM on their own. After a clean shutdown none is left.
  process.once("exit", () => started.kill("SIGTERM"));
  if (!(await started.ready)) {
    // Stopped while the API came up: the stop under way ends the process.
    await started.stop();
    process.exit(o.abortedExitCode);
  }
  return started;
}

export async function up(opts: { env?: NodeJS.ProcessEnv } = {}): Promise<void> {
  const env = { ...process.env, ...opts.env };
  const stack = await startOwnStack({
    env,
    stopping: "the services, then what cairn up started",
    say,
    signalExitCode: () => 0,
    abortedExitCode: 0,
  });
  {
    const { apiUrl, natsUrl, metrics } = stack.endpoints;
    say(`Cairn is up. API ${apiUrl}  docs ${apiUrl}/docs  NATS ${natsUrl}`);
    say(
      `metrics (Prometheus): ${Object.entries(metrics)
        .map(([service, url]) => `${service} ${url}`)
        .join("  ")}`,
    );
    if (env.OTEL_EXPORTER_OTLP_ENDPOINT)
      say(
        `traces go to ${env.OTEL_EXPORTER_OTLP_ENDPOINT} (OTLP/HTTP)${env.JAEGER_UI_URL ? `; look them up in ${env.JAEGER_UI_URL} or at ${apiUrl}/traces/<traceId>` : ""}`,
      );
    say(
      `try: npx cairn demo  ·  npx cairn cluster list  ·  npx cairn session list  ·  curl ${apiUrl}/clusters`,
    );
    say(`the dashboard: open ${apiUrl}/ in a browser (live; docs/dashboard.md)`);
  }
}

/** Real AWS when the SDK would find credentials and a region; otherwise the sim. */
export function usesRealAws(env: NodeJS.ProcessEnv): boolean {
  const credentials = !!env.AWS_PROFILE || (!!env.AWS_ACCESS_KEY_ID && !!env.AWS_SECRET_ACCESS_KEY);
  const region = !!env.AWS_REGION || !!env.AWS_DEFAULT_REGION || !!env.AWS_PROFILE;
  return credentials && region;
}

/**
 * The simulated cloud as a child process, keeping its state with the rest of the data
 * (under `dataDir/sim`: it outlives a restart); resolves once it answers — a sim restoring
 * a long journal answers 503 until it is done.
 */
export async function startSimProcess(
  env: NodeJS.ProcessEnv,
  o: {
    root: string;
    /** Where the simulated cloud is kept across restarts; none: in memory only. */
    dataDir?: string;
    port: number;
    output?: number;
    /** The sim's config file (libs/sim/src/main.ts: seed, timeScale, latencies, faults). */
    configFile?: string;
  },
): Promise<{ url: string; stop: () => Promise<void> }> {
  const sim = spawn(
    process.execPath,
    [
      ...SIM_NODE_FLAGS,
      join(o.root, "libs", "sim", "src", "main.ts"),
      ...(o.configFile ? [o.configFile] : []),
    ],
    {
      env: {
        ...env,
        CAIRN_SIM_PORT: String(o.port),
        ...(o.dataDir ? { CAIRN_SIM_DATA_DIR: join(o.dataDir, "sim") } : {}),
      },
      stdio: ["ignore", o.output ?? "inherit", o.output ?? "inherit"],
      detached: true,
    },
  );
  const stop = () =>
    new Promise<void>((res) => {
      if (sim.exitCode !== null || sim.signalCode !== null) return res();
      sim.once("exit", () => res());
      sim.kill("SIGTERM");
    });
  const url = `http://127.0.0.1:${o.port}`;
  await waitFor(`${url}/_sim/health`, 120_000);
  return { url, stop };
}

/** Resolves once `url` answers 2xx; throws after `ms`. */
export async function waitFor(url: string, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      if ((await fetch(url)).ok) return;
    } catch {
      // not up yet
    }
    if (Date.now() > deadline) throw new Error(`${url} did not answer within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * Resolves once our projector has said it serves (so the port is its own) and its /readyz
 * answers 200, or when cancelled. Past a minute it says so once and keeps waiting: a
 * projector being restarted may still come up.
 */
async function waitForApi(
  url: string,
  is: { served(): boolean; cancelled(): boolean },
  tell: (line: string) => void = say,
): Promise<void> {
  const warnAt = Date.now() + 60_000;
  let warned = false;
  while (!is.cancelled()) {
    if (is.served()) {
      try {
        if ((await fetch(`${url}/readyz`)).ok && is.served()) return;
      } catch {
        // not answering yet
      }
    }
    if (!warned && Date.now() > warnAt) {
      warned = true;
      tell(`the API is not ready at ${url} after 60 s; still waiting — see the projector's log`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = "***";
    return u.toString();
  } catch {
    return "(unparseable URL)";
  }
}
