import { CommandBus, catalogue, commandSubject, EventStore, Streams } from "@cairn/events";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ChangeFeed } from "../changes.ts";
import { DEFAULT_SCHEMA, openDatabase } from "../db/database.ts";
import { type Projector, startProjector } from "../projector.ts";
import { aSpec } from "../testing/fixtures.ts";
import { eventually, type Infra, startInfra } from "../testing/infra.ts";
import { type Access, type ApiAuth, createToken, type Role } from "./auth.ts";
import { buildApi } from "./server.ts";

let infra: Infra;
let projector: Projector;
let base: string;

const viewer = createToken("vera", "viewer");
const operator = createToken("otto", "operator");
const admin = createToken("ada", "admin");
const auth: ApiAuth = { tokens: [viewer.entry, operator.entry, admin.entry] };
const tokenOf: Record<Role, string> = { viewer: viewer.token, operator: operator.token, admin: admin.token };

beforeAll(async () => {
  infra = await startInfra();
  projector = await startProjector({
    nats: infra.nats,
    databaseUrl: infra.database.url,
    api: {
      port: 0,
      auth,
      rateLimit: false,
      sessions: { admissionWaitMs: 100 },
      clusters: { deleteWaitMs: 100 },
    },
  });
  base = projector.api!.url;
});
afterAll(async () => {
  await projector?.stop();
  await infra?.dispose();
});

async function call(method: string, path: string, opts: { token?: string; body?: unknown } = {}) {
  const ctl = new AbortController();
  const res = await fetch(`${base}${path}`, {
    method,
    signal: ctl.signal,
    headers: {
      ...(opts.token !== undefined ? { authorization: `Bearer ${opts.token}` } : {}),
      ...(opts.body !== undefined ? { "content-type": "application/json" } : {}),
    },
    ...(opts.body !== undefined ? { body: JSON.stringify(opts.body) } : {}),
  });
  // A live stream never ends: its headers are the answer.
  if (res.headers.get("content-type")?.startsWith("text/event-stream")) {
    ctl.abort();
    return { status: res.status, headers: res.headers, body: undefined };
  }
  const text = await res.text();
  const json = res.headers.get("content-type")?.includes("json");
  return {
    status: res.status,
    headers: res.headers,
    body: text && json ? JSON.parse(text) : text || undefined,
  };
}

