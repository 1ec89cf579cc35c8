/**
 * The `nodes` read model as a pure fold: one row per (cluster, node), drawn from four
 * aggregates — the provisioner's instance facts (`cluster.*`), the installer's K3s
 * facts (`install.*`), node-ops' Kubernetes facts (`kube.*`) and its operations
 * (`nodeop.*`). The installer names each node after its EC2 instance id, so an event
 * that carries only an instance id (`cluster.instance-running`, `install.node-online`,
 * `install.step-*`) still finds its node.
 */
import {
  type CairnEvent,
  type ClusterEvent,
  type EventEnvelope,
  type InstallEvent,
  type KubeEvent,
  type NodeopEvent,
  nodeAggregateId,
} from "@cairn/events";

export const NODE_K3S_STATES = [
  "pending",
  "joining",
  "joined",
  "ready",
  "not-ready",
  "failed",
  "removed",
] as const;
export type NodeK3sState = (typeof NODE_K3S_STATES)[number];

export interface Taint {
  readonly key: string;
  readonly value?: string;
  readonly effect: string;
}

export interface NodeRow {
  /** `nodeAggregateId(clusterId, node)`: the node-ops aggregate id of the node. */
  readonly id: string;
  readonly clusterId: string;
  readonly node: string;
  readonly slot: number | null;
  readonly pool: string | null;
  readonly role: "server" | "agent" | null;
  readonly capacityType: "spot" | "on-demand" | null;
  readonly instanceId: string | null;
  readonly privateIp: string | null;
  readonly availabilityZone: string | null;
  /** The EC2 instance, as the provisioner saw it last. */
  readonly instance: "launched" | "running" | "terminating" | "terminated" | null;
  /**
   * The node is gone from the cluster for good (scaled down, replaced, its cluster
   * deleted): when and why. A gone node is neither running, registered, ready nor in K3s
   * (`k3s: removed`), whatever event comes after; the row stays, as the node's record.
   */
  readonly gone: { readonly at: string; readonly reason: string } | null;
  /** K3s on the node, as the installer saw it last. */
  readonly k3s: NodeK3sState;
  /** Why K3s is not ready or failed (the installer's words). */
  readonly reason: string | null;
  /** The node in the cluster's Kubernetes API, as node-ops' watcher saw it last. */
  readonly kube: {
    readonly registered: boolean;
    readonly ready: boolean | null;
    readonly notReadyReason: string | null;
    readonly pressure: readonly string[];
    readonly labels: Readonly<Record<string, string>>;
    readonly taints: readonly Taint[];
    readonly unschedulable: boolean;
  };
  /** Cordoned by Cairn: by whom, why, when (null when Cairn does not hold it cordoned). */
  readonly cordon: { readonly by: string; readonly reason: string; readonly at: string } | null;
  /** The provisioner is replacing the instance (why), or a spot interruption notice came. */
  readonly replacement: string | null;
  /** Event times of the node's milestones: the step-duration model learns from them. */
  readonly times: {
    readonly launchedAt: string | null;
    readonly runningAt: string | null;
    readonly addedAt: string | null;
    readonly onlineAt: string | null;
    readonly joinedAt: string | null;
    readonly readyAt: string | null;
  };
  readonly createdAt: string;
  readonly updatedAt: string;
  readonly lastEventType: string;
  readonly lastSequence: number;
}

const JOIN_STEPS = new Set(["k3s-server-init", "k3s-server-join", "k3s-agent-join"]);

/**
 * The (cluster, node) an event is about, or undefined when it is about no single node.
 * The live projection reads the rows of these keys before folding a batch.
 */
export function nodeKeyOf(event: CairnEvent): { clusterId: string; node: string } | undefined {
  return nodeKeysOf(event)[0];
}

/**
 * Every (cluster, node) an event is about: one for most, each terminated instance's node
 * for `cluster.deleted`. The live projection reads these rows before folding a batch.
 */
export function nodeKeysOf(event: CairnEvent): { clusterId: string; node: string }[] {
  if (event.type === "cluster.deleted" && event.aggregate.type === "cluster") {
    return [...new Set(event.data.terminated)].map((node) => ({ clusterId: event.aggregate.id, node }));
  }
  const k = singleNodeKeyOf(event);
  return k ? [k] : [];
}

