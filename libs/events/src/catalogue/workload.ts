/**
 * The `workload` aggregate (owned by node-ops): what one session is in its cluster's
 * Kubernetes API, a Deployment with one replica and a PersistentVolumeClaim, labelled
 * with the session. Its id is the session's id. The idle-detector sends the commands
 * (named after the session event that caused them, so a redelivery changes nothing)
 * and follows the events; node-ops carries the commands out, each step idempotent, and
 * records what the cluster did. The contract is in docs/sessions.md.
 */
import { z } from "zod";
import { tokenSafeId } from "../ids.ts";
import { defineRejected } from "./common.ts";
import { type CommandOf, defineCommand, defineEvent, type EventOf } from "./define.ts";
import { sessionTemplate } from "./session.ts";

const key = { sessionId: tokenSafeId, clusterId: tokenSafeId };
const byWorkload = (d: { sessionId: string }) => d.sessionId;
const node = z.string().min(1).max(253);

export const StartWorkload = defineCommand({
  type: "workload.start",
  aggregate: "workload",
  schema: z.object({ ...key, user: tokenSafeId, template: sessionTemplate }),
  aggregateId: byWorkload,
  description:
    "Create the session's PersistentVolumeClaim and Deployment if missing and scale it to one replica (a first start and a wake alike); `workload.running` once its pod is ready.",
});
export const StopWorkload = defineCommand({
  type: "workload.stop",
  aggregate: "workload",
  schema: z.object(key),
  aggregateId: byWorkload,
  description:
    "Scale the session's Deployment to zero, keep its volume; `workload.stopped` once no pod is left.",
});
export const DeleteWorkload = defineCommand({
  type: "workload.delete",
  aggregate: "workload",
  schema: z.object({ ...key, releaseVolume: z.boolean() }),
  aggregateId: byWorkload,
  description:
    "Delete the session's Deployment and, with `releaseVolume`, its PersistentVolumeClaim; `workload.deleted` once gone (also when there was nothing to delete).",
});

// ── internal commands (node-ops records what the cluster did) ─────────────────────────
// `attempt` names the start, stop or delete they belong to (the one its `workload.starting`,
// `…stopping` or `…deleting` opened): a record of a superseded attempt changes nothing.
const attempt = z.number().int().positive();
const internal = { aggregate: "workload" as const, internal: true, aggregateId: byWorkload };
export const RecordWorkloadStarted = defineCommand({
  type: "workload.record-started",
  ...internal,
  schema: z.object({ ...key, attempt, deployment: z.string(), volumeClaim: z.string() }),
  description: "internal: the Deployment (one replica) and the volume claim exist.",
});
export const RecordWorkloadRunning = defineCommand({
  type: "workload.record-running",
  ...internal,
  schema: z.object({ ...key, attempt, node, pod: z.string() }),
  description: "internal: the session's pod is Ready on `node`.",
});
export const RecordWorkloadStopped = defineCommand({
  type: "workload.record-stopped",
  ...internal,
  schema: z.object({ ...key, attempt }),
  description: "internal: scaled to zero, no pod left.",
});
export const RecordWorkloadDeleted = defineCommand({
  type: "workload.record-deleted",
  ...internal,
  schema: z.object({ ...key, attempt, volumeReleased: z.boolean() }),
  description: "internal: the Deployment (and the volume claim, when released) is gone.",
});
export const RecordWorkloadFailure = defineCommand({
  type: "workload.record-failure",
  ...internal,
  schema: z.object({
    ...key,
    attempt,
    operation: z.enum(["start", "stop", "delete"]),
    kind: z.enum(["no-capacity", "image", "cluster", "other"]),
    reason: z.string().min(1),
    remediation: z.string().optional(),
  }),
  description: "internal: the step failed for good.",
});
export const RecordWorkloadMoved = defineCommand({
  type: "workload.record-moved",
  ...internal,
  schema: z.object({
    ...key,
    attempt,
    fromNode: node,
    toNode: node,
    pod: z.string(),
    reason: z.string().optional(),
  }),
  description: "internal: the session's pod is Ready on another node than the one recorded.",
});

