import { fastify } from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type HealthServer, type Readiness, registerHealthRoutes, startHealthServer } from "./http.ts";
import { counter, registry } from "./metrics.ts";

let health: HealthServer;
let readiness: () => Promise<Readiness> = async () => ({ ready: true, checks: { nats: "ok" } });

beforeAll(async () => {
  health = await startHealthServer({
    port: 0,
    readiness: () => readiness(),
    registry,
    readinessTimeoutMs: 200,
  });
});
afterAll(async () => {
  await health?.close();
});

describe("health server", () => {
  it("binds a free port with port 0", () => {
    expect(health.port).toBeGreaterThan(0);
    expect(health.url).toBe(`http://127.0.0.1:${health.port}`);
  });

  it("answers /healthz", async () => {
    const res = await fetch(`${health.url}/healthz`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: "ok" });
  });

  it("answers /readyz with 200 or 503 and the checks", async () => {
    readiness = async () => ({ ready: true, checks: { nats: "ok" } });
    let res = await fetch(`${health.url}/readyz`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: "ready", checks: { nats: "ok" } });

    readiness = async () => ({ ready: false, checks: { nats: "disconnected" } });
    res = await fetch(`${health.url}/readyz`);
    expect(res.status).toBe(503);
    expect(await res.json()).toEqual({ status: "not_ready", checks: { nats: "disconnected" } });
  });

  it("treats a throwing or hanging readiness check as not ready", async () => {
    readiness = async () => {
      throw new Error("postgres down");
    };
    let res = await fetch(`${health.url}/readyz`);
    expect(res.status).toBe(503);
    expect(await res.json()).toEqual({ status: "not_ready", checks: { readiness: "failed: postgres down" } });

    readiness = () => new Promise(() => {});
    res = await fetch(`${health.url}/readyz`);
    expect(res.status).toBe(503);
    expect(((await res.json()) as { checks: Record<string, string> }).checks.readiness).toMatch(/no answer/);
  });

  it("serves /metrics in Prometheus text format, with a counter we incremented", async () => {
    const c = counter("cairn_test_http_hits_total", "Hits in the health server test", ["route"]);
    c.inc({ route: "x" }, 3);
    const res = await fetch(`${health.url}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toContain("text/plain");
    const text = await res.text();
    expect(text).toContain("# TYPE cairn_test_http_hits_total counter");
    expect(text).toContain('cairn_test_http_hits_total{route="x"} 3');
    expect(text).toContain("nodejs_heap_size_used_bytes");
  });

  it("close() is idempotent", async () => {
    const other = await startHealthServer({ port: 0, readiness: async () => ({ ready: true, checks: {} }) });
    await Promise.all([other.close(), other.close()]);
    await expect(fetch(`${other.url}/healthz`)).rejects.toThrow();
  });
});

describe("registerHealthRoutes", () => {
  it("mounts the same routes on an existing fastify app", async () => {
    const app = fastify();
    app.get("/api/ping", async () => "pong");
    registerHealthRoutes(app, {
      readiness: async () => ({ ready: false, checks: { postgres: "migrating" } }),
    });
    try {
      expect((await app.inject({ url: "/healthz" })).json()).toEqual({ status: "ok" });
      const ready = await app.inject({ url: "/readyz" });
      expect(ready.statusCode).toBe(503);
      expect(ready.json()).toEqual({ status: "not_ready", checks: { postgres: "migrating" } });
      expect((await app.inject({ url: "/metrics" })).body).toContain("process_cpu_user_seconds_total");
      expect((await app.inject({ url: "/api/ping" })).body).toBe("pong");
    } finally {
      await app.close();
    }
  });
});

describe("closing with connections open", () => {
  const closedWithin = async (closing: Promise<void>, ms: number) =>
    Promise.race([
      closing.then(() => "closed"),
      new Promise<string>((r) => setTimeout(() => r(`still open after ${ms} ms`), ms)),
    ]);

  it("answers a request in flight, then ends its keep-alive connection rather than waiting out the keep-alive timeout", async () => {
    let started!: () => void;
    const inHandler = new Promise<void>((r) => (started = r));
    let answer!: (r: Readiness) => void;
    const server = await startHealthServer({
      port: 0,
      readiness: () => {
        started();
        return new Promise<Readiness>((r) => (answer = r));
      },
      readinessTimeoutMs: 5_000,
      drainMs: 20_000,
    });
    const res = fetch(`${server.url}/readyz`);
    await inHandler;
    const closing = server.close();
    answer({ ready: true, checks: {} });
    expect((await res).status).toBe(200);
    // Well before the drain deadline: the connection is ended as soon as it is idle.
    expect(await closedWithin(closing, 3_000)).toBe("closed");
  });

  it("ends a connection whose request never completes once the drain is over", async () => {
    const server = await startHealthServer({
      port: 0,
      readiness: async () => ({ ready: true, checks: {} }),
      drainMs: 300,
    });
    const { createConnection } = await import("node:net");
    const socket = createConnection({ port: server.port, host: "127.0.0.1" });
    await new Promise<void>((r) => socket.once("connect", () => r()));
    // Headers begun, never ended: the server counts the connection active.
    socket.write("GET /healthz HTTP/1.1\r\nHost: x\r\n");
    const ended = new Promise<void>((r) => socket.once("close", () => r()));
    await new Promise((r) => setTimeout(r, 50));
    const t0 = Date.now();
    expect(await closedWithin(server.close(), 5_000)).toBe("closed");
    expect(Date.now() - t0).toBeGreaterThanOrEqual(250);
    await ended;
  });
});
