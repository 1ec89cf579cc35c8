/**
 * `cairn demo` as a new user runs it, the real binary on a machine where no Cairn runs: it
 * boots the stack on the sim, creates a cluster and three sessions, one idles into
 * hibernation (cause idle) and a connection wakes it, and the summary says where to look.
 * Ctrl-C then stops everything it started: no process of its stack is left.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createTestDatabase, type DisposableDatabase, freePort } from "@cairn/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const root = resolve(import.meta.dirname, "..");
let db: DisposableDatabase;
let demo: ChildProcess;
let dataDir: string;
let apiPort: number;
let stdout = "";
let stderr = "";
let exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
const started = Date.now();

async function until(what: string, cond: () => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end)
      throw new Error(
        `timed out waiting for ${what}\n--- stdout ---\n${stdout}\n--- stderr ---\n${stderr.slice(-6000)}`,
      );
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Pids of live processes whose command line or environment names `marker` (ours only: readable). */
async function processesNaming(marker: string): Promise<number[]> {
  const pids: number[] = [];
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    for (const file of ["cmdline", "environ"]) {
      const text = await readFile(`/proc/${entry}/${file}`, "latin1").catch(() => "");
      if (text.includes(marker)) {
        pids.push(Number(entry));
        break;
      }
    }
  }
  return pids;
}

