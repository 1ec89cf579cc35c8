import { z } from "zod";
import { tokenSafeId } from "../ids.ts";
import { clusterFailureCode } from "./cluster-failures.ts";
import { defineRejected, labels, taint } from "./common.ts";
import { type CommandOf, defineCommand, defineEvent, type EventOf } from "./define.ts";
import { ec2TagProblems } from "./ec2-tags.ts";
import { SESSION_STATES } from "./session.ts";

/** Limits a cluster spec must keep. Figures a single control plane is tested at. */
export const CLUSTER_LIMITS = {
  maxServers: 7,
  maxPoolNodes: 500,
  maxPools: 20,
  maxInstanceTypes: 10,
} as const;

/** An AWS region code such as `eu-west-1`, `us-gov-west-1` or `ap-southeast-4`. */
export const awsRegion = z
  .string()
  .regex(
    /^(us|eu|ap|sa|ca|me|af|il|mx)(-gov|-iso[a-z]?)?-(north|south|east|west|central|northeast|southeast|northwest|southwest)-\d{1,2}$/,
    "must be an AWS region code such as eu-west-1",
  );

export const k3sVersion = z
  .string()
  .regex(/^v\d+\.\d+\.\d+\+k3s\d+$/, "must be a K3s release such as v1.31.4+k3s1");

export const instanceType = z
  .string()
  .regex(/^[a-z][a-z0-9-]*\.[a-z0-9]+$/, "must be an EC2 instance type such as t3.medium");

/** The name of the servers' slots' pool; no node pool may take it. */
export const SERVER_POOL = "servers";

export const nodePool = z.object({
  name: tokenSafeId,
  capacityType: z.enum(["spot", "on-demand"]),
  /** In order of preference: insufficient capacity moves to the next one. */
  instanceTypes: z.array(instanceType).min(1).max(CLUSTER_LIMITS.maxInstanceTypes),
  count: z.number().int().min(0).max(CLUSTER_LIMITS.maxPoolNodes),
  labels: labels.default({}),
  taints: z.array(taint).default([]),
  /** A spot pool may fall back to on-demand when no spot capacity is left. */
  fallbackToOnDemand: z.boolean().default(false),
});
export type NodePool = z.infer<typeof nodePool>;

export const clusterSpec = z
  .object({
    clusterId: tokenSafeId,
    name: tokenSafeId,
    region: awsRegion,
    k3sVersion,
    servers: z.object({
      count: z
        .number()
        .int()
        .min(1)
        .max(CLUSTER_LIMITS.maxServers)
        .refine(
          (n) => n === 1 || n % 2 === 1,
          "must be 1, or an odd number of 3 or more (embedded etcd needs a quorum)",
        ),
      instanceType,
    }),
    pools: z.array(nodePool).max(CLUSTER_LIMITS.maxPools).default([]),
    /** An AMI id; absent: the region's default Cairn AMI. */
    ami: z
      .string()
      .regex(/^ami-[0-9a-f]{8,17}$/, "must be an AMI id such as ami-0abc12345def67890")
      .optional(),
    subnets: z.array(z.string().regex(/^subnet-[0-9a-f]{8,17}$/, "must be a subnet id")).default([]),
    /** In order of preference; capacity failures move to the next. Empty: EC2 picks. */
    availabilityZones: z
      .array(
        z
          .string()
          .regex(/^[a-z]{2}(-gov)?-[a-z]+-\d[a-z]$/, "must be an availability zone such as eu-west-1a"),
      )
      .default([]),
    tags: z.record(z.string().min(1).max(128), z.string().max(256)).default({}),
  })
  .superRefine((spec, ctx) => {
    const seen = new Set<string>();
    spec.pools.forEach((p, i) => {
      if (seen.has(p.name))
        ctx.addIssue({
          code: "custom",
          path: ["pools", i, "name"],
          message: `pool ${p.name} is named twice`,
        });
      seen.add(p.name);
    });
  });
export type ClusterSpec = z.infer<typeof clusterSpec>;

