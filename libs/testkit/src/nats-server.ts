import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
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

/** The kernel's range for `bind(0)` (ip_local_port_range); Linux's default when unreadable. */
function ephemeralRange(): { low: number; high: number } {
  try {
    const [low, high] = readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8")
      .trim()
      .split(/\s+/)
      .map(Number);
    if (Number.isInteger(low) && Number.isInteger(high)) return { low: low!, high: high! };
  } catch {}
  return { low: 32768, high: 60999 };
}

/** Where free ports are picked: below the ephemeral range, above the well-known services'. */
export const PICKED_PORTS_FROM = 10_000;

const listenOn = (port: number) =>
  new Promise<ReturnType<typeof createServer> | undefined>((resolve) => {
    const srv = createServer();
    srv.unref();
    srv.once("error", () => resolve(undefined));
    srv.listen(port, "127.0.0.1", () => resolve(srv));
  });

/**
 * `count` ports free now, all different: each is held until all are found. Picked at random
 * **outside the kernel's ephemeral range**: a port handed to a process that binds it later
 * (`CAIRN_API_PORT`, a NATS route) is free only until then, and meanwhile any `bind(0)` —
 * a service's health port, a client socket — may be given it by the kernel if it came from
 * that range (a CI run saw the API's port taken by a service's health port). Below the range
 * only another pick can take it. Falls back to the kernel's pick when the range leaves no room.
 */
export async function freePorts(count: number): Promise<number[]> {
  const { low } = ephemeralRange();
  const span = low - PICKED_PORTS_FROM;
  const held: ReturnType<typeof createServer>[] = [];
  try {
    for (let tries = 0; held.length < count; tries++) {
      const port = span > 1_000 && tries < 200 ? PICKED_PORTS_FROM + Math.floor(Math.random() * span) : 0;
      const srv = await listenOn(port);
      if (srv) held.push(srv);
      else if (port === 0) throw new Error("no free port");
    }
    return held.map((srv) => {
      const addr = srv.address();
      if (typeof addr !== "object" || !addr) throw new Error("no port");
      return addr.port;
    });
  } finally {
    await Promise.all(held.map((srv) => new Promise((r) => srv.close(r))));
  }
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
