/**
 * The patch that applies a classification change to a node, computed from the node as
 * the API shows it now. Pure.
 *
 * Labels go in a JSON merge patch of `metadata.labels` (a `null` value removes a key).
 * Taints are a list, which a merge patch replaces as a whole: the new list is computed
 * from the node's current one (system taints such as `node.kubernetes.io/unschedulable`
 * and their `timeAdded` kept as they are), and the patch carries the resourceVersion it
 * was computed from, so a taint another writer added meanwhile is never lost (409).
 */
import type { ClassificationChange } from "@cairn/events";

/** A taint as the Kubernetes API carries it. */
export interface ApiTaint {
  key: string;
  value?: string;
  effect: string;
  timeAdded?: Date | string;
}

export interface NodeClassification {
  readonly resourceVersion: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly taints: readonly ApiTaint[];
}

const sameRef = (a: { key: string; effect: string }, b: { key: string; effect: string }) =>
  a.key === b.key && a.effect === b.effect;

/**
 * The merge patch that makes `current` show `change`, or undefined when it shows it
 * already (nothing to send).
 *
 * @example
 * classificationPatch({ resourceVersion: "7", labels: { a: "1" }, taints: [] },
 *   { setLabels: { b: "2" }, removeLabels: ["a"], addTaints: [], removeTaints: [] })
 * // → { metadata: { resourceVersion: "7", labels: { b: "2", a: null } } }
 */
export function classificationPatch(current: NodeClassification, change: ClassificationChange) {
  const labels: Record<string, string | null> = {};
  for (const [k, v] of Object.entries(change.setLabels)) if (current.labels[k] !== v) labels[k] = v;
  for (const k of change.removeLabels)
    if (Object.hasOwn(current.labels, k) && !Object.hasOwn(change.setLabels, k)) labels[k] = null;

  const kept = current.taints.filter(
    (t) => !change.removeTaints.some((r) => sameRef(r, t)) && !change.addTaints.some((a) => sameRef(a, t)),
  );
  const added = change.addTaints.map((a) => {
    const old = current.taints.find((t) => sameRef(t, a));
    // An unchanged taint keeps its timeAdded (NoExecute tolerations count from it).
    return old && (old.value ?? "") === (a.value ?? "") ? old : { ...a };
  });
  const taints = [...kept, ...added];
  const taintsChanged =
    taints.length !== current.taints.length || taints.some((t) => !current.taints.includes(t));

  if (Object.keys(labels).length === 0 && !taintsChanged) return undefined;
  return {
    metadata: {
      resourceVersion: current.resourceVersion,
      ...(Object.keys(labels).length > 0 ? { labels } : {}),
    },
    ...(taintsChanged ? { spec: { taints } } : {}),
  };
}