/** A session as a cluster's delete saw it: its id and its state then. */
export const clusterSessionRef = z.object({ sessionId: tokenSafeId, status: z.enum(SESSION_STATES) });
export type ClusterSessionRef = z.infer<typeof clusterSessionRef>;

/**
 * What a create may ask for: a spec whose tags EC2 will take (./ec2-tags.ts). Only the
 * command is held to it, not `clusterSpec` itself: events recorded before the rule (a
 * `cluster.requested` with 300 tags) must still be read.
 */
export const clusterCreateSpec = clusterSpec.superRefine((spec, ctx) => {
  for (const message of ec2TagProblems(spec.tags)) ctx.addIssue({ code: "custom", path: ["tags"], message });
});

// Commands (public contract, DESIGN §7)
export const CreateCluster = defineCommand({
  type: "cluster.create",
  aggregate: "cluster",
  schema: clusterCreateSpec,
  aggregateId: (d) => d.clusterId,
  description:
    "Create a K3s cluster from a spec: servers, node pools, region, K3s version. Tags must suit EC2 (at most 44 kept tags: EC2's 50 less Cairn's 6; no `aws:` keys; keys ≤ 128 and values ≤ 256 characters), or the create is refused (`invalid`) before anything is launched.",
});
export const ScaleCluster = defineCommand({
  type: "cluster.scale",
  aggregate: "cluster",
  schema: z.object({
    clusterId: tokenSafeId,
    pool: tokenSafeId,
    count: z.number().int().min(0).max(CLUSTER_LIMITS.maxPoolNodes),
  }),
  aggregateId: (d) => d.clusterId,
  description: "Set the node count of one pool.",
});
export const RollbackCluster = defineCommand({
  type: "cluster.rollback",
  aggregate: "cluster",
  schema: z.object({ clusterId: tokenSafeId, toVersion: z.number().int().positive() }),
  aggregateId: (d) => d.clusterId,
  description: "Reconcile the cluster back to the spec it had at a version (its event count).",
});
export const DeleteCluster = defineCommand({
  type: "cluster.delete",
  aggregate: "cluster",
  schema: z.object({
    clusterId: tokenSafeId,
    /** Terminate the cluster's live sessions first (cause `cluster-deleted`); without it a cluster with live sessions is not deleted. */
    force: z.boolean().optional(),
  }),
  aggregateId: (d) => d.clusterId,
  description:
    "Delete the cluster: end its sessions, terminate every instance, remove its secrets. Refused (`conflict`, naming them) while sessions live on it, unless `force: true`, which terminates them first (cause `cluster-deleted`). Idempotent.",
});
export const UpdatePool = defineCommand({
  type: "cluster.update-pool",
  aggregate: "cluster",
  schema: z.object({
    clusterId: tokenSafeId,
    pool: tokenSafeId,
    labels: labels.optional(),
    taints: z.array(taint).optional(),
  }),
  aggregateId: (d) => d.clusterId,
  description: "Set a pool's node labels and/or taints (what is given replaces what was there).",
});
export const RetryCluster = defineCommand({
  type: "cluster.retry",
  aggregate: "cluster",
  schema: z.object({ clusterId: tokenSafeId }),
  aggregateId: (d) => d.clusterId,
  description: "Try a Failed cluster again: relaunch the slots that do not run, from their first placement.",
});

// Internal commands: the provisioner's reactor records what EC2 did. Never public.
const clusterRef = { clusterId: tokenSafeId };
const slotNumber = z.number().int().min(0);
/**
 * The most slots one RunInstances launches (`batch.count`). EC2 has no per-call bound
 * below the account's quotas, but its resource bucket for RunInstances holds 1,000
 * instances (refilled 2 a second) whatever the number of calls; 100 keeps one refused or
 * throttled call to a tenth of that, and a 500-node pool to 5 calls.
 */
