/** The API's wire shapes (zod): validation of requests and the OpenAPI document. */
import { awsRegion, CLUSTER_FAILURE_CODES, SESSION_STATES } from "@cairn/events";
import { z } from "zod";
import { CLUSTER_CONDITION_TYPES, CLUSTER_HEALTH } from "../projections/cluster-conditions.ts";
import { CLUSTER_OPERATIONS, CLUSTER_STATES } from "../projections/clusters.ts";
import { INSTALL_NODE_STATES, INSTALL_STATES } from "../projections/installs.ts";
import { NODEOP_KINDS, NODEOP_STATES } from "../projections/nodeops.ts";
import { NODE_K3S_STATES } from "../projections/nodes.ts";

export const errorBody = z
  .object({
    error: z.string().describe("HTTP status text, e.g. Not Found"),
    message: z.string().describe("What went wrong, for people"),
    issues: z.array(z.string()).optional().describe("`path: problem` lines when the request was invalid"),
  })
  .meta({ id: "Error" });

export const sessionCounts = z
  .object({
    total: z.number().int(),
    live: z.number().int().describe("Neither Terminated nor Failed"),
    byState: z.record(z.string(), z.number().int()),
  })
  .meta({ id: "SessionCounts" });

const phase = z.object({ done: z.number().int(), total: z.number().int() });

export const clusterCondition = z
  .object({
    type: z.enum(CLUSTER_CONDITION_TYPES),
    status: z.enum(["True", "False", "Unknown"]),
    reason: z.string().describe("One PascalCase word, for machines: `InstancesRunning`, `LaunchFailed`…"),
    message: z.string().describe("What it means, for people"),
    lastTransitionTime: z.string().describe("When `status` last changed (the event's time)"),
  })
  .meta({ id: "ClusterCondition" });

export const clusterFailure = z
  .object({
    reason: z.string().describe("Why, in the words of the event that said so (EC2's, the installer's)"),
    remediation: z.string().describe("What to do about it: the event's hint, else the catalogue's"),
    code: z
      .enum([...CLUSTER_FAILURE_CODES, "degraded", "recovering"])
      .describe(
        "What kind: validation-failed, no-capacity, launch-failed, install-failed, degraded, recovering",
      ),
    since: z.string().describe("When (the event's time)"),
  })
  // Inline, not a named component: OpenAPI 3.0 cannot mark a $ref nullable.
  .describe("Why the cluster is in trouble and what to do");

/** Every view that a `--wait` follows carries the last sequence folded into it. */
const viewSequence = z
  .number()
  .int()
  .describe(
    "The stream sequence of the last commit folded into this view: a view at or past a command's `sequence` (GET /commands/:id) shows that command's effect",
  );

