/**
 * What a person needs to know about a cluster at a glance, folded from its events (pure,
 * event times only, so a replay builds exactly what the live projection built):
 *
 * - **conditions**, in the style of Kubernetes conditions — `{ type, status, reason,
 *   message, lastTransitionTime }`, status `True` · `False` · `Unknown`, `reason` one
 *   PascalCase word for machines, `message` a sentence for people, and
 *   `lastTransitionTime` the time of the event that last changed the *status* (a new
 *   reason or message alone keeps it). Every cluster carries all of `CLUSTER_CONDITION_TYPES`;
 * - **health**, one word for a colour (`CLUSTER_HEALTH`);
 * - **failure**, for a Failed, Degraded or Recovering cluster: why, and what to do
 *   (the event's own hint, else the catalogue's: `clusterRemediation` in @cairn/events).
 */
import {
  type CairnEvent,
  type ClusterEvent,
  type ClusterFailureCode,
  type ClusterStatus,
  clusterRemediation,
  type EventEnvelope,
} from "@cairn/events";

/**
 * The conditions every cluster carries, in the order they are shown:
 *
 * | type | True when |
 * |---|---|
 * | `Ready` | the cluster is Ready: every node joined K3s and is Ready, health checks pass |
 * | `Validated` | the spec suits the region (its image exists and fits every instance type) |
 * | `Provisioned` | every instance the spec wants is running |
 * | `Installed` | K3s runs on every node and every node is Ready (the last install finished) |
 * | `Degraded` | health checks fail (Degraded), or Cairn is repairing it (Recovering) |
 * | `Failed` | the cluster is Failed: it will not get further without a person |
 * | `Deleting` | its deletion was requested and it is not gone yet |
 */
export const CLUSTER_CONDITION_TYPES = [
  "Ready",
  "Validated",
  "Provisioned",
  "Installed",
  "Degraded",
  "Failed",
  "Deleting",
] as const;
export type ClusterConditionType = (typeof CLUSTER_CONDITION_TYPES)[number];
export type ConditionStatus = "True" | "False" | "Unknown";

export interface ClusterCondition {
  readonly type: ClusterConditionType;
  readonly status: ConditionStatus;
  readonly reason: string;
  readonly message: string;
  /** ISO time of the event that last changed `status`. */
  readonly lastTransitionTime: string;
}

/**
 * The cluster's health in one word: `Healthy` (Ready), `Progressing` (being built, scaled,
 * rolled back or deleted), `Degraded`, `Recovering`, `Failed`, and `Unknown` (Deleted:
 * nothing left to judge).
 */
export const CLUSTER_HEALTH = [
  "Healthy",
  "Progressing",
  "Degraded",
  "Recovering",
  "Failed",
  "Unknown",
] as const;
export type ClusterHealth = (typeof CLUSTER_HEALTH)[number];

export function healthOf(state: ClusterStatus): ClusterHealth {
  switch (state) {
    case "Ready":
      return "Healthy";
    case "Degraded":
    case "Recovering":
    case "Failed":
      return state;
    case "Deleted":
      return "Unknown";
    default:
      return "Progressing";
  }
}

/** Why a Failed, Degraded or Recovering cluster is so, and what to do about it. */
export interface ClusterFailure {
  readonly reason: string;
  readonly remediation: string;
  /** What kind: a `cluster.failed` code (validation-failed, no-capacity, launch-failed, install-failed), `degraded` or `recovering`. */
  readonly code: ClusterFailureCode | "degraded" | "recovering";
  /** ISO time of the event that said so. */
  readonly since: string;
}

/** The PascalCase reason of each failure kind, for the `Failed`, `Provisioned`… conditions. */
const FAILURE_REASON: Record<ClusterFailureCode, string> = {
  "validation-failed": "ValidationFailed",
  "no-capacity": "NoCapacity",
  "launch-failed": "LaunchFailed",
  "install-failed": "InstallFailed",
};

