/**
 * Spot / on-demand placement of a workload's replicas, pure. A workload opts in with
 * the annotations `cairn.dev/spot-percentage` (P, 0–100) and `cairn.dev/min-on-demand`
 * (M, ≥ 0). Of T replicas, the target on spot is
 *
 *     S* = min(⌊T·P/100⌋, T − M)   (never negative)      O* = T − S*
 *
 * and, while no spot capacity is available, S* = 0 (everything on-demand). The plan
 * moves towards the target one side at a time, in this order:
 *  1. on-demand below its target → raise it (scale up on-demand first; this is also
 *     how lost spot capacity is made good). At once, whatever the cooldown.
 *  2. spot above its target → lower it (scale down spot first). At once.
 *  3. spot below its target → raise it, only once on-demand is in place. Cooldown.
 *  4. on-demand above its target → lower it, only once spot is in place. Cooldown.
 * Steps that add capacity or take spot away never wait; steps that move replicas back
 * to spot wait for the cooldown since the last change, so a flapping spot market does
 * not flap the workload. No step ever takes on-demand below min(M, T).
 */

export const SPOT_PERCENTAGE = "cairn.dev/spot-percentage";
export const MIN_ON_DEMAND = "cairn.dev/min-on-demand";

export interface PlacementPolicy {
  /** P: the share of replicas wanted on spot, 0–100. */
  readonly spotPercentage: number;
  /** M: replicas that stay on on-demand whatever P says (the floor). */
  readonly minOnDemand: number;
}

export interface Split {
  readonly spot: number;
  readonly onDemand: number;
}

export interface PlacementInput {
  /** T: the replicas the workload wants in all. */
  readonly total: number;
  readonly policy: PlacementPolicy;
  /** Replicas asked of each side now. */
  readonly current: Split;
  /** Whether spot nodes can take pods now (false: spot capacity vanished). */
  readonly spotAvailable: boolean;
  /** Time of the last change (ms), if any; `now` the time of this decision. */
  readonly lastChangeAt?: number;
  readonly now: number;
  readonly cooldownMs: number;
}

export type PlacementStep =
  | { readonly kind: "none"; readonly split: Split }
  | { readonly kind: "wait"; readonly split: Split; readonly until: number; readonly reason: string }
  | { readonly kind: "change"; readonly split: Split; readonly reason: string };

/** The target split: S* = min(⌊T·P/100⌋, T − M), floored at 0; all on-demand without spot capacity. */
export function targetSplit(total: number, policy: PlacementPolicy, spotAvailable = true): Split {
  const t = Math.max(0, Math.floor(total));
  const p = Math.min(100, Math.max(0, policy.spotPercentage));
  const m = Math.max(0, Math.floor(policy.minOnDemand));
  const spot = spotAvailable ? Math.max(0, Math.min(Math.floor((t * p) / 100), t - m)) : 0;
  return { spot, onDemand: t - spot };
}

/** The next step towards the target (see the module comment for the order and the cooldown). */
export function planPlacement(i: PlacementInput): PlacementStep {
  const target = targetSplit(i.total, i.policy, i.spotAvailable);
  const { spot, onDemand } = i.current;
  if (onDemand < target.onDemand)
    return {
      kind: "change",
      split: { spot, onDemand: target.onDemand },
      reason: `on-demand ${onDemand} → ${target.onDemand}${i.spotAvailable ? "" : " (no spot capacity)"}`,
    };
  if (spot > target.spot)
    return {
      kind: "change",
      split: { spot: target.spot, onDemand },
      reason: `spot ${spot} → ${target.spot}`,
    };
  if (spot === target.spot && onDemand === target.onDemand) return { kind: "none", split: i.current };
  // Moving back to spot: only after the cooldown.
  const until = (i.lastChangeAt ?? Number.NEGATIVE_INFINITY) + i.cooldownMs;
  if (i.now < until)
    return { kind: "wait", split: i.current, until, reason: "cooling down before moving replicas to spot" };
  if (spot < target.spot)
    return {
      kind: "change",
      split: { spot: target.spot, onDemand },
      reason: `spot ${spot} → ${target.spot}`,
    };
  return {
    kind: "change",
    split: { spot, onDemand: target.onDemand },
    reason: `on-demand ${onDemand} → ${target.onDemand}`,
  };
}

/** Reads the opt-in annotations; undefined when the workload has not opted in or they are invalid. */
export function policyOf(
  annotations: Readonly<Record<string, string>> | undefined,
): PlacementPolicy | undefined {
  const p = annotations?.[SPOT_PERCENTAGE];
  if (p === undefined) return undefined;
  const spotPercentage = Number(p);
  const minOnDemand = Number(annotations?.[MIN_ON_DEMAND] ?? "0");
  if (!Number.isInteger(spotPercentage) || spotPercentage < 0 || spotPercentage > 100) return undefined;
  if (!Number.isInteger(minOnDemand) || minOnDemand < 0) return undefined;
  return { spotPercentage, minOnDemand };
}
