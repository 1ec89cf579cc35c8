/**
 * The rolling upgrade of K3s, pure: servers first, one at a time (etcd keeps its
 * quorum), then `batch` agents at a time. Each node's turn goes draining (node-ops
 * evicts its pods) → upgrading (the `k3s-upgrade` step) → verifying (node-ops sees it
 * Ready on the new version) → upgraded; a drain or upgrade that fails stops the rollout.
 */
import { type Decision, type InstallEvent, reject } from "@cairn/events";
import { type Active, after, type CommandData, type InstallState, isLive, upgradeOrder } from "./state.ts";
import { requestStep } from "./steps.ts";

/** `install.upgrade-requested` to `to`, then the first turns. */
export function startUpgrade(state: Active, to: string, batch: number): InstallEvent[] {
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

/** `install.upgrade`: only a Ready cluster, and one upgrade at a time. */
export function decideUpgrade(
  d: CommandData<"install.upgrade">,
  state: InstallState,
): Decision<InstallEvent> {
  const { clusterId, k3sVersion, batch } = d;
  if (state.status === "Absent") return reject("not-found", `cluster ${clusterId} has no install`);
  if (state.upgrade)
    return reject("conflict", `cluster ${clusterId} is being upgraded to ${state.upgrade.to} already`);
  if (state.status !== "Ready")
    return reject(
      "conflict",
      `only a Ready cluster can be upgraded; cluster ${clusterId} is ${state.status}`,
    );
  if (k3sVersion === state.plan.k3sVersion) return [];
  return startUpgrade(state, k3sVersion, batch);
}

/** node-ops' word on the node whose turn it is: drained (or not), then verified on the new version. */
export function decideUpgradeProgress(
  d: CommandData<"install.record-upgrade-progress">,
  state: InstallState,
): InstallEvent[] {
  if (!isLive(state) || !state.upgrade) return [];
  const { node, phase, reason } = d;
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
