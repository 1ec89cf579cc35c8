/**
 * The installs, nodes, node operations and step-duration routes, and the cluster ETA,
 * over a real projection of recorded lives (real NATS, real Postgres).
 */
import { nodeAggregateId } from "@cairn/events";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Projector, startProjector } from "../projector.ts";
import { everyClusterEventCommits, everyNodeEventCommits } from "../testing/every-event.ts";
import { eventually, type Infra, startInfra } from "../testing/infra.ts";

let infra: Infra;
let projector: Projector;
let base: string;

const commitsUpTo = <C extends { events: { type: string }[] }>(commits: C[], type: string) =>
  commits.slice(0, commits.findIndex((c) => c.events.some((e) => e.type === type)) + 1);

beforeAll(async () => {
  infra = await startInfra();
  projector = await startProjector({ nats: infra.nats, databaseUrl: infra.database.url, api: { port: 0 } });
  base = projector.api!.url;
  // r-1: its whole life. r-2: provisioning, and its install has just initialised the server.
  for (const c of [...everyClusterEventCommits("r-1"), ...everyNodeEventCommits("r-1")])
    await infra.writer.append(c.aggregate, c.events);
  for (const c of commitsUpTo(everyClusterEventCommits("r-2"), "cluster.instance-launch-requested"))
    await infra.writer.append(c.aggregate, c.events);
  for (const c of commitsUpTo(everyNodeEventCommits("r-2"), "install.step-succeeded"))
    await infra.writer.append(c.aggregate, c.events);
  await eventually(async () => (await get("/installs/r-2")).body?.nodes?.[0]?.state === "joined");
});
afterAll(async () => {
  await projector?.stop();
  await infra?.dispose();
});

async function get(path: string, headers: Record<string, string> = {}) {
  const res = await fetch(`${base}${path}`, { headers });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text ? JSON.parse(text) : undefined };
}

