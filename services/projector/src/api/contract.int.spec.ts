/**
 * The API contract: every route of the OpenAPI document answers at least one real
 * request with a status it declares and a body that matches the schema it declares
 * for that status (validated with Ajv against the served document itself).
 */
import { nodeAggregateId } from "@cairn/events";
import { Ajv } from "ajv";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Projector, startProjector } from "../projector.ts";
import { everyNodeEventCommits, everySessionEventCommits } from "../testing/every-event.ts";
import { aSpec, aTraceparent, cluster, requested } from "../testing/fixtures.ts";
import { eventually, type Infra, startInfra } from "../testing/infra.ts";
import { createToken } from "./auth.ts";

let infra: Infra;
let projector: Projector;
let base: string;
let doc: { paths: Record<string, Record<string, { responses: Record<string, Response> }>> };
type Response = { content?: Record<string, { schema: unknown }> };

const admin = createToken("ada", "admin");
const viewer = createToken("vera", "viewer");
const traceparent = aTraceparent();
const traceId = traceparent.split("-")[1] as string;

beforeAll(async () => {
  infra = await startInfra();
  projector = await startProjector({
    nats: infra.nats,
    databaseUrl: infra.database.url,
    api: {
      port: 0,
      auth: { tokens: [admin.entry, viewer.entry] },
      jaegerUiUrl: "http://jaeger.test",
      sessions: { admissionWaitMs: 200 },
      clusters: { deleteWaitMs: 200 },
    },
  });
  base = projector.api!.url;
  await infra.writer.append(cluster("k-1"), [requested("k-1")], { commandId: "cmd-k1", traceparent });
  // Its install, nodes and node operations: a whole recorded life.
  for (const c of everyNodeEventCommits("k-1")) await infra.writer.append(c.aggregate, c.events);
  // Its sessions: one terminated, one refused over quota, one Running.
  for (const c of everySessionEventCommits("k-1")) await infra.writer.append(c.aggregate, c.events);
  for (const c of everySessionEventCommits("k-1").slice(0, 6)) {
    const events = c.events.map((e) => ({
      ...e,
      data: { ...(e.data as object), ...("sessionId" in (e.data as object) ? { sessionId: "k-1-s3" } : {}) },
    }));
    if (c.aggregate.type === "session" && c.aggregate.id === "k-1-s1")
      await infra.writer.append({ type: "session", id: "k-1-s3" }, events);
  }
  await eventually(
    async () =>
      (await fetch(`${base}/healthz`)).ok &&
      (await get("/clusters/k-1")).status === 200 &&
      (await get("/installs/k-1")).status === 200 &&
      (await get(`/nodeops/${nodeAggregateId("k-1", "i-k-1-b")}`)).status === 200 &&
      (await get("/sessions/k-1-s3")).status === 200,
  );
  doc = (await (await fetch(`${base}/docs/json`)).json()) as typeof doc;
});
afterAll(async () => {
  await projector?.stop();
  await infra?.dispose();
});

function get(path: string, token = admin.token) {
  return fetch(`${base}${path}`, { headers: { authorization: `Bearer ${token}` } });
}

const TEMPLATE = { image: "ghcr.io/cairn/ide:1", cpu: "1", memory: "2Gi", storage: "10Gi" };

