/** The API's wire shapes (zod): validation of requests and the OpenAPI document. */
import { awsRegion } from "@cairn/events";
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

export const clusterList = z
  .object({
    items: z.array(clusterView),
    nextCursor: z.string().optional().describe("Pass as `cursor` for the next page; absent on the last page"),
  })
  .meta({ id: "ClusterList" });

const cursorParam = z
  .string()
  .min(1)
  .max(512)
  .optional()
  .describe("The opaque `nextCursor` of the previous page");

export const clusterListQuery = z.object({
  state: z.enum(CLUSTER_STATES).optional(),
  region: awsRegion.optional(),
  limit: z.coerce.number().int().min(1).max(500).default(50),
  cursor: cursorParam,
});

export const clusterQuery = z.object({
  at: z
    .string()
    .min(1)
    .max(64)
    .refine((s) => /^\d+$/.test(s) || !Number.isNaN(Date.parse(s)), {
      message: "must be a stream sequence (a positive integer) or an ISO 8601 time",
    })
    .optional()
    .describe(
      "Show the cluster as it was at this stream sequence (e.g. `42`) or time (e.g. `2026-11-22T08:00:00Z`), folded from the event log",
    ),
});

export const historyQuery = z.object({
  limit: z.coerce.number().int().min(1).max(1000).default(200),
  cursor: cursorParam,
});

export const historyEvent = z
  .object({
    sequence: z.number().int().describe("Stream sequence of the commit that holds the event"),
    version: z.number().int().describe("The aggregate's version after the event (its position)"),
    time: z.string(),
    type: z.string(),
    eventId: z.string(),
    aggregate: z.object({ type: z.string(), id: z.string() }),
    commandId: z.string().nullable().describe("The command that caused it, if a command did"),
    causationId: z.string().describe("The command or event that caused it"),
    correlationId: z.string(),
    actor: z.string(),
    traceId: z.string().nullable(),
    jaegerUrl: z.string().optional(),
    links: z.object({ trace: z.string().optional(), command: z.string().optional() }),
  })
  .meta({ id: "HistoryEvent" });

export const clusterHistory = z
  .object({
    clusterId: z.string(),
    items: z.array(historyEvent),
    nextCursor: z.string().optional(),
  })
  .meta({ id: "ClusterHistory" });

export const traceParams = z.object({
  traceId: z.string().regex(/^[0-9a-f]{32}$/, "must be a W3C trace id: 32 lower-case hex digits"),
});

export const traceView = z
  .object({
    traceId: z.string(),
    jaegerUrl: z.string().optional(),
    items: z.array(historyEvent),
    nextCursor: z.string().optional(),
  })
  .meta({ id: "Trace" });

export const streamQuery = z.object({
  resource: z.enum(["clusters", "commands"]).optional().describe("Only changes of this read model"),
  id: z.string().min(1).max(256).optional().describe("Only changes of this row (with `resource`)"),
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

export const commandAccepted = z
  .object({
    commandId: z.string(),
    traceId: z.string().optional(),
    jaegerUrl: z.string().optional(),
    actor: z.string().describe("Who the command was sent as: the token's user when the API has auth"),
    links: z.object({ command: z.string() }),
  })
  .meta({ id: "CommandAccepted" });

export const commandView = z
  .object({
    commandId: z.string(),
    type: z.string().nullable(),
    status: z.enum(["accepted", "rejected"]),
    code: z.string().optional(),
    reason: z.string().optional(),
    aggregate: z.object({ type: z.string(), id: z.string() }),
    traceId: z.string().nullable(),
    jaegerUrl: z.string().optional(),
  })
  .meta({ id: "CommandStatus" });

export const commandUnknown = z
  .object({ commandId: z.string(), status: z.literal("unknown") })
  .meta({ id: "CommandUnknown" });

export const health = z.object({ status: z.string() });

export const readiness = z.object({
  status: z.enum(["ready", "not ready"]),
  checks: z.object({
    postgres: z.string(),
    consumer: z.string(),
  }),
  checkpoint: z.number().optional(),
});
