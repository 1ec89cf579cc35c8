import { z } from "zod";
import { tokenSafeId } from "../ids.ts";
import { instanceType, k3sVersion } from "./cluster.ts";
import { defineRejected, labels, taint } from "./common.ts";
import { type CommandOf, defineCommand, defineEvent, type EventOf } from "./define.ts";
import { nodeName } from "./nodeop.ts";

/**
 * The `install` aggregate (one per cluster, id = the cluster id) is the installer's: K3s
 * on the cluster's instances over SSM Run Command. The installer follows the cluster's
 * events (a node slot's instance running, the instances ready, the cluster deleting) and
 * node-ops' facts (`kube.*`), and records what SSM did through internal commands.
 *
 * Secrets (the K3s join token, the kubeconfig) live only in SSM SecureString parameters;
 * events name the parameters, never their values.
 */

/** An SSM Run Command step; the name is also the script's `# cairn-step:` header. */
export const installStep = z.enum([
  "k3s-server-init",
  "k3s-server-join",
  "k3s-agent-join",
  "k3s-restart",
  "k3s-check",
  "k3s-upgrade",
]);
export type InstallStep = z.infer<typeof installStep>;

/** What an SSM invocation ended as (its `Status`), or `Lost` when SSM has no record of it. */
export const invocationStatus = z.enum([
  "Success",
  "Failed",
  "TimedOut",
  "Cancelled",
  "Undeliverable",
  "Lost",
]);

const slot = z.number().int().min(0);
const attempt = z.number().int().min(1);
const byCluster = (d: { clusterId: string }) => d.clusterId;
const clusterRef = { clusterId: tokenSafeId };
const isoTime = z.string().datetime();
/**
 * A batch of one step on several nodes, sent as one SSM command (`InstanceIds` ≤ 50):
 * named by the install's version when it was requested and its place in that commit,
 * unique within the install, and written into the command's comment so that a send cut
 * short by a crash is found again.
 */
const batchId = z.string().regex(/^[0-9]+\.[0-9]+$/);
/**
 * The kube fact's position in the cluster's kube history (its envelope's `position`: one per
 * event, so two facts of one commit differ too): a node's readiness is recorded from newer facts only.
 */
const factSequence = z.number().int().positive();
/** SSM's limit of instances named in one SendCommand. */
export const MAX_BATCH_INSTANCES = 50;
/** The last lines of a step's output, bounded and with secrets redacted. */
const outputTail = z.string().max(4_096);

export const installPool = z.object({
  name: tokenSafeId,
  capacityType: z.enum(["spot", "on-demand"]),
  labels,
  taints: z.array(taint),
});
export type InstallPool = z.infer<typeof installPool>;

const planData = {
  region: z.string().min(1),
  k3sVersion,
  /** The instances boot a pre-built Cairn AMI (K3s already installed): the download is skipped. */
  prebuiltAmi: z.boolean(),
  servers: z.number().int().min(1),
  serverInstanceType: instanceType.optional(),
  /** In the spec's order: pool i's node slots are (i + 1) · 1000 + ordinal. */
  pools: z.array(installPool),
};