let seq = 0;
const TEMPLATE = { image: "ghcr.io/cairn/ide:1", cpu: "1", memory: "2Gi", storage: "10Gi" };
/** One request per documented route, and the access it needs. */
const routes: Record<string, { access: Access; method: string; path: string; body?: () => unknown }> = {
  "GET /healthz": { access: "public", method: "GET", path: "/healthz" },
  "GET /readyz": { access: "public", method: "GET", path: "/readyz" },
  "GET /clusters": { access: "viewer", method: "GET", path: "/clusters" },
  "GET /clusters/{id}": { access: "viewer", method: "GET", path: "/clusters/nope" },
  "GET /clusters/{id}/history": { access: "viewer", method: "GET", path: "/clusters/nope/history" },
  "GET /traces/{traceId}": { access: "viewer", method: "GET", path: `/traces/${"a".repeat(32)}` },
  "GET /commands/{id}": { access: "viewer", method: "GET", path: "/commands/nope" },
  "GET /events/stream": { access: "viewer", method: "GET", path: "/events/stream" },
  "GET /installs": { access: "viewer", method: "GET", path: "/installs" },
  "GET /installs/{clusterId}": { access: "viewer", method: "GET", path: "/installs/nope" },
  "GET /nodes": { access: "viewer", method: "GET", path: "/nodes" },
  "GET /clusters/{id}/nodes": { access: "viewer", method: "GET", path: "/clusters/nope/nodes" },
  "GET /nodeops": { access: "viewer", method: "GET", path: "/nodeops" },
  "GET /nodeops/{id}": { access: "viewer", method: "GET", path: "/nodeops/nope" },
  "GET /step-durations": { access: "viewer", method: "GET", path: "/step-durations" },
  "GET /whoami": { access: "viewer", method: "GET", path: "/whoami" },
  "GET /metrics": { access: "viewer", method: "GET", path: "/metrics" },
  // Sessions: every role may use them, on their own sessions (tenant scope: below).
  "GET /sessions": { access: "viewer", method: "GET", path: "/sessions" },
  "GET /sessions/{id}": { access: "viewer", method: "GET", path: "/sessions/nope" },
  "GET /sessions/{id}/history": { access: "viewer", method: "GET", path: "/sessions/nope/history" },
  "GET /clusters/{id}/dependencies": { access: "viewer", method: "GET", path: "/clusters/nope/dependencies" },
  "POST /sessions": {
    access: "viewer",
    method: "POST",
    path: "/sessions",
    body: () => ({ sessionId: `auth-s-${++seq}`, clusterId: "c", template: TEMPLATE }),
  },
  "DELETE /sessions/{id}": { access: "viewer", method: "DELETE", path: "/sessions/nope" },
  "POST /sessions/{id}/hibernate": { access: "viewer", method: "POST", path: "/sessions/nope/hibernate" },
  "POST /sessions/{id}/wake": { access: "viewer", method: "POST", path: "/sessions/nope/wake" },
  "POST /sessions/{id}/connect": { access: "viewer", method: "POST", path: "/sessions/nope/connect" },
  "POST /sessions/{id}/heartbeat": {
    access: "viewer",
    method: "POST",
    path: "/sessions/nope/heartbeat",
    body: () => ({ connections: 1 }),
  },
  "POST /commands": {
    access: "operator",
    method: "POST",
    path: "/commands",
    body: () => ({ type: "cluster.create", data: aSpec(`auth-${++seq}`) }),
  },
  // Typed command routes: operator, like POST /commands.
  "POST /clusters": {
    access: "operator",
    method: "POST",
    path: "/clusters",
    body: () => aSpec(`auth-${++seq}`),
  },
  "DELETE /clusters/{id}": { access: "operator", method: "DELETE", path: "/clusters/auth-x" },
  "POST /clusters/{id}/scale": {
    access: "operator",
    method: "POST",
    path: "/clusters/auth-x/scale",
    body: () => ({ pool: "workers", count: 1 }),
  },
  "POST /clusters/{id}/rollback": {
    access: "operator",
    method: "POST",
    path: "/clusters/auth-x/rollback",
    body: () => ({ toVersion: 1 }),
  },
  "POST /clusters/{id}/retry": {
    access: "operator",
    method: "POST",
    path: "/clusters/auth-x/retry",
    body: () => ({}),
  },
  "POST /clusters/{id}/upgrade": {
    access: "operator",
    method: "POST",
    path: "/clusters/auth-x/upgrade",
    body: () => ({ k3sVersion: "v1.32.0+k3s1" }),
  },
  "PATCH /clusters/{id}/pools/{pool}": {
    access: "operator",
    method: "PATCH",
    path: "/clusters/auth-x/pools/workers",
    body: () => ({ labels: { tier: "web" } }),
  },
  ...Object.fromEntries(
    (
      [
        ["cordon", {}],
        ["uncordon", {}],
        ["drain", {}],
        ["label", { labels: { tier: "web" } }],
        ["unlabel", { keys: ["tier"] }],
        ["taint", { taints: [{ key: "gpu", effect: "NoSchedule" }] }],
        ["untaint", { taints: [{ key: "gpu", effect: "NoSchedule" }] }],
      ] as const
    ).map(([verb, extra]) => [
      `POST /clusters/{id}/nodes/{node}/${verb}`,
      {
        access: "operator" as const,
        method: "POST",
        path: `/clusters/auth-x/nodes/i-0abc/${verb}`,
        body: () => ({ reason: "maintenance", ...extra }),
      },
    ]),
  ),
};

