/**
 * The install aggregate's state: what one cluster's install knows, the policy its
 * decisions follow, and `evolveInstall`, which folds one event into it. Pure.
 *
 * Each node slot's instance goes: added → online (SSM Agent registered) → its step
 * requested → sent (a command id) → succeeded (joined) → Ready (node-ops' fact). Once
 * the install completed, failing checks make the cluster Degraded and a node's recovery
 * ladder makes it Recovering; a rolling upgrade takes the nodes one turn at a time.
 */
import {
  assertNever,
  type EventEnvelope,
  type HealthCheck,
  type InstallCommand,
  type InstallEvent,
  type InstallPool,
  type InstallStep,
  type RemediationAction,
} from "@cairn/events";

export interface InstallPolicy {
  /** A node not Ready this long after its instance ran is given up on (default 10 min). */
  readonly joinTimeoutMs: number;
  /** Attempts of one step on one node, the first included (default 3). */
  readonly maxAttempts: number;
  /** Agent joins in flight at once (default 20). */
  readonly maxParallelJoins: number;
  /** How long a step may run before it is cancelled and tried again. */
  readonly stepTimeoutMs: Readonly<Record<InstallStep, number>>;
  /** After a recovery action, how long the node has to pass its checks before the next rung. */
  readonly remediationGraceMs: number;
  /** Above this share of unhealthy nodes no node is touched (a wider outage, not a node's). */
  readonly maxUnhealthyShare: number;
}

export const DEFAULT_INSTALL_POLICY: InstallPolicy = {
  joinTimeoutMs: 10 * 60_000,
  maxAttempts: 3,
  maxParallelJoins: 20,
  stepTimeoutMs: {
    "k3s-server-init": 10 * 60_000,
    "k3s-server-join": 6 * 60_000,
    "k3s-agent-join": 6 * 60_000,
    "k3s-restart": 2 * 60_000,
    "k3s-check": 60_000,
    "k3s-upgrade": 10 * 60_000,
  },
  remediationGraceMs: 60_000,
  maxUnhealthyShare: 0.4,
};

/**
 * The recovery ladder of a node, rung by rung: restart K3s (twice), rejoin the agent,
 * then ask the provisioner for a new instance. A server is never rejoined (its etcd
 * member would be lost): it goes from restarts to replacement. Here with the state
 * because a node's `remedy.rung` is an index into it.
 */
export const REMEDIATION_LADDER: Readonly<Record<"server" | "agent", readonly RemediationAction[]>> = {
  agent: ["restart-k3s", "restart-k3s", "rejoin", "replace"],
  server: ["restart-k3s", "restart-k3s", "replace"],
};

export interface FailingCheck {
  readonly check: HealthCheck;
  readonly node?: string;
  readonly evidence: string;
}
/** How many removed instance ids an install remembers (`gone`): far more than can arrive late. */
export const GONE_KEPT = 64;

/** Nodes whose init or join succeeded and that are still the install's: "step X" of the progress. */
export const joinedCount = (nodes: Readonly<Record<number, InstallNode>>) =>
  Object.values(nodes).filter((n) => n.joined && !n.failed).length;

/** The key of a failing check in `failing`: one entry per check and node. */
export const checkKey = (check: string, node?: string) => `${check}/${node ?? "*"}`;

export interface StepInFlight {
  readonly name: InstallStep;
  readonly attempt: number;
  readonly status: "requested" | "sent";
  readonly commandId?: string;
  readonly sentAt?: string;
  readonly deadline?: string;
  /** Sent in one command with the other nodes of this batch (`install.batch-requested`). */
  readonly batch?: string;
}

export interface InstallNode {
  readonly slot: number;
  readonly instanceId: string;
  readonly node: string;
  readonly role: "server" | "agent";
  readonly pool: string;
  readonly capacityType: "spot" | "on-demand";
  readonly privateIp?: string;
  readonly joinDeadline: string;
  readonly online: boolean;
  /** Its init or join step succeeded: K3s runs there. */
  readonly joined: boolean;
  /** node-ops reports it Ready. */
  readonly ready: boolean;
  /** The position (in the cluster's kube history) of the fact its readiness was last recorded from: older facts are stale. */
  readonly factSequence?: number;
  /** Given up on: no more steps (the provisioner replaces it). */
  readonly failed: boolean;
  readonly step?: StepInFlight;
  /** The last attempt of each step on this node. */
  readonly attempts: Readonly<Partial<Record<InstallStep, number>>>;
  /** The recovery ladder's rung in progress (index into REMEDIATION_LADDER), when one is. */
  readonly remedy?: { readonly rung: number; readonly action: RemediationAction; readonly attempt: number };
  /** Where the node is in a rolling upgrade, while it is its turn. */
  readonly upgrading?: "draining" | "upgrading" | "verifying";
}

