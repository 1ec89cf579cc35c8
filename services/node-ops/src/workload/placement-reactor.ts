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
 * Which clusters a pass looks at: with the port's Deployment list and watch, the loop keeps
 * one list-and-watch per live cluster (watch/list-watch.ts) of which Deployments opt in,
 * and a pass looks only at the clusters where one does (or whose watch has not listed yet,
 * or cannot reach the API): a cluster where none opts in costs a standing watch, not a list
 * every pass. What a pass does is read fresh from the API, never from the watch's copy.
 */
import type { RunnerLogger } from "@cairn/events";
import type { DeploymentChange, DeploymentList, Workloads } from "../ports.ts";
import { type ListWatch, startListWatch } from "../watch/list-watch.ts";
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
  /**
   * One pass over every live cluster now (tests, `reconcilePlacement`). The loop's own
   * ticks look only at the clusters where a Deployment opts in (see the header).
   */
  reconcile(): Promise<void>;
  stop(): Promise<void>;
}

interface WatchedDeployments {
  readonly loop: ListWatch;
  /** `namespace/name` of the Deployments that opt in, as the watch last saw them. */
  optedIn: Set<string>;
  /** Listed, and the API reachable since: a cluster with none opted in can be skipped. */
  synced: boolean;
}

export function startPlacementLoop(o: PlacementLoopOptions): PlacementLoop {
  const now = o.now ?? Date.now;
  const cooldownMs = o.cooldownMs ?? 300_000;
  const { listDeployments, watchDeployments } = o.workloads;
  const watched = new Map<string, WatchedDeployments>();
  let stopped = false;

  const watchCluster = (
    clusterId: string,
    list: NonNullable<typeof listDeployments>,
    watch: NonNullable<typeof watchDeployments>,
  ) => {
    const w: WatchedDeployments = {
      optedIn: new Set(),
      synced: false,
      loop: startListWatch<DeploymentList, DeploymentChange>({
        what: "deployments",
        logFields: { cluster: clusterId },
        ...(o.logger ? { logger: o.logger } : {}),
        list: () => list(clusterId),
        watch: (from, onEvent, onEnd) => watch(clusterId, from, onEvent, onEnd),
        onList: async (l) => {
          w.optedIn = new Set(l.optedIn);
          w.synced = true;
        },
        onEvent: async (e) => {
          if (e.kind === "bookmark") return;
          if (e.kind === "upsert" && e.optedIn) w.optedIn.add(e.key);
          else w.optedIn.delete(e.key);
        },
        onUnreachable: async () => {
          // Not known until the next list: every pass looks at the cluster meanwhile.
          w.synced = false;
        },
      }),
    };
    return w;
  };

  /** The live clusters a pass looks at; starts and ends the clusters' watches to match. */
  const toLookAt = (): string[] => {
    const live = o.clusters();
    if (!listDeployments || !watchDeployments || stopped) return [...live];
    const liveSet = new Set(live);
    for (const [c, w] of watched)
      if (!liveSet.has(c)) {
        watched.delete(c);
        void w.loop.stop();
      }
    const out: string[] = [];
    for (const c of live) {
      let w = watched.get(c);
      if (!w) {
        w = watchCluster(c, listDeployments, watchDeployments);
        watched.set(c, w);
      }
      if (!w.synced || w.optedIn.size > 0) out.push(c);
    }
    return out;
  };

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
  /** One pass: over every live cluster (`all`), or those the Deployments' watches say need one (the ticks). */
  const pass = (all: boolean) => {
    // One pass at a time: a slow API never stacks passes.
    running ??= (async () => {
      const clusters = toLookAt();
      for (const c of all ? o.clusters() : clusters) {
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
      stopped = true;
      clearInterval(timer);
      await running;
      const all = [...watched.values()];
      watched.clear();
      await Promise.all(all.map((w) => w.loop.stop()));
    },
  };
}