export const MAX_LAUNCH_BATCH = 100;
const attempt = z.number().int().min(1);
export const StartValidation = defineCommand({
  type: "cluster.start-validation",
  aggregate: "cluster",
  internal: true,
  schema: z.object(clusterRef),
  aggregateId: (d) => d.clusterId,
  description:
    "internal: check the spec against the region (the AMI, its architecture) before launching anything.",
});
export const RecordValidation = defineCommand({
  type: "cluster.record-validation",
  aggregate: "cluster",
  internal: true,
  schema: z.object({
    ...clusterRef,
    ok: z.boolean(),
    imageId: z.string(),
    architecture: z.string().optional(),
    reason: z.string().optional(),
    remediation: z.string().optional(),
  }),
  aggregateId: (d) => d.clusterId,
  description: "internal: what EC2 says of the spec's image in the region.",
});
export const StartProvisioning = defineCommand({
  type: "cluster.start-provisioning",
  aggregate: "cluster",
  internal: true,
  schema: z.object(clusterRef),
  aggregateId: (d) => d.clusterId,
  description: "internal: plan the cluster's node slots and request their launches.",
});
export const RecordLaunch = defineCommand({
  type: "cluster.record-launch",
  aggregate: "cluster",
  internal: true,
  schema: z.object({
    ...clusterRef,
    slot: slotNumber,
    attempt,
    instanceId: z.string().min(1),
    availabilityZone: z.string().optional(),
    privateIp: z.string().optional(),
  }),
  aggregateId: (d) => d.clusterId,
  description: "internal: EC2 launched the instance of a slot's attempt.",
});
/** One slot's launch attempt that failed for good. */
const launchFailure = {
  slot: slotNumber,
  attempt,
  code: z.string().min(1),
  reason: z.string(),
  remediation: z.string().optional(),
  /** Capacity for this placement ran out: the next placement may work. */
  capacity: z.boolean(),
};
export const RecordLaunchFailure = defineCommand({
  type: "cluster.record-launch-failure",
  aggregate: "cluster",
  internal: true,
  schema: z.object({ ...clusterRef, ...launchFailure }),
  aggregateId: (d) => d.clusterId,
  description: "internal: a slot's launch attempt failed for good.",
});
export const RecordLaunchFailures = defineCommand({
  type: "cluster.record-launch-failures",
  aggregate: "cluster",
  internal: true,
  schema: z.object({
    ...clusterRef,
    failures: z.array(z.object(launchFailure)).min(1).max(1_000),
  }),
  aggregateId: (d) => d.clusterId,
  description:
    "internal: these slots' launch attempts failed for good (`cluster.record-launch-failure` for many slots, one commit: a batch EC2 refused).",
});
export const RecordRunning = defineCommand({
  type: "cluster.record-running",
  aggregate: "cluster",
  internal: true,
  schema: z.object({
    ...clusterRef,
    slot: slotNumber,
    instanceId: z.string().min(1),
    privateIp: z.string().optional(),
  }),
  aggregateId: (d) => d.clusterId,
  description: "internal: a slot's instance is running.",
});
/** One slot's launch or running instance, as a batch records it. */
const launchedSlot = z.object({
  slot: slotNumber,
  attempt,
  instanceId: z.string().min(1),
  availabilityZone: z.string().optional(),
  privateIp: z.string().optional(),
});
export const RecordLaunches = defineCommand({
  type: "cluster.record-launches",
  aggregate: "cluster",
  internal: true,
  // 1,000 slots: more than a cluster has (a pool's count is bounded far below).
  schema: z.object({ ...clusterRef, launches: z.array(launchedSlot).min(1).max(1_000) }),
  aggregateId: (d) => d.clusterId,
  description:
    "internal: EC2 launched these slots' instances (`cluster.record-launch` for many slots, one commit).",
});
export const RecordRunningInstances = defineCommand({
  type: "cluster.record-running-instances",
  aggregate: "cluster",
  internal: true,
  schema: z.object({
    ...clusterRef,
    instances: z
      .array(z.object({ slot: slotNumber, instanceId: z.string().min(1), privateIp: z.string().optional() }))
      .min(1)
      .max(1_000),
  }),
  aggregateId: (d) => d.clusterId,
  description:
    "internal: these slots' instances are running (`cluster.record-running` for many slots, one commit).",
});
export const RecordTerminated = defineCommand({
  type: "cluster.record-terminated",
  aggregate: "cluster",
  internal: true,
  schema: z.object({ ...clusterRef, slots: z.array(slotNumber).min(1) }),
  aggregateId: (d) => d.clusterId,
  description: "internal: these slots' instances are terminated.",
});
export const RecordInstalled = defineCommand({
  type: "cluster.record-installed",
  aggregate: "cluster",
  internal: true,
  schema: z.object({ ...clusterRef, nodes: z.number().int().min(0), k3sVersion }),
  aggregateId: (d) => d.clusterId,
  description: "internal: the installer reports every node joined and Ready.",
});
export const RecordInstallFailure = defineCommand({
  type: "cluster.record-install-failure",
  aggregate: "cluster",
  internal: true,
  schema: z.object({ ...clusterRef, reason: z.string(), remediation: z.string() }),
  aggregateId: (d) => d.clusterId,
  description: "internal: the installer cannot install K3s on the cluster.",
});
export const RecordHealth = defineCommand({
  type: "cluster.record-health",
  aggregate: "cluster",
  internal: true,
  schema: z.object({
    ...clusterRef,
    health: z.enum(["degraded", "recovering", "healthy"]),
    reason: z.string(),
    remediation: z.string().optional(),
  }),
  aggregateId: (d) => d.clusterId,
  description: "internal: the installer's health checks changed their verdict on the cluster.",
});
export const RecordK3sVersion = defineCommand({
  type: "cluster.record-k3s-version",
  aggregate: "cluster",
  internal: true,
  schema: z.object({ ...clusterRef, k3sVersion }),
  aggregateId: (d) => d.clusterId,
  description: "internal: the installer upgraded every node to this K3s version.",
});
export const ReplaceNode = defineCommand({
  type: "cluster.replace-node",
  aggregate: "cluster",
  internal: true,
  schema: z.object({
    ...clusterRef,
    slot: slotNumber,
    instanceId: z.string().min(1),
    reason: z.string(),
    /** The instance is still a node being drained (a spot interruption): terminate it once drained, not now. */
    drainFirst: z.boolean().optional(),
  }),
  aggregateId: (d) => d.clusterId,
  description:
    "internal: a slot's instance did not become a Ready node in time, or is about to be reclaimed (spot interruption): launch another, terminate it (after its drain when `drainFirst`).",
});
export const FinishDeletion = defineCommand({
  type: "cluster.finish-deletion",
  aggregate: "cluster",
  internal: true,
  schema: z.object({
    ...clusterRef,
    terminated: z.array(z.string()),
    sessionsLeft: z.array(clusterSessionRef).optional(),
  }),
  aggregateId: (d) => d.clusterId,
  description: "internal: every instance of the cluster is terminated.",
});

