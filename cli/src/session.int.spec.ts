/**
 * `cairn session …` as a person runs it: the real binary (cli/bin/cairn, the `npx cairn`
 * bin) as a child process against a running Cairn — the projector's API on real Postgres,
 * the idle-detector and node-ops on real NATS JetStream, the sim's Kubernetes for the
 * session's pod. One stack for the file; each test uses its own session ids.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Streams } from "@cairn/events";
import {
  appendAsOwner,
  recordClusterRequested,
  startJetStream,
  type TestJetStream,
} from "@cairn/events/testing";
import { type IdleDetector, startIdleDetector } from "@cairn/idle-detector";
import { kubeconfigParameter, type NodeOps, startNodeOps } from "@cairn/node-ops";
import { type Projector, startProjector } from "@cairn/projector";
import { SIM_CREDENTIALS, type Sim, startSim } from "@cairn/sim";
import { createTestDatabase, type DisposableDatabase, freePort } from "@cairn/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { runCli } from "./testing/run-cli.ts";

const CLUSTER = "demo-1";
const IMAGE = ["--image", "ghcr.io/acme/ide:1", "--cpu", "500m", "--memory", "1Gi", "--storage", "1Gi"];

let js: TestJetStream;
let database: DisposableDatabase;
let sim: Sim;
let nodeOps: NodeOps;
let detector: IdleDetector;
let projector: Projector;
let api: string;
let home: string;

beforeAll(async () => {
  [js, database, sim] = await Promise.all([
    startJetStream(),
    createTestDatabase("cli_sessions"),
    startSim({ seed: 7, timeScale: 100 }),
  ]);
  // A Ready cluster: its history, its API server with two nodes, its kubeconfig in SSM.
  const { EventStore, catalogue } = await import("@cairn/events");
  const store = new EventStore({ js: js.nats.js, jsm: js.nats.jsm, catalogue });
  const { region } = await recordClusterRequested(store, CLUSTER);
  await appendAsOwner(store, { type: "cluster", id: CLUSTER }, "cluster.ready", {
    nodes: 2,
    k3sVersion: "v1.31.4+k3s1",
  });
  sim.world.kube.ensureCluster(CLUSTER);
  for (const name of ["agent-a", "agent-b"])
    sim.world.kube.registerNode(CLUSTER, { name, role: "agent", labels: {}, taints: [] });
  sim.world.ssm.putParameter(region, kubeconfigParameter(CLUSTER), sim.world.kube.kubeconfig(CLUSTER), true);

  [nodeOps, detector, projector] = await Promise.all([
    startNodeOps({
      nats: js.nats,
      ssm: { endpoint: sim.url, credentials: SIM_CREDENTIALS },
      facts: false,
      restore: false,
      sessions: {
        poll: { firstMs: 20, minMs: 20, maxMs: 200 },
        unschedulableGraceMs: 0,
        movesIntervalMs: 200,
      },
    }),
    startIdleDetector({ nats: js.nats, sweepIntervalMs: 200, leaseTtlMs: 1_500 }),
    startProjector({ nats: js.nats, databaseUrl: database.url, api: { port: 0 } }),
  ]);
  api = projector.api!.url;
  // No config file of the person running the tests may leak in.
  home = await mkdtemp(join(tmpdir(), "cairn-cli-home-"));
}, 60_000);

afterAll(async () => {
  await projector?.stop();
  await detector?.stop();
  await nodeOps?.stop();
  await sim?.stop();
  await js?.dispose();
  await database?.dispose();
  if (home) await rm(home, { recursive: true, force: true });
});

/** The `cairn` binary with `args`, against the stack's API unless `env` says otherwise. */
const cairn = (args: readonly string[], env: Record<string, string | undefined> = {}) =>
  runCli(args, { CAIRN_API_URL: api, USER: "alice", ...env }, { home });

const stateOf = async (id: string) =>
  ((await (await fetch(`${api}/sessions/${id}`)).json()) as { state?: string }).state;
