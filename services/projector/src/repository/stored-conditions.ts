/**
 * A cluster's conditions as the `clusters.conditions` column stores them: compact tuples,
 * expanded back into the same `ClusterCondition` objects on read (issue 16,
 * docs/projector.md "Live apply, fourth pass"). Nearly every event rewrites its cluster's
 * row, and the conditions were 1.2 kB of its 1.9 kB — mostly the same five keys seven
 * times over, constant sentences and one repeated time: bytes that the fold read back,
 * parsed, stringified and sent again, and that Postgres checked and wrote, for every
 * batch that touched the cluster.
 *
 * Each condition, in the row's order, is one array:
 *
 * - `[type, status, reason, message, time?]`, or
 * - `[type, time?]` when status, reason and message are the type's initial ones (those
 *   of `initialConditions`: "nothing has failed", "no deletion requested"…);
 * - `time` (its `lastTransitionTime`) is left out when it equals the previous
 *   condition's; the first always carries it.
 *
 * @example
 * compactConditions(initialConditions("2026-01-01T00:00:00.000Z"))
 * // → [["Ready","2026-01-01T00:00:00.000Z"],["Validated"],["Provisioned"],["Installed"],
 * //    ["Degraded"],["Failed"],["Deleting"]]
 *
 * `expandConditions` also reads the older form (an array of condition objects, written
 * before migration 20261203220000_clusters_compact_conditions), as it is.
 */
import {
  type ClusterCondition,
  type ClusterConditionType,
  type ConditionStatus,
  initialConditions,
} from "../projections/cluster-conditions.ts";

export type StoredCondition =
  | readonly [ClusterConditionType, string?]
  | readonly [ClusterConditionType, ConditionStatus, string, string, string?];

/** Each type's initial status, reason and message (the time is not part of it). */
const INITIAL = new Map(initialConditions("").map((c) => [c.type, c] as const));

const isInitial = (c: ClusterCondition) => {
  const i = INITIAL.get(c.type);
  return i !== undefined && i.status === c.status && i.reason === c.reason && i.message === c.message;
};

/** The conditions as the column stores them (see the file's comment). Pure. */
export function compactConditions(conditions: readonly ClusterCondition[]): StoredCondition[] {
  const out: StoredCondition[] = [];
  let previous: string | undefined;
  for (const c of conditions) {
    const time = c.lastTransitionTime;
    const same = time === previous;
    previous = time;
    if (isInitial(c)) out.push(same ? [c.type] : [c.type, time]);
    else
      out.push(
        same ? [c.type, c.status, c.reason, c.message] : [c.type, c.status, c.reason, c.message, time],
      );
  }
  return out;
}

/**
 * The conditions of a stored column value: the compact tuples expanded, or the older
 * objects as they are. Throws on a value that is neither (a broken row, never silently
 * shown as no conditions).
 */
export function expandConditions(stored: unknown): ClusterCondition[] {
  if (!Array.isArray(stored))
    throw new Error(`clusters.conditions is not an array: ${JSON.stringify(stored)}`);
  const out: ClusterCondition[] = [];
  let previous: string | undefined;
  for (const s of stored as unknown[]) {
    if (!Array.isArray(s)) {
      // The older form: a condition object.
      const c = s as ClusterCondition;
      out.push(c);
      previous = c.lastTransitionTime;
      continue;
    }
    const type = s[0] as ClusterConditionType;
    const short = s.length <= 2;
    const time = (short ? s[1] : s[4]) as string | undefined;
    const lastTransitionTime = time ?? previous;
    if (lastTransitionTime === undefined)
      throw new Error(`clusters.conditions: the first condition carries no time: ${JSON.stringify(stored)}`);
    previous = lastTransitionTime;
    if (short) {
      const i = INITIAL.get(type);
      if (!i) throw new Error(`clusters.conditions: no initial condition of type ${JSON.stringify(type)}`);
      out.push({ type, status: i.status, reason: i.reason, message: i.message, lastTransitionTime });
    } else {
      out.push({
        type,
        status: s[1] as ConditionStatus,
        reason: s[2] as string,
        message: s[3] as string,
        lastTransitionTime,
      });
    }
  }
  return out;
}
