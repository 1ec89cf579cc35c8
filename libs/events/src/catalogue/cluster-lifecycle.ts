/**
 * The cluster's lifecycle, the one definition: which event moves a cluster from which
 * status to which, which event moves a node slot, and how the spec follows the events.
 * The provisioner's `evolve` (the owner) and the projector's `clusters` fold (the read
 * model) both apply it, so the two cannot drift apart.
 *
 * These are facts of the log: a transition applies whatever `decide` checked before it
 * emitted the event. The guards on commands (only a Failed cluster can be retried, a
 * Deleting one cannot scale) live in the provisioner's `decide`.
 */
import type { ClusterEvent, ClusterSpec } from "./cluster.ts";

/** The provisioner's words for a cluster's state (DESIGN §7). */
export const CLUSTER_STATUSES = [
  "Pending",
  "Validating",
  "Provisioning",
  "Configuring",
  "Ready",
  "Scaling",
  "Degraded",
  "Recovering",
  "RollingBack",
  "Deleting",
  "Deleted",
  "Failed",
] as const;
export type ClusterStatus = (typeof CLUSTER_STATUSES)[number];

/** Where one node slot is: its instance launching, launched (pending), running, or being terminated. */
export type SlotStatus = "launching" | "launched" | "running" | "terminating";

interface Transition {
  readonly to: ClusterStatus;
  /** Only from these statuses; from any when absent. */
  readonly from?: readonly ClusterStatus[];
  /** Never from these: the status stays. */
  readonly unless?: readonly ClusterStatus[];
}

/**
 * Every cluster event and the status it moves the cluster to (null: none). Typed over
 * every event type, so a new event must say here what it does to the status.
 */
export const CLUSTER_TRANSITIONS = {
  "cluster.requested": { to: "Pending" },
  "cluster.validation-started": { to: "Validating" },
  "cluster.validated": null,
  "cluster.provisioning-started": { to: "Provisioning" },
  "cluster.instance-launch-requested": null,
  "cluster.instance-launched": null,
  "cluster.instance-launch-failed": null,
  "cluster.instance-running": null,
  // The instances-ready rule: every instance runs, so K3s is configured next. Deleting
  // outranks a late report that the instances run, and a cluster replacing a node stays
  // Recovering until the installer has it Ready again.
  "cluster.instances-ready": { to: "Configuring", unless: ["Recovering", "Deleting", "Deleted"] },
  "cluster.ready": { to: "Ready" },
  "cluster.degraded": { to: "Degraded" },
  "cluster.recovering": { to: "Recovering" },
  // Replacing a node of a Ready cluster makes it Recovering; a cluster still being built
  // (or already Degraded, Recovering) keeps its status while the slot relaunches.
  "cluster.node-replacement-requested": { to: "Recovering", from: ["Ready"] },
  "cluster.k3s-upgraded": null,
  "cluster.scale-requested": { to: "Scaling" },
  "cluster.rollback-requested": { to: "RollingBack" },
  "cluster.scale-failed": null,
  "cluster.pool-updated": null,
  "cluster.instance-termination-requested": null,
  "cluster.instance-terminated": null,
  "cluster.deletion-requested": { to: "Deleting" },
  "cluster.failed": { to: "Failed" },
  "cluster.retry-requested": { to: "Provisioning" },
  "cluster.deleted": { to: "Deleted" },
  "cluster.rejected": null,
} as const satisfies Record<ClusterEvent["type"], Transition | null>;

const own = <T extends object>(table: T, key: string): T[keyof T] | undefined =>
  Object.hasOwn(table, key) ? table[key as keyof T] : undefined;

/**
 * The status `event` moves a cluster in `status` to, or undefined when it moves it
 * nowhere (no transition for the event, or not from this status). A cluster that does
 * not exist yet (`status` undefined) comes into being only by `cluster.requested`.
 * Event types this code does not know yet move nothing.
 * @example clusterTransition("Ready", { type: "cluster.node-replacement-requested" }) // "Recovering"
 * @example clusterTransition("Provisioning", { type: "cluster.node-replacement-requested" }) // undefined
 */
export function clusterTransition(
  status: ClusterStatus | undefined,
  event: { readonly type: string },
): ClusterStatus | undefined {
  const t: Transition | null | undefined = own(CLUSTER_TRANSITIONS, event.type);
  if (!t) return undefined;
  if (status === undefined) return event.type === "cluster.requested" ? t.to : undefined;
  if (t.from && !t.from.includes(status)) return undefined;
  if (t.unless?.includes(status)) return undefined;
  return t.to;
}

/** The cluster's status after `event` (unchanged when the event moves it nowhere). */
export function clusterStatusAfter(status: ClusterStatus, event: { readonly type: string }): ClusterStatus {
  return clusterTransition(status, event) ?? status;
}

/** The events that move a node slot, and where to ("gone": the slot is removed). */
export const SLOT_TRANSITIONS = {
  "cluster.instance-launch-requested": "launching",
  "cluster.instance-launched": "launched",
  "cluster.instance-running": "running",
  "cluster.instance-termination-requested": "terminating",
  "cluster.instance-terminated": "gone",
} as const satisfies Partial<Record<ClusterEvent["type"], SlotStatus | "gone">>;

/**
 * The slot `event` moves and its new status (undefined: the slot is gone); undefined
 * when the event moves no slot. `cluster.deleted` removes every slot at once.
 * @example slotMoveOf({ type: "cluster.instance-running", data: { slot: 1000, … } }) // { slot: 1000, status: "running" }
 */
export function slotMoveOf(
  event: ClusterEvent,
): { readonly slot: number; readonly status: SlotStatus | undefined } | undefined {
  if (!movesSlot(event)) return undefined;
  const to: SlotStatus | "gone" = SLOT_TRANSITIONS[event.type];
  return { slot: event.data.slot, status: to === "gone" ? undefined : to };
}

const movesSlot = (e: ClusterEvent): e is Extract<ClusterEvent, { type: keyof typeof SLOT_TRANSITIONS }> =>
  Object.hasOwn(SLOT_TRANSITIONS, e.type);

/**
 * The instances-ready rule, as `decide` checks it before emitting
 * `cluster.instances-ready`: there are slots, and every one runs (none launching, none
 * left to terminate).
 */
export function instancesReady(slots: Iterable<string>): boolean {
  let any = false;
  for (const s of slots) {
    if (s !== "running") return false;
    any = true;
  }
  return any;
}

/**
 * The spec after `event`: scales, rollbacks, a scale undone, pool labels and taints,
 * a K3s upgrade. The same object when the event does not change the spec.
 */
export function clusterSpecAfter(spec: ClusterSpec, event: ClusterEvent): ClusterSpec {
  switch (event.type) {
    case "cluster.requested":
    case "cluster.rollback-requested":
    case "cluster.scale-failed":
      return event.data.spec;
    case "cluster.scale-requested": {
      const { pool, to } = event.data;
      return { ...spec, pools: spec.pools.map((p) => (p.name === pool ? { ...p, count: to } : p)) };
    }
    case "cluster.pool-updated": {
      const { pool, labels, taints } = event.data;
      return { ...spec, pools: spec.pools.map((p) => (p.name === pool ? { ...p, labels, taints } : p)) };
    }
    case "cluster.k3s-upgraded":
      return { ...spec, k3sVersion: event.data.to };
    default:
      return spec;
  }
}
