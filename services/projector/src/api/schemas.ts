/** The API's wire shapes (zod): validation of requests and the OpenAPI document. */
import { z } from "zod";
import { CLUSTER_STATES } from "../projections/clusters.ts";

export const errorBody = z
  .object({
    error: z.string().describe("HTTP status text, e.g. Not Found"),
    message: z.string().describe("What went wrong, for people"),
    issues: z.array(z.string()).optional().describe("`path: problem` lines when the request was invalid"),
  })
  .meta({ id: "Error" });

export const clusterView = z
  .object({
    id: z.string(),
    name: z.string(),
    region: z.string(),
    state: z.enum(CLUSTER_STATES),
    spec: z.record(z.string(), z.unknown()).describe("The desired spec, as in cluster.create"),
    version: z.number().int().describe("Events in the cluster so far, rejections included"),
    progress: z
      .object({
        operation: z.enum(["pending", "provisioning", "scaling", "rolling back", "deleting"]).nullable(),
        done: z.number().int().describe("Nodes running"),
        total: z.number().int().describe("Nodes the spec wants"),
        percent: z.number().int().min(0).max(100),
        step: z.string().describe("Step X of Y, for people: `3 of 5 nodes running`"),
      })
      .describe("What the cluster is doing and how far it got"),
    traceId: z.string().nullable().describe("Trace of the latest event"),
    jaegerUrl: z.string().optional().describe("Link to the trace in Jaeger, when configured"),
    createdAt: z.string(),
    updatedAt: z.string(),
  })
  .meta({ id: "Cluster" });

export const clusterList = z.object({
  items: z.array(clusterView),
  nextCursor: z.string().optional().describe("Pass as `cursor` for the next page; absent on the last page"),
});

export const clusterListQuery = z.object({
  state: z.enum(CLUSTER_STATES).optional(),
  limit: z.coerce.number().int().min(1).max(500).default(50),
  cursor: z.string().min(1).max(128).optional().describe("The `nextCursor` of the previous page"),
});

export const idParams = z.object({ id: z.string().min(1).max(256) });

export const commandRequest = z
  .object({
    id: z
      .uuid()
      .optional()
      .describe("Command id; a retry with the same id changes nothing. Default: a new UUIDv7"),
    type: z.string().min(1).describe("Command type, e.g. cluster.create"),
    data: z.unknown().describe("The command's data, checked against the catalogue"),
    meta: z.object({ actor: z.string().min(1).max(256).optional() }).optional(),
  })
  .meta({ id: "CommandRequest" });

export const commandAccepted = z.object({
  commandId: z.string(),
  traceId: z.string().optional(),
  links: z.object({ command: z.string() }),
});

export const commandView = z
  .object({
    commandId: z.string(),
    type: z.string().nullable(),
    status: z.enum(["accepted", "rejected"]),
    code: z.string().optional(),
    reason: z.string().optional(),
    aggregate: z.object({ type: z.string(), id: z.string() }),
    traceId: z.string().nullable(),
  })
  .meta({ id: "CommandStatus" });

export const commandUnknown = z.object({ commandId: z.string(), status: z.literal("unknown") });

export const health = z.object({ status: z.string() });

export const readiness = z.object({
  status: z.enum(["ready", "not ready"]),
  checks: z.object({
    postgres: z.string(),
    consumer: z.string(),
  }),
  checkpoint: z.number().optional(),
});