const commandsOnTheBus = async () => (await js.nats.jsm.streams.info(Streams.commands)).state.messages;

describe("cairn session", () => {
  it("create --wait follows the session to Running and prints it", async () => {
    const run = await cairn(["session", "create", "s-1", "--cluster", CLUSTER, ...IMAGE, "--wait"]);
    expect(run.stderr).not.toMatch(/cairn:/);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^session\/s-1 Running on agent-[ab]\n$/);
    expect(await stateOf("s-1")).toBe("Running");
  });

  it("lists sessions as a table, wide, json and yaml", async () => {
    const table = await cairn(["session", "list"]);
    expect(table.code).toBe(0);
    const [header, ...rows] = table.stdout.trimEnd().split("\n");
    expect(header).toMatch(/^NAME\s+STATE\s+USER\s+CLUSTER\s+LAST ACTIVITY\s+AGE$/);
    expect(rows.find((r) => r.startsWith("s-1 "))).toMatch(
      /^s-1\s+Running\s+alice\s+demo-1\s+\S.*\s+\d+[smhd]$/,
    );

    const wide = await cairn(["session", "list", "-o", "wide", "--cluster", CLUSTER, "--state", "running"]);
    expect(wide.stdout.split("\n")[0]).toMatch(/NODE/);
    expect(wide.stdout).toMatch(
      /s-1\s+Running\s+alice\s+demo-1\s+500m\s+1Gi\s+ghcr\.io\/acme\/ide:1\s+agent-[ab]/,
    );

    const json = await cairn(["session", "list", "-o", "json"]);
    const items = JSON.parse(json.stdout) as { id: string; state: string; template: { cpu: string } }[];
    expect(items.find((s) => s.id === "s-1")).toMatchObject({ state: "Running", template: { cpu: "500m" } });

    const yaml = await cairn(["sessions", "ls", "-o", "yaml", "--user", "alice"]);
    const fromYaml = parseYaml(yaml.stdout) as { id: string; user: string; state: string }[];
    expect(fromYaml.map((s) => [s.id, s.user, s.state])).toContainEqual(["s-1", "alice", "Running"]);
    expect(fromYaml.every((s) => s.user === "alice")).toBe(true);

    const none = await cairn(["session", "list", "--user", "nobody"]);
    expect(none).toMatchObject({ code: 0, stdout: "", stderr: "No sessions found.\n" });
  });

  it("get shows one session; an unknown id is 'not found' at once, exit 1", async () => {
    const one = await cairn(["session", "get", "s-1"]);
    expect(one.code).toBe(0);
    expect(one.stdout).toMatch(/^NAME\s+STATE.*\ns-1\s+Running\s+alice\s+demo-1/);

    const missing = await cairn(["session", "get", "no-such-session"]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toBe('cairn: session "no-such-session" not found\n');
    expect(missing.stdout).toBe("");
    // "At once": its waits default to minutes; 15 s leaves room for a loaded machine's process start.
    expect(missing.ms).toBeLessThan(15_000);

    const action = await cairn(["session", "hibernate", "no-such-session", "--wait"]);
    expect(action.code).toBe(1);
    expect(action.stderr).toMatch(/^cairn: session "no-such-session" not found\n/);
    expect(action.ms).toBeLessThan(15_000);
  });

  it("refuses a bad template before anything is sent", async () => {
    const before = await commandsOnTheBus();
    const bad = await cairn([
      "session",
      "create",
      "bad-1",
      "--cluster",
      CLUSTER,
      "--image",
      "x",
      "--cpu",
      "lots",
    ]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain("cairn: invalid session (nothing was sent)");
    expect(bad.stderr).toContain("--cpu: must be a Kubernetes quantity such as 2, 500m or 4Gi");
    // Nothing reached the bus, and the API never heard of it.
    expect(await commandsOnTheBus()).toBe(before);
    expect((await fetch(`${api}/sessions/bad-1`)).status).toBe(404);
    // Nor was the API even asked: pointed at a port where nothing listens, the answer is the same.
    const nowhere = `http://127.0.0.1:${await freePort()}`;
    const offline = await cairn(
      ["session", "create", "bad-1", "--cluster", CLUSTER, "--image", "x", "--cpu", "lots"],
      {
        CAIRN_API_URL: nowhere,
      },
    );
    expect(offline.code).toBe(1);
    expect(offline.stderr).toContain("--cpu: must be a Kubernetes quantity");
    expect(offline.stderr).not.toContain("cannot reach");
    // An id that cannot be a subject token, likewise.
    const badId = await cairn(["session", "get", "a.b"], { CAIRN_API_URL: nowhere });
    expect(badId.code).toBe(1);
    expect(badId.stderr).toMatch(/invalid session id.*\n.*must be token-safe/);
  });

  it("a create the idle-detector refuses exits 1 with its reason and a hint", async () => {
    const run = await cairn([
      "session",
      "create",
      "lost-1",
      "--cluster",
      "no-such-cluster",
      ...IMAGE,
      "--wait",
    ]);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/^cairn: session\/lost-1: refused: .*no-such-cluster/);
    expect(run.stderr).toContain("hint: check the cluster's id");
  });

  it("a session that cannot be scheduled Fails: exit 1 with the reason and the remediation", async () => {
    const run = await cairn([
      "session",
      "create",
      "big-1",
      "--cluster",
      CLUSTER,
      ...IMAGE,
      "--cpu",
      "12",
      "--wait",
    ]);
    expect(run.code).toBe(1);
    // The failure's own reason and remediation, as node-ops recorded them (after the wait's
    // progress lines, or first when the failure came before any was due).
    expect(run.stderr).toMatch(
      /(^|\n)cairn: session\/big-1 Failed: .*no node of cluster demo-1 has room.*\nhint: add nodes.+\n$/,
    );
    expect(run.stdout).toBe("");
  });

  it("hibernate, heartbeat, connect and terminate with --wait", async () => {
    expect(
      (
        await cairn([
          "session",
          "create",
          "s-2",
          "--cluster",
          CLUSTER,
          ...IMAGE,
          "--wait",
          "--timeout",
          "40s",
        ])
      ).code,
    ).toBe(0);

    const hb = await cairn(["session", "heartbeat", "s-2", "--connections", "2"]);
    expect(hb).toMatchObject({ code: 0, stdout: "session/s-2 heartbeat: 2 connection(s)\n" });

    const hibernate = await cairn(["session", "hibernate", "s-2", "--wait"]);
    expect(hibernate.stderr).not.toMatch(/cairn:/);
    expect(hibernate).toMatchObject({ code: 0, stdout: "session/s-2 Hibernated\n" });
    expect(await stateOf("s-2")).toBe("Hibernated");

    const connect = await cairn(["session", "connect", "s-2", "--wait"]);
    expect(connect.code).toBe(0);
    expect(connect.stdout).toMatch(/^session\/s-2 Running \(woke in \d+ms\)\n$/);

    const hibernateAgain = await cairn(["session", "hibernate", "s-2", "--wait", "-o", "json"]);
    expect(JSON.parse(hibernateAgain.stdout)).toMatchObject({ id: "s-2", state: "Hibernated" });
    const wake = await cairn(["session", "wake", "s-2", "--wait"]);
    expect(wake.stdout).toMatch(/^session\/s-2 Running/);

    const terminate = await cairn(["session", "terminate", "s-2", "--wait"]);
    expect(terminate).toMatchObject({ code: 0, stdout: "session/s-2 Terminated\n" });

    // A Terminated session never runs again: the idle-detector refuses, the CLI says why.
    const refused = await cairn(["session", "wake", "s-2", "--wait"]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/^cairn: session\/s-2: refused: .*terminated/);
    expect(refused.stderr).toMatch(/\nhint: /);

    const history = await cairn(["session", "history", "s-2"]);
    expect(history.stdout).toMatch(/^VERSION\s+TIME\s+EVENT\s+ACTOR\n/);
    expect(history.stdout).toContain("session.terminated");
  });
});
