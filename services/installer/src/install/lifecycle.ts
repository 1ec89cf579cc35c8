/**
 * The install's lifecycle, pure: the plan (what to install; a new K3s version for an
 * installed cluster is rolled out as an upgrade), and its removal (requested, then done
 * once the cluster's secrets are gone).
 */
import type { InstallEvent } from "@cairn/events";
import { type CommandData, type InstallPlan, type InstallState, isOver } from "./state.ts";
import { startUpgrade } from "./upgrade.ts";

/** The plan as compared: the fields that matter, in a fixed order. */
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

/** `install.planned` when the plan is new or changed. */
export function decidePlan(d: CommandData<"install.plan">, state: InstallState): InstallEvent[] {
  const { clusterId: _, ...plan } = d;
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

export function decideRemove(state: InstallState): InstallEvent[] {
  if (state.status === "Absent" || isOver(state)) return [];
  return [{ type: "install.removal-requested", data: {} }];
}

export function decideSecretsRemoved(
  d: CommandData<"install.record-secrets-removed">,
  state: InstallState,
): InstallEvent[] {
  if (state.status !== "Removing") return [];
  return [{ type: "install.secrets-removed", data: { parameters: d.parameters } }];
}