/** Requests per documented route: each must answer with a declared status and body. */
const requests: Record<string, { path: string; method?: string; token?: string; body?: unknown }[]> = {
  "GET /healthz": [{ path: "/healthz" }],
  "GET /readyz": [{ path: "/readyz" }],
  "GET /metrics": [{ path: "/metrics" }, { path: "/metrics", token: "wrong" }],
  "GET /clusters": [{ path: "/clusters?state=Pending&limit=1" }, { path: "/clusters?state=Nope" }],
  "GET /clusters/{id}": [
    { path: "/clusters/k-1" },
    { path: "/clusters/k-1?at=1" },
    { path: "/clusters/absent" },
    { path: "/clusters/k-1", token: "wrong" },
  ],
  "GET /clusters/{id}/history": [{ path: "/clusters/k-1/history" }, { path: "/clusters/absent/history" }],
  "GET /traces/{traceId}": [{ path: `/traces/${traceId}` }, { path: `/traces/${"0".repeat(32)}` }],
  "GET /commands/{id}": [{ path: "/commands/cmd-k1" }, { path: "/commands/absent" }],
  "GET /events/stream": [
    { path: "/events/stream?resource=clusters" },
    { path: "/events/stream?resource=nodes" },
  ],
  "GET /installs": [
    { path: "/installs?state=Removed&limit=1" },
    { path: "/installs?state=Nope" },
    { path: "/installs", token: "wrong" },
  ],
  "GET /installs/{clusterId}": [{ path: "/installs/k-1" }, { path: "/installs/absent" }],
  "GET /nodes": [{ path: "/nodes?clusterId=k-1&pool=workers&limit=1" }, { path: "/nodes?state=Nope" }],
  "GET /clusters/{id}/nodes": [{ path: "/clusters/k-1/nodes" }, { path: "/clusters/k-1/nodes?limit=0" }],
  "GET /nodeops": [{ path: "/nodeops?clusterId=k-1&state=failed" }, { path: "/nodeops?state=bad" }],
  "GET /nodeops/{id}": [
    { path: `/nodeops/${nodeAggregateId("k-1", "i-k-1-b")}` },
    { path: "/nodeops/absent" },
  ],
  "GET /step-durations": [{ path: "/step-durations" }],
  "GET /whoami": [
    { path: "/whoami" },
    { path: "/whoami", token: viewer.token },
    { path: "/whoami", token: "nope" },
  ],
  "GET /sessions": [
    { path: "/sessions?clusterId=k-1&state=Running&limit=1" },
    { path: "/sessions?state=Nope" },
    { path: "/sessions", token: viewer.token },
  ],
  "GET /sessions/{id}": [
    { path: "/sessions/k-1-s1" },
    { path: "/sessions/k-1-s2" },
    { path: "/sessions/k-1-s1?at=1" },
    { path: "/sessions/absent" },
  ],
  "GET /sessions/{id}/history": [
    { path: "/sessions/k-1-s1/history?limit=2" },
    { path: "/sessions/absent/history" },
  ],
  "POST /sessions": [
    {
      path: "/sessions",
      method: "POST",
      body: { sessionId: "k-1-s9", user: "ada", clusterId: "k-1", template: TEMPLATE },
    },
    { path: "/sessions", method: "POST", body: { sessionId: "k-1-s8", clusterId: "k-1", template: {} } },
    {
      path: "/sessions",
      method: "POST",
      token: viewer.token,
      body: { sessionId: "k-1-s7", user: "bob", clusterId: "k-1", template: TEMPLATE },
    },
  ],
  "DELETE /sessions/{id}": [
    { path: "/sessions/k-1-s3", method: "DELETE" },
    { path: "/sessions/absent", method: "DELETE" },
  ],
  "POST /sessions/{id}/hibernate": [{ path: "/sessions/k-1-s3/hibernate", method: "POST" }],
  "POST /sessions/{id}/wake": [{ path: "/sessions/k-1-s3/wake", method: "POST" }],
  "POST /sessions/{id}/connect": [
    { path: "/sessions/k-1-s3/connect", method: "POST" },
    { path: "/sessions/k-1-s3/connect", method: "POST", token: viewer.token },
  ],
  "POST /sessions/{id}/heartbeat": [
    { path: "/sessions/k-1-s1/heartbeat", method: "POST", body: { connections: 1 } },
    { path: "/sessions/absent/heartbeat", method: "POST", body: { connections: 1 } },
    { path: "/sessions/k-1-s3/heartbeat", method: "POST", body: { connections: -1 } },
    // No idle-detector runs here: nobody answers.
    { path: "/sessions/k-1-s3/heartbeat", method: "POST", body: { connections: 1 } },
  ],
  "GET /clusters/{id}/dependencies": [
    { path: "/clusters/k-1/dependencies" },
    { path: "/clusters/absent/dependencies" },
  ],
  "POST /commands": [
    { path: "/commands", method: "POST", body: { type: "cluster.create", data: aSpec("k-2") } },
    { path: "/commands", method: "POST", body: { type: "cluster.create", data: {} } },
    { path: "/commands", method: "POST", token: viewer.token, body: { type: "cluster.delete", data: {} } },
  ],
  "POST /clusters": [
    { path: "/clusters", method: "POST", body: aSpec("k-3") },
    { path: "/clusters", method: "POST", body: { clusterId: "k-4" } },
    { path: "/clusters", method: "POST", token: viewer.token, body: aSpec("k-5") },
  ],
  "DELETE /clusters/{id}": [{ path: "/clusters/k-3", method: "DELETE" }],
  "POST /clusters/{id}/scale": [
    { path: "/clusters/k-1/scale", method: "POST", body: { pool: "workers", count: 3 } },
    { path: "/clusters/k-1/scale", method: "POST", body: { pool: "workers", count: -1 } },
  ],
  "POST /clusters/{id}/rollback": [
    { path: "/clusters/k-1/rollback", method: "POST", body: { toVersion: 1 } },
  ],
  "POST /clusters/{id}/retry": [{ path: "/clusters/k-1/retry", method: "POST", body: {} }],
  "POST /clusters/{id}/upgrade": [
    { path: "/clusters/k-1/upgrade", method: "POST", body: { k3sVersion: "v1.32.0+k3s1" } },
    { path: "/clusters/k-1/upgrade", method: "POST", body: { k3sVersion: "latest" } },
  ],
  "PATCH /clusters/{id}/pools/{pool}": [
    { path: "/clusters/k-1/pools/workers", method: "PATCH", body: { labels: { tier: "web" } } },
  ],
  ...Object.fromEntries(
    (
      [
        ["cordon", {}],
        ["uncordon", { force: true }],
        ["drain", { timeoutSeconds: 60, forceUnmanaged: true }],
        ["label", { labels: { tier: "web" } }],
        ["unlabel", { keys: ["tier"] }],
        ["taint", { taints: [{ key: "gpu", effect: "NoSchedule" }] }],
        ["untaint", { taints: [{ key: "gpu", effect: "NoSchedule" }] }],
      ] as const
    ).map(([verb, extra]) => [
      `POST /clusters/{id}/nodes/{node}/${verb}`,
      [
        {
          path: `/clusters/k-1/nodes/i-0abc/${verb}`,
          method: "POST",
          body: { reason: "maintenance", ...extra },
        },
        { path: `/clusters/k-1/nodes/i-0abc/${verb}`, method: "POST", body: {} },
      ],
    ]),
  ),
};