function singleNodeKeyOf(event: CairnEvent): { clusterId: string; node: string } | undefined {
  // Read by shape, across many event types: the string field of that name, if any.
  const d: unknown = event.data;
  const field = (k: string): string | undefined => {
    const v: unknown = typeof d === "object" && d !== null ? Reflect.get(d, k) : undefined;
    return typeof v === "string" ? v : undefined;
  };
  switch (event.aggregate.type) {
    case "cluster": {
      if (
        event.type !== "cluster.instance-launched" &&
        event.type !== "cluster.instance-running" &&
        event.type !== "cluster.instance-termination-requested" &&
        event.type !== "cluster.node-replacement-requested"
      )
        return undefined;
      const node = field("instanceId");
      return node ? { clusterId: event.aggregate.id, node } : undefined;
    }
    case "install": {
      const node = field("node") ?? field("instanceId");
      return node ? { clusterId: event.aggregate.id, node } : undefined;
    }
    case "kube": {
      const node = field("node");
      return node ? { clusterId: event.aggregate.id, node } : undefined;
    }
    case "nodeop": {
      // The ledger's events (disruption-admitted/released, waiting) are the operations' concern.
      if (event.type.startsWith("nodeop.disruption-") || event.type === "nodeop.waiting") return undefined;
      const clusterId = field("clusterId");
      const node = field("node");
      return clusterId && node ? { clusterId, node } : undefined;
    }
    default:
      return undefined;
  }
}

export const nodeRowId = (k: { clusterId: string; node: string }) => nodeAggregateId(k.clusterId, k.node);

function emptyNode(
  clusterId: string,
  node: string,
  time: string,
): Omit<NodeRow, "updatedAt" | "lastEventType" | "lastSequence"> {
  return {
    id: nodeAggregateId(clusterId, node),
    clusterId,
    node,
    slot: null,
    pool: null,
    role: null,
    capacityType: null,
    instanceId: null,
    privateIp: null,
    availabilityZone: null,
    instance: null,
    gone: null,
    k3s: "pending",
    reason: null,
    kube: {
      registered: false,
      ready: null,
      notReadyReason: null,
      pressure: [],
      labels: {},
      taints: [],
      unschedulable: false,
    },
    cordon: null,
    replacement: null,
    times: {
      launchedAt: null,
      runningAt: null,
      addedAt: null,
      onlineAt: null,
      joinedAt: null,
      readyAt: null,
    },
    createdAt: time,
  };
}

/**
 * `row` gone for good (`gone`: when and why, unless it already was): neither running,
 * registered, ready nor in K3s. The fold seals a row with it; the API seals the rows of a
 * Deleted cluster the deletion event did not name (a node first heard of after it).
 */
export function sealGone(row: NodeRow, gone: NonNullable<NodeRow["gone"]>): NodeRow {
  return {
    ...row,
    gone: row.gone ?? gone,
    k3s: "removed",
    instance: row.instance === null ? null : "terminated",
    kube: { ...row.kube, registered: false, ready: null, notReadyReason: null },
  };
}

/**
 * The node row after one more event that `nodeKeyOf` maps to it. An event about no
 * node, or one this model takes nothing from, leaves the row as it is (undefined
 * stays undefined); any other creates the row when it is missing. The live
 * projection's checkpoint applies each event once, so this fold need not be idempotent.
 */
