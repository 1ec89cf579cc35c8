import { createHash } from "node:crypto";
import { CommandBus, catalogue, commandSubject, connectNats, EventStore, Streams } from "@cairn/events";
import { useTestTracing } from "@cairn/events/testing";
import { startNatsServer } from "@cairn/testkit";
import { jetstream } from "@nats-io/jetstream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ChangeFeed } from "../changes.ts";
import { DEFAULT_SCHEMA, openDatabase } from "../db/database.ts";
import { type Projector, startProjector } from "../projector.ts";
import { aSpec, cluster, rejected, requested } from "../testing/fixtures.ts";
import { eventually, type Infra, startInfra } from "../testing/infra.ts";
import { buildApi } from "./server.ts";

useTestTracing();

let infra: Infra;
let projector: Projector;
let base: string;

beforeAll(async () => {
  infra = await startInfra();
  projector = await startProjector({
    nats: infra.nats,
    databaseUrl: infra.database.url,
    api: { port: 0, jaegerUiUrl: "http://jaeger.test:16686/", clusters: { deleteWaitMs: 2_000 } },
  });
  base = projector.api!.url;
});
afterAll(async () => {
  await projector?.stop();
  await infra?.dispose();
});

async function call(method: string, path: string, body?: unknown) {
  const res = await fetch(`${base}${path}`, {
    method,
    ...(body !== undefined
      ? { headers: { "content-type": "application/json" }, body: JSON.stringify(body) }
      : {}),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined, text };
}

describe("projector API", () => {
  it("listens on loopback and tells where", () => {
    expect(projector.api?.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(projector.api?.port).toBeGreaterThan(0);
  });

  it("a NUL in a path or query string → 400, not a failed query (found by test/fuzz)", async () => {
    for (const [method, path] of [
      ["GET", "/sessions/a%00b"],
      ["GET", "/clusters/x%00?at=1"],
      ["GET", "/sessions?user=%00"],
      ["POST", "/sessions/a%00b/connect"],
      ["DELETE", "/clusters/c%00"],
    ] as const) {
      const res = await call(method, path, method === "POST" ? {} : undefined);
      expect({ path, status: res.status }).toEqual({ path, status: 400 });
      expect(res.body.message).toMatch(/NUL character/);
    }
  });

  it("POST /commands: invalid data → 400 naming the bad field", async () => {
    const res = await call("POST", "/commands", {
      type: "cluster.create",
      data: { ...aSpec("api-bad"), region: "mars-north-1" },
      meta: { actor: "alice" },
    });
    expect(res.status).toBe(400);
    expect(res.body.error).toBe("Bad Request");
    expect(res.body.issues).toEqual([expect.stringMatching(/^region: must be an AWS region/)]);
  });

  it("POST /commands: an invalid envelope → 400 naming the field", async () => {
    const res = await call("POST", "/commands", { id: "not-a-uuid", data: {} });
    expect(res.status).toBe(400);
    expect(res.body.issues).toEqual(
      expect.arrayContaining([expect.stringMatching(/^body\.id: /), expect.stringMatching(/^body\.type: /)]),
    );
  });

  it("POST /commands: an unknown type → 400", async () => {
    const res = await call("POST", "/commands", { type: "cluster.explode", data: {} });
    expect(res.status).toBe(400);
    expect(res.body.message).toMatch(/unknown command type "cluster.explode"/);
  });

  it("POST /commands → 202 with command id and trace id, on the command stream; status follows the events", async () => {
    const res = await call("POST", "/commands", {
      type: "cluster.create",
      data: aSpec("api-1"),
      meta: { actor: "alice" },
    });
    expect(res.status).toBe(202);
    const { commandId, traceId, links } = res.body;
    expect(commandId).toMatch(/^[0-9a-f-]{36}$/);
    expect(traceId).toMatch(/^[0-9a-f]{32}$/);
    expect(links).toEqual({ command: `/commands/${commandId}` });

    const onBus = await infra.nats.jsm.streams.getMessage(Streams.commands, {
      last_by_subj: commandSubject("cluster.create"),
    });
    expect(onBus?.json()).toMatchObject({ id: commandId, type: "cluster.create", meta: { actor: "alice" } });

    // Nobody decided it yet: unknown, and no cluster.
    expect(await call("GET", `/commands/${commandId}`)).toMatchObject({
      status: 404,
      body: { commandId, status: "unknown" },
    });
    const absent = await call("GET", "/clusters/api-1");
    expect(absent.status).toBe(404);
    expect(absent.body).toEqual({ error: "Not Found", message: expect.stringContaining("api-1") });

    // The decider's answer, written by hand.
    const traceparent = `00-${traceId}-0123456789abcdef-01`;
    const commit = await infra.writer.append(cluster("api-1"), [requested("api-1")], {
      commandId,
      traceparent,
    });
    const found = await eventually(async () => {
      const r = await call("GET", "/clusters/api-1");
      return r.status === 200 ? r : undefined;
    });
    expect(found.body).toEqual({
      id: "api-1",
      name: "api-1",
      region: "eu-west-1",
      state: "Pending",
      health: "Progressing",
      conditions: expect.arrayContaining([
        {
          type: "Ready",
          status: "False",
          reason: "Pending",
          message: expect.any(String),
          lastTransitionTime: expect.any(String),
        },
      ]),
      failure: null,
      spec: aSpec("api-1"),
      version: 1,
      // The last commit folded into the view: the create's, the one the command answers with.
      sequence: commit.sequence,
      progress: {
        operation: "pending",
        // The whole build ahead: three steps for each of its three nodes.
        done: 0,
        total: 9,
        percent: 0,
        step: "0 of 9 steps: 0 of 3 instances running",
        phases: {
          instances: { done: 0, total: 3 },
          servers: { done: 0, total: 1 },
          agents: { done: 0, total: 2 },
          ready: { done: 0, total: 3 },
        },
        nodes: { ready: 0, running: 0, wanted: 3 },
        // A Pending cluster has its whole build ahead: an ETA from the (default) durations.
        eta: expect.any(String),
        etaSeconds: expect.any(Number),
      },
      traceId,
      jaegerUrl: `http://jaeger.test:16686/trace/${traceId}`,
      // Its sessions, counted live from the sessions read model.
      sessions: { total: 0, live: 0, byState: {} },
      createdAt: expect.any(String),
      updatedAt: expect.any(String),
    });
    expect(await call("GET", `/commands/${commandId}`)).toMatchObject({
      status: 200,
      body: {
        commandId,
        type: "cluster.create",
        status: "accepted",
        aggregate: { type: "cluster", id: "api-1" },
        sequence: commit.sequence,
        traceId,
      },
    });
  });

  it("typed routes: the path names the target, the body is the rest of the command", async () => {
    const last = async (type: string) =>
      (
        await infra.nats.jsm.streams.getMessage(Streams.commands, { last_by_subj: commandSubject(type) })
      )?.json();
    const created = await call("POST", "/clusters", aSpec("typed-1"));
    expect(created.status).toBe(202);
    expect(await last("cluster.create")).toMatchObject({
      id: created.body.commandId,
      data: { clusterId: "typed-1", region: aSpec("typed-1").region },
    });
    const drained = await call("POST", "/clusters/typed-1/nodes/i-0abc/drain", {
      reason: "kernel patch",
      timeoutSeconds: 120,
      deleteEmptyDirData: true,
    });
    expect(drained.status).toBe(202);
    expect(await last("node.drain")).toMatchObject({
      id: drained.body.commandId,
      data: {
        clusterId: "typed-1",
        node: "i-0abc",
        reason: "kernel patch",
        timeoutSeconds: 120,
        deleteEmptyDirData: true,
      },
    });
    // The path wins over a body that names another target.
    const scaled = await call("POST", "/clusters/typed-1/scale", {
      clusterId: "other",
      pool: "workers",
      count: 4,
    });
    expect(scaled.status).toBe(202);
    expect(await last("cluster.scale")).toMatchObject({
      data: { clusterId: "typed-1", pool: "workers", count: 4 },
    });
    // Validated against the same catalogue schema as POST /commands.
    const bad = await call("POST", "/clusters/typed-1/nodes/i-0abc/drain", {});
    expect(bad.status).toBe(400);
    expect(bad.body.issues.join(" ")).toContain("reason");
    expect((await call("DELETE", "/clusters/typed-1")).status).toBe(202);
    expect(await last("cluster.delete")).toMatchObject({ data: { clusterId: "typed-1" } });
  });

  it("DELETE /clusters/:id waits for the provisioner: 409 while sessions live (its reason), 202 with ?force=true, 404 for none", async () => {
    // The provisioner's delete decision, played by hand: sessions live on "busy".
    await infra.writer.append(cluster("busy"), [requested("busy")], { commandId: "cmd-busy" });
    const reason =
      "cluster busy has 1 live session (1 Running: s-1); terminate them first, or send the delete with force: true to terminate them (cause cluster-deleted) before the cluster is deleted";
    const seen: { id: string; data: { clusterId: string; force?: boolean } }[] = [];
    const sub = infra.nats.nc.subscribe("cmd.cluster.delete", {
      callback: (_err, m) => {
        const c = m.json<{ id: string; data: { clusterId: string; force?: boolean } }>();
        seen.push(c);
        const ref = cluster(c.data.clusterId);
        void infra.writer.append(
          ref,
          c.data.clusterId !== "busy"
            ? [rejected(c.id, "cluster.delete", "not-found", `cluster ${c.data.clusterId} does not exist`)]
            : c.data.force
              ? [
                  {
                    type: "cluster.deletion-requested",
                    data: { force: true, sessions: [{ sessionId: "s-1", status: "Running" }] },
                  },
                ]
              : [rejected(c.id, "cluster.delete", "conflict", reason)],
          { commandId: c.id },
        );
      },
    });
    try {
      const refused = await call("DELETE", "/clusters/busy");
      expect(refused.status).toBe(409);
      expect(refused.body).toEqual({
        error: "Conflict",
        message: reason,
        code: "conflict",
        commandId: seen[0]?.id,
      });
      expect(seen[0]?.data).toEqual({ clusterId: "busy" });
      const forced = await call("DELETE", "/clusters/busy?force=true");
      expect(forced.status).toBe(202);
      expect(seen[1]?.data).toEqual({ clusterId: "busy", force: true });
      expect(forced.body.commandId).toBe(seen[1]?.id);
      expect((await call("GET", "/clusters/busy")).body.state).toBe("Deleting");
      // Already Deleting: the provisioner appends nothing for a second delete; the answer is the state.
      sub.unsubscribe();
      // A route that waited for an answer would take deleteWaitMs (2 s); 1 s leaves room for a
      // loaded machine (a 300 ms bound against a 300 ms wait failed once at load 28).
      const started = Date.now();
      expect((await call("DELETE", "/clusters/busy")).status).toBe(202);
      expect(Date.now() - started).toBeLessThan(1_000);
      const none = infra.nats.nc.subscribe("cmd.cluster.delete", {
        callback: (_err, m) => {
          const c = m.json<{ id: string; data: { clusterId: string } }>();
          void infra.writer.append(
            cluster(c.data.clusterId),
            [rejected(c.id, "cluster.delete", "not-found", `cluster ${c.data.clusterId} does not exist`)],
            { commandId: c.id },
          );
        },
      });
      try {
        const missing = await call("DELETE", "/clusters/nowhere");
        expect(missing.status).toBe(404);
        expect(missing.body.message).toBe("cluster nowhere does not exist");
      } finally {
        none.unsubscribe();
      }
      // Not a boolean: refused before anything is sent.
      expect((await call("DELETE", "/clusters/busy?force=yes")).status).toBe(400);
    } finally {
      sub.unsubscribe();
    }
    // Its deletion ends (other tests list the clusters still Deleting).
    await infra.writer.append(cluster("busy"), [{ type: "cluster.deleted", data: { terminated: [] } }]);
    await eventually(async () => (await call("GET", "/clusters/busy")).body.state === "Deleted");
  });

  it("GET /commands/:id shows a rejection with its code and reason", async () => {
    const bus = new CommandBus({ js: infra.nats.js, catalogue });
    const sent = await bus.send({
      type: "cluster.delete",
      data: { clusterId: "ghost" },
      meta: { actor: "bob" },
    });
    const commit = await infra.writer.append(
      cluster("ghost"),
      [rejected(sent.commandId, "cluster.delete", "not-found", "no cluster ghost")],
      { commandId: sent.commandId },
    );
    const r = await eventually(async () => {
      const x = await call("GET", `/commands/${sent.commandId}`);
      return x.status === 200 ? x : undefined;
    });
    expect(r.body).toEqual({
      commandId: sent.commandId,
      type: "cluster.delete",
      status: "rejected",
      code: "not-found",
      reason: "no cluster ghost",
      aggregate: { type: "cluster", id: "ghost" },
      sequence: commit.sequence,
      traceId: null,
    });
    // A rejection of an unknown cluster makes no cluster.
    expect((await call("GET", "/clusters/ghost")).status).toBe(404);
  });

  it("a create with tags EC2 would refuse is refused up front, naming the rule, and nothing is sent", async () => {
    const tags = Object.fromEntries(Array.from({ length: 300 }, (_, i) => [`team-${i}`, "x"]));
    const before = (await infra.nats.jsm.streams.info(Streams.commands)).state.messages;
    const typed = await call("POST", "/clusters", { ...aSpec("tags-1"), tags });
    expect(typed.status).toBe(400);
    expect(typed.body.issues).toEqual([
      expect.stringMatching(
        /^tags: 300 tags, but an instance takes at most 44 of yours: EC2 allows 50 per resource/,
      ),
    ]);
    const reserved = await call("POST", "/commands", {
      type: "cluster.create",
      data: { ...aSpec("tags-2"), tags: { "aws:team": "x" } },
    });
    expect(reserved.status).toBe(400);
    expect(reserved.body.issues).toEqual([expect.stringContaining('"aws:team" starts with "aws:"')]);
    expect((await infra.nats.jsm.streams.info(Streams.commands)).state.messages).toBe(before);
  });

  it("a Failed cluster says why and what to do: failure, health and conditions, in the list and alone", async () => {
    const reason = "EC2 refused RunInstances: The maximum number of tags (50) for resource has been reached";
    const launched = {
      slot: 1000,
      pool: "workers",
      ordinal: 0,
      role: "agent",
      attempt: 1,
      placement: { instanceType: "t3.large", capacityType: "spot" },
    };
    await infra.writer.append(cluster("failing-1"), [requested("failing-1")]);
    await infra.writer.append(cluster("failing-1"), [
      { type: "cluster.provisioning-started", data: { slots: [] } },
      { type: "cluster.instance-launch-requested", data: launched },
    ]);
    // As the provisioner records a permanent launch failure: the slot's failure, then the cluster's.
    // (An event from before cluster.failed carried a code and a hint: the catalogue's hint.)
    await infra.writer.append(cluster("failing-1"), [
      {
        type: "cluster.instance-launch-failed",
        data: {
          slot: 1000,
          attempt: 1,
          placement: launched.placement,
          code: "TagLimitExceeded",
          reason,
          capacity: false,
        },
      },
      { type: "cluster.failed", data: { reason: `slot 1000 could not be launched: ${reason}` } },
    ]);
    const failed = await eventually(async () => {
      const r = await call("GET", "/clusters/failing-1");
      return r.body?.state === "Failed" ? r.body : undefined;
    });
    expect(failed.health).toBe("Failed");
    expect(failed.failure).toEqual({
      reason: `slot 1000 could not be launched: ${reason}`,
      remediation: expect.stringMatching(/^read EC2's reason above and fix what it names/),
      code: "launch-failed",
      since: expect.any(String),
    });
    expect(failed.conditions).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ type: "Failed", status: "True", reason: "LaunchFailed" }),
        expect.objectContaining({
          type: "Ready",
          status: "False",
          reason: "Failed",
          message: failed.failure.reason,
        }),
      ]),
    );
    // Honest progress: nothing ran, so not 100 %, though the cluster rests.
    expect(failed.progress).toMatchObject({ operation: null, done: 0, total: 9, percent: 0 });
    const list = await call("GET", "/clusters?state=Failed");
    expect(list.body.items.find((c: { id: string }) => c.id === "failing-1")).toMatchObject({
      health: "Failed",
      failure: { code: "launch-failed" },
    });
    // As it was before it failed: the fold over the log's prefix says Provisioning, no failure.
    const before = await call("GET", `/clusters/failing-1?at=${infra.writer.lastSequence - 1}`);
    expect(before.body).toMatchObject({ state: "Provisioning", health: "Progressing", failure: null });
  });

  it("GET /clusters filters by state and pages by id", async () => {
    for (const id of ["list-a", "list-b", "list-c"]) await infra.writer.append(cluster(id), [requested(id)]);
    await eventually(async () => (await call("GET", "/clusters/list-c")).status === 200);

    const ids: string[] = [];
    let cursor: string | undefined;
    for (let page = 0; page < 10; page++) {
      const r = await call("GET", `/clusters?state=Pending&limit=2${cursor ? `&cursor=${cursor}` : ""}`);
      expect(r.status).toBe(200);
      expect(r.body.items.length).toBeLessThanOrEqual(2);
      ids.push(...r.body.items.map((c: { id: string }) => c.id));
      cursor = r.body.nextCursor;
      if (!cursor) break;
    }
    expect(ids).toEqual([...ids].sort());
    expect(ids).toEqual(expect.arrayContaining(["list-a", "list-b", "list-c"]));
    expect(new Set(ids).size).toBe(ids.length);

    expect((await call("GET", "/clusters?state=Deleting")).body).toEqual({ items: [] });
    const bad = await call("GET", "/clusters?state=Exploded&limit=0");
    expect(bad.status).toBe(400);
    expect(bad.body.issues).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^querystring\.state: /),
        expect.stringMatching(/^querystring\.limit: /),
      ]),
    );
  });

  it("health, readiness and the OpenAPI document", async () => {
    expect(await call("GET", "/healthz")).toMatchObject({ status: 200, body: { status: "ok" } });
    expect(await call("GET", "/readyz")).toMatchObject({
      status: 200,
      body: { status: "ready", checks: { postgres: "ok", consumer: "running" } },
    });
    const spec = await call("GET", "/docs/json");
    expect(spec.status).toBe(200);
    expect(Object.keys(spec.body.paths)).toEqual(
      expect.arrayContaining([
        "/clusters",
        "/clusters/{id}",
        "/commands",
        "/commands/{id}",
        "/healthz",
        "/readyz",
      ]),
    );
    const ui = await fetch(`${base}/docs`);
    expect(ui.status).toBe(200);
    expect(await ui.text()).toMatch(/swagger/i);
    expect(await call("GET", "/nope")).toMatchObject({ status: 404, body: { error: "Not Found" } });
  });

  it("serves the dashboard at / with its modules; GET /whoami without tokens: this machine, every right", async () => {
    const page = await fetch(`${base}/`);
    expect(page.status).toBe(200);
    expect(page.headers.get("content-type")).toMatch(/^text\/html/);
    const html = await page.text();
    expect(html).toContain('<script type="module" src="/app.js">');
    // Every module the import map names is served, as JavaScript.
    const imports = JSON.parse(/<script type="importmap">(.*?)<\/script>/s.exec(html)?.[1] ?? "{}").imports;
    expect(Object.keys(imports).sort()).toEqual(["htm", "preact", "preact/hooks"]);
    for (const url of Object.values(imports) as string[]) {
      const res = await fetch(`${base}${url}`);
      expect(res.status, url).toBe(200);
      expect(res.headers.get("content-type"), url).toMatch(/javascript/);
    }
    // The import map's hash is what the CSP allows, and nothing else inline.
    const csp = page.headers.get("content-security-policy") ?? "";
    const hash = createHash("sha256")
      .update(/<script type="importmap">(.*?)<\/script>/s.exec(html)?.[1] ?? "")
      .digest("base64");
    expect(csp).toContain(`script-src 'self' 'sha256-${hash}';`);
    expect(csp).not.toContain("unsafe-inline");
    expect(await call("GET", "/whoami")).toMatchObject({
      status: 200,
      body: { auth: false, user: null, role: "admin", jaegerUiUrl: "http://jaeger.test:16686/" },
    });
  });

  it("readiness is 503 when the consumer does not run", async () => {
    const db = openDatabase(infra.database.url, { max: 1 });
    const app = await buildApi({
      db,
      schema: DEFAULT_SCHEMA,
      bus: new CommandBus({ js: infra.nats.js, catalogue }),
      store: new EventStore({ js: infra.nats.js, jsm: infra.nats.jsm, catalogue }),
      changes: new ChangeFeed(),
      logger: { info() {}, warn() {}, error() {} },
      consumerStatus: () => ({ running: false }),
    });
    try {
      const r = await app.inject({ method: "GET", url: "/readyz" });
      expect(r.statusCode).toBe(503);
      expect(r.json()).toMatchObject({
        status: "not ready",
        checks: { postgres: "ok", consumer: "stopped" },
      });
    } finally {
      await app.close();
      await db.destroy();
    }
  });

  it("the command stream unavailable past the bus's timeout: 503 with Retry-After and the command's id to send again (not 500)", async () => {
    // A nats-server with no streams at all: nobody answers cmd.> (as while an R3 stream's
    // leader is elected, only for good). The bus tries for its timeout, then gives up.
    const bare = await startNatsServer();
    const bareNats = await connectNats(bare.url);
    const db = openDatabase(infra.database.url, { max: 1 });
    const app = await buildApi({
      db,
      schema: DEFAULT_SCHEMA,
      bus: new CommandBus({ js: jetstream(bareNats.nc, { timeout: 400 }), catalogue }),
      store: new EventStore({ js: infra.nats.js, jsm: infra.nats.jsm, catalogue }),
      changes: new ChangeFeed(),
      logger: { info() {}, warn() {}, error() {} },
      consumerStatus: () => ({ running: true }),
    });
    try {
      const id = "01936f7e-0000-7000-8000-0000000000aa";
      const generic = await app.inject({
        method: "POST",
        url: "/commands",
        payload: { id, type: "cluster.create", data: aSpec("api-503") },
      });
      expect(generic.statusCode).toBe(503);
      expect(generic.headers["retry-after"]).toBe("1");
      expect(generic.json()).toMatchObject({
        error: "Service Unavailable",
        commandId: id,
        message: expect.stringContaining("send it again with the same id"),
      });
      // The typed route chooses the id itself and names it.
      const typed = await app.inject({ method: "POST", url: "/clusters", payload: aSpec("api-503") });
      expect(typed.statusCode).toBe(503);
      expect(typed.json().commandId).toMatch(/^[0-9a-f-]{36}$/);
    } finally {
      await app.close();
      await db.destroy();
      await bareNats.close();
      await bare.dispose();
    }
  });

  it("refuses to listen beyond loopback without auth", async () => {
    await expect(
      startProjector({
        nats: infra.nats,
        databaseUrl: infra.database.url,
        api: { port: 0, host: "0.0.0.0" },
      }),
    ).rejects.toThrow(/non-loopback host needs the `auth` option/);
  });
});
