/** Timelines from the event index: a cluster's history, and a trace across aggregates. */
import type { FastifyInstance } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { z } from "zod";
import { decodeCursor, encodeCursor } from "./cursor.ts";
import { aggregateHistory, type IndexedEvent, traceEvents } from "./queries.ts";
import { clusterHistory, errorBody, historyQuery, idParams, traceParams, traceView } from "./schemas.ts";
import { type ApiDeps, jaegerLink } from "./server.ts";

export function toHistoryEvent(e: IndexedEvent, jaegerUiUrl?: string) {
  const jaegerUrl = jaegerLink(jaegerUiUrl, e.trace_id);
  return {
    sequence: e.sequence,
    version: e.position,
    time: e.time.toISOString(),
    type: e.type,
    eventId: e.event_id,
    aggregate: { type: e.aggregate_type, id: e.aggregate_id },
    commandId: e.command_id,
    causationId: e.causation_id,
    correlationId: e.correlation_id,
    actor: e.actor,
    traceId: e.trace_id,
    ...(jaegerUrl ? { jaegerUrl } : {}),
    links: {
      ...(e.trace_id ? { trace: `/traces/${e.trace_id}` } : {}),
      ...(e.command_id ? { command: `/commands/${encodeURIComponent(e.command_id)}` } : {}),
    },
  };
}

const historyCursor = z.object({ p: z.number().int() });
const traceCursor = z.object({ s: z.number().int(), p: z.number().int() });

export function historyRoutes(app: FastifyInstance, deps: ApiDeps): void {
  const r = app.withTypeProvider<ZodTypeProvider>();
  r.get(
    "/clusters/:id/history",
    {
      config: { access: "viewer" },
      schema: {
        summary: "Every event of a cluster in version order: time, type, cause, actor and trace",
        tags: ["clusters"],
        params: idParams,
        querystring: historyQuery,
        response: { 200: clusterHistory, 400: errorBody, 404: errorBody },
      },
    },
    async (req, reply) => {
      const { limit, cursor } = req.query;
      const after = cursor !== undefined ? decodeCursor(cursor, historyCursor).p : undefined;
      const rows = await aggregateHistory(deps.db, deps.schema, {
        type: "cluster",
        id: req.params.id,
        limit,
        ...(after !== undefined ? { afterPosition: after } : {}),
      });
      if (rows.length === 0 && after === undefined) {
        return reply.code(404).send({
          error: "Not Found",
          message: `no events of cluster ${JSON.stringify(req.params.id)} (not created, or not projected yet)`,
        });
      }
      const items = rows.slice(0, limit);
      const last = items.at(-1);
      return {
        clusterId: req.params.id,
        items: items.map((e) => toHistoryEvent(e, deps.jaegerUiUrl)),
        ...(rows.length > limit && last ? { nextCursor: encodeCursor({ p: last.position }) } : {}),
      };
    },
  );
  r.get(
    "/traces/:traceId",
    {
      config: { access: "viewer" },
      schema: {
        summary: "Every event of one trace, across aggregates, in log order",
        tags: ["traces"],
        params: traceParams,
        querystring: historyQuery,
        response: { 200: traceView, 400: errorBody, 404: errorBody },
      },
    },
    async (req, reply) => {
      const { traceId } = req.params;
      const { limit, cursor } = req.query;
      const c = cursor !== undefined ? decodeCursor(cursor, traceCursor) : undefined;
      const rows = await traceEvents(deps.db, deps.schema, {
        traceId,
        limit,
        ...(c ? { after: { sequence: c.s, position: c.p } } : {}),
      });
      if (rows.length === 0 && c === undefined) {
        return reply.code(404).send({
          error: "Not Found",
          message: `no events in trace ${traceId} (unknown, or not projected yet)`,
        });
      }
      const items = rows.slice(0, limit);
      const last = items.at(-1);
      const jaegerUrl = jaegerLink(deps.jaegerUiUrl, traceId);
      return {
        traceId,
        ...(jaegerUrl ? { jaegerUrl } : {}),
        items: items.map((e) => toHistoryEvent(e, deps.jaegerUiUrl)),
        ...(rows.length > limit && last
          ? { nextCursor: encodeCursor({ s: last.sequence, p: last.position }) }
          : {}),
      };
    },
  );
}
