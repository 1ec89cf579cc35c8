/**
 * A NATS cluster on one machine: N `nats-server` processes with JetStream, routes to each other on
 * loopback, each with its own client, cluster and monitor port and its own store folder. What
 * `npm run stack` runs and what a chaos suite stops and starts one node at a time.
 *
 * With `config` (deploy/nats/nats.conf) every node loads that file; the command line then sets
 * what differs per node (ports, server name, routes), and the node's store folder is handed over
 * in `CAIRN_NATS_STORE_DIR`, which that file reads (nats-server refuses `-sd` on top of a
 * `store_dir` in the file). Without it, nodes run with `-js -sd <folder>` and no users.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { createWriteStream, type WriteStream } from "node:fs";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePorts, natsServerBin } from "./nats-server.ts";

export interface NatsClusterOptions {
  /** How many servers. Default 3 (the smallest cluster that keeps an R3 stream's quorum with one down). */
  readonly nodes?: number;
  /** A config file every node loads (e.g. deploy/nats/nats.conf). */
  readonly config?: string;
  /** Environment of every node (e.g. the password variables the config reads). */
  readonly env?: NodeJS.ProcessEnv;
  /** Where the nodes' store folders go (`<dir>/<node name>`); a temp folder, removed on dispose, by default. */
  readonly dataDir?: string;
  /** Where each node's log goes (`<dir>/<node name>.log`). Default: `dataDir`. */
  readonly logDir?: string;
  /** Default `cairn`. */
  readonly clusterName?: string;
  /** How long a node may take to report healthy. Default 30 s. */
  readonly startTimeoutMs?: number;
  /** Finds the nodes' ports (three each), per attempt. Default {@link freePorts}; a test's hook. */
  readonly findPorts?: (count: number, attempt: number) => Promise<number[]>;
}

export interface NatsNode {
  /** The server name, `nats-<i>` (1-based). */
  readonly name: string;
  readonly port: number;
  readonly clusterPort: number;
  readonly monitorPort: number;
  /** `nats://127.0.0.1:<port>`. */
  readonly url: string;
  readonly storeDir: string;
  readonly logFile: string;
  /** True while its process runs. */
  running(): boolean;
  /** Starts it (again), on the same ports and store; resolves when its /healthz answers 200. */
  start(): Promise<void>;
  /** SIGTERM (a clean shutdown: it leaves the cluster), SIGKILL after 5 s. */
  stop(): Promise<void>;
  /** A signal now (SIGKILL by default: a crash); resolves when it exited. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  restart(): Promise<void>;
  /** Everything it logged since the cluster started (across restarts). */
  log(): string;
}

export interface NatsCluster {
  readonly nodes: readonly NatsNode[];
  /** Every node's client URL, comma-separated: what NATS_URL holds. */
  readonly url: string;
  readonly dataDir: string;
  /** Every node's log, each line prefixed with the node's name. */
  logs(): string;
  /** Stops every node (keeps the stores). */
  stop(): Promise<void>;
  /** Stops every node and removes the stores (unless `dataDir` was given). */
  dispose(): Promise<void>;
}

/**
 * Starts the cluster; resolves when every node reports healthy (JetStream up, meta leader known).
 * @example
 * const cluster = await startNatsCluster({ config: "deploy/nats/nats.conf", env: passwords });
 * await cluster.nodes[1].stop(); … await cluster.nodes[1].start();
 */
export async function startNatsCluster(opts: NatsClusterOptions = {}): Promise<NatsCluster> {
  const count = opts.nodes ?? 3;
  const dataDir = opts.dataDir ?? (await mkdtemp(join(tmpdir(), "cairn-nats-cluster-")));
  const logDir = opts.logDir ?? dataDir;
  await mkdir(logDir, { recursive: true });
  const clusterName = opts.clusterName ?? "cairn";
  const timeoutMs = opts.startTimeoutMs ?? 30_000;

  // Ports are found free, then taken by the servers a moment later: another process on the
  // machine may take one between (CI runs test files side by side). A node that cannot
  // listen exits saying so; the cluster is then planned again on other ports.
  let nodes: (NatsNode & { close(): void })[] = [];
  for (let attempt = 1; ; attempt++) {
    const ports = await (opts.findPorts ?? freePorts)(count * 3, attempt);
    const plan = Array.from({ length: count }, (_, i) => ({
      name: `nats-${i + 1}`,
      port: ports[i * 3]!,
      clusterPort: ports[i * 3 + 1]!,
      monitorPort: ports[i * 3 + 2]!,
    }));
    nodes = plan.map((p) =>
      makeNode({
        ...p,
        storeDir: join(dataDir, p.name),
        logFile: join(logDir, `${p.name}.log`),
        routes: plan.filter((o) => o !== p).map((o) => `nats://127.0.0.1:${o.clusterPort}`),
        clusterName,
        timeoutMs,
        ...(opts.config ? { config: opts.config } : {}),
        env: opts.env ?? process.env,
      }),
    );
    try {
      // Together: a node waits for its peers before JetStream reports healthy.
      await Promise.all(nodes.map((n) => n.start()));
      break;
    } catch (err) {
      await Promise.all(nodes.map((n) => n.stop()));
      for (const n of nodes) n.close();
      const portTaken = nodes.some((n) => /address already in use/.test(n.log()));
      if (!portTaken || attempt >= 3) throw err;
    }
  }
  const stop = async () => {
    await Promise.all(nodes.map((n) => n.stop()));
  };
  return {
    nodes,
    url: nodes.map((n) => n.url).join(","),
    dataDir,
    logs: () =>
      nodes
        .flatMap((n) =>
          n
            .log()
            .split("\n")
            .filter(Boolean)
            .map((l) => `${n.name} ${l}`),
        )
        .join("\n"),
    stop,
    dispose: async () => {
      await stop();
      for (const n of nodes) n.close();
      if (!opts.dataDir) await rm(dataDir, { recursive: true, force: true });
    },
  };
}