export const clusterCommands = [
  CreateCluster,
  ScaleCluster,
  RollbackCluster,
  DeleteCluster,
  UpdatePool,
  RetryCluster,
  StartValidation,
  RecordValidation,
  StartProvisioning,
  RecordLaunch,
  RecordLaunchFailure,
  RecordRunning,
  RecordLaunches,
  RecordLaunchFailures,
  RecordRunningInstances,
  RecordTerminated,
  RecordInstalled,
  RecordInstallFailure,
  RecordHealth,
  RecordK3sVersion,
  ReplaceNode,
  FinishDeletion,
] as const;
export type ClusterCommand = CommandOf<(typeof clusterCommands)[number]>;

// Events
export const ClusterRequested = defineEvent({
  type: "cluster.requested",
  aggregate: "cluster",
  schema: z.object({ spec: clusterSpec }),
  description: "A valid create command was accepted; the cluster is Pending with this spec.",
});
export const ClusterScaleRequested = defineEvent({
  type: "cluster.scale-requested",
  aggregate: "cluster",
  schema: z.object({ pool: tokenSafeId, from: z.number().int().min(0), to: z.number().int().min(0) }),
  description: "A pool's desired count changed.",
});
export const ClusterRollbackRequested = defineEvent({
  type: "cluster.rollback-requested",
  aggregate: "cluster",
  schema: z.object({ toVersion: z.number().int().positive(), spec: clusterSpec }),
  description: "The cluster is to be reconciled back to the spec it had at `toVersion`.",
});
export const ClusterDeletionRequested = defineEvent({
  type: "cluster.deletion-requested",
  aggregate: "cluster",
  schema: z.object({
    /** The delete said `force: true`. */
    force: z.boolean().optional(),
    /** The live sessions the delete saw on the cluster (a forced delete ends them). */
    sessions: z.array(clusterSessionRef).optional(),
  }),
  description:
    "The cluster is Deleting: its sessions are ended (cause `cluster-deleted`; `sessions`: those live when it was decided, `force` when they were), then its instances are terminated.",
});
export const ClusterRejected = defineRejected("cluster");