// Commands. All internal but for the ones a user sends (none yet: upgrades come later).
export const PlanInstall = defineCommand({
  type: "install.plan",
  aggregate: "install",
  internal: true,
  schema: z.object({ ...clusterRef, ...planData }),
  aggregateId: byCluster,
  description: "internal: the cluster's spec as the install needs it (version, pools' labels and taints).",
});
export const AddInstallNode = defineCommand({
  type: "install.add-node",
  aggregate: "install",
  internal: true,
  schema: z.object({
    ...clusterRef,
    slot,
    instanceId: z.string().min(1),
    role: z.enum(["server", "agent"]),
    pool: tokenSafeId,
    capacityType: z.enum(["spot", "on-demand"]),
    privateIp: z.string().optional(),
  }),
  aggregateId: byCluster,
  description: "internal: a node slot's instance runs; K3s is to be installed on it.",
});
export const RemoveInstallNode = defineCommand({
  type: "install.remove-node",
  aggregate: "install",
  internal: true,
  schema: z.object({
    ...clusterRef,
    slot,
    // The instance going away, when known: the slot may hold its successor by the time the
    // removal is decided (the cluster's events reach the installer's replicas out of order).
    instanceId: z.string().min(1).optional(),
  }),
  aggregateId: byCluster,
  description: "internal: a node slot's instance is going away; nothing more is done on it.",
});
export const RecordSecrets = defineCommand({
  type: "install.record-secrets",
  aggregate: "install",
  internal: true,
  schema: z.object({ ...clusterRef, parameters: z.array(z.string().min(1)).min(1) }),
  aggregateId: byCluster,
  description: "internal: the cluster's join token is stored in its SecureString parameter.",
});
export const RecordOnline = defineCommand({
  type: "install.record-online",
  aggregate: "install",
  internal: true,
  schema: z.object({ ...clusterRef, slot, instanceId: z.string().min(1) }),
  aggregateId: byCluster,
  description: "internal: the instance's SSM Agent is registered (the instance is managed).",
});
export const RecordStepSent = defineCommand({
  type: "install.record-step-sent",
  aggregate: "install",
  internal: true,
  schema: z.object({
    ...clusterRef,
    slot,
    step: installStep,
    attempt,
    commandId: z.string().min(1),
    sentAt: isoTime,
  }),
  aggregateId: byCluster,
  description: "internal: SSM accepted the step's command.",
});
export const RecordBatchSent = defineCommand({
  type: "install.record-batch-sent",
  aggregate: "install",
  internal: true,
  schema: z.object({
    ...clusterRef,
    batch: batchId,
    commandId: z.string().min(1),
    sentAt: isoTime,
    /** The instances the command names: only the batch's nodes among them are recorded sent. */
    instanceIds: z.array(z.string().min(1)).min(1).max(MAX_BATCH_INSTANCES),
  }),
  aggregateId: byCluster,
  description: "internal: SSM accepted one command for a batch of nodes' steps (the instances it names).",
});
export const RecordStepResult = defineCommand({
  type: "install.record-step-result",
  aggregate: "install",
  internal: true,
  schema: z.object({
    ...clusterRef,
    slot,
    step: installStep,
    attempt,
    commandId: z.string().optional(),
    status: invocationStatus,
    durationMs: z.number().int().nonnegative().optional(),
    outputTail,
    /** Why it did not succeed, in words (the installer's, not the script's). */
    reason: z.string().optional(),
    /** A failure sending the command that no retry will cure (e.g. the document is refused). */
    permanent: z.boolean().default(false),
  }),
  aggregateId: byCluster,
  description:
    "internal: a step's command ended (or could not be sent, or passed its deadline and was cancelled).",
});
export const RecordNodeState = defineCommand({
  type: "install.record-node-state",
  aggregate: "install",
  internal: true,
  schema: z.object({
    ...clusterRef,
    node: nodeName,
    state: z.enum(["ready", "not-ready", "removed"]),
    reason: z.string().optional(),
    /** The kube fact's position in its history: a fact no newer than the node's last recorded one is stale (a redelivery). */
    factSequence: factSequence.optional(),
  }),
  aggregateId: byCluster,
  description: "internal: node-ops reported a node Ready, NotReady or gone.",
});
/**
 * Records of many nodes in one commit (the installer's group commit): each decided in
 * order as its own command would be, on the state the ones before it left. Only records
 * a second decision of leaves unchanged (by the install's state, not by command id).
 */