export interface InstallPlan {
  readonly region: string;
  readonly k3sVersion: string;
  readonly prebuiltAmi: boolean;
  readonly servers: number;
  readonly serverInstanceType?: string;
  readonly pools: readonly InstallPool[];
}

export type InstallStatus =
  | "Installing"
  | "Ready"
  | "Degraded"
  | "Recovering"
  | "Failed"
  | "Removing"
  | "Removed";

export type InstallState =
  | { readonly status: "Absent" }
  | {
      readonly status: InstallStatus;
      readonly plan: InstallPlan;
      readonly secrets?: readonly string[];
      readonly kubeconfig?: { readonly parameter: string; readonly version: number };
      readonly nodes: Readonly<Record<number, InstallNode>>;
      /** The server whose init made the cluster (undefined until one succeeded). */
      readonly initialisedBy?: number;
      /** The provisioner's last count of running instances, while a completion is owed. */
      readonly awaiting?: number;
      /** Successful init/join steps so far (of nodes since removed too). */
      readonly stepsDone: number;
      /**
       * The last instances removed from the install (newest last, at most GONE_KEPT): an
       * add of one of them that comes after its removal (the cluster's events reach the
       * installer's replicas out of order) is stale, and would otherwise wait for a node
       * that is going away and block the completion.
       */
      readonly gone?: readonly string[];
      /** The install completed once: from here on, health checks count. */
      readonly completedOnce?: boolean;
      /** Failing health checks by `check/node`. */
      readonly failing: Readonly<Record<string, FailingCheck>>;
      /** Remediation is held back (too many nodes unhealthy at once). */
      readonly withheld?: boolean;
      /** A rolling upgrade under way: the slots still to do, in order. */
      readonly upgrade?: {
        readonly from: string;
        readonly to: string;
        readonly batch: number;
        readonly queue: readonly number[];
        readonly total: number;
      };
    };

/** An install that exists (planned, whatever its status since). */
export type Active = Exclude<InstallState, { status: "Absent" }>;

/** The data of one install command, for the concern that decides it. */
export type CommandData<T extends InstallCommand["type"]> = Extract<InstallCommand, { type: T }>["data"];

export const initialInstallState = (): InstallState => ({ status: "Absent" });

export const isOver = (s: InstallState) => s.status === "Removing" || s.status === "Removed";
/** Installing or installed: neither failed nor going away. */
export const isLive = (s: InstallState): s is Active =>
  s.status !== "Absent" && s.status !== "Failed" && !isOver(s);

/**
 * Folds `events` into `state` (positions do not matter to this aggregate): a concern
 * that decides several things in turn looks at the state its first events make.
 */
export function after(state: InstallState, events: readonly InstallEvent[]) {
  return events.reduce<InstallState>((s, e) => evolveInstall(s, { ...e, position: 0 } as never), state);
}

/**
 * The rolling order: servers first (by slot), then agents; joined nodes only. Here
 * because `install.upgrade-requested` records it as the upgrade's queue.
 */
export function upgradeOrder(state: Active): number[] {
  const nodes = Object.values(state.nodes).filter((n) => n.joined && !n.failed);
  return [...nodes.filter((n) => n.role === "server"), ...nodes.filter((n) => n.role === "agent")]
    .sort((a, b) => (a.role === b.role ? a.slot - b.slot : a.role === "server" ? -1 : 1))
    .map((n) => n.slot);
}

/**
 * Folds one event into the install's state. It does not depend on the policy, so the
 * concerns that fold what they decide (steps, health, upgrades) use it directly.
 */
