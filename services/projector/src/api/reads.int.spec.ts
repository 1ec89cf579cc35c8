import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Projector, startProjector } from "../projector.ts";
import {
  aSpec,
  aTraceparent,
  cluster,
  deletionRequested,
  rejected,
  requested,
  scaleRequested,
} from "../testing/fixtures.ts";
import { eventually, type Infra, startInfra } from "../testing/infra.ts";

let infra: Infra;
let projector: Projector;
let base: string;
const JAEGER = "http://jaeger.test:16686";

beforeAll(async () => {
  infra = await startInfra();
  projector = await startProjector({
    nats: infra.nats,
    databaseUrl: infra.database.url,
    api: { port: 0, jaegerUiUrl: JAEGER },
  });
  base = projector.api!.url;
});
afterAll(async () => {
  await projector?.stop();
  await infra?.dispose();
});

async function call(path: string, headers: Record<string, string> = {}) {
  const res = await fetch(`${base}${path}`, { headers });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text ? JSON.parse(text) : undefined, text };
}

const traceOf = (tp: string) => tp.split("-")[1] as string;

/** h-1: requested (trace A), scaled (trace B), deletion requested (trace A); h-2 rejected in trace A. */
async function writeHistory() {
  const tpA = aTraceparent();
  const tpB = aTraceparent();
  const c1 = await infra.writer.append(cluster("h-1"), [requested("h-1")], {
    commandId: "cmd-h1-create",
    traceparent: tpA,
    actor: "alice",
  });
  const c2 = await infra.writer.append(cluster("h-1"), [scaleRequested("workers", 2, 5)], {
    commandId: "cmd-h1-scale",
    traceparent: tpB,
    actor: "bob",
  });
  const c3 = await infra.writer.append(
    cluster("h-2"),
    [rejected("cmd-h2", "cluster.scale", "not-found", "no h-2")],
    {
      commandId: "cmd-h2",
      traceparent: tpA,
    },
  );
  const c4 = await infra.writer.append(cluster("h-1"), [deletionRequested()], {
    commandId: "cmd-h1-delete",
    traceparent: tpA,
  });
  await eventually(async () => (await call("/clusters/h-1")).body?.state === "Deleting");
  await eventually(async () => (await call("/commands/cmd-h2")).status === 200);
  return { tpA, tpB, c1, c2, c3, c4 };
}

let h: Awaited<ReturnType<typeof writeHistory>>;