export const RecordMany = defineCommand({
  type: "install.record-many",
  aggregate: "install",
  internal: true,
  schema: z.object({
    ...clusterRef,
    records: z
      .array(
        z.discriminatedUnion("type", [
          z.object({ type: z.literal("install.add-node"), data: AddInstallNode.schema }),
          z.object({ type: z.literal("install.record-online"), data: RecordOnline.schema }),
          z.object({ type: z.literal("install.record-step-sent"), data: RecordStepSent.schema }),
          z.object({ type: z.literal("install.record-step-result"), data: RecordStepResult.schema }),
          z.object({ type: z.literal("install.record-node-state"), data: RecordNodeState.schema }),
        ]),
      )
      .min(1)
      .max(1_000),
  }),
  aggregateId: byCluster,
  description:
    "internal: several nodes' add-node, record-online, record-step-sent, record-step-result and record-node-state (with its fact's sequence) in one commit, decided in order.",
});
export const RecordKubeconfig = defineCommand({
  type: "install.record-kubeconfig",
  aggregate: "install",
  internal: true,
  schema: z.object({ ...clusterRef, parameter: z.string().min(1), version: z.number().int().positive() }),
  aggregateId: byCluster,
  description: "internal: the kubeconfig parameter exists (checked without reading its value).",
});
export const RecordInstancesReady = defineCommand({
  type: "install.record-instances-ready",
  aggregate: "install",
  internal: true,
  schema: z.object({ ...clusterRef, count: z.number().int().min(0) }),
  aggregateId: byCluster,
  description:
    "internal: the provisioner has every slot's instance running; the install completes once each is a Ready node.",
});
export const CheckJoinDeadlines = defineCommand({
  type: "install.check-deadlines",
  aggregate: "install",
  internal: true,
  schema: z.object(clusterRef),
  aggregateId: byCluster,
  description: "internal: give up on nodes that have not joined by their deadline.",
});
export const RemoveInstall = defineCommand({
  type: "install.remove",
  aggregate: "install",
  internal: true,
  schema: z.object(clusterRef),
  aggregateId: byCluster,
  description: "internal: the cluster is being deleted: stop, and remove its secrets.",
});
export const RecordSecretsRemoved = defineCommand({
  type: "install.record-secrets-removed",
  aggregate: "install",
  internal: true,
  schema: z.object({ ...clusterRef, parameters: z.array(z.string()) }),
  aggregateId: byCluster,
  description: "internal: the cluster's SecureString parameters are deleted.",
});
/** A health check: an SSM probe of the K3s service, or one of node-ops' facts. */
export const healthCheck = z.enum(["k3s-active", "node-ready", "api-reachable", "no-pressure"]);
export type HealthCheck = z.infer<typeof healthCheck>;
/** The ladder of recovery actions on an unhealthy node, in order. */
export const remediationAction = z.enum(["restart-k3s", "rejoin", "replace"]);
export type RemediationAction = z.infer<typeof remediationAction>;

export const RecordCheck = defineCommand({
  type: "install.record-check",
  aggregate: "install",
  internal: true,
  schema: z.object({
    ...clusterRef,
    check: healthCheck,
    /** The node checked; absent for a cluster-wide check (the API server). */
    node: nodeName.optional(),
    ok: z.boolean(),
    /** What was seen, for a failing check (bounded, redacted). */
    evidence: z.string().max(2_000).optional(),
  }),
  aggregateId: byCluster,
  description: "internal: the result of one health check; an event follows only when it changes.",
});
export const CheckRemediation = defineCommand({
  type: "install.check-remediation",
  aggregate: "install",
  internal: true,
  schema: z.object({ ...clusterRef, node: nodeName, action: remediationAction, attempt }),
  aggregateId: byCluster,
  description:
    "internal: a recovery action's grace period is over: climb the ladder if the node is still unhealthy.",
});
// Rolling K3s upgrades.
export const UpgradeInstall = defineCommand({
  type: "install.upgrade",
  aggregate: "install",
  schema: z.object({
    ...clusterRef,
    k3sVersion,
    /** Nodes upgraded at once (default 1): each is cordoned, drained, upgraded and verified first. */
    batch: z.number().int().min(1).max(50).default(1),
  }),
  aggregateId: byCluster,
  description:
    "Upgrade K3s on a Ready cluster: servers first, then agents, `batch` nodes at a time, each cordoned and drained through node-ops, upgraded, verified Ready and uncordoned before the next.",
});
export const RecordUpgradeProgress = defineCommand({
  type: "install.record-upgrade-progress",
  aggregate: "install",
  internal: true,
  schema: z.object({
    ...clusterRef,
    node: nodeName,
    phase: z.enum(["drained", "verified", "drain-failed"]),
    reason: z.string().optional(),
  }),
  aggregateId: byCluster,
  description:
    "internal: node-ops drained a node for its upgrade (or could not), or the upgraded node is Ready.",
});
export const installCommands = [
  PlanInstall,
  AddInstallNode,
  RemoveInstallNode,
  RecordSecrets,
  RecordOnline,
  RecordStepSent,
  RecordBatchSent,
  RecordStepResult,
  RecordMany,
  RecordKubeconfig,
  RecordNodeState,
  RecordInstancesReady,
  CheckJoinDeadlines,
  RemoveInstall,
  RecordSecretsRemoved,
  RecordCheck,
  CheckRemediation,
  UpgradeInstall,
  RecordUpgradeProgress,
] as const;
export type InstallCommand = CommandOf<(typeof installCommands)[number]>;

