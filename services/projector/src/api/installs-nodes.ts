/**
 * Routes of the installs, nodes, node operations and step durations read models. Each
 * list is in id order with an opaque cursor, like `GET /clusters`.
 */
import type { FastifyInstance } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { z } from "zod";
import { type InstallRow, installProgress } from "../projections/installs.ts";
import type { NodeOpRow } from "../projections/nodeops.ts";
import { type NodeRow, sealGone } from "../projections/nodes.ts";
import type { StepDurationRow } from "../projections/step-durations.ts";
import { getClusters } from "../repository/clusters.ts";
import {
  type DocTable,
  getAllDocs,
  getDocs,
  installsTable,
  listDocs,
  nodeopsTable,
  nodesTable,
  stepDurationsTable,
} from "../repository/doc-tables.ts";
import { decodeCursor, encodeCursor } from "./cursor.ts";
import {
  clusterIdParams,
  errorBody,
  idParams,
  installList,
  installListQuery,
  installView,
  nodeList,
  nodeListQuery,
  nodeOpList,
  nodeOpListQuery,
  nodeOpView,
  pageQuery,
  stepDurationList,
} from "./schemas.ts";
import { type ApiDeps, jaegerLink } from "./server.ts";

/** An install as the API shows it; `steps` only when asked (the one-install route). */
export function toInstallView(row: InstallRow, jaegerUiUrl?: string, withSteps = true) {
  const jaegerUrl = jaegerLink(jaegerUiUrl, row.traceId);
  return {
    clusterId: row.clusterId,
    state: row.state,
    k3sVersion: row.k3sVersion,
    servers: row.servers,
    progress: installProgress(row),
    nodes: Object.values(row.nodes).sort((a, b) => a.slot - b.slot),
    ...(withSteps ? { steps: [...row.steps] } : {}),
    failing: [...row.failing],
    upgrade: row.upgrade,
    failure: row.failure,
    version: row.version,
    traceId: row.traceId,
    ...(jaegerUrl ? { jaegerUrl } : {}),
    createdAt: row.createdAt,
    updatedAt: row.updatedAt,
  };
}

export function toNodeView(row: NodeRow) {
  const { times: _t, lastEventType: _e, lastSequence: _s, ...view } = row;
  return {
    ...view,
    // Rows projected before nodes could be gone have no `gone`: not gone.
    gone: row.gone ?? null,
    kube: { ...row.kube, pressure: [...row.kube.pressure], taints: [...row.kube.taints] },
  };
}

export function toNodeOpView(row: NodeOpRow) {
  const { lastEventType: _e, lastSequence, ...view } = row;
  return {
    ...view,
    sequence: lastSequence,
    drain: row.drain ? { ...row.drain, blockedBy: [...row.drain.blockedBy] } : null,
    blocking: [...row.blocking],
    waiting: row.waiting ? { ...row.waiting, waitingFor: [...row.waiting.waitingFor] } : null,
  };
}

/**
 * The rows as the API shows them: a Deleted cluster's nodes are all gone, also those its
 * deletion event could not name (a row first made by a late fact, an instance EC2 no
 * longer listed) — the fold seals only the nodes the event names.
 */
async function nodeViews(deps: ApiDeps, rows: readonly NodeRow[]) {
  const open = [...new Set(rows.filter((r) => !r.gone).map((r) => r.clusterId))];
  const clusters = open.length > 0 ? await getClusters(deps.db, deps.schema, open) : new Map();
  return rows.map((row) => {
    const cluster = row.gone ? undefined : clusters.get(row.clusterId);
    return toNodeView(
      cluster?.state === "Deleted"
        ? sealGone(row, { at: cluster.updatedAt, reason: "the cluster was deleted" })
        : row,
    );
  });
}

const listCursor = z.object({ id: z.string() });

async function page<R>(
  deps: ApiDeps,
  table: DocTable<R>,
  q: { where: Record<string, string | undefined>; limit: number; cursor?: string | undefined },
) {
  const result = await listDocs(deps.db, deps.schema, table, {
    where: q.where,
    limit: q.limit,
    cursor: q.cursor === undefined ? undefined : decodeCursor(q.cursor, listCursor).id,
  });
  const nextCursor = result.nextCursor === undefined ? undefined : encodeCursor({ id: result.nextCursor });
  return { items: result.items, ...(nextCursor !== undefined ? { nextCursor } : {}) };
}

