/**
 * The install aggregate's pure core (one per cluster). No I/O, no clock: time arrives
 * in the context.
 *
 * Each node slot's instance goes: added → online (SSM Agent registered) → its step
 * requested → sent (a command id) → succeeded (joined) → Ready (node-ops' fact). The
 * first server initialises the cluster; further servers join one at a time (embedded
 * etcd grows one member at a time); agents join side by side, at most
 * `maxParallelJoins` at once, as soon as the first server is up. The install completes
 * when every instance the provisioner runs is a Ready node.
 *
 * Never re-sending: a step in flight is only ever polled. A new attempt is a new
 * decision, taken when the last one failed or passed its deadline (the reactor cancels
 * it first), up to `maxAttempts`; then the node is given up on (the provisioner
 * replaces it) — or, for the first server, the install fails.
 */
import {
  assertNever,
  type Decider,
  type EventEnvelope,
  type HealthCheck,
  type InstallCommand,
  type InstallEvent,
  type InstallPool,
  type InstallStep,
  type RemediationAction,
  reject,
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
 * member would be lost): it goes from restarts to replacement.
 */
export const REMEDIATION_LADDER: Readonly<Record<"server" | "agent", readonly RemediationAction[]>> = {
  agent: ["restart-k3s", "restart-k3s", "rejoin", "replace"],
  server: ["restart-k3s", "restart-k3s", "replace"],
};

/** Checks that are a node's own and that its ladder can cure. */
const NODE_CHECKS: ReadonlySet<HealthCheck> = new Set(["k3s-active", "node-ready"]);

export interface FailingCheck {
  readonly check: HealthCheck;
  readonly node?: string;
  readonly evidence: string;
}
const checkKey = (check: string, node?: string) => `${check}/${node ?? "*"}`;

