/**
 * The walking skeleton, end to end, with every service a separate process started
 * by `cairn up` (what `npm start` runs): a command published on NATS is decided by the
 * provisioner, projected into Postgres by the projector, and read back from the API
 * with the trace id of the original command.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { connectNats, exampleClusterCreate, type Nats, newId } from "@cairn/events";
import {
  createTestDatabase,
  type DisposableDatabase,
  type DisposableNats,
  freePort,
  startNatsServer,
} from "@cairn/testkit";
import { headers as natsHeaders } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const root = resolve(import.meta.dirname, "..");
let natsServer: DisposableNats;
let db: DisposableDatabase;
let nats: Nats;
let cairn: ChildProcess;
let api: string;
let dataDir: string;
let output = "";

async function until<T>(what: string, f: () => Promise<T | undefined>, ms = 60_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > end)
      throw new Error(`timed out waiting for ${what}\n--- cairn output ---\n${output.slice(-4000)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const getJson = async (path: string): Promise<{ status: number; body: Record<string, unknown> }> => {
  const res = await fetch(`${api}${path}`);
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
};

const createCommand = (clusterId: string, overrides: Record<string, unknown> = {}) => {
  const example = exampleClusterCreate(clusterId);
  return { id: newId(), ...example, data: { ...example.data, ...overrides } };
};

beforeAll(async () => {
  natsServer = await startNatsServer();
  db = await createTestDatabase("cairn_e2e");
  nats = await connectNats(natsServer.url);
  dataDir = await mkdtemp(join(tmpdir(), "cairn-e2e-"));
  const port = await freePort();
  const simPort = await freePort();
  api = `http://127.0.0.1:${port}`;
  cairn = spawn(process.execPath, [join(root, "cli/src/main.ts"), "up"], {
    env: {
      ...process.env,
      NATS_URL: natsServer.url,
      DATABASE_URL: db.url,
      CAIRN_API_PORT: String(port),
      CAIRN_SIM_PORT: String(simPort),
      // Instances boot in 0.3 s instead of 30.
      CAIRN_SIM_TIME_SCALE: "100",
      CAIRN_DATA_DIR: dataDir,
      LOG_LEVEL: "info",
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  cairn.stdout?.on("data", (d) => (output += d));
  cairn.stderr?.on("data", (d) => (output += d));
  await until("the API to be ready", async () => ((await fetch(`${api}/readyz`)).ok ? true : undefined));
});

afterAll(async () => {
  if (cairn && cairn.exitCode === null) {
    const exited = new Promise((r) => cairn.once("exit", r));
    cairn.kill("SIGINT");
    await exited;
  }
  await nats?.close();
  await db?.dispose();
  await natsServer?.dispose();
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

describe("walking skeleton", () => {
  it("`cairn up` brings up the simulated cloud and records where everything is", async () => {
    const endpoints = JSON.parse(await readFile(join(dataDir, "endpoints.json"), "utf8")) as Record<
      string,
      string
    >;
    expect(endpoints).toMatchObject({ natsUrl: natsServer.url, apiUrl: api });
    const health = await fetch(`${endpoints.simUrl}/_sim/health`);
    expect(((await health.json()) as { ok: boolean }).ok).toBe(true);
  });

  it("cmd.cluster.create on NATS → provisioner → projector → GET /clusters/:id, with the command's trace id", async () => {
    const traceId = "4bf92f3577b34da6a3ce929d0e0e4736";
    const cmd = createCommand("skeleton-1");
    const h = natsHeaders();
    h.set("traceparent", `00-${traceId}-00f067aa0ba902b7-01`);
    await nats.js.publish("cmd.cluster.create", JSON.stringify(cmd), { msgID: cmd.id, headers: h });

    const cluster = await until("the cluster in the read model", async () => {
      const r = await getJson("/clusters/skeleton-1");
      return r.status === 200 ? r.body : undefined;
    });
    expect(cluster).toMatchObject({ id: "skeleton-1", region: "eu-west-1", traceId });
    // The provisioner launches every instance on the sim, the installer installs K3s on
    // them over SSM, node-ops sees every node Ready: the cluster is Ready.
    const ready = await until("Ready", async () => {
      const r = await getJson("/clusters/skeleton-1");
      return r.body.state === "Ready" ? r.body : undefined;
    });
    expect(ready.traceId).toBe(traceId);
    const endpoints = JSON.parse(await readFile(join(dataDir, "endpoints.json"), "utf8")) as {
      simUrl: string;
    };
    const simState = (await (await fetch(`${endpoints.simUrl}/_sim/state`)).json()) as { ec2: unknown };
    expect(JSON.stringify(simState.ec2)).toContain("skeleton-1");
    const command = await until("the command's outcome", async () => {
      const r = await getJson(`/commands/${cmd.id}`);
      return r.status === 200 ? r.body : undefined;
    });
    expect(command).toMatchObject({ status: "accepted", traceId });
  });

  it("an invalid command is rejected with a reason the API reports", async () => {
    const cmd = createCommand("skeleton-2", { servers: { count: 2, instanceType: "t3.medium" } });
    await nats.js.publish("cmd.cluster.create", JSON.stringify(cmd), { msgID: cmd.id });
    const command = await until("the rejection", async () => {
      const r = await getJson(`/commands/${cmd.id}`);
      return r.status === 200 ? r.body : undefined;
    });
    expect(command).toMatchObject({
      status: "rejected",
      code: "invalid",
      reason: expect.stringContaining("servers.count"),
    });
    expect((await getJson("/clusters/skeleton-2")).status).toBe(404);
  });

  it("POST /commands answers 202 with the trace id the read model then carries", async () => {
    const res = await fetch(`${api}/commands`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(createCommand("skeleton-3")),
    });
    expect(res.status).toBe(202);
    const accepted = (await res.json()) as { commandId: string; traceId: string };
    expect(accepted.traceId).toMatch(/^[0-9a-f]{32}$/);
    const cluster = await until("the cluster", async () => {
      const r = await getJson("/clusters/skeleton-3");
      return r.status === 200 ? r.body : undefined;
    });
    expect(cluster.traceId).toBe(accepted.traceId);

    // A later command on the cluster: deleted, and deleting twice is one delete.
    for (let i = 0; i < 2; i++) {
      const del = await fetch(`${api}/commands`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          type: "cluster.delete",
          data: { clusterId: "skeleton-3" },
          meta: { actor: "alice" },
        }),
      });
      expect(del.status).toBe(202);
    }
    const deleted = await until("Deleted", async () => {
      const r = await getJson("/clusters/skeleton-3");
      return r.body.state === "Deleted" ? r.body : undefined;
    });
    const history = await getJson(`/commands/${accepted.commandId}`);
    expect(history.body.status).toBe("accepted");
    expect(deleted.state).toBe("Deleted");
  });

  it("a bad command over HTTP is refused at once with the field named", async () => {
    const res = await fetch(`${api}/commands`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(createCommand("skeleton-4", { region: "moon-1" })),
    });
    expect(res.status).toBe(400);
    expect(JSON.stringify(await res.json())).toContain("region");
  });
});