describe("auth matrix: every route × no token / bad token / viewer / operator / admin", () => {
  it("covers every route of the OpenAPI document", async () => {
    const doc = (await call("GET", "/docs/json")).body as {
      security: unknown;
      paths: Record<string, Record<string, { security?: unknown }>>;
    };
    // The document tells which routes need the token.
    expect(doc.security).toEqual([{ bearer: [] }]);
    expect(doc.paths["/healthz"]?.get?.security).toEqual([]);
    expect(doc.paths["/clusters"]?.get?.security).toBeUndefined();
    const documented = Object.entries(doc.paths).flatMap(([path, ops]) =>
      Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`),
    );
    expect(documented.sort()).toEqual(Object.keys(routes).sort());
  });

  for (const [name, route] of Object.entries(routes)) {
    it(name, async () => {
      const send = (token?: string) =>
        call(route.method, route.path, {
          ...(token !== undefined ? { token } : {}),
          ...(route.body ? { body: route.body() } : {}),
        });
      const none = await send();
      const bad = await send("cairn_not-a-real-token");
      if (route.access === "public") {
        expect(none.status).toBe(200);
        expect(bad.status).toBe(200);
      } else {
        expect(none.status).toBe(401);
        expect(none.headers.get("www-authenticate")).toBe('Bearer realm="cairn"');
        expect(none.body).toEqual({ error: "Unauthorized", message: expect.stringMatching(/needs a token/) });
        expect(bad.status).toBe(401);
        expect(bad.headers.get("www-authenticate")).toMatch(/^Bearer .*error="invalid_token"/);
        expect(bad.body.message).toMatch(/unknown token/);
      }
      for (const role of ["viewer", "operator", "admin"] as const) {
        const r = await send(tokenOf[role]);
        const allowed =
          route.access === "public" ||
          ["viewer", "operator", "admin"].indexOf(role) >=
            ["viewer", "operator", "admin"].indexOf(route.access);
        if (allowed) {
          expect([401, 403]).not.toContain(r.status);
          expect(r.status).toBeLessThan(500);
        } else {
          expect(r.status).toBe(403);
          expect(r.body.message).toMatch(new RegExp(`needs the ${route.access} role .* is ${role}`));
        }
      }
    });
  }

  it("a malformed Authorization header is a 401 that says so", async () => {
    const res = await fetch(`${base}/clusters`, { headers: { authorization: "Basic dXNlcjpwdw==" } });
    expect(res.status).toBe(401);
    expect(((await res.json()) as { message: string }).message).toMatch(/not `Bearer <token>`/);
  });

  it("the OpenAPI document and UI stay open; unknown routes need a token", async () => {
    expect((await fetch(`${base}/docs`)).status).toBe(200);
    expect((await call("GET", "/nope")).status).toBe(401);
    expect((await call("GET", "/nope", { token: viewer.token })).status).toBe(404);
  });

  it("the dashboard's files are open (they hold no data); a path beside them is not", async () => {
    for (const path of [
      "/",
      "/index.html",
      "/app.js",
      "/style.css",
      "/vendor/preact.mjs",
      "/vendor/htm.mjs",
    ]) {
      const res = await fetch(`${base}${path}`);
      expect(res.status, path).toBe(200);
      expect(res.headers.get("x-content-type-options"), path).toBe("nosniff");
    }
    expect((await fetch(`${base}/`)).headers.get("content-security-policy")).toMatch(/^default-src 'self'/);
    expect((await call("GET", "/app.jsx")).status).toBe(401);
    expect((await call("GET", "/vendor/react.mjs")).status).toBe(401);
    expect((await call("GET", "/../package.json")).status).toBe(401);
  });

  it("GET /whoami: the token's user and role", async () => {
    for (const [role, t] of Object.entries(tokenOf)) {
      const r = await call("GET", "/whoami", { token: t });
      expect(r).toMatchObject({ status: 200, body: { auth: true, role, jaegerUiUrl: null } });
    }
    expect((await call("GET", "/whoami", { token: viewer.token })).body.user).toBe("vera");
  });
});

describe("commands with a token", () => {
  it("meta.actor is the token's user: the caller cannot speak for someone else", async () => {
    const r = await call("POST", "/commands", {
      token: operator.token,
      body: { type: "cluster.create", data: aSpec("actor-1"), meta: { actor: "mallory" } },
    });
    expect(r.status).toBe(202);
    expect(r.body.actor).toBe("otto");
    const onBus = await infra.nats.jsm.streams.getMessage(Streams.commands, {
      last_by_subj: commandSubject("cluster.create"),
    });
    expect(onBus?.json()).toMatchObject({ id: r.body.commandId, meta: { actor: "otto" } });
  });

  const template = { image: "ghcr.io/cairn/ide:1", cpu: "1", memory: "2Gi", storage: "10Gi" };

  it("session.create: a non-admin creates sessions for themself only", async () => {
    const forBob = await call("POST", "/commands", {
      token: operator.token,
      body: { type: "session.create", data: { sessionId: "s-1", user: "bob", clusterId: "c", template } },
    });
    expect(forBob.status).toBe(403);
    expect(forBob.body.message).toMatch(
      /otto \(operator\) may create sessions only for themself, not for "bob"/,
    );
    const own = await call("POST", "/commands", {
      token: operator.token,
      body: { type: "session.create", data: { sessionId: "s-2", user: "otto", clusterId: "c", template } },
    });
    expect(own.status).toBe(202);
    const byAdmin = await call("POST", "/commands", {
      token: admin.token,
      body: { type: "session.create", data: { sessionId: "s-3", user: "bob", clusterId: "c", template } },
    });
    expect(byAdmin.status).toBe(202);
  });

  it("a session id no session can have is the catalogue's 400, not a failed owner look-up (found by test/fuzz)", async () => {
    const r = await call("POST", "/commands", {
      token: operator.token,
      body: { type: "session.hibernate", data: { sessionId: "a\u0000b" } },
    });
    expect(r.status).toBe(400);
    expect(r.body.issues).toEqual([expect.stringMatching(/^sessionId: must be token-safe/)]);
  });

  it("other session commands: only the session's owner (by its creation event) or an admin", async () => {
    // The sessions read model does not exist yet: ownership is read off the event index,
    // where the session's creation event names its user. Written here as the projection would.
    const db = openDatabase(infra.database.url, { max: 1 });
    try {
      await db
        .insertInto("event_index")
        .values({
          aggregate_type: "session",
          aggregate_id: "s-otto",
          position: 1,
          sequence: 1_000_000,
          event_id: "0193a0c2-0000-7000-8000-000000000001",
          type: "session.requested",
          command_id: null,
          causation_id: "x",
          correlation_id: "x",
          actor: "otto",
          trace_id: null,
          time: new Date().toISOString(),
          data: JSON.stringify({ sessionId: "s-otto", user: "otto" }),
        })
        .execute();
    } finally {
      await db.destroy();
    }
    const send = (token: string, sessionId: string) =>
      call("POST", "/commands", { token, body: { type: "session.hibernate", data: { sessionId } } });

    expect((await send(operator.token, "s-otto")).status).toBe(202);
    const other = createToken("olga", "operator");
    // A second projector API over the same database, with olga's token too.
    const db2 = openDatabase(infra.database.url, { max: 2 });
    const app = await buildApi({
      db: db2,
      schema: DEFAULT_SCHEMA,
      bus: new CommandBus({ js: infra.nats.js, catalogue }),
      store: new EventStore({ js: infra.nats.js, jsm: infra.nats.jsm, catalogue }),
      changes: new ChangeFeed(),
      logger: { info() {}, warn() {}, error() {} },
      consumerStatus: () => ({ running: true }),
      auth: { tokens: [...auth.tokens, other.entry] },
      rateLimit: false,
    });
    try {
      const r = await app.inject({
        method: "POST",
        url: "/commands",
        headers: { authorization: `Bearer ${other.token}` },
        payload: { type: "session.terminate", data: { sessionId: "s-otto" } },
      });
      expect(r.statusCode).toBe(403);
      expect(r.json().message).toMatch(/session "s-otto" is not olga's/);
    } finally {
      await app.close();
      await db2.destroy();
    }
    const unknown = await send(operator.token, "s-nobody");
    expect(unknown.status).toBe(403);
    expect(unknown.body.message).toMatch(/cannot tell whose session "s-nobody" is/);
    expect((await send(admin.token, "s-nobody")).status).toBe(202);
  });
});

describe("tenant scope of sessions: viewers see and act on their own; operators see all; admins act on all", () => {
  const requestedBy = (sessionId: string, user: string) => ({
    type: "session.requested",
    data: {
      sessionId,
      user,
      clusterId: "scope-c",
      template: TEMPLATE,
      idleTimeoutSeconds: 1800,
      maxLifetimeSeconds: 86_400,
      cause: "user",
    },
  });
  const running = (sessionId: string) => ({
    type: "session.running",
    data: { sessionId, node: "i-0abc", cause: "user" },
  });

  beforeAll(async () => {
    await infra.writer.append({ type: "session", id: "scope-vera" }, [requestedBy("scope-vera", "vera")]);
    await infra.writer.append({ type: "session", id: "scope-otto" }, [requestedBy("scope-otto", "otto")]);
    await eventually(
      async () => (await call("GET", "/sessions/scope-otto", { token: admin.token })).status === 200,
    );
  });

  it("lists: a viewer gets their own sessions only, operators and admins every one", async () => {
    const ids = async (token: string, q = "") =>
      ((await call("GET", `/sessions?clusterId=scope-c${q}`, { token })).body.items as { id: string }[]).map(
        (s) => s.id,
      );
    expect(await ids(viewer.token)).toEqual(["scope-vera"]);
    expect(await ids(viewer.token, "&user=otto")).toEqual([]);
    expect(await ids(operator.token)).toEqual(["scope-otto", "scope-vera"]);
    expect(await ids(admin.token, "&user=otto")).toEqual(["scope-otto"]);
  });

  it("reads: someone else's session is 404 to a viewer (as if absent), 200 to operators and admins", async () => {
    expect((await call("GET", "/sessions/scope-otto", { token: viewer.token })).status).toBe(404);
    expect((await call("GET", "/sessions/scope-otto/history", { token: viewer.token })).status).toBe(404);
    expect((await call("GET", "/sessions/scope-otto?at=1", { token: viewer.token })).status).toBe(404);
    expect((await call("GET", "/sessions/scope-vera", { token: viewer.token })).body).toMatchObject({
      id: "scope-vera",
      user: "vera",
      state: "Pending",
    });
    expect((await call("GET", "/sessions/scope-vera", { token: operator.token })).status).toBe(200);
    const graph = await call("GET", "/clusters/scope-c/dependencies", { token: viewer.token });
    // No cluster scope-c exists: the graph is of a cluster.
    expect(graph.status).toBe(404);
  });

  it("acts: the owner and admins; an operator may not act on another's session (403), a viewer cannot even see it (404)", async () => {
    const hib = (token: string, id: string) => call("POST", `/sessions/${id}/hibernate`, { token });
    expect((await hib(viewer.token, "scope-vera")).status).toBe(202);
    expect((await hib(viewer.token, "scope-otto")).status).toBe(404);
    const byOperator = await hib(operator.token, "scope-vera");
    expect(byOperator.status).toBe(403);
    expect(byOperator.body.message).toMatch(/scope-vera" is vera's; only its owner or an admin/);
    expect((await hib(admin.token, "scope-vera")).status).toBe(202);
    const hb = await call("POST", "/sessions/scope-vera/heartbeat", {
      token: operator.token,
      body: { connections: 1 },
    });
    expect(hb.status).toBe(403);
    // A viewer's heartbeat for someone else's session: as if it did not exist.
    const other = await call("POST", "/sessions/scope-otto/heartbeat", {
      token: viewer.token,
      body: { connections: 1 },
    });
    expect(other.status).toBe(404);
    expect((await call("DELETE", "/sessions/scope-otto", { token: viewer.token })).status).toBe(404);
  });

  it("creates: a viewer's POST /sessions is for themself (user defaults to the caller); for another, 403", async () => {
    const other = await call("POST", "/sessions", {
      token: viewer.token,
      body: { sessionId: "scope-x1", user: "otto", clusterId: "scope-c", template: TEMPLATE },
    });
    expect(other.status).toBe(403);
    const own = await call("POST", "/sessions", {
      token: viewer.token,
      body: { sessionId: "scope-x2", clusterId: "scope-c", template: TEMPLATE },
    });
    expect(own.status).toBe(202);
    expect(own.body).toMatchObject({ actor: "vera", sessionId: "scope-x2", state: "Pending" });
    const onBus = await infra.nats.jsm.streams.getMessage(Streams.commands, {
      last_by_subj: commandSubject("session.create"),
    });
    expect(onBus?.json()).toMatchObject({
      id: own.body.commandId,
      data: { user: "vera", sessionId: "scope-x2" },
    });
  });

  it("the live stream: a viewer gets changes of their own sessions only", async () => {
    const ctl = new AbortController();
    const res = await fetch(`${base}/events/stream?resource=sessions`, {
      headers: { authorization: `Bearer ${viewer.token}` },
      signal: ctl.signal,
    });
    const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
    let text = "";
    while (!text.includes(": connected")) text += (await reader.read()).value ?? "";
    // Otto's change is committed first, then Vera's: once Vera's arrives, Otto's would have.
    await infra.writer.append({ type: "session", id: "scope-otto" }, [running("scope-otto")]);
    await infra.writer.append({ type: "session", id: "scope-vera" }, [running("scope-vera")]);
    while (!text.includes('"id":"scope-vera"')) text += (await reader.read()).value ?? "";
    ctl.abort();
    expect(text).not.toContain("scope-otto");
  });
});

describe("limits", () => {
  async function app(opts: {
    rateLimit?: { max: number; timeWindowMs: number } | undefined;
    bodyLimit?: number;
    noAuth?: boolean;
  }) {
    const db = openDatabase(infra.database.url, { max: 1 });
    const a = await buildApi({
      db,
      schema: DEFAULT_SCHEMA,
      bus: new CommandBus({ js: infra.nats.js, catalogue }),
      store: new EventStore({ js: infra.nats.js, jsm: infra.nats.jsm, catalogue }),
      changes: new ChangeFeed(),
      logger: { info() {}, warn() {}, error() {} },
      consumerStatus: () => ({ running: true }),
      ...(opts.noAuth ? {} : { auth }),
      ...("rateLimit" in opts ? { rateLimit: opts.rateLimit } : { rateLimit: false as const }),
      ...(opts.bodyLimit !== undefined ? { bodyLimit: opts.bodyLimit } : {}),
    });
    const close = async () => {
      await a.close();
      await db.destroy();
    };
    return { app: a, close };
  }

  it("by default: 600/min per token holder with tokens; no limit on loopback without them", async () => {
    const withTokens = await app({ rateLimit: undefined });
    const loopback = await app({ rateLimit: undefined, noAuth: true });
    try {
      const a = await withTokens.app.inject({
        method: "GET",
        url: "/clusters",
        headers: { authorization: `Bearer ${viewer.token}` },
      });
      expect(a.headers["x-ratelimit-limit"]).toBe("600");
      const b = await loopback.app.inject({ method: "GET", url: "/clusters" });
      expect(b.statusCode).toBe(200);
      expect(b.headers["x-ratelimit-limit"]).toBeUndefined();
    } finally {
      await withTokens.close();
      await loopback.close();
    }
  });

  it("a body over the limit → 413 naming the limit", async () => {
    const big = await call("POST", "/commands", {
      token: operator.token,
      body: { type: "cluster.create", data: { pad: "x".repeat(300 * 1024) } },
    });
    expect(big.status).toBe(413);
    expect(big.body).toEqual({
      error: "Content Too Large",
      message: "request body is larger than the limit of 262144 bytes",
    });
  });

  it("rate limit per token holder → 429 with Retry-After; another holder keeps its budget", async () => {
    const { app: a, close } = await app({ rateLimit: { max: 3, timeWindowMs: 60_000 } });
    try {
      const get = (token: string) =>
        a.inject({ method: "GET", url: "/clusters", headers: { authorization: `Bearer ${token}` } });
      for (let i = 0; i < 3; i++) expect((await get(viewer.token)).statusCode).toBe(200);
      const limited = await get(viewer.token);
      expect(limited.statusCode).toBe(429);
      expect(Number(limited.headers["retry-after"])).toBeGreaterThan(0);
      expect(limited.json()).toEqual({
        error: "Too Many Requests",
        message: expect.stringMatching(
          /^rate limit exceeded: at most 3 requests per 1 minute; retry in \d+ s$/,
        ),
      });
      expect((await get(admin.token)).statusCode).toBe(200);
    } finally {
      await close();
    }
  });
});
