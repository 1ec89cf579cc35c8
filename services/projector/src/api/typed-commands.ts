/**
 * Typed command routes: the same commands as `POST /commands`, addressed the REST way
 * (`POST /clusters`, `POST /clusters/:id/scale`, `DELETE /clusters/:id`, node operations
 * under `/clusters/:id/nodes/:node/…`). The path names the target, the body is the rest
 * of the command's data, checked against the same catalogue schema; the answer is the
 * same 202 with the command id and the link to follow it. `DELETE /clusters/:id` waits
 * briefly for the provisioner's answer, since a cluster with live sessions is refused
 * (409) unless `?force=true`.
 */
import {
  CordonNode,
  CreateCluster,
  DeleteCluster,
  DrainNode,
  LabelNode,
  RetryCluster,
  RollbackCluster,
  ScaleCluster,
  TaintNode,
  UncordonNode,
  UnlabelNode,
  UntaintNode,
  UpdatePool,
  UpgradeInstall,
} from "@cairn/events";
import type { FastifyInstance } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { z } from "zod";
import { getCluster } from "../repository/clusters.ts";
import { answerSent, awaitCommandOutcome, publish, sendFor } from "./commands.ts";
import { busUnavailable, commandAccepted, commandRefusal, errorBody } from "./schemas.ts";
import type { ApiDeps } from "./server.ts";

/** How long `DELETE /clusters/:id` waits for the provisioner's answer by default. */
export const DEFAULT_DELETE_WAIT_MS = 5_000;

export interface ClusterApiOptions {
  /** How long `DELETE /clusters/:id` waits for the delete to be accepted or refused before answering 202. */
  readonly deleteWaitMs?: number | undefined;
}

const clusterParams = z.object({ id: z.string().min(1).max(128) });
const nodeParams = clusterParams.extend({ node: z.string().min(1).max(253) });
const poolParams = clusterParams.extend({ pool: z.string().min(1).max(128) });
const responses = { 202: commandAccepted, 400: errorBody, 403: errorBody, 503: busUnavailable };
/** The body: the command's data but what the path says. Loose: the catalogue checks it (400 with issues). */
const bodyOf = (schema: z.ZodType, without: readonly string[]) => {
  const shape = (schema as unknown as { shape?: Record<string, z.ZodType> }).shape;
  if (!shape) return z.record(z.string(), z.unknown());
  return z.object(Object.fromEntries(Object.entries(shape).filter(([k]) => !without.includes(k)))).loose();
};

export function typedCommandRoutes(app: FastifyInstance, deps: ApiDeps): void {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const tags = ["commands"];

  r.post(
    "/clusters",
    {
      config: { access: "operator" },
      schema: {
        summary: "Create a cluster (cluster.create): the body is its spec",
        tags,
        body: bodyOf(CreateCluster.schema, []),
        response: responses,
      },
    },
    (req, reply) => publish(deps, req, reply, { type: CreateCluster.type, data: req.body }),
  );
  const deleteWaitMs = deps.clusters?.deleteWaitMs ?? DEFAULT_DELETE_WAIT_MS;
  r.delete(
    "/clusters/:id",
    {
      config: { access: "operator" },
      schema: {
        summary: "Delete a cluster (cluster.delete) and wait briefly for the provisioner's answer",
        description:
          "A cluster with live sessions is not deleted: **409** saying how many, in which states and which, unless `?force=true`, which terminates them first (cause `cluster-deleted`) and then deletes the cluster. 404: no such cluster. 202 once the delete is accepted (the cluster is Deleting), or when the provisioner has not answered in time (follow `links.command`).",
        tags,
        params: clusterParams,
        querystring: z.object({
          force: z
            .enum(["true", "false"])
            .optional()
            .describe("true: terminate the cluster's live sessions first, then delete it"),
        }),
        response: { ...responses, 404: commandRefusal, 409: commandRefusal },
      },
    },
    async (req, reply) => {
      const clusterId = req.params.id;
      const force = req.query.force === "true";
      const sent = await sendFor(deps, req, {
        type: DeleteCluster.type,
        data: { clusterId, ...(force ? { force: true } : {}) },
      });
      if (sent.status !== 202) return answerSent(reply, sent);
      const { commandId } = sent.body;
      // A delete of a cluster already Deleting appends nothing (no command row): its
      // answer is the cluster's state.
      const outcome = await awaitCommandOutcome(deps, commandId, deleteWaitMs, {
        resource: "clusters",
        id: clusterId,
        settled: async () => {
          const row = await getCluster(deps.db, deps.schema, clusterId);
          return row?.state === "Deleting" || row?.state === "Deleted";
        },
      });
      if (outcome?.status === "rejected") {
        const status = outcome.code === "not-found" ? 404 : 409;
        return reply.code(status).send({
          error: status === 404 ? "Not Found" : "Conflict",
          message: outcome.reason ?? "refused",
          ...(outcome.code !== null ? { code: outcome.code } : {}),
          commandId,
        });
      }
      return reply.code(202).send(sent.body);
    },
  );

  /** `POST /clusters/:id/<verb>`: a cluster command whose body is the rest of its data. */
  const clusterCommand = (path: string, def: { type: string; schema: z.ZodType }, summary: string) =>
    r.post(
      `/clusters/:id/${path}`,
      {
        config: { access: "operator" },
        schema: {
          summary,
          tags,
          params: clusterParams,
          body: bodyOf(def.schema, ["clusterId"]),
          response: responses,
        },
      },
      (req, reply) =>
        publish(deps, req, reply, {
          type: def.type,
          data: { ...(req.body as object), clusterId: req.params.id },
        }),
    );
  clusterCommand("scale", ScaleCluster, "Set a pool's node count (cluster.scale)");
  clusterCommand(
    "rollback",
    RollbackCluster,
    "Roll the cluster back to the spec it had at a version (cluster.rollback)",
  );
  clusterCommand("retry", RetryCluster, "Try a Failed cluster again (cluster.retry)");
  clusterCommand("upgrade", UpgradeInstall, "Roll a new K3s version out (install.upgrade)");

  r.patch(
    "/clusters/:id/pools/:pool",
    {
      config: { access: "operator" },
      schema: {
        summary: "Set a pool's node labels and/or taints (cluster.update-pool)",
        tags,
        params: poolParams,
        body: bodyOf(UpdatePool.schema, ["clusterId", "pool"]),
        response: responses,
      },
    },
    (req, reply) =>
      publish(deps, req, reply, {
        type: UpdatePool.type,
        data: { ...(req.body as object), clusterId: req.params.id, pool: req.params.pool },
      }),
  );

  /** `POST /clusters/:id/nodes/:node/<verb>`: a node operation (body: reason and options). */
  const nodeCommand = (verb: string, def: { type: string; schema: z.ZodType }) =>
    r.post(
      `/clusters/:id/nodes/:node/${verb}`,
      {
        config: { access: "operator" },
        schema: {
          summary: `${def.type} on one node`,
          tags,
          params: nodeParams,
          body: bodyOf(def.schema, ["clusterId", "node"]),
          response: responses,
        },
      },
      (req, reply) =>
        publish(deps, req, reply, {
          type: def.type,
          data: { ...(req.body as object), clusterId: req.params.id, node: req.params.node },
        }),
    );
  for (const [verb, def] of [
    ["cordon", CordonNode],
    ["uncordon", UncordonNode],
    ["drain", DrainNode],
    ["label", LabelNode],
    ["unlabel", UnlabelNode],
    ["taint", TaintNode],
    ["untaint", UntaintNode],
  ] as const)
    nodeCommand(verb, def);
}
