/**
 * `cairn up` supervising the real stack: a SIGKILLed service comes back and the rest stays
 * as it was; the API's port taken while the projector is down is named and survived; SIGTERM
 * stops every service process.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import {
  createTestDatabase,
  type DisposableDatabase,
  type DisposableNats,
  freePort,
  startNatsServer,
} from "@cairn/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SERVICES } from "./up.ts";

const root = resolve(import.meta.dirname, "../..");
let natsServer: DisposableNats;
let db: DisposableDatabase;
let cairn: ChildProcess;
let apiPort: number;
let dataDir: string;
let output = "";

async function until(what: string, cond: () => boolean | Promise<boolean>, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end)
      throw new Error(`timed out waiting for ${what}\n--- cairn output ---\n${output.slice(-4000)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Every pid `cairn up` said it started a service with, by service. */
function startedPids(): Map<string, number[]> {
  const pids = new Map<string, number[]>();
  for (const [, name, pid] of output.matchAll(/cairn: started ([\w-]+) \(pid (\d+)\)/g))
    pids.set(name as string, [...(pids.get(name as string) ?? []), Number(pid)]);
  return pids;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

beforeAll(async () => {
  natsServer = await startNatsServer();
  db = await createTestDatabase("cairn_up_e2e");
  dataDir = await mkdtemp(join(tmpdir(), "cairn-up-e2e-"));
  apiPort = await freePort();
  cairn = spawn(process.execPath, [join(root, "cli/src/main.ts"), "up"], {
    env: {
      ...process.env,
      NATS_URL: natsServer.url,
      DATABASE_URL: db.url,
      CAIRN_API_PORT: String(apiPort),
      CAIRN_SIM_PORT: String(await freePort()),
      CAIRN_DATA_DIR: dataDir,
      LOG_LEVEL: "warn",
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  cairn.stdout?.on("data", (d) => (output += d));
  cairn.stderr?.on("data", (d) => (output += d));
  await until("Cairn is up", () => output.includes("Cairn is up"), 90_000);
});

afterAll(async () => {
  if (cairn && cairn.exitCode === null && cairn.signalCode === null) {
    const exited = new Promise((r) => cairn.once("exit", r));
    cairn.kill("SIGTERM");
    await exited;
  }
  await db?.dispose();
  await natsServer?.dispose();
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

describe("cairn up supervises the stack", () => {
  it("says it is up only when the API answers /readyz", async () => {
    expect((await fetch(`http://127.0.0.1:${apiPort}/readyz`)).status).toBe(200);
    expect([...startedPids().keys()].sort()).toEqual([...SERVICES].sort());
  });

  it("prints where every service's metrics are, and each answers in Prometheus text", async () => {
    // Each service says where as it comes up; some may say so just after "Cairn is up".
    await until("every service's metrics line", () =>
      SERVICES.every((s) => new RegExp(`cairn: ${s} metrics at http://\\S+/metrics`).test(output)),
    );
    expect(output).toContain(`metrics (Prometheus): api http://127.0.0.1:${apiPort}/metrics`);
    const endpoints = JSON.parse(await readFile(join(dataDir, "endpoints.json"), "utf8")) as {
      metrics: Record<string, string>;
    };
    expect(Object.keys(endpoints.metrics).sort()).toEqual(["api", ...SERVICES].sort());
    for (const [service, url] of Object.entries(endpoints.metrics)) {
      const res = await fetch(url);
      expect(res.status, `${service} ${url}`).toBe(200);
      expect(res.headers.get("content-type")).toMatch(/^text\/plain/);
      expect(await res.text(), `${service} ${url}`).toMatch(/^# HELP process_cpu_user_seconds_total/m);
    }
  });

  it("restarts a SIGKILLed installer; the other services keep their process", async () => {
    const before = startedPids();
    const installer = before.get("installer")?.[0] as number;
    process.kill(installer, "SIGKILL");

    await until("the installer ready again", () => /cairn: installer is ready again \(pid \d+/.test(output));
    expect(output).toMatch(/cairn: installer exited \(signal SIGKILL\) after .+; restarting it in 1 s/);
    const after = startedPids();
    expect(after.get("installer")).toHaveLength(2);
    expect(alive(after.get("installer")?.[1] as number)).toBe(true);
    for (const name of SERVICES.filter((s) => s !== "installer")) {
      expect(after.get(name)).toEqual(before.get(name));
      expect(alive(after.get(name)?.[0] as number)).toBe(true);
    }
    expect(cairn.exitCode).toBeNull();
  });

  it("names a port taken while the projector is down, keeps the stack up, and the projector comes back once it is free", async () => {
    const projector = startedPids().get("projector")?.[0] as number;
    process.kill(projector, "SIGKILL");
    await until("the projector gone", () => !alive(projector));
    // Take the port during the restart delay (1 s).
    const stranger: Server = createServer();
    await new Promise<void>((r) => stranger.listen(apiPort, "127.0.0.1", r));
    try {
      await until("the taken port named", () => output.includes(`!!! the API's port ${apiPort}`));
      expect(output).toContain("(CAIRN_API_PORT) is taken");
      expect(cairn.exitCode).toBeNull();
    } finally {
      await new Promise((r) => stranger.close(r));
    }
    await until("the projector ready again", () => /cairn: projector is ready again/.test(output));
    await until(
      "/readyz",
      async () => (await fetch(`http://127.0.0.1:${apiPort}/readyz`).catch(() => undefined))?.ok === true,
    );
  });

  it("says where the dashboard is, and it is there", async () => {
    const dashboard = `http://127.0.0.1:${apiPort}/`;
    expect(output).toContain(`cairn: the dashboard: open ${dashboard} in a browser`);
    const page = await fetch(dashboard);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain("<title>Cairn</title>");
  });

  it("SIGTERM stops every service process and exits 0", async () => {
    const pids = [...startedPids().values()].flat();
    const exited = new Promise<number | null>((r) => cairn.once("exit", (code) => r(code)));
    cairn.kill("SIGTERM");
    expect(await exited).toBe(0);
    expect(pids.filter(alive)).toEqual([]);
  });
});
