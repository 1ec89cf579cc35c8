/**
 * `cairn cluster …`, `cairn node …`, `cairn events tail` and `cairn trace` as a person
 * runs them: the real binary against the provisioner, installer and node-ops on the
 * sim (real NATS JetStream), and the projector's API on real Postgres. One stack for the
 * file; one cluster taken through create → scale → cordon → delete.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Streams } from "@cairn/events";
import { useTestTracing } from "@cairn/events/testing";
import { type ControlPlane, startControlPlane } from "@cairn/installer/testing";
import { type Projector, startProjector } from "@cairn/projector";
import { createTestDatabase, type DisposableDatabase } from "@cairn/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "./testing/run-cli.ts";

let plane: ControlPlane;
let database: DisposableDatabase;
let projector: Projector;
let api: string;
let home: string;

beforeAll(async () => {
  // Real trace ids on every command and event, so `cairn trace` has something to show.
  useTestTracing();
  [plane, database] = await Promise.all([
    startControlPlane({
      seed: 5,
      nodeOps: { drain: { pollMs: 20, maxPollMs: 100 } },
      installer: { reactor: { maxPollMs: 100 } },
    }),
    createTestDatabase("cli_clusters"),
  ]);
  projector = await startProjector({ nats: plane.js.nats, databaseUrl: database.url, api: { port: 0 } });
  api = projector.api!.url;
  home = await mkdtemp(join(tmpdir(), "cairn-cli-home-"));
}, 60_000);

afterAll(async () => {
  await projector?.stop();
  await plane?.stop();
  await database?.dispose();
  if (home) await rm(home, { recursive: true, force: true });
});

const cairn = (args: readonly string[], env: Record<string, string | undefined> = {}) =>
  runCli(args, { CAIRN_API_URL: api, NATS_URL: plane.js.server.url, USER: "alice", ...env }, { home });
const commandsOnTheBus = async () => (await plane.js.nats.jsm.streams.info(Streams.commands)).state.messages;

describe("cairn cluster, node, events, trace", () => {
  let traceId: string;

  it("create --wait shows the progress and ends Ready", async () => {
    const run = await cairn([
      "cluster",
      "create",
      "c-1",
      "--pool",
      "workers=2:spot:t3.large,t3a.large",
      "--wait",
      "--timeout",
      "50s",
    ]);
    expect(run.stderr).not.toMatch(/cairn:/);
    expect(run.code).toBe(0);
    expect(run.stdout).toBe("cluster/c-1 Ready\n");
    // Not a terminal: a line for each state it went through, with its progress: step X of
    // Y over the whole build (three steps a node), so Configuring is not 100 % yet.
    expect(run.stderr).toMatch(
      /^cluster\/c-1 Provisioning {2}\[[#.]{20}\] \d+% {2}\d of 9 steps: \d of 3 instances running/m,
    );
    expect(run.stderr).toMatch(/^cluster\/c-1 Configuring {2}\[[#.]{20}\] \d\d% {2}\d of 9 steps: /m);
    expect(run.stderr).toMatch(/^cluster\/c-1 Ready {2}\(\d+\.\ds\)$/m);
  });

  it("list, get and describe show it as a person reads it", async () => {
    const list = await cairn(["cluster", "list"]);
    expect(list.stdout).toMatch(
      /^NAME\s+STATE\s+REGION\s+NODES\s+PROGRESS\s+AGE\nc-1\s+Ready\s+eu-west-1\s+3\/3\s+-\s+\d+s\n$/,
    );
    const wide = await cairn(["clusters", "ls", "-o", "wide"]);
    expect(wide.stdout).toMatch(/c-1\s+Ready\s+eu-west-1\s+3\/3\s+-\s+Healthy\s+v1\.31\.4\+k3s1\s+workers=2/);
    const json = await cairn(["cluster", "get", "c-1", "-o", "json"]);
    const view = JSON.parse(json.stdout) as { id: string; state: string; traceId: string };
    expect(view).toMatchObject({ id: "c-1", state: "Ready" });
    traceId = view.traceId;

    const describe = await cairn(["cluster", "describe", "c-1"]);
    expect(describe.code).toBe(0);
    expect(describe.stdout).toMatch(/^Name: +c-1\nState: +Ready\nHealth: +Healthy\n/);
    expect(describe.stdout).toMatch(
      /Conditions:\n {2}TYPE +STATUS +SINCE +REASON +MESSAGE\n {2}Ready +True +\d+s +Ready +K3s /,
    );
    expect(describe.stdout).toMatch(
      /Pools:\n {2}NAME +COUNT +CAPACITY +INSTANCE TYPES\n {2}workers +2 +spot +t3\.large,t3a\.large\n/,
    );
    expect(describe.stdout).toMatch(/Nodes:\n {2}NAME +ROLE/);
    expect(describe.stdout).toContain("cluster.ready");
  });

  it("an unknown cluster or node is 'not found' at once; bad input is refused before sending", async () => {
    const missing = await cairn(["cluster", "get", "nope"]);
    expect(missing).toMatchObject({ code: 1, stdout: "", stderr: 'cairn: cluster "nope" not found\n' });
    expect(missing.ms).toBeLessThan(5_000);
    const watch = await cairn(["cluster", "watch", "nope"]);
    expect(watch.code).toBe(1);
    expect(watch.stderr).toMatch(/^cairn: cluster "nope" not found\n/);
    expect(watch.ms).toBeLessThan(5_000);

    const before = await commandsOnTheBus();
    const region = await cairn(["cluster", "create", "c-2", "--region", "mars-north-1"]);
    expect(region.code).toBe(1);
    expect(region.stderr).toContain(
      "cairn: invalid cluster (nothing was sent)\n  --region: must be an AWS region code",
    );
    const servers = await cairn(["cluster", "create", "c-2", "--servers", "2"]);
    expect(servers.stderr).toContain("--servers: must be 1, or an odd number");
    const pool = await cairn(["cluster", "scale", "c-1", "--pool", "gpus", "--count", "3"]);
    expect(pool.code).toBe(1);
    expect(pool.stderr).toContain(
      'cairn: cluster/c-1 has no pool "gpus" (nothing was sent)\n  its pools: workers',
    );
    const node = await cairn(["node", "cordon", "no-such-node", "--cluster", "c-1", "--reason", "test"]);
    expect(node.code).toBe(1);
    expect(node.stderr).toMatch(
      /^cairn: node "no-such-node" not found\nhint: it is not a node of cluster c-1/,
    );
    expect(await commandsOnTheBus()).toBe(before);
  });

  it("node list, then cordon, uncordon, label and drain with --wait", async () => {
    const nodes = JSON.parse((await cairn(["node", "list", "--cluster", "c-1", "-o", "json"])).stdout) as {
      node: string;
      pool: string | null;
    }[];
    expect(nodes).toHaveLength(3);
    const worker = nodes.find((n) => n.pool === "workers")!.node;
    const table = await cairn(["nodes", "ls", "--cluster", "c-1"]);
    expect(table.stdout).toMatch(
      /^CLUSTER\s+NAME\s+ROLE\s+POOL\s+CAPACITY\s+INSTANCE\s+K3S\s+READY\s+SCHEDULING\s+AGE\n/,
    );

    const cordon = await cairn([
      "node",
      "cordon",
      worker,
      "--cluster",
      "c-1",
      "--reason",
      "disk errors",
      "--wait",
    ]);
    expect(cordon.stderr).not.toMatch(/cairn:/);
    expect(cordon).toMatchObject({ code: 0, stdout: `node/${worker} cordoned\n` });
    const after = await cairn(["node", "list", "--cluster", "c-1"]);
    expect(after.stdout).toMatch(
      new RegExp(`${worker.replaceAll(".", "\\.")}.*Disabled \\(alice: disk errors\\)`),
    );

    const uncordon = await cairn([
      "node",
      "uncordon",
      worker,
      "--cluster",
      "c-1",
      "--reason",
      "disk replaced",
      "--wait",
    ]);
    expect(uncordon).toMatchObject({ code: 0, stdout: `node/${worker} uncordoned\n` });
  });

  it("scale --wait, then the event log and the trace", async () => {
    const scale = await cairn([
      "cluster",
      "scale",
      "c-1",
      "--pool",
      "workers",
      "--count",
      "3",
      "--wait",
      "--timeout",
      "50s",
    ]);
    expect(scale.stderr).not.toMatch(/cairn:/);
    expect(scale).toMatchObject({ code: 0, stdout: "cluster/c-1 Ready\n" });
    // Ready again only once the scale was taken: the wait ignored every view older than the
    // scale's commit (the Ready from before it), so the fourth node is there at once.
    expect((await cairn(["cluster", "list"])).stdout).toMatch(/\nc-1\s+Ready\s+eu-west-1\s+4\/4\s/);
    const same = await cairn(["cluster", "scale", "c-1", "--pool", "workers", "--count", "3"]);
    expect(same).toMatchObject({ code: 0, stdout: "cluster/c-1 pool workers has 3 nodes already\n" });

    const tail = await cairn([
      "events",
      "tail",
      "--aggregate",
      "cluster/c-1",
      "--type",
      "cluster.scal*",
      "--since",
      "1h",
      "--count",
      "1",
    ]);
    expect(tail.code).toBe(0);
    expect(tail.stdout).toMatch(/^\S+Z {2}cluster\/c-1 +cluster\.scale-requested +alice +[0-9a-f]{32}\n$/);

    const trace = await cairn(["trace", traceId]);
    expect(trace.stderr).toBe("");
    expect(trace.code).toBe(0);
    expect(trace.stdout).toMatch(/^TIME\s+AGGREGATE\s+EVENT\s+ACTOR\n/);
    expect(trace.stdout).toContain("cluster/c-1");
    expect((await cairn(["trace", "nothex"])).stderr).toMatch(/invalid trace id/);
    // The scale follows a whole node's build: on a loaded machine that outlasts the default 60 s.
  }, 120_000);

  it("delete --wait ends Deleted", async () => {
    const del = await cairn(["cluster", "delete", "c-1", "--wait", "--timeout", "50s"]);
    expect(del.stderr).not.toMatch(/cairn:/);
    expect(del).toMatchObject({ code: 0, stdout: "cluster/c-1 Deleted\n" });
  });
});