// Events
export const InstallRejected = defineRejected("install");
export const InstallPlanned = defineEvent({
  type: "install.planned",
  aggregate: "install",
  schema: z.object(planData),
  description:
    "What the install is to make: the K3s version, the server count, the pools with the labels and taints their nodes join with. Repeated when the cluster's spec changes.",
});
export const SecretsStored = defineEvent({
  type: "install.secrets-stored",
  aggregate: "install",
  schema: z.object({ parameters: z.array(z.string().min(1)) }),
  description: "The cluster's join token is in its SecureString parameter (named here; the value never is).",
});
export const InstallNodeAdded = defineEvent({
  type: "install.node-added",
  aggregate: "install",
  schema: z.object({
    slot,
    instanceId: z.string(),
    node: nodeName,
    role: z.enum(["server", "agent"]),
    pool: tokenSafeId,
    capacityType: z.enum(["spot", "on-demand"]),
    privateIp: z.string().optional(),
    /** ISO 8601: a node not Ready by then is given up on (and replaced by the provisioner). */
    joinDeadline: isoTime,
  }),
  description: "A node slot's instance runs: K3s is to be installed on it, as this node, by the deadline.",
});
export const InstallNodeRemoved = defineEvent({
  type: "install.node-removed",
  aggregate: "install",
  schema: z.object({ slot, instanceId: z.string(), node: nodeName }),
  description: "A node slot's instance went away: nothing more is done on it.",
});
export const NodeOnline = defineEvent({
  type: "install.node-online",
  aggregate: "install",
  schema: z.object({ slot, instanceId: z.string() }),
  description: "The instance's SSM Agent registered: steps can be sent to it.",
});
export const StepRequested = defineEvent({
  type: "install.step-requested",
  aggregate: "install",
  schema: z.object({
    step: installStep,
    slot,
    instanceId: z.string(),
    node: nodeName,
    attempt,
    /** Step X of Y of the install as it stands (Y grows when nodes are added). */
    number: z.number().int().min(1),
    of: z.number().int().min(1),
    /** Sent with the other nodes of this batch in one command (`install.batch-requested`); absent: on its own. */
    batch: batchId.optional(),
  }),
  description:
    "A step is to be sent to a node, as attempt n (a retry is a new, recorded attempt); with `batch`, in one command with the batch's other nodes.",
});
export const StepSent = defineEvent({
  type: "install.step-sent",
  aggregate: "install",
  schema: z.object({
    step: installStep,
    slot,
    instanceId: z.string(),
    attempt,
    commandId: z.string(),
    sentAt: isoTime,
    /** ISO 8601: past this the command is cancelled and the step tried again (or given up). */
    deadline: isoTime,
    /** The node's step went out in this batch's command (polled by `install.batch-sent`). */
    batch: batchId.optional(),
  }),
  description: "SSM accepted the step's command: its id is polled from here on, never sent again.",
});
export const BatchRequested = defineEvent({
  type: "install.batch-requested",
  aggregate: "install",
  schema: z.object({
    batch: batchId,
    step: installStep,
    /** The nodes whose `install.step-requested` names this batch, all running the same script. */
    slots: z.array(slot).min(2).max(MAX_BATCH_INSTANCES),
    instanceIds: z.array(z.string()).min(2).max(MAX_BATCH_INSTANCES),
  }),
  description:
    "Several nodes' requested steps (the same step, the same script) are to go out as one SSM command: one SendCommand instead of one per node.",
});
export const BatchSent = defineEvent({
  type: "install.batch-sent",
  aggregate: "install",
  schema: z.object({
    batch: batchId,
    step: installStep,
    commandId: z.string(),
    /** The nodes recorded sent in this command (each has its `install.step-sent`). */
    slots: z.array(slot).min(1).max(MAX_BATCH_INSTANCES),
    sentAt: isoTime,
    deadline: isoTime,
  }),
  description:
    "SSM accepted a batch's command: its invocations are polled together (ListCommandInvocations by command id), each node's result recorded on its own.",
});
export const StepSucceeded = defineEvent({
  type: "install.step-succeeded",
  aggregate: "install",
  schema: z.object({
    step: installStep,
    slot,
    instanceId: z.string(),
    attempt,
    commandId: z.string(),
    durationMs: z.number().int().nonnegative(),
    outputTail,
  }),
  description: "A step's command succeeded: how long it took and the last lines it printed.",
});
export const StepFailed = defineEvent({
  type: "install.step-failed",
  aggregate: "install",
  schema: z.object({
    step: installStep,
    slot,
    instanceId: z.string(),
    attempt,
    commandId: z.string().optional(),
    status: invocationStatus,
    reason: z.string(),
    outputTail,
    /** Another attempt follows (a new `install.step-requested`). */
    willRetry: z.boolean(),
    remediation: z.string().optional(),
  }),
  description:
    "A step's command did not succeed: the status, the output's tail, and whether it is tried again.",
});
export const KubeconfigPublished = defineEvent({
  type: "install.kubeconfig-published",
  aggregate: "install",
  schema: z.object({
    /** The SSM SecureString parameter that holds the kubeconfig (never the kubeconfig itself). */
    parameter: z.string().min(1),
    /** The parameter's version when it was checked. */
    version: z.number().int().positive(),
  }),
  description:
    "The cluster's kubeconfig is in its SecureString parameter: its API server can be reached (node-ops starts watching it).",
});
export const InstallNodeReady = defineEvent({
  type: "install.node-ready",
  aggregate: "install",
  schema: z.object({ slot, node: nodeName, factSequence: factSequence.optional() }),
  description: "node-ops reports the joined node Ready.",
});
export const InstallNodeNotReady = defineEvent({
  type: "install.node-not-ready",
  aggregate: "install",
  schema: z.object({ slot, node: nodeName, reason: z.string(), factSequence: factSequence.optional() }),
  description: "node-ops reports the node not Ready (any more).",
});
export const InstallInstancesReady = defineEvent({
  type: "install.instances-ready",
  aggregate: "install",
  schema: z.object({ count: z.number().int().min(0) }),
  description: "The provisioner has this many instances running, all the cluster wants.",
});
export const InstallCompleted = defineEvent({
  type: "install.completed",
  aggregate: "install",
  schema: z.object({ nodes: z.number().int().min(0), k3sVersion }),
  description: "Every node the cluster wants joined and is Ready: the cluster is Ready.",
});
export const InstallFailed = defineEvent({
  type: "install.failed",
  aggregate: "install",
  schema: z.object({
    step: installStep,
    slot: slot.optional(),
    reason: z.string(),
    remediation: z.string(),
    outputTail: outputTail.optional(),
  }),
  description: "The install cannot go on (the first server could not be installed): the cluster is Failed.",
});
export const InstallNodeFailed = defineEvent({
  type: "install.node-failed",
  aggregate: "install",
  schema: z.object({
    slot,
    instanceId: z.string(),
    node: nodeName,
    reason: z.string(),
    remediation: z.string(),
    outputTail: outputTail.optional(),
  }),
  description:
    "A node did not join (its steps failed for good, or its deadline passed): the provisioner replaces its instance.",
});
export const InstallRemovalRequested = defineEvent({
  type: "install.removal-requested",
  aggregate: "install",
  schema: z.object({}),
  description: "The cluster is being deleted: nothing more is installed, its secrets are to be removed.",
});
export const SecretsRemoved = defineEvent({
  type: "install.secrets-removed",
  aggregate: "install",
  schema: z.object({ parameters: z.array(z.string()) }),
  description: "The cluster's SecureString parameters (join token, kubeconfig) are deleted.",
});
const failingCheck = z.object({ check: healthCheck, node: nodeName.optional(), evidence: z.string() });
export const CheckFailed = defineEvent({
  type: "install.check-failed",
  aggregate: "install",
  schema: failingCheck.extend({ remediation: z.string() }),
  description:
    "A health check started failing (on a node, or cluster-wide): what was seen and what would fix it.",
});
export const CheckPassed = defineEvent({
  type: "install.check-passed",
  aggregate: "install",
  schema: z.object({ check: healthCheck, node: nodeName.optional() }),
  description: "A failing health check passes again.",
});
export const InstallDegraded = defineEvent({
  type: "install.degraded",
  aggregate: "install",
  schema: z.object({ failing: z.array(failingCheck).min(1), remediation: z.string() }),
  description: "A Ready cluster has failing checks: it is Degraded (the checks, the evidence, a hint).",
});
export const RemediationRequested = defineEvent({
  type: "install.remediation-requested",
  aggregate: "install",
  schema: z.object({ slot, node: nodeName, action: remediationAction, attempt, reason: z.string() }),
  description:
    "A recovery action on an unhealthy node (restart K3s, rejoin, replace), the next rung of the ladder: the cluster is Recovering.",
});
export const RemediationWithheld = defineEvent({
  type: "install.remediation-withheld",
  aggregate: "install",
  schema: z.object({ unhealthy: z.number().int().min(0), of: z.number().int().min(0), reason: z.string() }),
  description:
    "Too many nodes are unhealthy at once (over 40%): that smells of a wider outage, so no node is touched until it passes.",
});
export const InstallRecovered = defineEvent({
  type: "install.recovered",
  aggregate: "install",
  schema: z.object({}),
  description: "Every health check passes again: the cluster is Ready.",
});
export const UpgradeRequested = defineEvent({
  type: "install.upgrade-requested",
  aggregate: "install",
  schema: z.object({
    from: k3sVersion,
    to: k3sVersion,
    nodes: z.number().int().min(0),
    batch: z.number().int().min(1),
  }),
  description: "A rolling K3s upgrade starts: servers first, then agents, `batch` at a time.",
});
export const NodeUpgradeStarted = defineEvent({
  type: "install.node-upgrade-started",
  aggregate: "install",
  schema: z.object({
    slot,
    node: nodeName,
    to: k3sVersion,
    number: z.number().int().min(1),
    of: z.number().int().min(1),
  }),
  description: "A node's turn in the rolling upgrade: node-ops cordons and drains it first.",
});
export const NodeDrainedForUpgrade = defineEvent({
  type: "install.node-drained",
  aggregate: "install",
  schema: z.object({ slot, node: nodeName }),
  description: "node-ops drained the node: the upgrade step is sent next.",
});
export const NodeUpgraded = defineEvent({
  type: "install.node-upgraded",
  aggregate: "install",
  schema: z.object({ slot, node: nodeName, k3sVersion }),
  description: "The node runs the new K3s and is Ready: node-ops uncordons it, the next node's turn comes.",
});
export const InstallUpgraded = defineEvent({
  type: "install.upgraded",
  aggregate: "install",
  schema: z.object({ from: k3sVersion, to: k3sVersion, nodes: z.number().int().min(0) }),
  description: "Every node runs the new K3s version.",
});
export const UpgradeFailed = defineEvent({
  type: "install.upgrade-failed",
  aggregate: "install",
  schema: z.object({ slot, node: nodeName, reason: z.string(), remediation: z.string() }),
  description:
    "The rolling upgrade stopped at a node (its drain or its upgrade step failed): the node stays cordoned, the rest untouched.",
});
export const installEvents = [
  InstallRejected,
  InstallPlanned,
  SecretsStored,
  InstallNodeAdded,
  InstallNodeRemoved,
  NodeOnline,
  StepRequested,
  StepSent,
  BatchRequested,
  BatchSent,
  StepSucceeded,
  StepFailed,
  KubeconfigPublished,
  InstallNodeReady,
  InstallNodeNotReady,
  InstallInstancesReady,
  InstallCompleted,
  InstallFailed,
  InstallNodeFailed,
  InstallRemovalRequested,
  SecretsRemoved,
  CheckFailed,
  CheckPassed,
  InstallDegraded,
  RemediationRequested,
  RemediationWithheld,
  InstallRecovered,
  UpgradeRequested,
  NodeUpgradeStarted,
  NodeDrainedForUpgrade,
  NodeUpgraded,
  InstallUpgraded,
  UpgradeFailed,
] as const;
export type InstallEvent = EventOf<(typeof installEvents)[number]>;
