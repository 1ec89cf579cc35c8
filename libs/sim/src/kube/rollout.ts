/**
 * One step of a Deployment's RollingUpdate, as kube-controller-manager's `rolling.go` takes
 * it (`reconcileNewReplicaSet`, then `reconcileOldReplicaSets` with
 * `cleanupUnhealthyReplicas` and `scaleDownOldReplicaSetsForRollingUpdate`), kept pure:
 * ReplicaSets' desired replicas and available pods in, their new desired replicas out.
 * The controller takes such a step whenever a pod or a ReplicaSet changes, so a rollout
 * moves on as new pods become available.
 *
 * @example
 * // replicas 4, surge 1, unavailable 1, a fresh template: the new one grows to 1 and the
 * // old one drops to 3 at once; once the new pod is available the next step goes on.
 * rollingStep({ want: 4, maxSurge: 1, maxUnavailable: 1 }, { replicas: 0, available: 0 }, [{ replicas: 4, available: 4 }])
 * // → { fresh: 1, old: [3] }
 */
export interface ReplicaSetScale {
  /** `spec.replicas`. */
  replicas: number;
  /** `status.availableReplicas`. */
  available: number;
}

export interface RollingParams {
  /** The Deployment's `spec.replicas`. */
  want: number;
  /** `maxSurge`, resolved (rounded up from a percentage). */
  maxSurge: number;
  /** `maxUnavailable`, resolved (rounded down; 1 when both are 0). */
  maxUnavailable: number;
}

/** The ReplicaSets' desired replicas after the step: the new one's, and the old ones' in the order given (oldest first). */
export function rollingStep(
  p: RollingParams,
  fresh: ReplicaSetScale,
  old: readonly ReplicaSetScale[],
): { fresh: number; old: number[] } {
  const sum = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0);
  let n = fresh.replicas;
  const olds = old.map((o) => o.replicas);
  // 1. The new one: down to `want`, or up while every ReplicaSet together stays within the surge.
  if (n > p.want) n = p.want;
  else if (n < p.want) {
    const up = Math.min(p.want + p.maxSurge - (n + sum(olds)), p.want - n);
    if (up > 0) n += up;
  }
  if (sum(olds) === 0) return { fresh: n, old: olds };
  // 2. The old ones: never so far that fewer than `want - maxUnavailable` could be available.
  const minAvailable = p.want - p.maxUnavailable;
  const newUnavailable = n - fresh.available;
  let budget = n + sum(olds) - minAvailable - newUnavailable;
  if (budget <= 0) return { fresh: n, old: olds };
  // 2a. Their unavailable pods first: losing those costs no availability.
  for (let i = 0; i < olds.length && budget > 0; i++) {
    const down = Math.min(budget, Math.max(0, olds[i]! - old[i]!.available));
    olds[i]! -= down;
    budget -= down;
  }
  // 2b. Then available ones, as far as what is available exceeds the minimum.
  let spare = fresh.available + sum(old.map((o) => o.available)) - minAvailable;
  for (let i = 0; i < olds.length && spare > 0; i++) {
    const down = Math.min(olds[i]!, spare);
    olds[i]! -= down;
    spare -= down;
  }
  return { fresh: n, old: olds };
}