export const clusterView = z
  .object({
    id: z.string(),
    name: z.string(),
    region: z.string(),
    state: z.enum(CLUSTER_STATES),
    health: z
      .enum(CLUSTER_HEALTH)
      .describe(
        "Healthy (Ready), Progressing (being built, scaled, rolled back, deleted), Degraded, Recovering, Failed, Unknown (Deleted)",
      ),
    conditions: z
      .array(clusterCondition)
      .describe(
        "Kubernetes-style conditions: Ready, Validated, Provisioned, Installed, Degraded, Failed, Deleting (docs/projector.md)",
      ),
    failure: clusterFailure
      .nullable()
      .describe("Why a Failed, Degraded or Recovering cluster is so and what to do; null otherwise"),
    spec: z.record(z.string(), z.unknown()).describe("The desired spec, as in cluster.create"),
    version: z.number().int().describe("Events in the cluster so far, rejections included"),
    sequence: viewSequence,
    progress: z
      .object({
        operation: z.enum(CLUSTER_OPERATIONS).nullable(),
        done: z
          .number()
          .int()
          .describe("Steps behind the cluster: instances running + K3s initialised or joined + nodes Ready"),
        total: z.number().int().describe("Steps of the whole build: three per node the spec wants"),
        percent: z.number().int().min(0).max(100),
        step: z
          .string()
          .describe(
            "Step X of Y and what is under way, for people: `5 of 9 steps: K3s: 1 of 2 agents joined`",
          ),
        phases: z
          .object({ instances: phase, servers: phase, agents: phase, ready: phase })
          .describe(
            "Each phase apart: instances running, servers initialised or joined, agents joined, nodes Ready",
          ),
        nodes: z
          .object({ ready: z.number().int(), running: z.number().int(), wanted: z.number().int() })
          .describe("Nodes Ready, instances running, nodes the spec wants"),
        eta: z
          .string()
          .nullable()
          .describe(
            "When the cluster is expected to be built, from learnt step durations (null when nothing is being built)",
          ),
        etaSeconds: z.number().int().min(0).nullable().describe("Seconds from now until `eta`"),
      })
      .describe("What the cluster is doing and how far it got"),
    traceId: z.string().nullable().describe("Trace of the latest event"),
    jaegerUrl: z.string().optional().describe("Link to the trace in Jaeger, when configured"),
    createdAt: z.string(),
    updatedAt: z.string(),
    sessions: sessionCounts.optional().describe("Its sessions by state (GET /clusters/:id only)"),
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
  atLeastSequence: z.coerce
    .number()
    .int()
    .nonnegative()
    .optional()
    .describe(
      "The live view from a read model at least this fresh (a stream sequence, e.g. a command's `sequence`): a replica that answers from memory reads Postgres unless its memory has applied the log that far. The answer's `sequence` still says what it shows (the projection may not be there yet)",
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
  resource: z
    .enum(["clusters", "commands", "installs", "nodes", "nodeops", "sessions"])
    .optional()
    .describe("Only changes of this read model"),
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

/** A command the owning service refused, read back from the log (`GET /commands/:id` shows the same). */
export const commandRefusal = errorBody
  .extend({
    code: z.string().optional().describe("The rejection's code: conflict, not-found, invalid…"),
    commandId: z.string().optional(),
  })
  .meta({ id: "CommandRefusal" });

export const busUnavailable = errorBody
  .extend({
    commandId: z
      .string()
      .describe("The command's id: send the command again with it (`id`) and it is kept once"),
  })
  .meta({ id: "BusUnavailable" });

export const commandView = z
  .object({
    commandId: z.string(),
    type: z.string().nullable(),
    status: z.enum(["accepted", "rejected"]),
    code: z.string().optional(),
    reason: z.string().optional(),
    aggregate: z.object({ type: z.string(), id: z.string() }),
    sequence: z
      .number()
      .int()
      .describe(
        "The stream sequence of the first commit that answered the command: a view of its aggregate whose `sequence` is at or past it shows the command's effect; an older one does not yet",
      ),
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

// ---- installs, nodes, node operations ---------------------------------------------------

const listLimit = z.coerce.number().int().min(1).max(500).default(50);
const taintView = z.object({ key: z.string(), value: z.string().optional(), effect: z.string() });

export const installNodeView = z.object({
  slot: z.number().int(),
  node: z.string(),
  instanceId: z.string(),
  role: z.enum(["server", "agent"]),
  pool: z.string(),
  capacityType: z.enum(["spot", "on-demand"]),
  state: z.enum(INSTALL_NODE_STATES),
  step: z
    .object({
      name: z.string(),
      attempt: z.number().int(),
      number: z.number().int().nullable(),
      of: z.number().int().nullable(),
      status: z.enum(["requested", "sent"]),
    })
    .nullable()
    .describe("The step under way on the node"),
  reason: z.string().nullable(),
  upgrading: z.enum(["draining", "upgrading"]).nullable(),
});

export const installStepView = z
  .object({
    step: z.string(),
    slot: z.number().int(),
    node: z.string().nullable(),
    attempt: z.number().int(),
    commandId: z.string().nullable().describe("The SSM Run Command id"),
    status: z.enum([
      "requested",
      "sent",
      "Success",
      "Failed",
      "TimedOut",
      "Cancelled",
      "Undeliverable",
      "Lost",
    ]),
    requestedAt: z.string().nullable(),
    sentAt: z.string().nullable(),
    endedAt: z.string().nullable(),
    durationMs: z.number().int().nullable(),
    outputTail: z.string().nullable(),
    reason: z.string().nullable(),
    willRetry: z.boolean().nullable(),
  })
  .meta({ id: "InstallStep" });

export const installView = z
  .object({
    clusterId: z.string(),
    state: z.enum(INSTALL_STATES),
    k3sVersion: z.string(),
    servers: z.number().int(),
    progress: z.object({
      done: z.number().int().describe("Nodes Ready"),
      joined: z.number().int(),
      total: z.number().int(),
      percent: z.number().int().min(0).max(100),
      step: z.string(),
    }),
    nodes: z.array(installNodeView).describe("Each node slot's install, in slot order"),
    steps: z
      .array(installStepView)
      .optional()
      .describe("The steps sent, oldest first (the last 200); only on GET /installs/:clusterId"),
    failing: z.array(
      z.object({
        check: z.string(),
        node: z.string().nullable(),
        evidence: z.string(),
        remediation: z.string().nullable(),
        since: z.string(),
      }),
    ),
    upgrade: z
      .object({
        from: z.string(),
        to: z.string(),
        batch: z.number().int(),
        nodes: z.number().int(),
        done: z.number().int(),
        current: z.string().nullable(),
        state: z.enum(["running", "done", "failed"]),
        reason: z.string().nullable(),
      })
      .nullable(),
    failure: z.object({ reason: z.string(), remediation: z.string().nullable() }).nullable(),
    version: z.number().int(),
    traceId: z.string().nullable(),
    jaegerUrl: z.string().optional(),
    createdAt: z.string(),
    updatedAt: z.string(),
  })
  .meta({ id: "Install" });

export const installList = z
  .object({ items: z.array(installView), nextCursor: z.string().optional() })
  .meta({ id: "InstallList" });

export const installListQuery = z.object({
  state: z.enum(INSTALL_STATES).optional(),
  limit: listLimit,
  cursor: cursorParam,
});

export const clusterIdParams = z.object({ clusterId: z.string().min(1).max(256) });

export const nodeView = z
  .object({
    id: z.string().describe("The node's node-ops aggregate id: `<clusterId>=<node with . as _>`"),
    clusterId: z.string(),
    node: z.string(),
    slot: z.number().int().nullable(),
    pool: z.string().nullable(),
    role: z.enum(["server", "agent"]).nullable(),
    capacityType: z.enum(["spot", "on-demand"]).nullable(),
    instanceId: z.string().nullable(),
    privateIp: z.string().nullable(),
    availabilityZone: z.string().nullable(),
    instance: z.enum(["launched", "running", "terminating", "terminated"]).nullable(),
    gone: z
      .object({ at: z.string(), reason: z.string() })
      .nullable()
      .describe("The node left the cluster for good (scaled down, replaced, cluster deleted): when and why"),
    k3s: z.enum(NODE_K3S_STATES),
    reason: z.string().nullable(),
    kube: z.object({
      registered: z.boolean(),
      ready: z.boolean().nullable(),
      notReadyReason: z.string().nullable(),
      pressure: z.array(z.string()),
      labels: z.record(z.string(), z.string()),
      taints: z.array(taintView),
      unschedulable: z.boolean(),
    }),
    cordon: z
      .object({ by: z.string(), reason: z.string(), at: z.string() })
      .nullable()
      .describe("Cordoned by Cairn: by whom and why"),
    replacement: z.string().nullable(),
    createdAt: z.string(),
    updatedAt: z.string(),
  })
  .meta({ id: "Node" });

export const nodeList = z
  .object({ items: z.array(nodeView), nextCursor: z.string().optional() })
  .meta({ id: "NodeList" });

export const nodeListQuery = z.object({
  clusterId: z.string().min(1).max(256).optional(),
  pool: z.string().min(1).max(256).optional(),
  state: z.enum(NODE_K3S_STATES).optional().describe("K3s state of the node"),
  limit: listLimit,
  cursor: cursorParam,
});

export const pageQuery = z.object({ limit: listLimit, cursor: cursorParam });

export const nodeOpView = z
  .object({
    id: z.string(),
    clusterId: z.string(),
    node: z.string(),
    operation: z.enum(NODEOP_KINDS).nullable(),
    state: z.enum(NODEOP_STATES),
    by: z.string().nullable(),
    reason: z.string().nullable(),
    requestedAt: z.string().nullable(),
    endedAt: z.string().nullable(),
    drain: z
      .object({
        evicted: z.number().int(),
        remaining: z.number().int(),
        blockedBy: z.array(z.string()).describe("PodDisruptionBudgets holding the drain up"),
        deadline: z.string().nullable(),
      })
      .nullable(),
    blocking: z.array(z.object({ pod: z.string(), pdb: z.string().optional() })),
    waiting: z
      .object({ limit: z.number().int(), waitingFor: z.array(z.string()), since: z.string() })
      .nullable()
      .describe("The cluster-wide disruption limit holds the operation back"),
    failure: z.object({ reason: z.string(), remediation: z.string().nullable() }).nullable(),
    cordoned: z.boolean(),
    interruption: z.object({ noticeId: z.string(), terminationTime: z.string() }).nullable(),
    deleted: z.boolean(),
    operations: z.number().int(),
    sequence: viewSequence,
    createdAt: z.string(),
    updatedAt: z.string(),
  })
  .meta({ id: "NodeOperation" });

export const nodeOpList = z
  .object({ items: z.array(nodeOpView), nextCursor: z.string().optional() })
  .meta({ id: "NodeOperationList" });

export const nodeOpListQuery = z.object({
  clusterId: z.string().min(1).max(256).optional(),
  state: z.enum(NODEOP_STATES).optional(),
  limit: listLimit,
  cursor: cursorParam,
});

export const stepDurationList = z
  .object({
    items: z.array(
      z.object({
        kind: z.string(),
        samples: z.number().int(),
        meanMs: z.number().int().describe("Exponentially weighted mean (α = 0.3)"),
        lastMs: z.number().int(),
        updatedAt: z.string(),
      }),
    ),
  })
  .meta({ id: "StepDurations" });

// ---- sessions ---------------------------------------------------------------------------

export const quotaUsageView = z.object({
  sessions: z.number().int(),
  cpuMillis: z.number().int(),
  memoryBytes: z.number().int(),
});
const quotaBreachFields = z.object({
  scope: z.enum(["user", "group", "cluster"]),
  owner: z.string(),
  dimension: z.enum(["sessions", "cpuMillis", "memoryBytes"]),
  limit: z.number().int(),
  usage: quotaUsageView.describe("What the owner's live sessions held when the create was refused"),
  requested: quotaUsageView.describe("What the session asked for"),
});
export const quotaBreachView = quotaBreachFields.meta({ id: "QuotaBreach" });

export const sessionView = z
  .object({
    id: z.string(),
    user: z.string(),
    clusterId: z.string(),
    state: z.enum(SESSION_STATES),
    template: z.object({ image: z.string(), cpu: z.string(), memory: z.string(), storage: z.string() }),
    idleTimeoutSeconds: z.number().int(),
    maxLifetimeSeconds: z.number().int(),
    groups: z.array(z.string()),
    node: z.string().nullable(),
    pod: z.string().nullable(),
    cause: z
      .string()
      .nullable()
      .describe("Why it made its last transition: user, idle, lifetime, connection…"),
    lastTransition: z.object({ type: z.string(), at: z.string(), cause: z.string().nullable() }),
    lastActivity: z
      .string()
      .nullable()
      .describe(
        "The later of the last heartbeat with connections (KV bucket) and the activity the log knows",
      ),
    idleAt: z
      .string()
      .nullable()
      .describe("While Running: when the idle sweep will hibernate it unless activity comes first"),
    idleInSeconds: z.number().int().nullable().describe("Seconds from now until `idleAt`"),
    idledAt: z.string().nullable().describe("When the idle sweep last found it idle (session.idled)"),
    idleForSeconds: z.number().int().nullable().describe("How long it had been idle then"),
    hibernatedAt: z.string().nullable(),
    wakeLatencyMs: z.number().int().nullable().describe("The last wake's connect → Running, in ms"),
    wakes: z.number().int(),
    moves: z.number().int(),
    failure: z
      .object({
        reason: z.string(),
        remediation: z.string().nullable(),
        from: z.string(),
        cause: z.string(),
      })
      .nullable(),
    rejection: z
      .object({
        commandId: z.string(),
        commandType: z.string(),
        code: z.string(),
        reason: z.string(),
        // Inline (no $ref): OpenAPI 3.0 cannot mark a reference nullable.
        quota: quotaBreachFields.nullable(),
        at: z.string(),
      })
      .nullable()
      .describe("The last command refused on it"),
    volumeReleased: z.boolean().nullable(),
    version: z.number().int(),
    sequence: viewSequence,
    traceId: z.string().nullable().describe("The session's lifecycle trace (its create's)"),
    jaegerUrl: z.string().optional(),
    createdAt: z.string(),
    updatedAt: z.string(),
  })
  .meta({ id: "Session" });

export const sessionList = z
  .object({ items: z.array(sessionView), nextCursor: z.string().optional() })
  .meta({ id: "SessionList" });

export const sessionListQuery = z.object({
  user: z.string().min(1).max(128).optional(),
  clusterId: z.string().min(1).max(128).optional(),
  state: z.enum(SESSION_STATES).optional(),
  limit: listLimit,
  cursor: cursorParam,
});

export const sessionHistory = z
  .object({ sessionId: z.string(), items: z.array(historyEvent), nextCursor: z.string().optional() })
  .meta({ id: "SessionHistory" });

/** A refusal of a session command: over quota with the limit passed and the usage. */
export const sessionRefusal = errorBody
  .extend({
    code: z.string().optional().describe("The rejection's code: over-quota, not-found, conflict, invalid…"),
    commandId: z.string().optional(),
    limit: z.number().int().optional().describe("Over quota: the limit the create would pass"),
    usage: quotaUsageView.optional().describe("Over quota: what the owner's live sessions hold now"),
    quota: quotaBreachView.optional(),
  })
  .meta({ id: "SessionRefusal" });

export const sessionCreated = commandAccepted
  .extend({
    sessionId: z.string(),
    state: z
      .enum(SESSION_STATES)
      .describe("Starting (or later) once admitted; Pending when admission did not answer in time"),
    links: z.object({ command: z.string(), session: z.string() }),
  })
  .meta({ id: "SessionCreated" });

export const heartbeatBody = z.object({
  connections: z.number().int().min(0).describe("Connections open to the session now; 0 is not activity"),
});
export const heartbeatAnswer = z
  .object({ sessionId: z.string(), activity: z.boolean().describe("Whether it counted as activity") })
  .meta({ id: "HeartbeatRecorded" });

export const clusterDependencies = z
  .object({
    cluster: z.object({ id: z.string(), state: z.string() }),
    nodes: z.array(
      z.object({
        id: z.string(),
        node: z.string(),
        pool: z.string().nullable(),
        k3sState: z.string(),
        sessions: z.array(z.object({ id: z.string(), state: z.string(), user: z.string() })),
      }),
    ),
    unplaced: z
      .array(z.object({ id: z.string(), state: z.string(), user: z.string() }))
      .describe("Live sessions with no pod on a known node (Pending, Hibernated…)"),
    sessions: sessionCounts,
  })
  .meta({ id: "ClusterDependencies" });