describe("GET /installs", () => {
  it("one install with its nodes and every step: SSM command ids, attempts, durations", async () => {
    const r = await get("/installs/r-1");
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({
      clusterId: "r-1",
      state: "Removed",
      k3sVersion: "v1.32.0+k3s1",
      upgrade: { from: "v1.31.4+k3s1", to: "v1.32.0+k3s1", state: "done" },
    });
    expect(r.body.steps).toContainEqual(
      expect.objectContaining({
        step: "k3s-agent-join",
        slot: 1000,
        node: "i-r-1-a",
        attempt: 1,
        commandId: "cmd-r-1-2",
        status: "TimedOut",
        willRetry: true,
      }),
    );
    const r2 = await get("/installs/r-2");
    expect(r2.body).toMatchObject({
      state: "Installing",
      progress: { done: 0, joined: 1, total: 3 },
      nodes: [
        { slot: 0, state: "joined", step: null },
        { slot: 1000, state: "waiting" },
        { slot: 1001, state: "waiting" },
      ],
    });
  });

  it("lists in cluster id order without the steps, filtered by state; 304 while nothing changed", async () => {
    const all = await get("/installs");
    expect(all.body.items.map((i: { clusterId: string }) => i.clusterId)).toEqual(["r-1", "r-2"]);
    expect(all.body.items[0].steps).toBeUndefined();
    expect(
      (await get("/installs?state=Installing")).body.items.map((i: { clusterId: string }) => i.clusterId),
    ).toEqual(["r-2"]);
    const etag = all.headers.get("etag");
    expect(etag).toMatch(/^W\//);
    expect((await get("/installs", { "if-none-match": etag! })).status).toBe(304);
    expect((await get("/installs/absent")).status).toBe(404);
  });
});

describe("GET /nodes", () => {
  it("filters by cluster, pool and K3s state, and pages with a cursor", async () => {
    const ofR1 = await get("/nodes?clusterId=r-1");
    expect(ofR1.body.items.map((n: { node: string }) => n.node)).toEqual(["i-r-1-a", "i-r-1-b", "i-r-1-s"]);
    expect((await get("/clusters/r-1/nodes")).body).toEqual(ofR1.body);
    const workers = await get("/nodes?clusterId=r-1&pool=workers");
    expect(workers.body.items.map((n: { node: string }) => n.node)).toEqual(["i-r-1-a", "i-r-1-b"]);
    // b was removed from K3s; a is gone with its deleted cluster (in K3s no more either).
    expect((await get("/nodes?clusterId=r-1&state=removed")).body.items).toEqual([
      expect.objectContaining({ node: "i-r-1-a", k3s: "removed", gone: expect.objectContaining({}) }),
      expect.objectContaining({
        id: nodeAggregateId("r-1", "i-r-1-b"),
        node: "i-r-1-b",
        k3s: "removed",
        kube: expect.objectContaining({ registered: false }),
      }),
    ]);
    // Page by page, the same nodes.
    const paged: string[] = [];
    let cursor: string | undefined;
    do {
      const p = await get(`/nodes?limit=2${cursor ? `&cursor=${cursor}` : ""}`);
      paged.push(...p.body.items.map((n: { id: string }) => n.id));
      cursor = p.body.nextCursor;
    } while (cursor);
    const all = (await get("/nodes?limit=500")).body.items.map((n: { id: string }) => n.id);
    expect(paged).toEqual(all);
    expect(all.length).toBe(6);
    expect((await get("/nodes?state=sleeping")).status).toBe(400);
  });

  it("a node says who cordoned it and why, its labels and taints", async () => {
    const server = (await get("/clusters/r-1/nodes")).body.items.find(
      (n: { node: string }) => n.node === "i-r-1-s",
    );
    expect(server).toMatchObject({
      role: "server",
      pool: "servers",
      capacityType: "on-demand",
      // Ready in K3s when last heard of, but its cluster is Deleted since.
      k3s: "removed",
    });
    const nodes = (await get("/nodes?clusterId=r-2")).body.items;
    expect(nodes.find((n: { node: string }) => n.node === "i-r-2-s")).toMatchObject({
      k3s: "joined",
      slot: 0,
    });
  });
});

describe("gone nodes", () => {
  it("a Deleted cluster's nodes are gone with when and why, neither running, ready nor in K3s, though events about them came after; /dependencies leaves them out", async () => {
    expect((await get("/clusters/r-1")).body.state).toBe("Deleted");
    const items: { node: string }[] = (await get("/clusters/r-1/nodes")).body.items;
    // i-r-1-a and i-r-1-b are named by the deletion; i-r-1-s is not (the fixture's
    // deletion lists only those two) and is gone all the same: its cluster is Deleted.
    expect(items.map((n) => n.node).sort()).toEqual(["i-r-1-a", "i-r-1-b", "i-r-1-s"]);
    for (const n of items)
      expect(n).toMatchObject({
        gone: { at: expect.any(String), reason: expect.any(String) },
        instance: n.node === "i-r-1-s" ? null : "terminated",
        k3s: "removed",
        kube: { ready: null, registered: false },
      });
    expect(
      (await get("/nodes?clusterId=r-1")).body.items.every((n: { gone: unknown }) => n.gone !== null),
    ).toBe(true);
    // Filtered by K3s state, no node of a Deleted cluster is among the ready ones.
    expect((await get("/nodes?clusterId=r-1&state=ready")).body.items).toEqual([]);
    const deps = (await get("/clusters/r-1/dependencies")).body;
    expect(deps.nodes).toEqual([]);
  });
});

describe("GET /nodeops", () => {
  it("one row per node: its last operation, state, and what blocked it", async () => {
    const b = await get(`/nodeops/${nodeAggregateId("r-1", "i-r-1-b")}`);
    expect(b.body).toMatchObject({
      clusterId: "r-1",
      node: "i-r-1-b",
      operation: "drain",
      state: "done",
      by: "bob",
      deleted: true,
      interruption: { noticeId: "notice-r-1" },
    });
    const failed = await get("/nodeops?clusterId=r-1&state=failed");
    expect(failed.body.items.map((o: { node: string }) => o.node)).toEqual(["i-r-1-a", "i-r-1-s"]);
    expect((await get("/nodeops/absent")).status).toBe(404);
  });
});

describe("ETA", () => {
  it("a cluster being built has an ETA from the learnt step durations; a resting one has none", async () => {
    const durations = (await get("/step-durations")).body.items;
    expect(durations.map((d: { kind: string }) => d.kind)).toEqual(
      expect.arrayContaining([
        "instance-boot",
        "ssm-registration",
        "k3s-server-init",
        "k3s-agent-join",
        "node-ready",
      ]),
    );
    const building = (await get("/clusters/r-2")).body;
    expect(building.state).toBe("Provisioning");
    expect(Date.parse(building.progress.eta)).toBeGreaterThan(Date.parse(building.updatedAt));
    expect(building.progress.etaSeconds).toBeGreaterThanOrEqual(0);
    const done = (await get("/clusters/r-1")).body;
    expect(done.progress).toMatchObject({ eta: null, etaSeconds: null });
  });
});

describe("GET /events/stream?resource=nodes", () => {
  it("sends the node rows a batch wrote, as GET /nodes shows them", async () => {
    const ctl = new AbortController();
    const id = nodeAggregateId("r-2", "i-r-2-a");
    const res = await fetch(`${base}/events/stream?resource=nodes&id=${id}`, { signal: ctl.signal });
    const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
    try {
      let text = "";
      while (!text.includes(": connected")) text += (await reader.read()).value ?? "";
      const rest = commitsUpTo(everyNodeEventCommits("r-2"), "install.step-succeeded").length;
      const online = everyNodeEventCommits("r-2")[rest + 1]!; // both agents' node-online
      expect(online.events[0]?.type).toBe("install.node-online");
      await infra.writer.append(online.aggregate, online.events);
      while (!text.includes("event: change")) text += (await reader.read()).value ?? "";
      while (!text.slice(text.indexOf("event: change")).includes("\n\n"))
        text += (await reader.read()).value ?? "";
      const block = text.slice(text.indexOf("event: change")).split("\n\n")[0]!;
      const change = JSON.parse(
        block
          .split("\n")
          .find((l) => l.startsWith("data: "))!
          .slice(6),
      );
      expect(change).toMatchObject({ resource: "nodes", id });
      const listed = (await get("/nodes?clusterId=r-2")).body.items.find((n: { id: string }) => n.id === id);
      expect(change.data).toEqual(listed);
    } finally {
      ctl.abort();
    }
  });
});
