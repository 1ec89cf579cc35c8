/**
 * The whole `npm start` stack (`cairn up`: its own nats-server with JetStream, the sim, the
 * five services) stopped as a person stops it (Ctrl-C → SIGTERM) in the middle of a cluster's
 * creation, and started again on the same data directory, as a real control plane restarts
 * against a cloud that outlived it:
 *  - the cluster carries on to Ready on the instances it had launched (they are still there,
 *    same ids) without launching them again;
 *  - instance ids never repeat across the restart: a cluster created afterwards gets new ones;
 *  - no warning repeats in a loop once the cluster is Ready (issue 12: node-ops warned every 5 s
 *    for ever when the restarted sim had forgotten the cloud);
 *  - an instance terminated behind Cairn's back through the EC2 API is noticed (its kubelet
 *    stops, the node goes Ready=Unknown), its slot launched again, the cluster Ready again, and
 *    the nodes read model shows the old node gone.
 * Everything through the public surfaces: the API, and the sim through the real EC2 client.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { DescribeInstancesCommand, EC2Client, TerminateInstancesCommand } from "@aws-sdk/client-ec2";
import { createTestDatabase, type DisposableDatabase, freePort } from "@cairn/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { duplicateInstances, type SeenInstance, seenInstance } from "./harness/checks.ts";
import { createCommand } from "./harness/lifecycle.ts";
import { REGION } from "./harness/stack.ts";

const root = resolve(import.meta.dirname, "..");
const TIME_SCALE = 25;
let db: DisposableDatabase;
let dataDir: string;
let apiPort: number;
let simPort: number;
let cairn: ChildProcess | undefined;
/** What the current `cairn up` printed (its own lines and its services' logs). */
let output = "";

const api = () => `http://127.0.0.1:${apiPort}`;
const sim = () => `http://127.0.0.1:${simPort}`;

/** Vitest's own variables and any AWS settings are not the stack's business (no AWS: the sim). */
function baseEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (k.startsWith("VITEST") || k === "NODE_OPTIONS" || k === "TEST" || k.startsWith("AWS_")) continue;
    if (k === "NATS_URL") continue; // cairn up starts its own nats-server in the data directory
    env[k] = v;
  }
  return env;
}