/** A node slot: one instance's place in the cluster, stable across relaunches. */
export const nodeSlot = z.object({
  /** Stable number: servers 0..6; pool i's slots (i + 1) · 1000 + ordinal. */
  slot: slotNumber,
  pool: tokenSafeId,
  ordinal: z.number().int().min(0),
  role: z.enum(["server", "agent"]),
});
export type NodeSlot = z.infer<typeof nodeSlot>;

/**
 * Slot numbering, the one definition: servers are slots 0..n-1; member `ordinal` of the
 * spec's pool `i` is slot (i + 1) · 1000 + ordinal. A pool holds at most
 * `CLUSTER_LIMITS.maxPoolNodes` (< 1000) members, so the numbers never collide, and a
 * slot keeps its number across scales (members are added and removed at the top).
 */
const POOL_SLOT_STRIDE = 1000;

/** Where a slot number sits: a server's ordinal, or a pool's index in the spec and the member's ordinal. */
export type SlotPlace =
  | { readonly role: "server"; readonly ordinal: number }
  | { readonly role: "agent"; readonly poolIndex: number; readonly ordinal: number };

/**
 * The slot number of a server (`poolIndex` undefined) or of a pool member.
 * @example slotOf(undefined, 2) // 2
 * @example slotOf(1, 3) // 2003 — the fourth member of the spec's second pool
 */
export function slotOf(poolIndex: number | undefined, ordinal: number): number {
  return poolIndex === undefined ? ordinal : (poolIndex + 1) * POOL_SLOT_STRIDE + ordinal;
}

/** The inverse of `slotOf`. @example placeOfSlot(2003) // { role: "agent", poolIndex: 1, ordinal: 3 } */
export function placeOfSlot(slot: number): SlotPlace {
  if (slot < POOL_SLOT_STRIDE) return { role: "server", ordinal: slot };
  return {
    role: "agent",
    poolIndex: Math.floor(slot / POOL_SLOT_STRIDE) - 1,
    ordinal: slot % POOL_SLOT_STRIDE,
  };
}

/** Server or agent, from the number alone (events recorded before they carried the role). */
export function roleOfSlot(slot: number): NodeSlot["role"] {
  return placeOfSlot(slot).role;
}

/**
 * The pool a slot belongs to under a spec (or a plan with the spec's pools in order):
 * `SERVER_POOL` for a server, undefined for a pool index the spec does not have.
 */
export function poolOfSlot(
  spec: { readonly pools: readonly { readonly name: string }[] },
  slot: number,
): string | undefined {
  const place = placeOfSlot(slot);
  return place.role === "server" ? SERVER_POOL : spec.pools[place.poolIndex]?.name;
}

/** The slots a spec asks for, servers first, then each pool's members in order. */
export function plannedSlots(spec: Pick<ClusterSpec, "servers" | "pools">): NodeSlot[] {
  const slots: NodeSlot[] = [];
  for (let o = 0; o < spec.servers.count; o++)
    slots.push({ slot: slotOf(undefined, o), pool: SERVER_POOL, ordinal: o, role: "server" });
  spec.pools.forEach((p, i) => {
    for (let o = 0; o < p.count; o++)
      slots.push({ slot: slotOf(i, o), pool: p.name, ordinal: o, role: "agent" });
  });
  return slots;
}
export const placement = z.object({
  instanceType,
  availabilityZone: z.string().optional(),
  capacityType: z.enum(["spot", "on-demand"]),
});