describe("history and traces", () => {
  beforeAll(async () => {
    h = await writeHistory();
  });

  it("GET /clusters/:id/history lists every event with time, type, version, cause, actor and trace link", async () => {
    const r = await call("/clusters/h-1/history");
    expect(r.status).toBe(200);
    const a = traceOf(h.tpA);
    const b = traceOf(h.tpB);
    const expected = [
      [h.c1, "cluster.requested", "cmd-h1-create", "alice", a],
      [h.c2, "cluster.scale-requested", "cmd-h1-scale", "bob", b],
      [h.c4, "cluster.deletion-requested", "cmd-h1-delete", "alice", a],
    ] as const;
    expect(r.body).toEqual({
      clusterId: "h-1",
      items: expected.map(([commit, type, commandId, actor, traceId], i) => ({
        sequence: commit.sequence,
        version: i + 1,
        time: commit.events[0]?.time,
        type,
        eventId: commit.events[0]?.id,
        aggregate: { type: "cluster", id: "h-1" },
        commandId,
        causationId: commit.events[0]?.meta.causationId,
        correlationId: "corr-1",
        actor,
        traceId,
        jaegerUrl: `${JAEGER}/trace/${traceId}`,
        links: { trace: `/traces/${traceId}`, command: `/commands/${commandId}` },
      })),
    });
  });

  it("pages the history with an opaque cursor", async () => {
    const p1 = await call("/clusters/h-1/history?limit=2");
    expect(p1.body.items.map((e: { version: number }) => e.version)).toEqual([1, 2]);
    expect(p1.body.nextCursor).toEqual(expect.any(String));
    const p2 = await call(`/clusters/h-1/history?limit=2&cursor=${p1.body.nextCursor}`);
    expect(p2.body.items.map((e: { version: number }) => e.version)).toEqual([3]);
    expect(p2.body.nextCursor).toBeUndefined();
    const bad = await call("/clusters/h-1/history?cursor=bm90LWEtY3Vyc29y");
    expect(bad.status).toBe(400);
    expect(bad.body.message).toMatch(/cursor is not one this API gave out/);
  });

  it("a cluster without events → 404", async () => {
    const r = await call("/clusters/never/history");
    expect(r.status).toBe(404);
    expect(r.body.message).toMatch(/no events of cluster "never"/);
  });

  it("GET /traces/:traceId lists the trace's events across aggregates in log order", async () => {
    const a = traceOf(h.tpA);
    const r = await call(`/traces/${a}`);
    expect(r.status).toBe(200);
    expect(r.body.traceId).toBe(a);
    expect(r.body.jaegerUrl).toBe(`${JAEGER}/trace/${a}`);
    expect(
      r.body.items.map((e: { sequence: number; aggregate: { id: string }; type: string }) => [
        e.sequence,
        e.aggregate.id,
        e.type,
      ]),
    ).toEqual([
      [h.c1.sequence, "h-1", "cluster.requested"],
      [h.c3.sequence, "h-2", "cluster.rejected"],
      [h.c4.sequence, "h-1", "cluster.deletion-requested"],
    ]);
    const p1 = await call(`/traces/${a}?limit=2`);
    const p2 = await call(`/traces/${a}?limit=2&cursor=${p1.body.nextCursor}`);
    expect([...p1.body.items, ...p2.body.items]).toEqual(r.body.items);
    expect((await call(`/traces/${"0".repeat(32)}`)).status).toBe(404);
    const bad = await call("/traces/not-a-trace");
    expect(bad.status).toBe(400);
    expect(bad.body.issues).toEqual([expect.stringMatching(/^params\.traceId: must be a W3C trace id/)]);
  });

  it("clusters and commands carry their traceId and a jaegerUrl", async () => {
    const a = traceOf(h.tpA);
    const c = await call("/clusters/h-1");
    expect(c.body).toMatchObject({ traceId: a, jaegerUrl: `${JAEGER}/trace/${a}` });
    const cmd = await call("/commands/cmd-h1-scale");
    expect(cmd.body).toMatchObject({
      traceId: traceOf(h.tpB),
      jaegerUrl: `${JAEGER}/trace/${traceOf(h.tpB)}`,
    });
  });
});

describe("point in time: GET /clusters/:id?at=", () => {
  const pools = (count: number) => aSpec("h-1").pools.map((p) => ({ ...p, count }));

  it("folds the log up to a sequence with the projection's reducer (hand-computed states)", async () => {
    const at1 = await call(`/clusters/h-1?at=${h.c1.sequence}`);
    expect(at1.status).toBe(200);
    expect(at1.body).toMatchObject({
      id: "h-1",
      state: "Pending",
      version: 1,
      spec: { ...aSpec("h-1"), pools: pools(2) },
      traceId: traceOf(h.tpA),
      createdAt: h.c1.events[0]?.time,
      updatedAt: h.c1.events[0]?.time,
    });
    // Between h-1's commits (h-2's commit is at c3): still as after c2.
    const at2 = await call(`/clusters/h-1?at=${h.c3.sequence}`);
    expect(at2.body).toMatchObject({
      state: "Scaling",
      version: 2,
      spec: { pools: pools(5) },
      traceId: traceOf(h.tpB),
      progress: { operation: "scaling" },
      updatedAt: h.c2.events[0]?.time,
    });
    const at4 = await call(`/clusters/h-1?at=${h.c4.sequence}`);
    expect(at4.body).toMatchObject({ state: "Deleting", version: 3, progress: { operation: "deleting" } });
  });

  it("an id no aggregate can have is 404, not 500 (found by test/fuzz)", async () => {
    for (const path of [
      "/clusters/a.b?at=1",
      "/clusters/%F2%93%94%9C?at=0",
      "/sessions/a%20b?at=1",
      "/sessions/%3E?at=2026-01-01T00:00:00Z",
    ]) {
      const r = await call(path);
      expect({ path, status: r.status }).toEqual({ path, status: 404 });
      expect(r.body.message).toMatch(/^no (cluster|session) /);
    }
  });

  it("the fold of the whole log equals the live read model", async () => {
    const live = await call("/clusters/h-1");
    const folded = await call(`/clusters/h-1?at=${h.c4.sequence + 1000}`);
    // Session counts are the sessions read model's, live: not part of the cluster's own log.
    const { sessions: _sessions, ...ownLive } = live.body as Record<string, unknown>;
    expect(folded.body).toEqual(ownLive);
  });

  it("folds up to a time", async () => {
    const t2 = h.c2.events[0]?.time as string;
    const r = await call(`/clusters/h-1?at=${encodeURIComponent(t2)}`);
    expect(r.body).toMatchObject({ state: "Scaling", version: 2 });
    const before = new Date(Date.parse(h.c1.events[0]?.time as string) - 1).toISOString();
    const none = await call(`/clusters/h-1?at=${encodeURIComponent(before)}`);
    expect(none.status).toBe(404);
    expect(none.body.message).toMatch(/no cluster "h-1" at .* \(it was not created by then\)/);
  });

  it("a bad `at` → 400", async () => {
    const r = await call("/clusters/h-1?at=yesterday-ish");
    expect(r.status).toBe(400);
    expect(r.body.issues).toEqual([expect.stringMatching(/^querystring\.at: must be a stream sequence/)]);
  });
});

