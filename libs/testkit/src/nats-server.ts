import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer, connect as tcpConnect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** A nats-server with JetStream that a test owns: its own port and store folder. */
export interface DisposableNats {
  readonly url: string;
  readonly port: number;
  readonly storeDir: string;
  /** Stops the server (SIGTERM, then SIGKILL) and keeps its store. */
  stop(): Promise<void>;
  /** Starts it again on the same port and store: JetStream state survives. */
  start(): Promise<void>;
  restart(): Promise<void>;
  /** Stops it and removes its store. */
  dispose(): Promise<void>;
}

/** `NATS_SERVER_BIN`, else `nats-server` on PATH, else Debian's path. */
export function natsServerBin(): string {
  return process.env.NATS_SERVER_BIN ?? "nats-server";
}

export async function freePort(): Promise<number> {
  const [port] = await freePorts(1);
  return port!;
}

/**
 * `count` ports free now, all different: each is held until all are found (one at a time,
 * the kernel may hand a port just let go to the next ask).
 */
export async function freePorts(count: number): Promise<number[]> {
  const held = await Promise.all(
    Array.from(
      { length: count },
      () =>
        new Promise<ReturnType<typeof createServer>>((resolve, reject) => {
          const srv = createServer();
          srv.unref();
          srv.on("error", reject);
          srv.listen(0, "127.0.0.1", () => resolve(srv));
        }),
    ),
  );
  const ports = held.map((srv) => {
    const addr = srv.address();
    if (typeof addr !== "object" || !addr) throw new Error("no port");
    return addr.port;
  });
  await Promise.all(held.map((srv) => new Promise((r) => srv.close(r))));
  return ports;
}

async function waitForPort(
  port: number,
  timeoutMs: number,
  proc: ChildProcess,
  log: () => string,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (proc.exitCode !== null) throw new Error(`nats-server exited with ${proc.exitCode}:\n${log()}`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = tcpConnect({ port, host: "127.0.0.1" }, () => {
        s.end();
        resolve(true);
      });
      s.on("error", () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`nats-server did not listen on ${port} within ${timeoutMs} ms:\n${log()}`);
}

/**
 * Starts a private nats-server (`-js`, loopback, random port, temp store).
 * @example const nats = await startNatsServer(); … await nats.dispose();
 */
export async function startNatsServer(
  opts: { port?: number; storeDir?: string } = {},
): Promise<DisposableNats> {
  const port = opts.port ?? (await freePort());
  const storeDir = opts.storeDir ?? (await mkdtemp(join(tmpdir(), "cairn-nats-")));
  let proc: ChildProcess | undefined;
  let output = "";

  const start = async () => {
    if (proc && proc.exitCode === null) return;
    output = "";
    const child = spawn(natsServerBin(), ["-a", "127.0.0.1", "-p", String(port), "-js", "-sd", storeDir], {
      stdio: ["ignore", "pipe", "pipe"],
      // Not in the caller's process group: a terminal's Ctrl-C must not stop NATS
      // before the services that use it have drained.
      detached: true,
    });
    child.stdout?.on("data", (d) => (output = (output + d).slice(-4000)));
    child.stderr?.on("data", (d) => (output = (output + d).slice(-4000)));
    proc = child;
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
    await waitForPort(port, 10_000, child, () => output);
  };

  const stop = async () => {
    const p = proc;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => p.once("exit", () => resolve()));
    p.kill("SIGTERM");
    const timer = setTimeout(() => p.kill("SIGKILL"), 5_000);
    await exited;
    clearTimeout(timer);
  };

  await start();
  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    storeDir,
    start,
    stop,
    restart: async () => {
      await stop();
      await start();
    },
    dispose: async () => {
      await stop();
      if (!opts.storeDir) await rm(storeDir, { recursive: true, force: true });
    },
  };
}