export const ValidationStarted = defineEvent({
  type: "cluster.validation-started",
  aggregate: "cluster",
  schema: z.object({}),
  description:
    "The cluster is Validating: its spec is checked against the region before anything is launched.",
});
export const ClusterValidated = defineEvent({
  type: "cluster.validated",
  aggregate: "cluster",
  schema: z.object({ imageId: z.string(), architecture: z.string() }),
  description: "The region has the spec's image, and it suits every instance type: provisioning starts.",
});
export const ProvisioningStarted = defineEvent({
  type: "cluster.provisioning-started",
  aggregate: "cluster",
  schema: z.object({ slots: z.array(nodeSlot) }),
  description: "The cluster is Provisioning: its node slots are planned.",
});
export const InstanceLaunchRequested = defineEvent({
  type: "cluster.instance-launch-requested",
  aggregate: "cluster",
  schema: nodeSlot.extend({
    attempt,
    placement,
    /**
     * The RunInstances call the slot is launched by (issue 16; absent in events recorded
     * before, which launched one slot per call): slots `firstSlot … firstSlot+count-1`, all
     * of one pool, role, placement and attempt, in one call with MinCount 1 and MaxCount
     * `count` under one ClientToken; the instance with AmiLaunchIndex k is slot
     * `firstSlot + k`. Every member names the same batch, so any of them can make the call.
     */
    batch: z.object({ firstSlot: slotNumber, count: z.number().int().min(1).max(1_000) }).optional(),
  }),
  description:
    "A slot's instance is to be launched (attempt n, this placement), alone or in a batch of consecutive slots; idempotent by its ClientToken.",
});
export const InstanceLaunched = defineEvent({
  type: "cluster.instance-launched",
  aggregate: "cluster",
  schema: z.object({
    slot: slotNumber,
    attempt,
    instanceId: z.string(),
    availabilityZone: z.string().optional(),
    privateIp: z.string().optional(),
  }),
  description: "EC2 accepted the launch: the slot has an instance (pending).",
});
export const InstanceLaunchFailed = defineEvent({
  type: "cluster.instance-launch-failed",
  aggregate: "cluster",
  schema: z.object({
    slot: slotNumber,
    attempt,
    placement,
    code: z.string(),
    reason: z.string(),
    remediation: z.string().optional(),
    capacity: z.boolean(),
  }),
  description: "A launch attempt failed for good; a capacity failure moves to the next placement.",
});
export const InstanceRunning = defineEvent({
  type: "cluster.instance-running",
  aggregate: "cluster",
  schema: z.object({
    slot: slotNumber,
    instanceId: z.string(),
    // What the installer joins the node as (absent in events recorded before they were added).
    role: z.enum(["server", "agent"]).optional(),
    pool: tokenSafeId.optional(),
    capacityType: z.enum(["spot", "on-demand"]).optional(),
    privateIp: z.string().optional(),
  }),
  description: "A slot's instance is running (with the role, pool and capacity type K3s is to join it as).",
});
export const InstancesReady = defineEvent({
  type: "cluster.instances-ready",
  aggregate: "cluster",
  schema: z.object({ count: z.number().int().min(0) }),
  description: "Every slot's instance runs: the cluster is Configuring (K3s is installed next).",
});
export const InstanceTerminationRequested = defineEvent({
  type: "cluster.instance-termination-requested",
  aggregate: "cluster",
  schema: z.object({ slot: slotNumber, instanceId: z.string().optional() }),
  description: "A slot is surplus (scale down): its instance is to be terminated.",
});
export const InstanceTerminated = defineEvent({
  type: "cluster.instance-terminated",
  aggregate: "cluster",
  schema: z.object({ slot: slotNumber }),
  description: "A surplus slot's instance is terminated; the slot is gone.",
});
export const ClusterReady = defineEvent({
  type: "cluster.ready",
  aggregate: "cluster",
  schema: z.object({ nodes: z.number().int().min(0), k3sVersion }),
  description: "K3s runs on every node and every node is Ready: the cluster is Ready.",
});
export const ClusterDegraded = defineEvent({
  type: "cluster.degraded",
  aggregate: "cluster",
  schema: z.object({ reason: z.string(), remediation: z.string().optional() }),
  description: "A Ready cluster's health checks fail: it is Degraded (which checks, what was seen, a hint).",
});
export const ClusterRecovering = defineEvent({
  type: "cluster.recovering",
  aggregate: "cluster",
  schema: z.object({
    reason: z.string(),
    /** What to do if the recovery does not bring it back (absent in events recorded before it was added). */
    remediation: z.string().optional(),
  }),
  description:
    "A recovery action is under way on the cluster (restart K3s, rejoin, replace a node): it is Recovering.",
});
export const K3sUpgraded = defineEvent({
  type: "cluster.k3s-upgraded",
  aggregate: "cluster",
  schema: z.object({ from: k3sVersion, to: k3sVersion }),
  description:
    "Every node runs a new K3s version: the spec says so (a rollback to an earlier version rolls it back).",
});
export const NodeReplacementRequested = defineEvent({
  type: "cluster.node-replacement-requested",
  aggregate: "cluster",
  schema: z.object({
    slot: slotNumber,
    instanceId: z.string(),
    reason: z.string(),
    drainFirst: z.boolean().optional(),
  }),
  description:
    "A slot's instance did not become a Ready node in time, or got a spot interruption notice: the slot is launched again (next event) and the instance terminated (when `drainFirst`, once node-ops has drained its node).",
});
export const ClusterFailed = defineEvent({
  type: "cluster.failed",
  aggregate: "cluster",
  schema: z.object({
    reason: z.string(),
    remediation: z.string().optional(),
    /** What kind of failure (absent in events recorded before it was added). */
    code: clusterFailureCode.optional(),
  }),
  description:
    "The cluster is Failed, with the reason, what would fix it and what kind of failure it was (`code`: validation-failed, no-capacity, launch-failed, install-failed).",
});
export const PoolUpdated = defineEvent({
  type: "cluster.pool-updated",
  aggregate: "cluster",
  schema: z.object({ pool: tokenSafeId, labels, taints: z.array(taint) }),
  description: "A pool's labels and taints changed: its nodes are to carry these.",
});
export const ScaleFailed = defineEvent({
  type: "cluster.scale-failed",
  aggregate: "cluster",
  schema: z.object({ reason: z.string(), remediation: z.string().optional(), spec: clusterSpec }),
  description:
    "A scale could not be completed: the cluster returns to its last good spec (`spec`), terminating what the scale added.",
});
export const RetryRequested = defineEvent({
  type: "cluster.retry-requested",
  aggregate: "cluster",
  schema: z.object({}),
  description: "A Failed cluster is tried again: the slots that do not run are relaunched.",
});
export const ClusterDeleted = defineEvent({
  type: "cluster.deleted",
  aggregate: "cluster",
  schema: z.object({
    terminated: z.array(z.string()),
    /** Sessions still not ended when the wait for them ran out: their instances were terminated under them. */
    sessionsLeft: z.array(clusterSessionRef).optional(),
  }),
  description:
    "Every instance is terminated: the cluster is Deleted (`sessionsLeft`: sessions that had not ended when the provisioner stopped waiting for them).",
});

export const clusterEvents = [
  ClusterRequested,
  ClusterScaleRequested,
  ClusterRollbackRequested,
  ClusterDeletionRequested,
  ClusterRejected,
  ValidationStarted,
  ClusterValidated,
  ProvisioningStarted,
  InstanceLaunchRequested,
  InstanceLaunched,
  InstanceLaunchFailed,
  InstanceRunning,
  InstancesReady,
  ClusterReady,
  ClusterDegraded,
  ClusterRecovering,
  K3sUpgraded,
  NodeReplacementRequested,
  InstanceTerminationRequested,
  InstanceTerminated,
  ClusterFailed,
  PoolUpdated,
  ScaleFailed,
  RetryRequested,
  ClusterDeleted,
] as const;
export type ClusterEvent = EventOf<(typeof clusterEvents)[number]>;