/** What a person reads in the `Ready` condition of a cluster in each state (not Ready). */
const NOT_READY: Record<Exclude<ClusterStatus, "Ready">, string> = {
  Pending: "the cluster is accepted and about to be checked",
  Validating: "its spec is being checked against the region",
  Provisioning: "its instances are being launched",
  Configuring: "K3s is being installed on its nodes",
  Scaling: "a pool is being scaled",
  Degraded: "health checks fail",
  Recovering: "Cairn is repairing it",
  RollingBack: "it is being rolled back to an earlier spec",
  Deleting: "it is being deleted",
  Deleted: "it was deleted",
  Failed: "it failed",
};

/** The conditions of a cluster just requested. */
export function initialConditions(time: string): ClusterCondition[] {
  const c = (type: ClusterConditionType, status: ConditionStatus, reason: string, message: string) => ({
    type,
    status,
    reason,
    message,
    lastTransitionTime: time,
  });
  return [
    c("Ready", "False", "Pending", NOT_READY.Pending),
    c("Validated", "Unknown", "NotChecked", "the spec has not been checked against the region yet"),
    c("Provisioned", "False", "NotStarted", "no instance launched yet"),
    c("Installed", "False", "NotStarted", "K3s is installed once every instance runs"),
    c("Degraded", "Unknown", "NotInstalled", "health checks start once K3s is installed"),
    c("Failed", "False", "NoFailure", "nothing has failed"),
    c("Deleting", "False", "NotRequested", "no deletion requested"),
  ];
}

/**
 * `conditions` with one changed: `lastTransitionTime` moves only when the status does.
 * A condition missing (a row projected before conditions existed) is added.
 */
function setCondition(
  conditions: readonly ClusterCondition[],
  type: ClusterConditionType,
  status: ConditionStatus,
  reason: string,
  message: string,
  time: string,
): readonly ClusterCondition[] {
  const at = conditions.findIndex((c) => c.type === type);
  const was = at >= 0 ? conditions[at] : undefined;
  if (was && was.status === status && was.reason === reason && was.message === message) return conditions;
  const next: ClusterCondition = {
    type,
    status,
    reason,
    message,
    lastTransitionTime: was && was.status === status ? was.lastTransitionTime : time,
  };
  if (!was) {
    // In the documented order, whatever was there before.
    const order = (c: { type: ClusterConditionType }) => CLUSTER_CONDITION_TYPES.indexOf(c.type);
    return [...conditions, next].sort((a, b) => order(a) - order(b));
  }
  return conditions.map((c, i) => (i === at ? next : c));
}

/**
 * The kind of a `cluster.failed`: its `code`, or for an event recorded before it carried
 * one, what the cluster was doing and the decider's own words.
 */
export function failureCodeOf(
  data: { readonly reason: string; readonly code?: ClusterFailureCode | undefined },
  before: ClusterStatus,
): ClusterFailureCode {
  if (data.code) return data.code;
  if (before === "Validating") return "validation-failed";
  if (before === "Configuring" || data.reason.startsWith("K3s could not be installed"))
    return "install-failed";
  if (data.reason.startsWith("no capacity left")) return "no-capacity";
  return "launch-failed";
}

