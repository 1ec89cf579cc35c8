/**
 * Health and metrics endpoints every Cairn process serves:
 *  - `GET /healthz`: 200 `{"status":"ok"}` while the process runs (liveness; checks nothing else);
 *  - `GET /readyz`: 200 or 503 `{"status":"ready"|"not_ready","checks":{…}}` from the service's
 *    readiness function (time-boxed; a throw or a timeout counts as not ready);
 *  - `GET /metrics`: the Prometheus registry in text format.
 */
import type { AddressInfo, Socket } from "node:net";
import { type FastifyInstance, fastify } from "fastify";
import type { Registry } from "prom-client";
import { registry as processRegistry } from "./metrics.ts";

export interface Readiness {
  ready: boolean;
  /** One entry per dependency, e.g. `{ nats: "ok", postgres: "connecting" }`. */
  checks: Record<string, string>;
}

export type ReadinessFn = () => Promise<Readiness>;

export interface HealthRoutesOptions {
  readiness: ReadinessFn;
  /** Defaults to the process registry from metrics.ts. */
  registry?: Registry;
  /** A readiness answer slower than this is "not ready". Default 2 000 ms. */
  readinessTimeoutMs?: number;
}

export interface HealthServerOptions extends HealthRoutesOptions {
  /** 0 picks a free port (tests). */
  port: number;
  host?: string;
  /** How long a close lets requests in flight finish before it ends their connections; default `HTTP_DRAIN_MS`. */
  drainMs?: number;
}

export interface HealthServer {
  /** The port actually bound (useful with port 0). */
  readonly port: number;
  /** `http://<host>:<port>` */
  readonly url: string;
  /** Stops listening; idempotent. */
  close(): Promise<void>;
}

/** Runs `readiness` with a deadline; never rejects. */
async function checkReadiness(readiness: ReadinessFn, timeoutMs: number): Promise<Readiness> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<Readiness>((resolve) => {
    timer = setTimeout(
      () => resolve({ ready: false, checks: { readiness: `no answer within ${timeoutMs} ms` } }),
      timeoutMs,
    );
  });
  try {
    return await Promise.race([
      readiness().catch(
        (err: unknown): Readiness => ({
          ready: false,
          checks: { readiness: `failed: ${err instanceof Error ? err.message : String(err)}` },
        }),
      ),
      timeout,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Mounts `/healthz`, `/readyz` and `/metrics` on an existing fastify app (the projector's API
 * serves them next to its own routes). Call before `app.listen()`.
 * @example registerHealthRoutes(app, { readiness: async () => ({ ready: true, checks: { postgres: "ok" } }) });
 */
export function registerHealthRoutes(app: FastifyInstance, opts: HealthRoutesOptions): void {
  const registry = opts.registry ?? processRegistry;
  const timeoutMs = opts.readinessTimeoutMs ?? 2_000;

  app.get("/healthz", async () => ({ status: "ok" }));

  app.get("/readyz", async (_req, reply) => {
    const { ready, checks } = await checkReadiness(opts.readiness, timeoutMs);
    return reply.code(ready ? 200 : 503).send({ status: ready ? "ready" : "not_ready", checks });
  });

  app.get("/metrics", async (_req, reply) => {
    const body = await registry.metrics();
    return reply.header("content-type", registry.contentType).send(body);
  });
}

/**
 * Starts a small HTTP server with only the health routes (services without their own API).
 * Rejects if the port cannot be bound.
 * @example
 * const health = await startHealthServer({ port: 9464, readiness: async () => ({ ready: nc.isClosed() === false, checks: {} }) });
 * shutdown.onShutdown("health", () => health.close());
 */
export async function startHealthServer(opts: HealthServerOptions): Promise<HealthServer> {
  const host = opts.host ?? "127.0.0.1";
  const app = fastify({ logger: false });
  registerHealthRoutes(app, opts);
  const close = drainingClose(app, { drainMs: opts.drainMs });
  await app.listen({ port: opts.port, host });
  const port = (app.server.address() as AddressInfo).port;
  return { port, url: `http://${host.includes(":") ? `[${host}]` : host}:${port}`, close };
}

/** How long a closing HTTP server lets the requests in flight finish before it ends their connections. */
export const HTTP_DRAIN_MS = 5_000;

/**
 * A close for `app` that cannot hang on a connection: no new connections, the requests in
 * flight finish, every keep-alive connection is ended as soon as it is idle, and whatever is
 * still open after `drainMs` is ended. Call it before `app.listen()` (it counts connections
 * from then on). Idempotent.
 *
 * Why: `server.close()` ends only the keep-alive connections idle at that moment, and waits
 * for every other one. A connection that goes idle later stays until its keep-alive timeout
 * (fastify's 72 s), and one whose request never completes (a client gone quiet mid-headers;
 * a socket Node counts as mid-request) stays for ever, since the close also stops Node's
 * timeout checks. A replay suite's projector stop hung past its 60 s hook on 19 of them.
 * @example
 * const close = drainingClose(app, { onForced: (n) => log.warn({ n }, "connections ended") });
 * await app.listen({ port: 0 });
 * await close();
 */
export function drainingClose(
  app: FastifyInstance,
  opts: { drainMs?: number | undefined; onForced?: (connections: number) => void } = {},
): () => Promise<void> {
  const drainMs = opts.drainMs ?? HTTP_DRAIN_MS;
  // Our own count: a socket Node's connection list no longer knows is still ended here.
  const sockets = new Set<Socket>();
  app.server.on("connection", (socket: Socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
  });
  let closing: Promise<void> | undefined;
  return () => {
    closing ??= (async () => {
      const reap = setInterval(() => app.server.closeIdleConnections(), 100);
      const deadline = setTimeout(() => {
        if (sockets.size === 0) return;
        opts.onForced?.(sockets.size);
        for (const socket of sockets) socket.destroy();
      }, drainMs);
      try {
        await app.close();
      } finally {
        clearInterval(reap);
        clearTimeout(deadline);
      }
    })();
    return closing;
  };
}
