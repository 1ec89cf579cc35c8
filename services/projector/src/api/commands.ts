import { isSchemaError } from "@cairn/events";
import type { FastifyInstance } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { getCommand } from "../repository/commands.ts";
import {
  commandAccepted,
  commandRequest,
  commandUnknown,
  commandView,
  errorBody,
  idParams,
} from "./schemas.ts";
import type { ApiDeps } from "./server.ts";

export function commandRoutes(app: FastifyInstance, deps: ApiDeps): void {
  const r = app.withTypeProvider<ZodTypeProvider>();
  r.post(
    "/commands",
    {
      schema: {
        summary: "Send a command: validated against the catalogue, then published on the command stream",
        description:
          "202 means the command is on the bus, not that it was accepted: follow `links.command` for its outcome.",
        tags: ["commands"],
        body: commandRequest,
        response: { 202: commandAccepted, 400: errorBody },
      },
    },
    async (req, reply) => {
      const { id, type, data, meta } = req.body;
      let sent: Awaited<ReturnType<typeof deps.bus.send>>;
      try {
        sent = await deps.bus.send({
          ...(id !== undefined ? { id } : {}),
          type,
          data,
          meta: { actor: meta?.actor ?? "anonymous" },
        });
      } catch (err) {
        if (isSchemaError(err)) {
          return reply.code(400).send({
            error: "Bad Request",
            message: err.message,
            issues: err.issues.length > 0 ? [...err.issues] : [err.message],
          });
        }
        throw err;
      }
      return reply.code(202).send({
        commandId: sent.commandId,
        ...(sent.traceId !== undefined ? { traceId: sent.traceId } : {}),
        links: { command: `/commands/${encodeURIComponent(sent.commandId)}` },
      });
    },
  );
  r.get(
    "/commands/:id",
    {
      schema: {
        summary: "What became of a command, once its events are projected",
        tags: ["commands"],
        params: idParams,
        response: { 200: commandView, 404: commandUnknown },
      },
    },
    async (req, reply) => {
      const row = await getCommand(deps.db, deps.schema, req.params.id);
      if (!row) return reply.code(404).send({ commandId: req.params.id, status: "unknown" as const });
      return {
        commandId: row.commandId,
        type: row.commandType,
        status: row.status,
        ...(row.code !== null ? { code: row.code } : {}),
        ...(row.reason !== null ? { reason: row.reason } : {}),
        aggregate: { type: row.aggregateType, id: row.aggregateId },
        traceId: row.traceId,
      };
    },
  );
}