describe("API contract: the OpenAPI document is what the API answers", () => {
  it("every documented route has requests here, and nothing here is undocumented", () => {
    const documented = Object.entries(doc.paths).flatMap(([path, ops]) =>
      Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`),
    );
    expect(documented.sort()).toEqual(Object.keys(requests).sort());
  });

  it("every route answers with a declared status and a body matching its declared schema", async () => {
    const ajv = new Ajv({ strict: false, allErrors: true });
    ajv.addSchema(doc, "openapi");
    const pointer = (...parts: string[]) =>
      `openapi#/${parts.map((p) => p.replaceAll("~", "~0").replaceAll("/", "~1")).join("/")}`;
    const checked: string[] = [];

    for (const [route, reqs] of Object.entries(requests)) {
      const [method, path] = route.split(" ") as [string, string];
      for (const r of reqs) {
        const ctl = new AbortController();
        const res = await fetch(`${base}${r.path}`, {
          method: r.method ?? "GET",
          signal: ctl.signal,
          headers: {
            authorization: `Bearer ${r.token ?? admin.token}`,
            ...(r.body !== undefined ? { "content-type": "application/json" } : {}),
          },
          ...(r.body !== undefined ? { body: JSON.stringify(r.body) } : {}),
        });
        const status = String(res.status);
        const declared = doc.paths[path]?.[method.toLowerCase()]?.responses[status];
        expect(declared, `${route} (${r.path}) answered ${status}, which it does not declare`).toBeDefined();
        const [type, media] = Object.entries(declared?.content ?? {})[0] ?? [];
        const contentType = res.headers.get("content-type") ?? "";
        expect(
          contentType.startsWith(type ?? "?"),
          `${route} answered ${contentType}, declares ${type}`,
        ).toBe(true);
        if (type === "text/plain") {
          // Prometheus text: the projector's own metrics and Node's, in the exposition format.
          const text = await res.text();
          expect(text).toMatch(/^# HELP /m);
          expect(text).toContain("cairn_projector_");
          expect(text).toContain("process_cpu_seconds_total");
        } else if (type === "text/event-stream") {
          const reader = res.body!.getReader();
          const first = new TextDecoder().decode((await reader.read()).value);
          expect(first).toMatch(/^: connected\n/);
          ctl.abort();
        } else {
          const body = await res.json();
          const validate = ajv.getSchema(
            pointer("paths", path, method.toLowerCase(), "responses", status, "content", type!, "schema"),
          );
          expect(media?.schema).toBeDefined();
          // The declared schema has substance: an empty object never passes.
          expect(validate!({}), `${route} ${status} declares a schema that accepts {}`).toBe(false);
          const ok = validate!(body);
          expect(ok, `${route} ${status} ${JSON.stringify(body)}: ${ajv.errorsText(validate!.errors)}`).toBe(
            true,
          );
        }
        checked.push(`${route} ${status}`);
      }
    }
    // Success and failure answers alike were checked.
    expect(checked).toEqual(
      expect.arrayContaining([
        "GET /clusters/{id} 200",
        "GET /clusters/{id} 404",
        "GET /clusters/{id} 401",
        "POST /commands 202",
        "POST /commands 400",
        "POST /commands 403",
        "GET /events/stream 200",
        "GET /installs 200",
        "GET /installs 400",
        "GET /installs 401",
        "GET /installs/{clusterId} 200",
        "GET /installs/{clusterId} 404",
        "GET /nodes 200",
        "GET /nodes 400",
        "GET /clusters/{id}/nodes 200",
        "GET /nodeops 200",
        "GET /nodeops/{id} 200",
        "GET /nodeops/{id} 404",
        "GET /step-durations 200",
        "GET /whoami 200",
        "GET /whoami 401",
        "GET /sessions 200",
        "GET /sessions 400",
        "GET /sessions/{id} 200",
        "GET /sessions/{id} 404",
        "POST /sessions 202",
        "POST /sessions 400",
        "POST /sessions 403",
        "POST /sessions/{id}/heartbeat 409",
        "POST /sessions/{id}/heartbeat 404",
        "POST /sessions/{id}/heartbeat 400",
        "POST /sessions/{id}/heartbeat 503",
        "POST /sessions/{id}/connect 202",
        "POST /sessions/{id}/connect 404",
        "GET /clusters/{id}/dependencies 200",
        "GET /clusters/{id}/dependencies 404",
        "GET /metrics 200",
        "GET /metrics 401",
      ]),
    );
  });
});