beforeAll(async () => {
  db = await createTestDatabase("cairn_demo_e2e");
  dataDir = await mkdtemp(join(tmpdir(), "cairn-demo-e2e-"));
  apiPort = await freePort();
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    DATABASE_URL: db.url,
    CAIRN_DATA_DIR: dataDir,
    CAIRN_API_PORT: String(apiPort),
    CAIRN_SIM_PORT: String(await freePort()),
    CAIRN_SIM_TIME_SCALE: "100",
    // Whatever this machine's user has configured (~/.config/cairn): a fresh user's CLI.
    HOME: dataDir,
    JAEGER_UI_URL: "http://jaeger.example:16686",
  };
  for (const k of ["CAIRN_API_URL", "CAIRN_TOKEN", "CAIRN_CONFIG", "NATS_URL", "CAIRN_TOKENS_FILE"])
    delete env[k];
  demo = spawn(process.execPath, [join(root, "cli/src/main.ts"), "demo", "--timeout", "90s"], {
    env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  exited = new Promise((res) => demo.once("exit", (code, signal) => res({ code, signal })));
  demo.stdout?.on("data", (d) => (stdout += d));
  demo.stderr?.on("data", (d) => (stderr += d));
  await until("the demo's summary", () => /^ {2}trace /m.test(stdout) || demo.exitCode !== null, 100_000);
}, 110_000);

afterAll(async () => {
  if (demo && demo.exitCode === null && demo.signalCode === null) {
    demo.kill("SIGINT");
    await exited;
  }
  await db?.dispose();
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

describe("npm run demo", () => {
  it("boots the stack, follows the cluster to Ready with its progress, and prints the summary", () => {
    expect(stderr, stderr.slice(-4000)).toContain("starting one on the simulated cloud");
    // The progress of --wait (no terminal: a line per state), cluster and sessions.
    expect(stderr).toMatch(/cluster\/demo-\w+ Provisioning/);
    expect(stderr).toMatch(/cluster\/demo-\w+ Ready/);
    expect(stderr).toMatch(/session\/demo-\w+-alice Hibernated/);
    expect(stdout).toContain("Cairn demo: done");
    expect(stdout).toMatch(/^ {2}cluster {4}demo-\w+ Ready$/m);
    const sessions = stdout.match(/^ {2}sessions {3}(.+)$/m)?.[1] ?? "";
    expect(sessions.split(", ")).toHaveLength(3);
    for (const s of sessions.split(", ")) expect(s).toMatch(/^demo-\w+-(alice|bob|carol) Running$/);
  });

  it("one session went Hibernated with cause idle and came back Running on connect, with its wake latency", () => {
    expect(stdout).toMatch(
      /^ {2}idle {7}demo-\w+-alice went Hibernated \(cause: idle\) after [\d.]+s, then Running on connect: woke in \d+ ms$/m,
    );
  });

  it("the dashboard's URL answers 200 with the dashboard; the trace id is searchable, with its Jaeger link", async () => {
    const dashboard = stdout.match(/^ {2}dashboard {2}(\S+)$/m)?.[1];
    expect(dashboard).toBe(`http://127.0.0.1:${apiPort}/`);
    const page = await fetch(dashboard as string);
    expect(page.status).toBe(200);
    expect(page.headers.get("content-type")).toMatch(/^text\/html/);
    const trace = stdout.match(/^ {2}trace {6}([0-9a-f]{32}) {2}\((\d+) events/m);
    expect(trace, stdout).not.toBeNull();
    const [, traceId, count] = trace as RegExpMatchArray;
    expect(Number(count)).toBeGreaterThan(3);
    const found = await fetch(`http://127.0.0.1:${apiPort}/traces/${traceId}`);
    expect(found.status).toBe(200);
    expect(stdout).toContain(`  jaeger     http://jaeger.example:16686/trace/${traceId}`);
  });

  it("the views the waits followed carry their sequence, at or past the commands that made them", async () => {
    const clusterId = stdout.match(/^ {2}cluster {4}(demo-\w+) Ready$/m)?.[1] as string;
    const api = `http://127.0.0.1:${apiPort}`;
    const history = (await (await fetch(`${api}/sessions/${clusterId}-alice/history`)).json()) as {
      items: { type: string; commandId: string | null }[];
    };
    // The connect that woke it: its command's commit is folded into the session's view.
    const waking = history.items.filter((e) => e.type === "session.waking").at(-1);
    expect(waking?.commandId).toEqual(expect.any(String));
    const command = (await (await fetch(`${api}/commands/${waking?.commandId}`)).json()) as {
      sequence: number;
    };
    const session = (await (await fetch(`${api}/sessions/${clusterId}-alice`)).json()) as {
      sequence: number;
    };
    expect(command.sequence).toEqual(expect.any(Number));
    expect(session.sequence).toBeGreaterThanOrEqual(command.sequence);
    const cluster = (await (await fetch(`${api}/clusters/${clusterId}`)).json()) as { sequence: number };
    expect(cluster.sequence).toEqual(expect.any(Number));
  });

  it("keeps the stack for a look around, and Ctrl-C stops everything it started", async () => {
    expect(demo.exitCode).toBeNull();
    expect(await processesNaming(dataDir)).not.toEqual([]);
    demo.kill("SIGINT");
    expect(await exited).toEqual({ code: 0, signal: null });
    expect(stderr).toContain("SIGINT: stopping what the demo started");
    expect(await processesNaming(dataDir)).toEqual([]);
    await expect(fetch(`http://127.0.0.1:${apiPort}/readyz`)).rejects.toThrow();
  });

  it("all of it within a minute on this machine", () => {
    // Measured from before the database was made to after the stack stopped (includes boot).
    expect(Date.now() - started).toBeLessThan(60_000);
  });
});

describe("Ctrl-C while the demo boots its stack", () => {
  it("stops what was started so far and exits 130, leaving no process", async () => {
    const dir = await mkdtemp(join(tmpdir(), "cairn-demo-e2e-boot-"));
    try {
      const env: NodeJS.ProcessEnv = {
        ...process.env,
        DATABASE_URL: db.url,
        CAIRN_DATA_DIR: dir,
        HOME: dir,
        CAIRN_API_PORT: String(await freePort()),
        CAIRN_SIM_PORT: String(await freePort()),
      };
      for (const k of ["CAIRN_API_URL", "CAIRN_TOKEN", "CAIRN_CONFIG", "NATS_URL"]) delete env[k];
      const boot = spawn(process.execPath, [join(root, "cli/src/main.ts"), "demo"], {
        env,
        stdio: ["ignore", "pipe", "pipe"],
      });
      let err = "";
      boot.stderr?.on("data", (d) => (err += d));
      const done = new Promise<number | null>((res) => boot.once("exit", (code) => res(code)));
      // NATS is up, the rest is on its way: stop it there.
      const end = Date.now() + 30_000;
      while (!err.includes("started nats-server") && Date.now() < end)
        await new Promise((r) => setTimeout(r, 20));
      expect(err).toContain("started nats-server");
      expect(await processesNaming(dir)).not.toEqual([]);
      boot.kill("SIGINT");
      expect(await done).toBe(130);
      expect(err).toContain("SIGINT: stopping what the demo started");
      expect(await processesNaming(dir)).toEqual([]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