export function applyNodeEvent(
  row: NodeRow | undefined,
  event: CairnEvent,
  sequence: number,
  /** Which of the event's nodes (`nodeKeysOf`); default its first. */
  key: { clusterId: string; node: string } | undefined = nodeKeyOf(event),
): NodeRow | undefined {
  if (!key) return row;
  const base = row ?? emptyNode(key.clusterId, key.node, event.time);
  const touched = { updatedAt: event.time, lastEventType: event.type, lastSequence: sequence };
  /**
   * Gone is final (a terminated instance, a deleted cluster never comes back): a late
   * event (node-ops' watch hearing a last Ready, an install step finishing after the
   * deletion) updates the row but cannot show it running, registered, ready or in K3s again.
   */
  const sealed = (r: NodeRow): NodeRow => (r.gone === null || r.gone === undefined ? r : sealGone(r, r.gone));
  const next = (change: Partial<NodeRow>): NodeRow => sealed({ ...base, ...touched, ...change });
  const at = event.time;
  /** The node leaves the cluster for good: neither running nor ready any more. */
  const goneNow = (reason: string): NodeRow => next({ gone: base.gone ?? { at, reason } });
  /** Why a node whose Node went away is gone, or undefined if that alone does not say so. */
  const retiredReason = () =>
    base.instance === "terminating"
      ? "its instance was terminated by the provisioner (scale down)"
      : base.replacement !== null
        ? `replaced: ${base.replacement}`
        : undefined;
  switch (event.aggregate.type) {
    case "cluster": {
      const e = event as unknown as EventEnvelope<ClusterEvent>;
      switch (e.type) {
        case "cluster.instance-launched":
          return next({
            slot: e.data.slot,
            instanceId: e.data.instanceId,
            instance: "launched",
            privateIp: e.data.privateIp ?? base.privateIp,
            availabilityZone: e.data.availabilityZone ?? base.availabilityZone,
            times: { ...base.times, launchedAt: at },
          });
        case "cluster.instance-running":
          return next({
            slot: e.data.slot,
            instanceId: e.data.instanceId,
            instance: "running",
            role: e.data.role ?? base.role,
            pool: e.data.pool ?? base.pool,
            capacityType: e.data.capacityType ?? base.capacityType,
            privateIp: e.data.privateIp ?? base.privateIp,
            times: { ...base.times, runningAt: base.times.runningAt ?? at },
          });
        case "cluster.instance-termination-requested":
          return next({ instance: "terminating" });
        case "cluster.node-replacement-requested":
          return next({ replacement: e.data.reason });
        case "cluster.deleted":
          return goneNow("the cluster was deleted");
        default:
          return row;
      }
    }
    case "install": {
      const e = event as unknown as EventEnvelope<InstallEvent>;
      switch (e.type) {
        case "install.node-added":
          return next({
            slot: e.data.slot,
            instanceId: e.data.instanceId,
            role: e.data.role,
            pool: e.data.pool,
            capacityType: e.data.capacityType,
            privateIp: e.data.privateIp ?? base.privateIp,
            k3s: "joining",
            reason: null,
            times: { ...base.times, addedAt: at },
          });
        case "install.node-online":
          return next({ times: { ...base.times, onlineAt: base.times.onlineAt ?? at } });
        case "install.step-succeeded":
          if (!JOIN_STEPS.has(e.data.step)) return next({});
          return next({
            k3s: base.k3s === "pending" || base.k3s === "joining" ? "joined" : base.k3s,
            times: { ...base.times, joinedAt: base.times.joinedAt ?? at },
          });
        case "install.step-failed":
          return next({ reason: e.data.reason });
        case "install.node-ready":
          return next({
            k3s: "ready",
            reason: null,
            times: { ...base.times, readyAt: base.times.readyAt ?? at },
          });
        case "install.node-not-ready":
          return next({ k3s: "not-ready", reason: e.data.reason });
        case "install.node-failed":
          return next({ k3s: "failed", reason: e.data.reason });
        case "install.node-removed":
          return next({ k3s: "removed" });
        default:
          return row ? next({}) : row;
      }
    }
    case "kube": {
      const e = event as unknown as EventEnvelope<KubeEvent>;
      switch (e.type) {
        case "kube.node-registered":
          return next({
            instanceId: e.data.instanceId ?? base.instanceId,
            role: e.data.role,
            pool: e.data.pool ?? base.pool,
            capacityType: e.data.capacityType ?? base.capacityType,
            kube: {
              ...base.kube,
              registered: true,
              labels: e.data.labels,
              taints: e.data.taints,
              unschedulable: e.data.unschedulable ?? false,
            },
          });
        case "kube.node-ready":
          return next({ kube: { ...base.kube, ready: true, notReadyReason: null } });
        case "kube.node-not-ready":
          return next({ kube: { ...base.kube, ready: false, notReadyReason: e.data.reason } });
        case "kube.node-pressure-changed":
          return next({ kube: { ...base.kube, pressure: e.data.pressure } });
        case "kube.node-classification-changed":
          return next({
            kube: {
              ...base.kube,
              labels: e.data.labels,
              taints: e.data.taints,
              unschedulable: e.data.unschedulable,
            },
          });
        case "kube.node-removed": {
          const why = retiredReason();
          return why ? goneNow(why) : next({ kube: { ...base.kube, registered: false, ready: null } });
        }
        default:
          return row;
      }
    }
    case "nodeop": {
      const e = event as unknown as EventEnvelope<NodeopEvent>;
      switch (e.type) {
        case "nodeop.cordoned":
          return next({ cordon: { by: e.data.by, reason: e.data.reason, at } });
        case "nodeop.uncordoned":
          return next({ cordon: null });
        case "nodeop.drain-failed":
          return e.data.leftCordoned ? next({}) : next({ cordon: null });
        case "nodeop.interruption-noticed":
          return next({ replacement: `spot interruption: reclaimed at ${e.data.terminationTime}` });
        case "nodeop.node-deleted":
          return goneNow(retiredReason() ?? `its Node was deleted: ${e.data.reason}`);
        default:
          return row ? next({}) : row;
      }
    }
    default:
      return row;
  }
}
