/**
 * The install's health, pure. Once the install completed, checks count: a failing
 * check makes the cluster Degraded; a node's own failing checks (K3s down, NotReady)
 * start its recovery ladder (REMEDIATION_LADDER), which makes it Recovering; every
 * check passing again makes it Ready. Above `maxUnhealthyShare` of nodes unhealthy at
 * once, no node is touched: that is a wider outage, not a node's.
 *
 * Check results arrive as commands (the health probe's `k3s-active`, node-ops' facts)
 * and become events only when they change what is on record.
 */
import type { HealthCheck, InstallEvent, InstallStep } from "@cairn/events";
import {
  type Active,
  after,
  type CommandData,
  checkKey,
  type InstallNode,
  type InstallPolicy,
  type InstallState,
  isLive,
  isOver,
  REMEDIATION_LADDER,
} from "./state.ts";
import { andThen, joinStep, requestStep } from "./steps.ts";

/** Checks that are a node's own and that its ladder can cure. */
const NODE_CHECKS: ReadonlySet<HealthCheck> = new Set(["k3s-active", "node-ready"]);

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

/** The decision's events on `state`, then what they mean for the cluster's health. */
function withHealth(state: InstallState, events: InstallEvent[], policy: InstallPolicy): InstallEvent[] {
  if (events.length === 0) return events;
  return [...events, ...healthEvents(after(state, events), policy)];
}

/** A check's result (the health probe's, or node-ops' API fact), on a cluster that was installed. */
export function decideRecordCheck(
  d: CommandData<"install.record-check">,
  state: InstallState,
  policy: InstallPolicy,
): InstallEvent[] {
  if (!isLive(state) || !state.completedOnce) return [];
  const { check, node, ok, evidence } = d;
  if (node && !Object.values(state.nodes).some((n) => n.node === node && n.joined && !n.failed)) return [];
  return withHealth(state, checkChange(state, check, node, ok, evidence), policy);
}

/**
 * node-ops' Ready fact for a node: it moves the install on (a completion may be owed)
 * and, once installed, is the node's `node-ready` check.
 */
export function decideNodeState(
  d: CommandData<"install.record-node-state">,
  state: InstallState,
  policy: InstallPolicy,
): InstallEvent[] {
  if (state.status === "Absent" || isOver(state)) return [];
  const n = Object.values(state.nodes).find((x) => x.node === d.node);
  if (!n) return [];
  // A fact no newer than the one the node's readiness was last recorded from: a redelivery
  // (in another group commit, under another command id), or one overtaken by a newer fact.
  const seq = d.factSequence;
  if (seq !== undefined && n.factSequence !== undefined && seq <= n.factSequence) return [];
  const stamp = seq !== undefined ? { factSequence: seq } : {};
  const { state: fact } = d;
  const reason = d.reason ?? (fact === "removed" ? "the node left the cluster" : "NotReady");
  // Once installed, readiness is also a health check of the node.
  const health =
    state.completedOnce && n.joined ? checkChange(state, "node-ready", n.node, fact === "ready", reason) : [];
  if (fact === "ready")
    return withHealth(
      state,
      [
        ...andThen(
          state,
          n.ready ? [] : [{ type: "install.node-ready", data: { slot: n.slot, node: n.node, ...stamp } }],
          policy,
        ),
        ...health,
      ],
      policy,
    );
  return withHealth(
    state,
    [
      ...(n.ready
        ? [
            {
              type: "install.node-not-ready" as const,
              data: { slot: n.slot, node: n.node, reason, ...stamp },
            },
          ]
        : []),
      ...health,
    ],
    policy,
  );
}

/**
 * The grace after a recovery action ended: a node still failing its own checks climbs
 * to the next rung (unless too many nodes are unhealthy at once).
 */
export function decideCheckRemediation(
  d: CommandData<"install.check-remediation">,
  state: InstallState,
  policy: InstallPolicy,
): InstallEvent[] {
  if (!isLive(state)) return [];
  const { node, action, attempt } = d;
  const n = Object.values(state.nodes).find((x) => x.node === node);
  if (!n?.remedy || n.remedy.action !== action || n.remedy.attempt !== attempt || n.step || n.failed)
    return [];
  const failing = Object.values(state.failing).filter((f) => f.node === n.node && NODE_CHECKS.has(f.check));
  if (failing.length === 0) return [];
  const nodes = Object.values(state.nodes).filter((x) => !x.failed);
  const unhealthy = new Set(
    Object.values(state.failing)
      .filter((f) => f.node && NODE_CHECKS.has(f.check))
      .map((f) => f.node),
  );
  if (unhealthy.size / Math.max(1, nodes.length) > policy.maxUnhealthyShare)
    return healthEvents(state, policy).filter((e) => e.type === "install.remediation-withheld");
  return rung(state, n, n.remedy.rung + 1, failing.map((f) => `${f.check}: ${f.evidence}`).join("; "));
}