export function installAndNodeRoutes(app: FastifyInstance, deps: ApiDeps): void {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const notFound = (what: string) => ({
    error: "Not Found",
    message: `${what} (not there, or not projected yet)`,
  });

  r.get(
    "/installs",
    {
      config: { access: "viewer" },
      schema: {
        summary: "List installs (one per cluster) in cluster id order, optionally in one state",
        description: "Items carry no `steps`; GET /installs/:clusterId has them.",
        tags: ["installs"],
        querystring: installListQuery,
        response: { 200: installList, 400: errorBody },
      },
    },
    async (req) => {
      const { state, limit, cursor } = req.query;
      const p = await page(deps, installsTable, { where: { state }, limit, cursor });
      return { ...p, items: p.items.map((row) => toInstallView(row, deps.jaegerUiUrl, false)) };
    },
  );
  r.get(
    "/installs/:clusterId",
    {
      config: { access: "viewer" },
      schema: {
        summary: "The K3s install of one cluster: state, nodes with their current step, every step sent",
        tags: ["installs"],
        params: clusterIdParams,
        response: { 200: installView, 404: errorBody },
      },
    },
    async (req, reply) => {
      const { clusterId } = req.params;
      const row = (await getDocs(deps.db, deps.schema, installsTable, [clusterId])).get(clusterId);
      if (!row) return reply.code(404).send(notFound(`no install of cluster ${JSON.stringify(clusterId)}`));
      return toInstallView(row, deps.jaegerUiUrl);
    },
  );

  r.get(
    "/nodes",
    {
      config: { access: "viewer" },
      schema: {
        summary: "List nodes in id order, optionally of one cluster, pool or K3s state",
        tags: ["nodes"],
        querystring: nodeListQuery,
        response: { 200: nodeList, 400: errorBody },
      },
    },
    async (req) => {
      const { clusterId, pool, state, limit, cursor } = req.query;
      const p = await page(deps, nodesTable, {
        where: { cluster_id: clusterId, pool, k3s_state: state },
        limit,
        cursor,
      });
      // A Deleted cluster's unnamed nodes are sealed here, not in the k3s_state column.
      const items = (await nodeViews(deps, p.items)).filter((n) => state === undefined || n.k3s === state);
      return { ...p, items };
    },
  );
  r.get(
    "/clusters/:id/nodes",
    {
      config: { access: "viewer" },
      schema: {
        summary: "The nodes of one cluster, in id order",
        tags: ["nodes"],
        params: idParams,
        querystring: pageQuery,
        response: { 200: nodeList, 400: errorBody },
      },
    },
    async (req) => {
      const { limit, cursor } = req.query;
      const p = await page(deps, nodesTable, { where: { cluster_id: req.params.id }, limit, cursor });
      return { ...p, items: await nodeViews(deps, p.items) };
    },
  );

  r.get(
    "/nodeops",
    {
      config: { access: "viewer" },
      schema: {
        summary: "List node operations (one row per node) in id order, optionally of one cluster or state",
        tags: ["nodes"],
        querystring: nodeOpListQuery,
        response: { 200: nodeOpList, 400: errorBody },
      },
    },
    async (req) => {
      const { clusterId, state, limit, cursor } = req.query;
      const p = await page(deps, nodeopsTable, { where: { cluster_id: clusterId, state }, limit, cursor });
      return { ...p, items: p.items.map(toNodeOpView) };
    },
  );
  r.get(
    "/nodeops/:id",
    {
      config: { access: "viewer" },
      schema: {
        summary: "The operations of one node, by its node-ops aggregate id (`<clusterId>=<node>`)",
        tags: ["nodes"],
        params: idParams,
        response: { 200: nodeOpView, 404: errorBody },
      },
    },
    async (req, reply) => {
      const { id } = req.params;
      const row = (await getDocs(deps.db, deps.schema, nodeopsTable, [id])).get(id);
      if (!row) return reply.code(404).send(notFound(`no operations on node ${JSON.stringify(id)}`));
      return toNodeOpView(row);
    },
  );

  r.get(
    "/step-durations",
    {
      config: { access: "viewer" },
      schema: {
        summary: "How long each kind of step took, learnt from the log: what cluster ETAs are made of",
        tags: ["clusters"],
        response: { 200: stepDurationList },
      },
    },
    async () => {
      const rows = await getAllDocs<StepDurationRow>(deps.db, deps.schema, stepDurationsTable);
      return {
        items: rows.map(({ kind, samples, meanMs, lastMs, updatedAt }) => ({
          kind,
          samples,
          meanMs,
          lastMs,
          updatedAt,
        })),
      };
    },
  );
}
