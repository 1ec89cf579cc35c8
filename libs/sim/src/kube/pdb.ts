/**
 * PodDisruptionBudget arithmetic (the disruption controller's `getExpectedPodCount`
 * and `updatePdbStatus`) and the eviction subresource's decision (kube-apiserver's
 * `pkg/registry/core/pod/storage/eviction.go`), kept pure.
 */

export type IntOrString = number | string;

/** `5` → 5; `"50%"` of `total`, rounded up or down. Throws on anything else. */
export function scaledValue(v: IntOrString, total: number, roundUp: boolean): number {
  if (typeof v === "number") return v;
  const m = /^(\d+)%$/.exec(v);
  if (!m) {
    if (/^\d+$/.test(v)) return Number(v);
    throw new Error(`invalid value for IntOrString: invalid type: string is not a percentage`);
  }
  const x = (Number(m[1]) * total) / 100;
  return roundUp ? Math.ceil(x) : Math.floor(x);
}

export interface PdbSpec {
  minAvailable?: IntOrString;
  maxUnavailable?: IntOrString;
}

export interface PdbPod {
  ready: boolean;
  terminating: boolean;
  /**
   * The controller whose scale counts for this pod (a Deployment's key), or undefined
   * for a pod with no controller at all. The real disruption controller's
   * `getExpectedScale` skips such "unmanaged" pods (an `UnmanagedPods` event), so a
   * `maxUnavailable` or percentage budget over them expects 0 pods and allows no
   * disruption ("needs 0 healthy pods and has 1 currently"); only an integer
   * `minAvailable` counts them.
   */
  controller?: string;
  /** The pod's name, for the controller's error when its controller has no scale. */
  name?: string;
}

/**
 * A pod whose controller has no scale (a DaemonSet, or a kind the cluster does not know):
 * the disruption controller's `getExpectedScale` fails with "found no controllers for pod"
 * and the budget falls back to its fail-safe status (no disruption allowed).
 */
export class NoControllerError extends Error {
  constructor(pod: string) {
    super(`found no controllers for pod "${pod}"`);
    this.name = "NoControllerError";
  }
}

export interface PdbCounts {
  expectedPods: number;
  desiredHealthy: number;
  currentHealthy: number;
  disruptionsAllowed: number;
}

/**
 * The budget's counts. `scaleOf` gives a controller's desired scale, or undefined when it
 * has none: then this throws `NoControllerError` (only budgets that need the scale ask).
 */
export function pdbCounts(
  spec: PdbSpec,
  pods: readonly PdbPod[],
  scaleOf: (controller: string) => number | undefined,
): PdbCounts {
  let expected = 0;
  let desired = 0;
  const scale = () => {
    const seen = new Set<string>();
    let n = 0;
    for (const p of pods) {
      if (p.controller === undefined) continue; // unmanaged: not counted (see PdbPod.controller)
      if (!seen.has(p.controller)) {
        seen.add(p.controller);
        const scale = scaleOf(p.controller);
        if (scale === undefined) throw new NoControllerError(p.name ?? "");
        n += scale;
      }
    }
    return n;
  };
  if (spec.maxUnavailable !== undefined) {
    expected = scale();
    const maxUnavailable = scaledValue(spec.maxUnavailable, expected, true);
    desired = Math.max(0, expected - maxUnavailable);
  } else if (spec.minAvailable !== undefined) {
    if (typeof spec.minAvailable === "number") {
      desired = spec.minAvailable;
      expected = pods.length;
    } else {
      expected = scale();
      desired = scaledValue(spec.minAvailable, expected, true);
    }
  }
  let healthy = 0;
  for (const p of pods) if (p.ready && !p.terminating) healthy++;
  let allowed = healthy - desired;
  if (expected <= 0 || allowed <= 0) allowed = 0;
  return {
    expectedPods: expected,
    desiredHealthy: desired,
    currentHealthy: healthy,
    disruptionsAllowed: allowed,
  };
}

export interface EvictedPod {
  phase: string;
  ready: boolean;
  terminating: boolean;
}

export interface EvictionPdb {
  name: string;
  counts: PdbCounts;
  /** `metadata.generation` and `status.observedGeneration`: behind, the budget is not processed yet. */
  generation: number;
  observedGeneration: number;
  /** `IfHealthyBudget` (default) or `AlwaysAllow`. */
  unhealthyPodEvictionPolicy?: string;
}

export type EvictionDecision =
  | { allowed: true }
  | { allowed: false; code: 429; message: string; cause: string; retryAfterSeconds: number }
  | { allowed: false; code: 500; message: string };

export const PDB_VIOLATION = "Cannot evict pod as it would violate the pod's disruption budget.";

export function evictionDecision(pod: EvictedPod, pdbs: readonly EvictionPdb[]): EvictionDecision {
  // canIgnorePDB: terminal, pending or already terminating pods go without a budget check.
  if (pod.phase === "Succeeded" || pod.phase === "Failed" || pod.phase === "Pending" || pod.terminating) {
    return { allowed: true };
  }
  if (pdbs.length === 0) return { allowed: true };
  if (pdbs.length > 1) {
    return {
      allowed: false,
      code: 500,
      message:
        "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.",
    };
  }
  const pdb = pdbs[0]!;
  // checkAndDecrement: a budget the disruption controller has not processed since its last
  // change refuses with Retry-After 10 (createTooManyRequestsError in eviction.go).
  if (pdb.observedGeneration < pdb.generation) {
    return {
      allowed: false,
      code: 429,
      message: PDB_VIOLATION,
      cause: `The disruption budget ${pdb.name} is still being processed by the server.`,
      retryAfterSeconds: 10,
    };
  }
  if (!pod.ready) {
    if (pdb.unhealthyPodEvictionPolicy === "AlwaysAllow") return { allowed: true };
    if (pdb.counts.currentHealthy >= pdb.counts.desiredHealthy && pdb.counts.desiredHealthy > 0)
      return { allowed: true };
  }
  if (pdb.counts.disruptionsAllowed <= 0) {
    return {
      allowed: false,
      code: 429,
      message: PDB_VIOLATION,
      cause: `The disruption budget ${pdb.name} needs ${pdb.counts.desiredHealthy} healthy pods and has ${pdb.counts.currentHealthy} currently`,
      // NewTooManyRequests(…, 0): no Retry-After header, retryAfterSeconds 0.
      retryAfterSeconds: 0,
    };
  }
  return { allowed: true };
}
