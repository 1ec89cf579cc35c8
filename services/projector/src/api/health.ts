import { registry } from "@cairn/service";
import type { FastifyInstance } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { sql } from "kysely";
import { z } from "zod";
import { health, readiness } from "./schemas.ts";
import type { ApiDeps } from "./server.ts";

export function healthRoutes(app: FastifyInstance, deps: ApiDeps): void {
  const r = app.withTypeProvider<ZodTypeProvider>();
  r.get(
    "/healthz",
    {
      config: { access: "public" },
      schema: { summary: "Liveness: the process answers", tags: ["health"], response: { 200: health } },
    },
    async () => ({ status: "ok" }),
  );
  r.get(
    "/readyz",
    {
      config: { access: "public" },
      schema: {
        summary: "Readiness: Postgres answers, and the projection consumer runs (or another replica runs it)",
        tags: ["health"],
        response: { 200: readiness, 503: readiness },
      },
    },
    async (_req, reply) => {
      let postgres = "ok";
      try {
        await sql`select 1`.execute(deps.db);
      } catch (err) {
        postgres = `unreachable: ${err instanceof Error ? err.message : String(err)}`;
      }
      const c = deps.consumerStatus();
      const consumer = c.running
        ? c.lastError
          ? `running; last batch failed: ${c.lastError}`
          : "running"
        : c.standby
          ? "standby: another replica projects"
          : "stopped";
      const ready = postgres === "ok" && (c.running || c.standby === true);
      return reply.code(ready ? 200 : 503).send({
        status: ready ? "ready" : "not ready",
        checks: { postgres, consumer },
        ...(c.checkpoint !== undefined ? { checkpoint: c.checkpoint } : {}),
      });
    },
  );
  r.get(
    "/metrics",
    {
      config: { access: "viewer" },
      schema: {
        summary: "Prometheus metrics of this process (the projector: projection, API, NATS, Node)",
        description:
          "The Prometheus text exposition format. The same registry is served on the process's health port (`CAIRN_HEALTH_PORT`); every other service has its own there (`npm start` prints where). Needs a viewer token when the API has tokens.",
        tags: ["health"],
        response: {
          200: { content: { "text/plain": { schema: z.string().describe("Prometheus text format 0.0.4") } } },
        },
      },
    },
    async (_req, reply) => {
      const body = await registry.metrics();
      // A text body with its own content type: sent as it is, not serialised as JSON.
      return reply.header("content-type", registry.contentType).send(body);
    },
  );
}