export const workloadCommands = [
  StartWorkload,
  StopWorkload,
  DeleteWorkload,
  RecordWorkloadStarted,
  RecordWorkloadRunning,
  RecordWorkloadStopped,
  RecordWorkloadDeleted,
  RecordWorkloadFailure,
  RecordWorkloadMoved,
] as const;
export type WorkloadCommand = CommandOf<(typeof workloadCommands)[number]>;

export const WorkloadRejected = defineRejected("workload");
export const WorkloadStarting = defineEvent({
  type: "workload.starting",
  aggregate: "workload",
  schema: z.object({
    ...key,
    user: tokenSafeId,
    template: sessionTemplate,
    attempt: z.number().int().positive(),
  }),
  description:
    "A start (or a wake) is accepted: node-ops creates what is missing and scales to one. `attempt` counts the workload's starts, stops and deletes.",
});
export const WorkloadStopping = defineEvent({
  type: "workload.stopping",
  aggregate: "workload",
  schema: z.object({ ...key, attempt: z.number().int().positive() }),
  description: "A stop is accepted: node-ops scales the Deployment to zero, the volume stays.",
});
export const WorkloadDeleting = defineEvent({
  type: "workload.deleting",
  aggregate: "workload",
  schema: z.object({ ...key, releaseVolume: z.boolean(), attempt: z.number().int().positive() }),
  description: "A delete is accepted: node-ops deletes the Deployment and, with `releaseVolume`, the claim.",
});
export const WorkloadStarted = defineEvent({
  type: "workload.started",
  aggregate: "workload",
  schema: z.object({ ...key, deployment: z.string(), volumeClaim: z.string() }),
  description: "The Deployment (one replica) and the PersistentVolumeClaim exist; the pod is on its way.",
});
export const WorkloadRunning = defineEvent({
  type: "workload.running",
  aggregate: "workload",
  schema: z.object({ ...key, node, pod: z.string() }),
  description: "The session's pod is ready on `node`.",
});
export const WorkloadStopped = defineEvent({
  type: "workload.stopped",
  aggregate: "workload",
  schema: z.object(key),
  description: "Scaled to zero and no pod left; the volume is kept.",
});
export const WorkloadDeleted = defineEvent({
  type: "workload.deleted",
  aggregate: "workload",
  schema: z.object({ ...key, volumeReleased: z.boolean() }),
  description: "The Deployment is gone (and the volume, when `volumeReleased`).",
});
export const WorkloadFailed = defineEvent({
  type: "workload.failed",
  aggregate: "workload",
  schema: z.object({
    ...key,
    operation: z.enum(["start", "stop", "delete"]),
    /** `no-capacity`: no node can take the pod (Unschedulable); `image`: the image cannot be pulled. */
    kind: z.enum(["no-capacity", "image", "cluster", "other"]),
    reason: z.string().min(1),
    remediation: z.string().optional(),
  }),
  description:
    "The step failed for good, saying why: a scheduling failure (`no-capacity`: no node has room), an image that cannot be pulled, the cluster unreachable…",
});
export const WorkloadMoved = defineEvent({
  type: "workload.moved",
  aggregate: "workload",
  schema: z.object({ ...key, fromNode: node, toNode: node, pod: z.string(), reason: z.string().optional() }),
  description:
    "The session's pod was evicted (a drain, a spot interruption) and is ready again on another node.",
});
export const workloadEvents = [
  WorkloadRejected,
  WorkloadStarting,
  WorkloadStopping,
  WorkloadDeleting,
  WorkloadStarted,
  WorkloadRunning,
  WorkloadStopped,
  WorkloadDeleted,
  WorkloadFailed,
  WorkloadMoved,
] as const;
export type WorkloadEvent = EventOf<(typeof workloadEvents)[number]>;