/** The part of the row the conditions read and write. */
export interface ConditionsRow {
  readonly state: ClusterStatus;
  readonly conditions: readonly ClusterCondition[];
  readonly failure: ClusterFailure | null;
  /** Slot → status after the event (instances counted in `Provisioned`'s message). */
  readonly slots: Readonly<Record<string, string>>;
}

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? "" : "s"}`;

/** Of a slot record: the slots not terminating, and those running. */
export interface SlotCounts {
  readonly live: number;
  readonly running: number;
}

/**
 * The counts of each slot record a fold has seen, kept beside it: a fold moves one slot per
 * event and carries the counts over (`carrySlotCounts`), so `k of n instances running` costs
 * O(1) per event, not a walk of every slot. A walk was O(nodes) per event, O(nodes²) per
 * cluster — and more: slot numbers start at 1000 for the first pool, so V8 backs a copied
 * slot record with a ~1,000-entry array whatever the node count (docs/projector.md "Live
 * apply, fifth pass").
 */
const slotCountsOf = new WeakMap<object, SlotCounts>();

/** Walks of a whole slot record (for tests: a fold must not walk one per event). */
export const slotWalks = { count: 0 };

const countOf = (s: string | undefined) => ({
  live: s !== undefined && s !== "terminating" ? 1 : 0,
  running: s === "running" ? 1 : 0,
});

/** The counts of `slots`: remembered, else walked once. */
export function slotCounts(slots: Readonly<Record<string, string>>): SlotCounts {
  const known = slotCountsOf.get(slots);
  if (known) return known;
  slotWalks.count++;
  let live = 0;
  let running = 0;
  for (const k in slots) {
    const s = slots[k];
    if (s !== "terminating") live++;
    if (s === "running") running++;
  }
  const counts = { live, running };
  slotCountsOf.set(slots, counts);
  return counts;
}

/**
 * Records the counts of `to`: those of `from` (known, else nothing is recorded) with one
 * slot moved from `was` to `now` (undefined: absent). `to` may be `from` (changed in place).
 */
export function carrySlotCounts(
  from: object,
  to: object,
  was: string | undefined,
  now: string | undefined,
): void {
  const c = slotCountsOf.get(from);
  if (!c) return;
  const a = countOf(was);
  const b = countOf(now);
  slotCountsOf.set(to, { live: c.live - a.live + b.live, running: c.running - a.running + b.running });
}

/** `k of n instances running`, from the slots (terminating ones are on their way out). */
function runningMessage(slots: Readonly<Record<string, string>>): string {
  const { live, running } = slotCounts(slots);
  return `${running} of ${plural(live, "instance")} running`;
}

/**
 * The conditions and the failure after `event`. `before` is the row before it, `state`
 * and `slots` what the event made of them. Pure.
 */
export function conditionsAfter(
  before: ConditionsRow,
  after: { readonly state: ClusterStatus; readonly slots: Readonly<Record<string, string>> },
  event: CairnEvent,
): { conditions: readonly ClusterCondition[]; failure: ClusterFailure | null } {
  const t = event.time;
  let conds = before.conditions;
  let failure = before.failure;
  const set = (type: ClusterConditionType, status: ConditionStatus, reason: string, message: string) => {
    conds = setCondition(conds, type, status, reason, message, t);
  };
  // The catalogue parsed `data` against the type's schema: the cast only names it.
  const e = event as unknown as EventEnvelope<ClusterEvent>;
  switch (e.type) {
    case "cluster.validation-started":
      set("Validated", "Unknown", "Validating", "checking the spec's image against the region");
      break;
    case "cluster.validated":
      set(
        "Validated",
        "True",
        "ImageFound",
        `image ${e.data.imageId} (${e.data.architecture}) suits every instance type`,
      );
      break;
    case "cluster.provisioning-started":
      set("Provisioned", "False", "Provisioning", runningMessage(after.slots));
      break;
    case "cluster.instance-launch-requested":
    case "cluster.instance-launched":
    case "cluster.instance-running":
    case "cluster.instance-terminated":
      // The count moves; the reason stays what it was (Provisioning, Scaling, Retrying…).
      if (conds.find((c) => c.type === "Provisioned")?.status === "False") {
        const was = conds.find((c) => c.type === "Provisioned");
        set("Provisioned", "False", was?.reason ?? "Provisioning", runningMessage(after.slots));
      }
      break;
    case "cluster.instance-launch-failed": {
      const d = e.data;
      const what = `slot ${d.slot} attempt ${d.attempt} (${d.placement.instanceType}, ${d.placement.capacityType}): ${d.code}: ${d.reason}`;
      set(
        "Provisioned",
        "False",
        d.capacity ? "NoCapacity" : "LaunchFailed",
        d.capacity ? `${what}; trying the next placement` : what,
      );
      break;
    }
    case "cluster.instances-ready":
      set("Provisioned", "True", "InstancesRunning", `${plural(e.data.count, "instance")} running`);
      if (after.state === "Configuring" && before.state !== "Configuring")
        set(
          "Installed",
          "False",
          "Installing",
          "K3s is being installed: servers initialised and joined, agents joined, nodes Ready",
        );
      break;
    case "cluster.ready":
      set(
        "Installed",
        "True",
        "K3sReady",
        `K3s ${e.data.k3sVersion} on ${plural(e.data.nodes, "node")}, every one Ready`,
      );
      set("Degraded", "False", "HealthChecksPass", "every health check passes");
      break;
    case "cluster.degraded":
      set("Degraded", "True", "HealthCheckFailing", e.data.reason);
      failure = {
        reason: e.data.reason,
        remediation: clusterRemediation("degraded", e.data.remediation),
        code: "degraded",
        since: t,
      };
      break;
    case "cluster.recovering":
      set("Degraded", "True", "Recovering", e.data.reason);
      failure = {
        reason: e.data.reason,
        remediation: clusterRemediation("recovering", e.data.remediation),
        code: "recovering",
        since: t,
      };
      break;
    case "cluster.node-replacement-requested": {
      const why = `replacing the instance of slot ${e.data.slot} (${e.data.instanceId}): ${e.data.reason}`;
      set("Provisioned", "False", "ReplacingNode", why);
      if (after.state === "Recovering" && before.state !== "Recovering") {
        set("Degraded", "True", "Recovering", why);
        failure = {
          reason: why,
          remediation: clusterRemediation("recovering", undefined),
          code: "recovering",
          since: t,
        };
      }
      break;
    }
    case "cluster.k3s-upgraded": {
      const installed = conds.find((c) => c.type === "Installed");
      if (installed?.status === "True")
        set("Installed", "True", "K3sReady", `K3s ${e.data.to} (upgraded from ${e.data.from})`);
      break;
    }
    case "cluster.scale-requested":
      set(
        "Provisioned",
        "False",
        "Scaling",
        `pool ${e.data.pool}: ${e.data.from} → ${e.data.to} nodes; ${runningMessage(after.slots)}`,
      );
      break;
    case "cluster.scale-failed":
      set(
        "Provisioned",
        "False",
        "ScaleFailed",
        `${e.data.reason}; back to the last good spec (${clusterRemediation("scale-failed", e.data.remediation)})`,
      );
      break;
    case "cluster.rollback-requested":
      set("Provisioned", "False", "RollingBack", `to the spec of version ${e.data.toVersion}`);
      if (before.state === "Failed")
        set("Failed", "False", "RollingBack", `rolling back to version ${e.data.toVersion}`);
      break;
    case "cluster.retry-requested":
      set("Provisioned", "False", "Retrying", "the slots that do not run are launched again");
      set("Failed", "False", "Retrying", "a retry was requested");
      break;
    case "cluster.failed": {
      const code = failureCodeOf(e.data, before.state);
      const reason = FAILURE_REASON[code];
      set("Failed", "True", reason, e.data.reason);
      if (code === "validation-failed") set("Validated", "False", reason, e.data.reason);
      else if (code === "install-failed") set("Installed", "False", reason, e.data.reason);
      else set("Provisioned", "False", reason, e.data.reason);
      failure = {
        reason: e.data.reason,
        remediation: clusterRemediation(code, e.data.remediation),
        code,
        since: t,
      };
      break;
    }
    case "cluster.deletion-requested": {
      const live = e.data.sessions?.length ?? 0;
      set(
        "Deleting",
        "True",
        "DeletionRequested",
        live > 0
          ? `${plural(live, "live session")} ${e.data.force ? "are ended first (forced)" : "end first"}, then every instance is terminated`
          : "every instance is terminated",
      );
      break;
    }
    case "cluster.deleted": {
      const left = e.data.sessionsLeft?.length ?? 0;
      set(
        "Deleting",
        "False",
        "Deleted",
        `${plural(e.data.terminated.length, "instance")} terminated${left > 0 ? `; ${plural(left, "session")} had not ended` : ""}`,
      );
      set("Provisioned", "False", "Deleted", "every instance is terminated");
      set("Installed", "False", "Deleted", "the cluster was deleted");
      break;
    }
    default:
      break;
  }
  // Ready follows the state; the failure is kept only while the cluster is in trouble.
  if (after.state !== before.state || e.type === "cluster.ready") {
    if (after.state === "Ready")
      set(
        "Ready",
        "True",
        "Ready",
        conds.find((c) => c.type === "Installed")?.message ?? "every node is Ready",
      );
  }
  if (after.state !== "Ready") {
    const trouble = after.state === "Failed" || after.state === "Degraded" || after.state === "Recovering";
    set("Ready", "False", after.state, trouble && failure ? failure.reason : NOT_READY[after.state]);
  }
  if (after.state !== "Failed" && after.state !== "Degraded" && after.state !== "Recovering") failure = null;
  return { conditions: conds, failure };
}
