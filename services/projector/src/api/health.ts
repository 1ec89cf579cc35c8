import type { FastifyInstance } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { sql } from "kysely";
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
}