async function until<T>(what: string, f: () => Promise<T | undefined | false>, ms = 120_000): Promise<T> {
  const end = Date.now() + ms;
  let last: unknown;
  for (;;) {
    try {
      const v = await f();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > end)
      throw new Error(
        `timed out waiting for ${what}${last ? ` (last error: ${(last as Error).message})` : ""}\n--- cairn output ---\n${output.slice(-6000)}`,
      );
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function cairnUp(): Promise<void> {
  output = "";
  const child = spawn(process.execPath, [join(root, "cli/src/main.ts"), "up"], {
    env: {
      ...baseEnv(),
      DATABASE_URL: db.url,
      CAIRN_API_PORT: String(apiPort),
      CAIRN_SIM_PORT: String(simPort),
      CAIRN_DATA_DIR: dataDir,
      CAIRN_SIM_TIME_SCALE: String(TIME_SCALE),
      CAIRN_API_RATE_LIMIT: "off",
      LOG_LEVEL: "warn",
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const take = (d: Buffer) => {
    output += d;
  };
  child.stdout?.on("data", take);
  child.stderr?.on("data", take);
  cairn = child;
  await until("Cairn is up", async () => output.includes("Cairn is up"), 120_000);
}

/** Ctrl-C: cairn up stops its services, then the sim and nats-server it started. */
async function stopCairn(): Promise<void> {
  const c = cairn;
  if (!c || c.exitCode !== null || c.signalCode !== null) return;
  const exited = new Promise<number | null>((r) => c.once("exit", (code) => r(code)));
  c.kill("SIGTERM");
  expect(await exited).toBe(0);
  cairn = undefined;
}

async function get<T>(path: string): Promise<{ status: number; body: T }> {
  const res = await fetch(`${api()}${path}`);
  return { status: res.status, body: (await res.json()) as T };
}

async function post(command: { type: string; data: unknown }): Promise<string> {
  const res = await fetch(`${api()}/commands`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ meta: { actor: "e2e" }, ...command }),
  });
  const body = (await res.json()) as { commandId: string };
  if (res.status !== 202)
    throw new Error(`POST /commands ${command.type}: ${res.status} ${JSON.stringify(body)}`);
  return body.commandId;
}

const stateOf = async (clusterId: string) =>
  (await get<{ state?: string }>(`/clusters/${clusterId}`).catch(() => undefined))?.body.state;

/** Every instance the sim's EC2 shows for a cluster (by its `cairn:cluster` tag). */
async function instancesOf(clusterId: string): Promise<SeenInstance[]> {
  const ec2 = new EC2Client({
    endpoint: sim(),
    region: REGION,
    credentials: { accessKeyId: "SIMACCESSKEY", secretAccessKey: "simsecretkey" },
    maxAttempts: 5,
  });
  try {
    const out = await ec2.send(
      new DescribeInstancesCommand({ Filters: [{ Name: "tag:cairn:cluster", Values: [clusterId] }] }),
    );
    return (out.Reservations ?? []).flatMap((r) =>
      (r.Instances ?? []).map((i) => seenInstance(i, r.ReservationId)),
    );
  } finally {
    ec2.destroy();
  }
}

/** The services' log lines at warn or above in `text` (JSON lines, `level` as a label). */
function warnings(text: string): { msg: string; service: string }[] {
  const out: { msg: string; service: string }[] = [];
  for (const line of text.split("\n")) {
    if (!line.startsWith("{")) continue;
    try {
      const o = JSON.parse(line) as { level?: string; msg?: string; service?: string };
      if (o.level === "warn" || o.level === "error" || o.level === "fatal")
        out.push({ msg: o.msg ?? "", service: o.service ?? "?" });
    } catch {
      // not a log line
    }
  }
  return out;
}

beforeAll(async () => {
  db = await createTestDatabase("cairn_restart_e2e");
  dataDir = await mkdtemp(join(tmpdir(), "cairn-restart-e2e-"));
  apiPort = await freePort();
  simPort = await freePort();
  await cairnUp();
}, 180_000);

afterAll(async () => {
  if (cairn && cairn.exitCode === null && cairn.signalCode === null) {
    const exited = new Promise((r) => cairn?.once("exit", r));
    cairn.kill("SIGTERM");
    await exited;
  }
  await db?.dispose();
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

describe("npm start restarted mid-lifecycle on the same data directory", () => {
  const first = "restart-1";
  let before: SeenInstance[] = [];

  it("a cluster being created when the stack stops carries on to Ready after it starts again, on the same instances", async () => {
    await post(createCommand(first, 2));
    // Mid-lifecycle: every instance launched and K3s being installed on them.
    await until(`${first} Configuring`, async () => (await stateOf(first)) === "Configuring");
    before = await until("its three instances", async () => {
      const is = await instancesOf(first);
      return is.length === 3 ? is : undefined;
    });
    const stoppedAt = Date.now();
    await stopCairn();

    await cairnUp();
    await until(`${first} Ready after the restart`, async () => (await stateOf(first)) === "Ready", 180_000);
    // It was not Ready before: its one cluster.ready came after the stack stopped.
    const history = await get<{ items: { type: string; time: string }[] }>(
      `/clusters/${first}/history?limit=1000`,
    );
    const ready = history.body.items.filter((e) => e.type === "cluster.ready");
    expect(ready).toHaveLength(1);
    expect(Date.parse(ready[0]!.time)).toBeGreaterThan(stoppedAt);
    const after = await instancesOf(first);
    // The cloud outlived the control plane: the same instances, running, and no new launch.
    expect(after.map((i) => i.instanceId).sort()).toEqual(before.map((i) => i.instanceId).sort());
    expect(after.every((i) => i.state === "running")).toBe(true);
    expect(duplicateInstances(after)).toEqual([]);
    const nodes = await get<{ items: { node: string; gone: unknown; kube: { ready: boolean | null } }[] }>(
      `/clusters/${first}/nodes`,
    );
    expect(nodes.body.items.filter((n) => !n.gone && n.kube.ready === true)).toHaveLength(3);
  }, 420_000);

  it("ids never repeat across the restart: a cluster created afterwards gets instance ids of its own", async () => {
    const second = "restart-2";
    await post(createCommand(second, 1));
    const fresh = await until("the new cluster's instances", async () => {
      const is = await instancesOf(second);
      return is.length === 2 ? is : undefined;
    });
    const old = new Set(before.map((i) => i.instanceId));
    expect(fresh.filter((i) => old.has(i.instanceId))).toEqual([]);
    const everything = [...(await instancesOf(first)), ...(await instancesOf(second))].map(
      (i) => i.instanceId,
    );
    expect(new Set(everything).size).toBe(everything.length);
    await until("restart-2 Ready", async () => (await stateOf(second)) === "Ready", 180_000);
  }, 240_000);

  it("no warning loops once the clusters are Ready: in 20 quiet seconds (over 8 sim minutes) nothing is said three times", async () => {
    const from = output.length;
    await new Promise((r) => setTimeout(r, 20_000));
    const seen = warnings(output.slice(from));
    const counts = new Map<string, number>();
    for (const w of seen)
      counts.set(`${w.service}: ${w.msg}`, (counts.get(`${w.service}: ${w.msg}`) ?? 0) + 1);
    const loops = [...counts].filter(([, n]) => n >= 3).map(([m, n]) => `${n}× ${m}`);
    expect(loops, output.slice(from, from + 4000)).toEqual([]);
  }, 60_000);

  it("an instance terminated behind Cairn's back is noticed, its slot launched again, the cluster Ready again and the old node shown gone", async () => {
    const victim = before.find((i) => i.pool === "workers")!;
    const ec2 = new EC2Client({
      endpoint: sim(),
      region: REGION,
      credentials: { accessKeyId: "SIMACCESSKEY", secretAccessKey: "simsecretkey" },
    });
    // Straight to EC2, as someone with the console would.
    await ec2.send(new TerminateInstancesCommand({ InstanceIds: [victim.instanceId] }));
    ec2.destroy();
    const replacement = await until(
      "a new instance in the lost slot",
      async () =>
        (await instancesOf(first)).find(
          (i) => i.slot === victim.slot && i.instanceId !== victim.instanceId && i.state === "running",
        ),
      180_000,
    );
    expect(Number(replacement.attempt)).toBeGreaterThan(Number(victim.attempt));
    await until(`${first} Ready again`, async () => (await stateOf(first)) === "Ready", 180_000);
    const nodes = await until("the lost node shown gone", async () => {
      const { body } = await get<{
        items: {
          node: string;
          instanceId: string | null;
          gone: { reason: string } | null;
          kube: { ready: boolean | null };
        }[];
      }>(`/clusters/${first}/nodes`);
      const lost = body.items.find((n) => n.instanceId === victim.instanceId);
      return lost?.gone ? body.items : undefined;
    });
    const lost = nodes.find((n) => n.instanceId === victim.instanceId)!;
    expect(lost.kube.ready).not.toBe(true);
    expect(nodes.filter((n) => !n.gone && n.kube.ready === true)).toHaveLength(3);
    expect(duplicateInstances(await instancesOf(first))).toEqual([]);
    await stopCairn();
  }, 420_000);
});