describe("lists and ETags", () => {
  beforeAll(async () => {
    await infra.writer.append(cluster("r-a"), [requested("r-a")]);
    await infra.writer.append(cluster("r-b"), [requested("r-b", aSpec("r-b", { region: "us-east-2" }))]);
    await infra.writer.append(cluster("r-c"), [requested("r-c")]);
    await eventually(async () => (await call("/clusters/r-c")).status === 200);
  });

  it("filters by region and state", async () => {
    const eu = await call("/clusters?region=eu-west-1&state=Pending");
    const ids = eu.body.items.map((c: { id: string }) => c.id);
    expect(ids).toEqual(expect.arrayContaining(["r-a", "r-c"]));
    expect(ids).not.toContain("r-b");
    expect(ids).not.toContain("h-1"); // Deleting
    const us = await call("/clusters?region=us-east-2");
    expect(us.body.items.map((c: { id: string }) => c.id)).toEqual(["r-b"]);
    const bad = await call("/clusters?region=moon-1");
    expect(bad.status).toBe(400);
    expect(bad.body.issues).toEqual([expect.stringMatching(/^querystring\.region: must be an AWS region/)]);
  });

  it("pages in a stable id order with an opaque cursor", async () => {
    const all = (await call("/clusters?limit=500")).body.items.map((c: { id: string }) => c.id);
    const paged: string[] = [];
    let cursor: string | undefined;
    do {
      const r = await call(`/clusters?limit=2${cursor ? `&cursor=${cursor}` : ""}`);
      paged.push(...r.body.items.map((c: { id: string }) => c.id));
      cursor = r.body.nextCursor;
      if (cursor) expect(paged).not.toContain(Buffer.from(cursor, "base64url").toString()); // not a bare id
    } while (cursor);
    expect(paged).toEqual(all);
    expect(all).toEqual([...all].sort());
    expect((await call("/clusters?cursor=%%%")).status).toBe(400);
  });

  it("ETag on a resource: If-None-Match → 304 until it changes", async () => {
    const first = await call("/clusters/r-a");
    const etag = first.headers.get("etag");
    expect(etag).toMatch(/^W\/".+"$/);
    const same = await call("/clusters/r-a", { "if-none-match": etag as string });
    expect(same.status).toBe(304);
    expect(same.text).toBe("");
    expect(same.headers.get("etag")).toBe(etag);

    await infra.writer.append(cluster("r-a"), [deletionRequested()]);
    const changed = await eventually(async () => {
      const r = await call("/clusters/r-a", { "if-none-match": etag as string });
      return r.status === 200 ? r : undefined;
    });
    expect(changed.body.state).toBe("Deleting");
    expect(changed.headers.get("etag")).not.toBe(etag);
  });

  it("ETag on a list", async () => {
    const list = await call("/clusters?region=us-east-2");
    const etag = list.headers.get("etag") as string;
    expect((await call("/clusters?region=us-east-2", { "if-none-match": etag })).status).toBe(304);
    expect((await call("/clusters?region=eu-west-1", { "if-none-match": etag })).status).toBe(200);
  });
});