function makeNode(o: {
  name: string;
  port: number;
  clusterPort: number;
  monitorPort: number;
  storeDir: string;
  logFile: string;
  routes: string[];
  clusterName: string;
  timeoutMs: number;
  config?: string;
  env: NodeJS.ProcessEnv;
}): NatsNode & { close(): void } {
  let proc: ChildProcess | undefined;
  let output = "";
  let file: WriteStream | undefined;
  const write = (d: Buffer | string) => {
    output += d;
    // Bounded in memory; the file keeps everything.
    if (output.length > 4_000_000) output = output.slice(-2_000_000);
    file?.write(d);
  };
  const running = () => proc !== undefined && proc.exitCode === null && proc.signalCode === null;

  const start = async () => {
    if (running()) return;
    await mkdir(o.storeDir, { recursive: true });
    file ??= createWriteStream(o.logFile, { flags: "a" });
    const args = [
      ...(o.config ? ["-c", o.config] : ["-js", "-sd", o.storeDir]),
      ["-n", o.name],
      ["-a", "127.0.0.1", "-p", String(o.port), "-m", String(o.monitorPort)],
      ["--cluster_name", o.clusterName, "--cluster", `nats://127.0.0.1:${o.clusterPort}`],
      ["--routes", o.routes.join(",")],
    ].flat();
    write(`--- ${new Date().toISOString()} start ${o.name} ---\n`);
    const child = spawn(natsServerBin(), args, {
      env: { ...o.env, CAIRN_NATS_STORE_DIR: o.storeDir },
      stdio: ["ignore", "pipe", "pipe"],
      // Not in the caller's process group: a terminal's Ctrl-C must not stop NATS before the
      // services that use it have drained.
      detached: true,
    });
    proc = child;
    child.stdout?.on("data", write);
    child.stderr?.on("data", write);
    child.once("exit", (code, signal) =>
      write(`--- ${new Date().toISOString()} exit ${signal ?? code} ---\n`),
    );
    await new Promise<void>((resolve, reject) => {
      child.once("spawn", resolve);
      child.once("error", (err) =>
        reject(
          new Error(`cannot run ${natsServerBin()} (install nats-server or set NATS_SERVER_BIN)`, {
            cause: err,
          }),
        ),
      );
    });
    await waitHealthy(o, child, () => output, o.timeoutMs);
  };

  const kill = async (signal: NodeJS.Signals = "SIGKILL") => {
    const p = proc;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => p.once("exit", () => resolve()));
    p.kill(signal);
    const timer = signal === "SIGKILL" ? undefined : setTimeout(() => p.kill("SIGKILL"), 5_000);
    await exited;
    clearTimeout(timer);
  };

  return {
    name: o.name,
    port: o.port,
    clusterPort: o.clusterPort,
    monitorPort: o.monitorPort,
    url: `nats://127.0.0.1:${o.port}`,
    storeDir: o.storeDir,
    logFile: o.logFile,
    running,
    start,
    stop: () => kill("SIGTERM"),
    kill,
    restart: async () => {
      await kill("SIGTERM");
      await start();
    },
    log: () => output,
    close: () => {
      file?.end();
      file = undefined;
    },
  };
}

/**
 * Until the node's monitor `/healthz` answers 200: it listens, JetStream is up, and (in a
 * cluster) it has a meta leader and is current.
 */
async function waitHealthy(
  o: { name: string; monitorPort: number },
  proc: ChildProcess,
  log: () => string,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (proc.exitCode !== null || proc.signalCode !== null)
      throw new Error(`${o.name} exited (${proc.signalCode ?? proc.exitCode}):\n${log().slice(-4_000)}`);
    try {
      const res = await fetch(`http://127.0.0.1:${o.monitorPort}/healthz`, {
        signal: AbortSignal.timeout(2_000),
      });
      if (res.ok) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline)
      throw new Error(`${o.name} was not healthy within ${timeoutMs} ms:\n${log().slice(-4_000)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
