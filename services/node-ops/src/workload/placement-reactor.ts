/**
 * The placement loop: every `intervalMs`, for each live cluster, each Deployment that
 * opted in (`cairn.dev/spot-percentage`, `cairn.dev/min-on-demand`) is split between
 * itself (pinned to on-demand nodes) and its spot twin `<name>-spot`, by the pure rule
 * in placement.ts. Per Deployment:
 *  1. T: the annotation `cairn.dev/replicas`; absent, the Deployment's own replicas at
 *     take-over, written there (users scale by changing it).
 *  2. Take over (idempotent): pin to on-demand, create the twin.
 *  3. Plan one step (spot capacity from the nodes; cooldown from
 *     `cairn.dev/placement-changed-at`), carry it out through the scale subresource, and
 *     stamp the change time.
 * It runs in the spot intake's lease (one process). Failures are logged and the next
 * tick tries again; every step is idempotent because it starts from what the API says.
 */
import type { RunnerLogger } from "@cairn/events";
import type { Workloads } from "../ports.ts";
import { planPlacement, policyOf } from "./placement.ts";

export const TOTAL_REPLICAS = "cairn.dev/replicas";
export const PLACEMENT_CHANGED_AT = "cairn.dev/placement-changed-at";

export interface PlacementLoopOptions {
  workloads: Workloads;
  /** The live clusters to look at. */
  clusters: () => readonly string[];
  logger?: RunnerLogger;
  /** How often the clusters are looked at (default 5 s). */
  intervalMs?: number;
  /** How long after a change replicas may move back to spot (default 5 minutes). */
  cooldownMs?: number;
  now?: () => number;
}

export interface PlacementLoop {
  /** One pass over every cluster now (tests, and the loop's own ticks). */
  reconcile(): Promise<void>;
  stop(): Promise<void>;
}

export function startPlacementLoop(o: PlacementLoopOptions): PlacementLoop {
  const now = o.now ?? Date.now;
  const cooldownMs = o.cooldownMs ?? 300_000;

  const reconcileCluster = async (clusterId: string) => {
    const deployments = await o.workloads.listOptedIn(clusterId);
    if (deployments.length === 0) return;
    const spotAvailable = await o.workloads.spotCapacity(clusterId);
    for (const d of deployments) {
      const policy = policyOf(d.annotations);
      if (!policy) {
        o.logger?.warn(
          { cluster: clusterId, deployment: `${d.namespace}/${d.name}` },
          "placement annotations invalid: ignored",
        );
        continue;
      }
      // 1. The total.
      let total = Number(d.annotations[TOTAL_REPLICAS]);
      if (!Number.isInteger(total) || total < 0) {
        total = d.replicas;
        await o.workloads.annotate(clusterId, d.namespace, d.name, { [TOTAL_REPLICAS]: String(total) });
      }
      // 2. Take over.
      const spot = await o.workloads.ensureTwin(clusterId, d);
      // 3. One step.
      const changedAt = Date.parse(d.annotations[PLACEMENT_CHANGED_AT] ?? "");
      const step = planPlacement({
        total,
        policy,
        current: { spot, onDemand: d.replicas },
        spotAvailable,
        ...(Number.isNaN(changedAt) ? {} : { lastChangeAt: changedAt }),
        now: now(),
        cooldownMs,
      });
      if (step.kind !== "change") continue;
      if (step.split.onDemand !== d.replicas)
        await o.workloads.scale(clusterId, d.namespace, d.name, step.split.onDemand);
      if (step.split.spot !== spot)
        await o.workloads.scale(clusterId, d.namespace, `${d.name}-spot`, step.split.spot);
      await o.workloads.annotate(clusterId, d.namespace, d.name, {
        [PLACEMENT_CHANGED_AT]: new Date(now()).toISOString(),
      });
      o.logger?.info(
        { cluster: clusterId, deployment: `${d.namespace}/${d.name}`, ...step.split, reason: step.reason },
        "placement changed",
      );
    }
  };

  let running: Promise<void> | undefined;
  const reconcile = () => {
    // One pass at a time: a slow API never stacks passes.
    running ??= (async () => {
      for (const c of o.clusters()) {
        try {
          await reconcileCluster(c);
        } catch (err) {
          o.logger?.warn({ cluster: c, err: String(err) }, "placement pass failed; next tick tries again");
        }
      }
    })().finally(() => {
      running = undefined;
    });
    return running;
  };
  const timer = setInterval(() => void reconcile(), o.intervalMs ?? 5_000);
  timer.unref?.();
  return {
    reconcile,
    stop: async () => {
      clearInterval(timer);
      await running;
    },
  };
}