export function evolveInstall(state: InstallState, event: EventEnvelope<InstallEvent>): InstallState {
  if (event.type === "install.planned") {
    if (state.status === "Absent")
      return { status: "Installing", plan: event.data, nodes: {}, stepsDone: 0, failing: {} };
    return { ...state, plan: event.data };
  }
  if (state.status === "Absent") return state;
  const withNode = (slot: number, change: (n: InstallNode) => InstallNode | undefined): InstallState => {
    const n = state.nodes[slot];
    if (!n) return state;
    const next = change(n);
    // A spread and one write: V8 copies an object of integer keys as one block of elements,
    // where `{ [slot]: _, ...rest }` copied it key by key (most of a 500-node install's folds).
    const nodes: Record<number, InstallNode> = { ...state.nodes };
    if (next) nodes[slot] = next;
    else delete nodes[slot];
    return { ...state, nodes };
  };
  switch (event.type) {
    case "install.secrets-stored":
      return { ...state, secrets: event.data.parameters };
    case "install.node-added": {
      const d = event.data;
      const n: InstallNode = {
        slot: d.slot,
        instanceId: d.instanceId,
        node: d.node,
        role: d.role,
        pool: d.pool,
        capacityType: d.capacityType,
        ...(d.privateIp ? { privateIp: d.privateIp } : {}),
        joinDeadline: d.joinDeadline,
        online: false,
        joined: false,
        ready: false,
        failed: false,
        attempts: {},
      };
      const status = state.status === "Ready" ? "Installing" : state.status;
      return { ...state, status, nodes: { ...state.nodes, [d.slot]: n } };
    }
    case "install.node-removed": {
      // Only the instance that went: a slot already holding its successor keeps it (a
      // removal recorded after the successor's add names an instance the slot no longer has).
      const holds = state.nodes[event.data.slot]?.instanceId === event.data.instanceId;
      const left = holds ? withNode(event.data.slot, () => undefined) : state;
      if (left.status === "Absent") return left;
      const gone = [...(left.gone ?? []).filter((id) => id !== event.data.instanceId), event.data.instanceId];
      const removed: Active = { ...left, gone: gone.slice(-GONE_KEPT) };
      if (!holds) return removed;
      // Its checks go with it.
      const next: Active = {
        ...removed,
        failing: Object.fromEntries(
          Object.entries(removed.failing).filter(([, f]) => f.node !== event.data.node),
        ),
      };
      // The server that initialised the cluster is gone: another joined server carries
      // it on; with none left, the next server initialises a new one.
      if (next.initialisedBy === event.data.slot) {
        const other = Object.values(next.nodes).find((n) => n.role === "server" && n.joined);
        const { initialisedBy: _, ...rest } = next;
        return other ? { ...rest, initialisedBy: other.slot } : rest;
      }
      return next;
    }
    case "install.node-online":
      return withNode(event.data.slot, (n) => ({ ...n, online: true }));
    case "install.step-requested": {
      const { step, attempt, batch } = event.data;
      return withNode(event.data.slot, (n) => ({
        ...n,
        step: { name: step, attempt, status: "requested", ...(batch !== undefined ? { batch } : {}) },
        attempts: { ...n.attempts, [step]: attempt },
      }));
    }
    case "install.step-sent": {
      const { step, attempt, commandId, sentAt, deadline, batch } = event.data;
      return withNode(event.data.slot, (n) => ({
        ...n,
        step: {
          name: step,
          attempt,
          status: "sent",
          commandId,
          sentAt,
          deadline,
          ...(batch !== undefined ? { batch } : {}),
        },
      }));
    }
    // A batch's nodes carry it in their own step events; these only tell the reactor to act.
    case "install.batch-requested":
    case "install.batch-sent":
      return state;
    case "install.step-succeeded": {
      const { step, slot } = event.data;
      if (!state.nodes[slot]) return state;
      const installs = step === "k3s-server-init" || step === "k3s-server-join" || step === "k3s-agent-join";
      const s = withNode(slot, (n) => {
        const { step: _, ...without } = n;
        const upgraded = step === "k3s-upgrade" && n.upgrading === "upgrading";
        return {
          ...without,
          joined: n.joined || installs,
          ...(upgraded ? { upgrading: "verifying" as const } : {}),
        };
      });
      if (s.status === "Absent") return s;
      return {
        ...s,
        stepsDone: s.stepsDone + (installs ? 1 : 0),
        ...(step === "k3s-server-init" ? { initialisedBy: slot } : {}),
      };
    }
    case "install.step-failed":
      return withNode(event.data.slot, (n) => {
        const { step: _, ...without } = n;
        return without;
      });
    case "install.kubeconfig-published":
      return { ...state, kubeconfig: { parameter: event.data.parameter, version: event.data.version } };
    case "install.node-ready": {
      const seq = event.data.factSequence;
      return withNode(event.data.slot, (n) => ({ ...n, ready: true, ...(seq ? { factSequence: seq } : {}) }));
    }
    case "install.node-not-ready": {
      const seq = event.data.factSequence;
      return withNode(event.data.slot, (n) => ({
        ...n,
        ready: false,
        ...(seq ? { factSequence: seq } : {}),
      }));
    }
    case "install.instances-ready":
      return { ...state, awaiting: event.data.count };
    case "install.completed": {
      const { awaiting: _, ...rest } = state;
      const healthy = Object.keys(state.failing).length === 0;
      const status = healthy
        ? "Ready"
        : state.status === "Installing" || state.status === "Ready"
          ? "Degraded"
          : state.status;
      return { ...rest, status, completedOnce: true };
    }
    case "install.check-failed": {
      const { check, node, evidence } = event.data;
      const failing = {
        ...state.failing,
        [checkKey(check, node)]: { check, ...(node ? { node } : {}), evidence },
      };
      return { ...state, failing };
    }
    case "install.check-passed": {
      const { [checkKey(event.data.check, event.data.node)]: _, ...failing } = state.failing;
      const node = event.data.node;
      const s1: Active = { ...state, failing };
      // A node with nothing failing any more is done with its ladder.
      if (!node || Object.values(failing).some((f) => f.node === node)) return s1;
      const n = Object.values(s1.nodes).find((x) => x.node === node);
      if (!n?.remedy) return s1;
      const { remedy: _r, ...without } = n;
      return { ...s1, nodes: { ...s1.nodes, [n.slot]: without } };
    }
    case "install.degraded":
      return { ...state, status: "Degraded" };
    case "install.remediation-requested": {
      const { action, attempt } = event.data;
      const s1 = withNode(event.data.slot, (n) => {
        const ladder = REMEDIATION_LADDER[n.role];
        let seen = 0;
        const index = ladder.findIndex((a) => a === action && ++seen === attempt);
        return { ...n, remedy: { rung: Math.max(0, index), action, attempt } };
      });
      if (s1.status === "Absent") return s1;
      const { withheld: _, ...rest } = s1;
      return { ...rest, status: "Recovering" };
    }
    case "install.upgrade-requested": {
      const queue = upgradeOrder(state);
      const { from, to, batch } = event.data;
      return { ...state, upgrade: { from, to, batch, queue, total: queue.length } };
    }
    case "install.node-upgrade-started": {
      const s1 = withNode(event.data.slot, (n) => ({ ...n, upgrading: "draining" }));
      if (s1.status === "Absent" || !s1.upgrade) return s1;
      return {
        ...s1,
        upgrade: { ...s1.upgrade, queue: s1.upgrade.queue.filter((x) => x !== event.data.slot) },
      };
    }
    case "install.node-drained":
      return withNode(event.data.slot, (n) => ({ ...n, upgrading: "upgrading" }));
    case "install.node-upgraded":
      return withNode(event.data.slot, (n) => {
        const { upgrading: _, ...rest } = n;
        return rest;
      });
    case "install.upgraded": {
      const { upgrade: _, ...rest } = state;
      return { ...rest, plan: { ...state.plan, k3sVersion: event.data.to } };
    }
    case "install.upgrade-failed": {
      const { upgrade: _, ...rest } = state;
      const nodes = Object.fromEntries(
        Object.entries(rest.nodes).map(([k, n]) => {
          const { upgrading: _u, ...without } = n;
          return [k, without];
        }),
      );
      return { ...rest, nodes };
    }
    case "install.remediation-withheld":
      return { ...state, withheld: true };
    case "install.recovered": {
      const { withheld: _, ...rest } = state;
      return { ...rest, status: "Ready", failing: {} };
    }
    case "install.failed":
      return { ...state, status: "Failed" };
    case "install.node-failed":
      return withNode(event.data.slot, (n) => {
        const { step: _, ...without } = n;
        return { ...without, failed: true };
      });
    case "install.removal-requested":
      return { ...state, status: "Removing" };
    case "install.secrets-removed":
      return { ...state, status: "Removed" };
    case "install.rejected":
      return state;
    default:
      return assertNever(event);
  }
}
