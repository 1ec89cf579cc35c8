/**
 * The fallback planner: which (instance type, zone, capacity type) a launch tries next
 * after capacity failures. Pure and synchronous (no SDK, no clock), so the reactor can
 * call it with what the log says has failed, and a decider test can reason about it.
 *
 * Order, for a pool with types [A, B], zones [z1, z2], spot with fallbackToOnDemand:
 *   spot A z1, spot B z1, spot A z2, spot B z2, on-demand A z1, … on-demand B z2.
 * That is: the next instance type in the same zone, then the next zone, then on-demand
 * if the pool allows it. Each combination is tried at most once; then it is exhausted.
 */
import type { CapacityType, Placement } from "../ports.ts";

export interface PlacementChoices {
  /** In order of preference (the pool's `instanceTypes`). */
  readonly instanceTypes: readonly string[];
  /** In order of preference. Empty: one choice, EC2 picks the zone (`availabilityZone` undefined). */
  readonly availabilityZones: readonly string[];
  readonly capacityType: CapacityType;
  /** A spot pool may fall back to on-demand once every spot combination failed. */
  readonly fallbackToOnDemand: boolean;
}

/** A placement as a string, for sets: `spot/eu-west-1a/t3.large` (`*` for any zone). */
export function placementKey(p: Placement): string {
  return `${p.capacityType}/${p.availabilityZone ?? "*"}/${p.instanceType}`;
}

/** Every combination, in the order the planner tries them (duplicates in the inputs dropped). */
export function placementOrder(choices: PlacementChoices): Placement[] {
  const types = [...new Set(choices.instanceTypes)];
  const zones: (string | undefined)[] =
    choices.availabilityZones.length > 0 ? [...new Set(choices.availabilityZones)] : [undefined];
  const capacities: CapacityType[] =
    choices.capacityType === "spot" && choices.fallbackToOnDemand
      ? ["spot", "on-demand"]
      : [choices.capacityType];
  const out: Placement[] = [];
  for (const capacityType of capacities)
    for (const availabilityZone of zones)
      for (const instanceType of types) out.push({ instanceType, availabilityZone, capacityType });
  return out;
}

/**
 * The next combination to try, or undefined when every one has failed (exhausted).
 * Never returns one in `failed`. Feed it `CapacityFailure.placement`s.
 * @example nextPlacement(pool, []) // the first choice: { "t3.large", "eu-west-1a", "spot" }
 */
export function nextPlacement(choices: PlacementChoices, failed: Iterable<Placement>): Placement | undefined {
  const tried = new Set<string>();
  for (const f of failed) tried.add(placementKey(f));
  return placementOrder(choices).find((p) => !tried.has(placementKey(p)));
}