export interface StepInFlight {
  readonly name: InstallStep;
  readonly attempt: number;
  readonly status: "requested" | "sent";
  readonly commandId?: string;
  readonly sentAt?: string;
  readonly deadline?: string;
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
      /** Successful init/join steps so far: "step X" of the progress. */
      readonly stepsDone: number;
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

type Active = Exclude<InstallState, { status: "Absent" }>;

const isOver = (s: InstallState) => s.status === "Removing" || s.status === "Removed";
/** Installing or installed: neither failed nor going away. */
const isLive = (s: InstallState): s is Active => s.status !== "Absent" && s.status !== "Failed" && !isOver(s);

const HINTS: Readonly<Record<HealthCheck, string>> = {
  "k3s-active":
    "the K3s service is not active on the node: Cairn restarts it, then rejoins or replaces the node; read the evidence (systemctl status k3s) if it keeps failing",
  "node-ready":
    "the kubelet reports the node NotReady: check its network and kubelet log (journalctl -u k3s-agent); Cairn restarts K3s, then rejoins or replaces the node",
  "api-reachable":
    "the API server does not answer: check the servers' K3s service and that port 6443 is open between node-ops and the servers",
  "no-pressure":
    "the node reports resource pressure: free disk or memory, drain workloads away, or use a larger instance type for the pool",
};

/** `check-failed` / `check-passed` when a check's result differs from what is on record. */
function checkChange(
  state: Active,
  check: HealthCheck,
  node: string | undefined,
  ok: boolean,
  evidence = "",
): InstallEvent[] {
  const had = state.failing[checkKey(check, node)];
  if (ok) return had ? [{ type: "install.check-passed", data: { check, ...(node ? { node } : {}) } }] : [];
  if (had && had.evidence === evidence) return [];
  if (had) return [];
  return [
    {
      type: "install.check-failed",
      data: {
        check,
        ...(node ? { node } : {}),
        evidence: evidence || `${check} failed`,
        remediation: HINTS[check],
      },
    },
  ];
}

/** The rung's events: the request, and what carries it out (a step, or the node given up on). */
function rung(state: Active, n: InstallNode, index: number, reason: string): InstallEvent[] {
  const ladder = REMEDIATION_LADDER[n.role];
  const action = ladder[index];
  if (!action) return [];
  const attempt = ladder.slice(0, index + 1).filter((a) => a === action).length;
  const requested: InstallEvent = {
    type: "install.remediation-requested",
    data: { slot: n.slot, node: n.node, action, attempt, reason },
  };
  if (action === "replace")
    return [
      requested,
      {
        type: "install.node-failed",
        data: {
          slot: n.slot,
          instanceId: n.instanceId,
          node: n.node,
          reason: `unhealthy after restarting${n.role === "agent" ? " and rejoining" : ""}: ${reason}`,
          remediation:
            "the instance is replaced; if replacements turn unhealthy too, look beyond the node (AMI, network, the servers)",
        },
      },
    ];
  const step: InstallStep = action === "restart-k3s" ? "k3s-restart" : joinStep(n);
  const s1 = { ...state, nodes: { ...state.nodes, [n.slot]: { ...n, step: undefined } } } as Active;
  return [requested, requestStep(s1, n, step, Object.values(state.nodes).filter((x) => x.step).length)];
}

/** What failing checks mean for a cluster that was installed: Degraded, a ladder rung, or Ready again. */
function healthEvents(state: InstallState, policy: InstallPolicy): InstallEvent[] {
  if (!isLive(state) || !state.completedOnce) return [];
  const failing = Object.values(state.failing);
  if (failing.length === 0)
    return state.status === "Degraded" || state.status === "Recovering"
      ? [{ type: "install.recovered", data: {} }]
      : [];
  const out: InstallEvent[] = [];
  if (state.status === "Ready" || state.status === "Installing")
    out.push({
      type: "install.degraded",
      data: {
        failing: failing.map((f) => ({
          check: f.check,
          ...(f.node ? { node: f.node } : {}),
          evidence: f.evidence,
        })),
        remediation: HINTS[failing[0]?.check ?? "node-ready"],
      },
    });
  const nodes = Object.values(state.nodes).filter((n) => !n.failed);
  const unhealthy = [
    ...new Set(failing.filter((f) => f.node && NODE_CHECKS.has(f.check)).map((f) => f.node as string)),
  ];
  if (unhealthy.length === 0) return out;
  if (unhealthy.length / Math.max(1, nodes.length) > policy.maxUnhealthyShare) {
    if (!state.withheld)
      out.push({
        type: "install.remediation-withheld",
        data: {
          unhealthy: unhealthy.length,
          of: nodes.length,
          reason: `${unhealthy.length} of ${nodes.length} nodes are unhealthy at once (over ${Math.round(policy.maxUnhealthyShare * 100)}%): that looks like a wider outage; no node is touched until fewer are`,
        },
      });
    return out;
  }
  let s: Active = state;
  for (const name of unhealthy) {
    const n = nodes.find((x) => x.node === name);
    if (!n || n.remedy || n.step || !n.joined) continue;
    const why = failing
      .filter((f) => f.node === name)
      .map((f) => `${f.check}: ${f.evidence}`)
      .join("; ");
    const events = rung(s, n, 0, why);
    out.push(...events);
    s = after(s, events) as Active;
  }
  return out;
}

const joinStep = (n: InstallNode): InstallStep =>
  n.role === "server" ? "k3s-server-join" : "k3s-agent-join";

function requestStep(state: Active, n: InstallNode, step: InstallStep, inFlight: number): InstallEvent {
  const nodes = Object.values(state.nodes).filter((x) => !x.failed).length;
  return {
    type: "install.step-requested",
    data: {
      step,
      slot: n.slot,
      instanceId: n.instanceId,
      node: n.node,
      attempt: (n.attempts[step] ?? 0) + 1,
      number: Math.min(state.stepsDone + inFlight + 1, Math.max(nodes, 1)),
      of: Math.max(nodes, 1),
    },
  };
}

/**
 * The steps that can start now: the first server's init; then one server join at a
 * time; agents side by side up to the policy's limit. Nodes not online, joined, failed
 * or with a step in flight wait.
 */
function nextSteps(state: Active, policy: InstallPolicy): InstallEvent[] {
  if (!isLive(state)) return [];
  if (!state.secrets) return [];
  const nodes = Object.values(state.nodes).sort((a, b) => a.slot - b.slot);
  const idle = (n: InstallNode) => n.online && !n.joined && !n.failed && !n.step;
  let inFlight = nodes.filter((n) => n.step).length;
  const out: InstallEvent[] = [];
  if (state.initialisedBy === undefined) {
    if (nodes.some((n) => n.step?.name === "k3s-server-init")) return [];
    const first = nodes.find((n) => n.role === "server" && idle(n));
    return first ? [requestStep(state, first, "k3s-server-init", inFlight)] : [];
  }
  if (!nodes.some((n) => n.step?.name === "k3s-server-join")) {
    const server = nodes.find((n) => n.role === "server" && idle(n));
    if (server) {
      out.push(requestStep(state, server, "k3s-server-join", inFlight));
      inFlight++;
    }
  }
  let agents = nodes.filter((n) => n.step?.name === "k3s-agent-join").length;
  for (const n of nodes) {
    if (agents >= policy.maxParallelJoins) break;
    if (n.role !== "agent" || !idle(n)) continue;
    out.push(requestStep(state, n, "k3s-agent-join", inFlight));
    inFlight++;
    agents++;
  }
  return out;
}

/** `install.completed` when a completion is owed and every instance is a Ready node. */
function completion(state: InstallState): InstallEvent[] {
  if (!isLive(state)) return [];
  if (state.awaiting === undefined || !state.kubeconfig) return [];
  const nodes = Object.values(state.nodes);
  if (nodes.length !== state.awaiting) return [];
  if (!nodes.every((n) => n.joined && n.ready && !n.failed)) return [];
  return [{ type: "install.completed", data: { nodes: nodes.length, k3sVersion: state.plan.k3sVersion } }];
}

/** Folds `events` into `state` (positions do not matter to this aggregate). */
function after(state: InstallState, events: readonly InstallEvent[]) {
  return events.reduce<InstallState>((s, e) => evolveInstall(s, { ...e, position: 0 } as never), state);
}

/** The rolling order: servers first (by slot), then agents; joined nodes only. */
function upgradeOrder(state: Active): number[] {
  const nodes = Object.values(state.nodes).filter((n) => n.joined && !n.failed);
  return [...nodes.filter((n) => n.role === "server"), ...nodes.filter((n) => n.role === "agent")]
    .sort((a, b) => (a.role === b.role ? a.slot - b.slot : a.role === "server" ? -1 : 1))
    .map((n) => n.slot);
}

function startUpgrade(state: Active, to: string, batch: number): InstallEvent[] {
  const requested: InstallEvent = {
    type: "install.upgrade-requested",
    data: { from: state.plan.k3sVersion, to, nodes: upgradeOrder(state).length, batch },
  };
  return [requested, ...nextUpgrades(after(state, [requested]) as Active)];
}

/**
 * The next nodes' turns once none is in its upgrade: one server at a time (etcd keeps
 * its quorum), then `batch` agents at a time; `install.upgraded` when none is left.
 */
function nextUpgrades(state: Active): InstallEvent[] {
  const u = state.upgrade;
  if (!u) return [];
  if (Object.values(state.nodes).some((n) => n.upgrading)) return [];
  const queue = u.queue.filter((slot) => state.nodes[slot] && !state.nodes[slot]?.failed);
  if (queue.length === 0)
    return [{ type: "install.upgraded", data: { from: u.from, to: u.to, nodes: u.total } }];
  const first = state.nodes[queue[0] as number];
  const turn = first?.role === "server" ? queue.slice(0, 1) : queue.slice(0, u.batch);
  const done = u.total - queue.length;
  return turn.map((slot, i) => ({
    type: "install.node-upgrade-started",
    data: { slot, node: state.nodes[slot]?.node ?? "", to: u.to, number: done + i + 1, of: u.total },
  }));
}

export function createInstallDecider(
  policy: InstallPolicy = DEFAULT_INSTALL_POLICY,
): Decider<InstallCommand, InstallEvent, InstallState> {
  const decider: Decider<InstallCommand, InstallEvent, InstallState> = {
    aggregate: "install",
    initialState: () => ({ status: "Absent" }),

    decide(command, state, ctx) {
      /** The decision's events, then whatever steps and completion they make possible. */
      const andThen = (events: InstallEvent[]): InstallEvent[] => {
        if (events.length === 0) return events;
        const s1 = after(state, events);
        if (s1.status === "Absent") return events;
        const steps = nextSteps(s1, policy);
        const s2 = after(s1, steps);
        return [...events, ...steps, ...completion(s2)];
      };
      /** The decision's events, then what they mean for the cluster's health. */
      const withHealth = (events: InstallEvent[]): InstallEvent[] => {
        if (events.length === 0) return events;
        return [...events, ...healthEvents(after(state, events), policy)];
      };

      switch (command.type) {
        case "install.plan": {
          const { clusterId: _, ...plan } = command.data;
          if (isOver(state)) return [];
          if (
            state.status !== "Absent" &&
            JSON.stringify(normalisePlan(state.plan)) === JSON.stringify(normalisePlan(plan))
          )
            return [];
          const planned: InstallEvent = { type: "install.planned", data: plan };
          // A new K3s version for an installed cluster (a rollback to an older spec) is
          // rolled out like an upgrade.
          if (
            state.status === "Ready" &&
            state.completedOnce &&
            !state.upgrade &&
            plan.k3sVersion !== state.plan.k3sVersion
          )
            return [
              ...startUpgrade({ ...state, plan: { ...state.plan, pools: plan.pools } }, plan.k3sVersion, 1),
              planned,
            ];
          return [planned];
        }
        case "install.upgrade": {
          const { clusterId, k3sVersion, batch } = command.data;
          if (state.status === "Absent") return reject("not-found", `cluster ${clusterId} has no install`);
          if (state.upgrade)
            return reject(
              "conflict",
              `cluster ${clusterId} is being upgraded to ${state.upgrade.to} already`,
            );
          if (state.status !== "Ready")
            return reject(
              "conflict",
              `only a Ready cluster can be upgraded; cluster ${clusterId} is ${state.status}`,
            );
          if (k3sVersion === state.plan.k3sVersion) return [];
          return startUpgrade(state, k3sVersion, batch);
        }
        case "install.record-upgrade-progress": {
          if (!isLive(state) || !state.upgrade) return [];
          const { node, phase, reason } = command.data;
          const n = Object.values(state.nodes).find((x) => x.node === node);
          if (!n?.upgrading) return [];
          if (phase === "drain-failed" && n.upgrading === "draining")
            return [
              {
                type: "install.upgrade-failed",
                data: {
                  slot: n.slot,
                  node,
                  reason: `node-ops could not drain ${node}: ${reason ?? "the drain failed"}`,
                  remediation:
                    "clear what blocks the drain (see the node operation), then send install.upgrade again",
                },
              },
            ];
          if (phase === "drained" && n.upgrading === "draining") {
            const drained: InstallEvent = { type: "install.node-drained", data: { slot: n.slot, node } };
            const s1 = after(state, [drained]) as Active;
            const inFlight = Object.values(state.nodes).filter((x) => x.step).length;
            return [drained, requestStep(s1, n, "k3s-upgrade", inFlight)];
          }
          if (phase === "verified" && n.upgrading === "verifying") {
            const upgraded: InstallEvent = {
              type: "install.node-upgraded",
              data: { slot: n.slot, node, k3sVersion: state.upgrade.to },
            };
            return [upgraded, ...nextUpgrades(after(state, [upgraded]) as Active)];
          }
          return [];
        }
        case "install.record-secrets": {
          if (state.status === "Absent" || isOver(state) || state.secrets) return [];
          return andThen([{ type: "install.secrets-stored", data: { parameters: command.data.parameters } }]);
        }
        case "install.add-node": {
          if (state.status === "Absent" || isOver(state)) return [];
          const { slot, instanceId, role, pool, capacityType, privateIp } = command.data;
          const have = state.nodes[slot];
          if (have?.instanceId === instanceId) return [];
          const events: InstallEvent[] = [];
          if (have)
            events.push({
              type: "install.node-removed",
              data: { slot, instanceId: have.instanceId, node: have.node },
            });
          events.push({
            type: "install.node-added",
            data: {
              slot,
              instanceId,
              // The EC2 instance id is the node's name: unique, and it maps facts to slots.
              node: instanceId,
              role,
              pool,
              capacityType,
              ...(privateIp ? { privateIp } : {}),
              joinDeadline: new Date(ctx.now.getTime() + policy.joinTimeoutMs).toISOString(),
            },
          });
          return andThen(events);
        }
        case "install.remove-node": {
          if (state.status === "Absent") return [];
          const have = state.nodes[command.data.slot];
          if (!have) return [];
          return andThen([
            {
              type: "install.node-removed",
              data: { slot: have.slot, instanceId: have.instanceId, node: have.node },
            },
          ]);
        }
        case "install.record-online": {
          if (state.status === "Absent" || isOver(state)) return [];
          const n = state.nodes[command.data.slot];
          if (!n || n.instanceId !== command.data.instanceId || n.online) return [];
          return andThen([{ type: "install.node-online", data: { slot: n.slot, instanceId: n.instanceId } }]);
        }
        case "install.record-step-sent": {
          if (state.status === "Absent") return [];
          const { slot, step, attempt, commandId, sentAt } = command.data;
          const n = state.nodes[slot];
          if (n?.step?.name !== step || n.step.attempt !== attempt || n.step.status !== "requested")
            return [];
          const deadline = new Date(Date.parse(sentAt) + policy.stepTimeoutMs[step]).toISOString();
          return [
            {
              type: "install.step-sent",
              data: { step, slot, instanceId: n.instanceId, attempt, commandId, sentAt, deadline },
            },
          ];
        }
        case "install.record-step-result":
          return stepResult(state, command.data, policy, andThen);
        case "install.record-kubeconfig": {
          if (state.status === "Absent" || isOver(state)) return [];
          const { parameter, version } = command.data;
          if (state.kubeconfig?.parameter === parameter && state.kubeconfig.version === version) return [];
          return andThen([{ type: "install.kubeconfig-published", data: { parameter, version } }]);
        }
        case "install.record-node-state": {
          if (state.status === "Absent" || isOver(state)) return [];
          const n = Object.values(state.nodes).find((x) => x.node === command.data.node);
          if (!n) return [];
          const { state: fact } = command.data;
          const reason =
            command.data.reason ?? (fact === "removed" ? "the node left the cluster" : "NotReady");
          // Once installed, readiness is also a health check of the node.
          const health =
            state.completedOnce && n.joined
              ? checkChange(state, "node-ready", n.node, fact === "ready", reason)
              : [];
          if (fact === "ready")
            return withHealth([
              ...andThen(
                n.ready ? [] : [{ type: "install.node-ready", data: { slot: n.slot, node: n.node } }],
              ),
              ...health,
            ]);
          return withHealth([
            ...(n.ready
              ? [{ type: "install.node-not-ready" as const, data: { slot: n.slot, node: n.node, reason } }]
              : []),
            ...health,
          ]);
        }
        case "install.record-instances-ready": {
          if (state.status === "Absent" || isOver(state) || state.status === "Failed") return [];
          return andThen([{ type: "install.instances-ready", data: { count: command.data.count } }]);
        }
        case "install.check-deadlines": {
          if (state.status === "Absent" || isOver(state) || state.status === "Failed") return [];
          const late = Object.values(state.nodes).filter(
            (n) => !n.failed && !(n.joined && n.ready) && Date.parse(n.joinDeadline) <= ctx.now.getTime(),
          );
          return late.map((n) => ({
            type: "install.node-failed",
            data: {
              slot: n.slot,
              instanceId: n.instanceId,
              node: n.node,
              reason: `not a Ready node ${Math.round(policy.joinTimeoutMs / 1000)} s after its instance ran: ${whereStuck(n)}`,
              remediation:
                "the instance is replaced; if replacements keep failing, check the instance's SSM Agent (IAM instance profile, outbound HTTPS) and the step output",
            },
          }));
        }
        case "install.record-check": {
          if (!isLive(state) || !state.completedOnce) return [];
          const { check, node, ok, evidence } = command.data;
          if (node && !Object.values(state.nodes).some((n) => n.node === node && n.joined && !n.failed))
            return [];
          return withHealth(checkChange(state, check, node, ok, evidence));
        }
        case "install.check-remediation": {
          if (!isLive(state)) return [];
          const { node, action, attempt } = command.data;
          const n = Object.values(state.nodes).find((x) => x.node === node);
          if (!n?.remedy || n.remedy.action !== action || n.remedy.attempt !== attempt || n.step || n.failed)
            return [];
          const failing = Object.values(state.failing).filter(
            (f) => f.node === n.node && NODE_CHECKS.has(f.check),
          );
          if (failing.length === 0) return [];
          const nodes = Object.values(state.nodes).filter((x) => !x.failed);
          const unhealthy = new Set(
            Object.values(state.failing)
              .filter((f) => f.node && NODE_CHECKS.has(f.check))
              .map((f) => f.node),
          );
          if (unhealthy.size / Math.max(1, nodes.length) > policy.maxUnhealthyShare)
            return healthEvents(state, policy).filter((e) => e.type === "install.remediation-withheld");
          return rung(
            state,
            n,
            n.remedy.rung + 1,
            failing.map((f) => `${f.check}: ${f.evidence}`).join("; "),
          );
        }
        case "install.remove": {
          if (state.status === "Absent" || isOver(state)) return [];
          return [{ type: "install.removal-requested", data: {} }];
        }
        case "install.record-secrets-removed": {
          if (state.status !== "Removing") return [];
          return [{ type: "install.secrets-removed", data: { parameters: command.data.parameters } }];
        }
        default:
          return assertNever(command);
      }
    },

    evolve: evolveInstall,
  };
  return decider;
}

/**
 * Folds one event into the install's state. It does not depend on the policy, so the
 * helpers that fold what they decide (steps, health, upgrades) use it directly.
 */
function evolveInstall(state: InstallState, event: EventEnvelope<InstallEvent>): InstallState {
  if (event.type === "install.planned") {
    if (state.status === "Absent")
      return { status: "Installing", plan: event.data, nodes: {}, stepsDone: 0, failing: {} };
    return { ...state, plan: event.data };
  }
  if (state.status === "Absent") return state;
  const withNode = (slot: number, change: (n: InstallNode) => InstallNode | undefined): InstallState => {
    const n = state.nodes[slot];
    if (!n) return state;
    const { [slot]: _, ...rest } = state.nodes;
    const next = change(n);
    return { ...state, nodes: next ? { ...rest, [slot]: next } : rest };
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
      const removed = withNode(event.data.slot, () => undefined);
      if (removed.status === "Absent") return removed;
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
      const { step, attempt } = event.data;
      return withNode(event.data.slot, (n) => ({
        ...n,
        step: { name: step, attempt, status: "requested" },
        attempts: { ...n.attempts, [step]: attempt },
      }));
    }
    case "install.step-sent": {
      const { step, attempt, commandId, sentAt, deadline } = event.data;
      return withNode(event.data.slot, (n) => ({
        ...n,
        step: { name: step, attempt, status: "sent", commandId, sentAt, deadline },
      }));
    }
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
    case "install.node-ready":
      return withNode(event.data.slot, (n) => ({ ...n, ready: true }));
    case "install.node-not-ready":
      return withNode(event.data.slot, (n) => ({ ...n, ready: false }));
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

function normalisePlan(p: InstallPlan): InstallPlan {
  return {
    region: p.region,
    k3sVersion: p.k3sVersion,
    prebuiltAmi: p.prebuiltAmi,
    servers: p.servers,
    ...(p.serverInstanceType ? { serverInstanceType: p.serverInstanceType } : {}),
    pools: p.pools.map((x) => ({
      name: x.name,
      capacityType: x.capacityType,
      labels: x.labels,
      taints: x.taints,
    })),
  };
}

/** Where a late node got stuck, for the reason a human reads. */
function whereStuck(n: InstallNode): string {
  if (!n.online) return "its SSM Agent never registered";
  if (n.step) return `${n.step.name} attempt ${n.step.attempt} had not finished`;
  if (!n.joined) return "K3s was not installed on it";
  return "K3s runs but the node is not Ready";
}

function stepResult(
  state: InstallState,
  d: Extract<InstallCommand, { type: "install.record-step-result" }>["data"],
  policy: InstallPolicy,
  andThen: (events: InstallEvent[]) => InstallEvent[],
): InstallEvent[] {
  if (state.status === "Absent") return [];
  const n = state.nodes[d.slot];
  const inFlight = n?.step;
  if (!n || !inFlight || inFlight.name !== d.step || inFlight.attempt !== d.attempt) return [];
  if (d.commandId !== undefined && inFlight.commandId !== undefined && inFlight.commandId !== d.commandId)
    return [];
  const commandId = d.commandId ?? inFlight.commandId;
  if (d.status === "Success") {
    return andThen([
      {
        type: "install.step-succeeded",
        data: {
          step: d.step,
          slot: n.slot,
          instanceId: n.instanceId,
          attempt: d.attempt,
          commandId: commandId ?? "",
          durationMs: d.durationMs ?? 0,
          outputTail: d.outputTail,
        },
      },
    ]);
  }
  const retry = !d.permanent && d.attempt < policy.maxAttempts && !isOver(state) && state.status !== "Failed";
  const reason = d.reason ?? `${d.step} ended ${d.status}`;
  const remediation = remediationFor(d.step, d.status);
  const failed: InstallEvent = {
    type: "install.step-failed",
    data: {
      step: d.step,
      slot: n.slot,
      instanceId: n.instanceId,
      attempt: d.attempt,
      ...(commandId ? { commandId } : {}),
      status: d.status,
      reason,
      outputTail: d.outputTail,
      willRetry: retry,
      remediation,
    },
  };
  if (retry) return andThen([failed]);
  // A recovery action that failed: the ladder's next rung decides, after its grace.
  if (n.remedy) return [failed];
  // An upgrade that failed stops the rollout; the node stays cordoned for a person to look.
  if (d.step === "k3s-upgrade")
    return [
      failed,
      {
        type: "install.upgrade-failed",
        data: {
          slot: n.slot,
          node: n.node,
          reason: `k3s-upgrade failed ${d.attempt} times on ${n.node}: ${reason}`,
          remediation: `${remediation}; the node stays cordoned: fix it, then uncordon it and send install.upgrade again`,
        },
      },
    ];
  const giveUp: InstallEvent =
    d.step === "k3s-server-init" && state.initialisedBy === undefined
      ? {
          type: "install.failed",
          data: {
            step: d.step,
            slot: n.slot,
            reason: `the first server could not be installed after ${d.attempt} attempts: ${reason}`,
            remediation,
            outputTail: d.outputTail,
          },
        }
      : {
          type: "install.node-failed",
          data: {
            slot: n.slot,
            instanceId: n.instanceId,
            node: n.node,
            reason: `${d.step} failed ${d.attempt} times: ${reason}`,
            remediation,
            outputTail: d.outputTail,
          },
        };
  return andThen([failed, giveUp]);
}

function remediationFor(step: InstallStep, status: string): string {
  if (status === "TimedOut")
    return `${step} did not finish in time: check the instance reaches the K3s download and the first server (port 6443), and the instance's size`;
  if (status === "Undeliverable" || status === "Lost")
    return "the SSM Agent did not take the command: check the instance is running and its agent is online";
  if (step === "k3s-server-init")
    return "read the step's output: a K3s version that does not exist, a checksum mismatch or no outbound HTTPS are the usual causes";
  return "read the step's output; check the node reaches the first server on port 6443 and that the join token parameter is readable by the instance role";
}
