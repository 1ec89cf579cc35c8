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
 *
 * Which clusters a tick looks at: those where the last look found a Deployment that opts
 * in (or failed), and every other live cluster once per `idleLookMs` (150 s by default),
 * each from its own last look (so the looks of a thousand quiet clusters spread over the
 * interval instead of coming at once). A cluster where none opts in costs one list of its
 * Deployments per `idleLookMs`, and holds nothing between looks: no standing watch (one
 * per cluster was ~32 KB of node-ops' heap a cluster, docs/node-ops.md). An explicit pass
 * (`reconcile()`) looks at every live cluster.
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
  /**
   * How often a tick looks at a cluster whose last look found no Deployment opting in
   * (default 150 s): how long a Deployment that opts in may wait to be taken over.
   */
  idleLookMs?: number;
  now?: () => number;
}

export interface PlacementLoop {
  /**
   * One pass over every live cluster now (tests, `reconcilePlacement`). The loop's own
   * ticks skip a cluster where none opted in at its last look, for `idleLookMs` (see the header).
   */
  reconcile(): Promise<void>;
  stop(): Promise<void>;
}

export function startPlacementLoop(o: PlacementLoopOptions): PlacementLoop {
  const now = o.now ?? Date.now;
  const cooldownMs = o.cooldownMs ?? 300_000;

  const idleLookMs = o.idleLookMs ?? 150_000;
  /** Each cluster's last look that ended: when (the loop's clock), and whether a Deployment opted in. */
  const looked = new Map<string, { at: number; optedIn: boolean }>();

  const reconcileCluster = async (clusterId: string) => {
    const deployments = await o.workloads.listOptedIn(clusterId);
    looked.set(clusterId, { at: Date.now(), optedIn: deployments.length > 0 });
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

  /** The clusters a tick looks at (see the header); forgets the clusters no longer live. */
  const toLookAt = (): string[] => {
    const live = o.clusters();
    const liveSet = new Set(live);
    for (const c of looked.keys()) if (!liveSet.has(c)) looked.delete(c);
    const t = Date.now();
    return live.filter((c) => {
      const l = looked.get(c);
      return !l || l.optedIn || t - l.at >= idleLookMs;
    });
  };

  let running: Promise<void> | undefined;
  /** One pass: over every live cluster (`all`), or those a tick looks at. */
  const pass = (all: boolean) => {
    // One pass at a time: a slow API never stacks passes.
    running ??= (async () => {
      for (const c of all ? o.clusters() : toLookAt()) {
        try {
          await reconcileCluster(c);
        } catch (err) {
          // Not known: looked at again next tick.
          looked.delete(c);
          o.logger?.warn({ cluster: c, err: String(err) }, "placement pass failed; next tick tries again");
        }
      }
    })().finally(() => {
      running = undefined;
    });
    return running;
  };
  const reconcile = async () => {
    // A tick's pass under way may skip a cluster this call must look at: a pass of its own after it.
    await running;
    await pass(true);
  };
  const timer = setInterval(() => void pass(false), o.intervalMs ?? 5_000);
  timer.unref?.();
  return {
    reconcile,
    stop: async () => {
      clearInterval(timer);
      await running;
    },
  };
}
