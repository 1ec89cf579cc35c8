import type { FastifyInstance } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { type ClusterRow, progressView } from "../projections/clusters.ts";
import { getCluster, listClusters } from "../repository/clusters.ts";
import { clusterList, clusterListQuery, clusterView, errorBody, idParams } from "./schemas.ts";
import type { ApiDeps } from "./server.ts";

export function toClusterView(row: ClusterRow, jaegerUiUrl?: string) {
  const jaegerUrl =
    jaegerUiUrl && row.traceId ? `${jaegerUiUrl.replace(/\/+$/, "")}/trace/${row.traceId}` : undefined;
  return {
    id: row.id,
    name: row.name,
    region: row.region,
    state: row.state,
    spec: row.spec as unknown as Record<string, unknown>,
    version: row.version,
    progress: progressView(row.progress),
    traceId: row.traceId,
    ...(jaegerUrl ? { jaegerUrl } : {}),
    createdAt: row.createdAt,
    updatedAt: row.updatedAt,
  };
}

export function clusterRoutes(app: FastifyInstance, deps: ApiDeps): void {
  const r = app.withTypeProvider<ZodTypeProvider>();
  r.get(
    "/clusters",
    {
      schema: {
        summary: "List clusters in id order, optionally in one state (cursor pagination)",
        tags: ["clusters"],
        querystring: clusterListQuery,
        response: { 200: clusterList, 400: errorBody },
      },
    },
    async (req) => {
      const { state, limit, cursor } = req.query;
      const page = await listClusters(deps.db, deps.schema, {
        limit,
        ...(state !== undefined ? { state } : {}),
        ...(cursor !== undefined ? { cursor } : {}),
      });
      return {
        items: page.items.map((row) => toClusterView(row, deps.jaegerUiUrl)),
        ...(page.nextCursor !== undefined ? { nextCursor: page.nextCursor } : {}),
      };
    },
  );
  r.get(
    "/clusters/:id",
    {
      schema: {
        summary: "One cluster as the projection last saw it",
        tags: ["clusters"],
        params: idParams,
        response: { 200: clusterView, 404: errorBody },
      },
    },
    async (req, reply) => {
      const row = await getCluster(deps.db, deps.schema, req.params.id);
      if (!row) {
        return reply.code(404).send({
          error: "Not Found",
          message: `no cluster ${JSON.stringify(req.params.id)} (not created, or not projected yet)`,
        });
      }
      return toClusterView(row, deps.jaegerUiUrl);
    },
  );
}
