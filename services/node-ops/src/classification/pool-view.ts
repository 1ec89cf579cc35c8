/**
 * What classification each node of a cluster should carry, folded from the cluster's
 * events (the provisioner's aggregate, read-only here). Pure.
 *
 * A node carries `cairn.dev/pool`, `cairn.dev/capacity-type`, and its pool's labels and
 * taints: exactly what the installer gives it at join. The pool's spec comes from
 * `cluster.requested`, `cluster.rollback-requested` and `cluster.scale-failed` (whole
 * specs) and `cluster.pool-updated` (one pool). Which pool a node is in, and its capacity
 * type, come from `cluster.instance-running` (node names in Cairn clusters are the
 * instance ids), else from the node's own labels.
 */
import {
  type AnyEvent,
  CLASSIFICATION_LABELS,
  type ClassificationChange,
  type ClusterSpec,
  roleOfSlot,
  SERVER_POOL,
  type Taint,
} from "@cairn/events";

const [POOL_LABEL, CAPACITY_TYPE_LABEL] = CLASSIFICATION_LABELS;

type CapacityType = "spot" | "on-demand";

export interface PoolClassification {
  readonly labels: Readonly<Record<string, string>>;
  readonly taints: readonly Taint[];
}

export interface PoolView {
  /** Each pool's labels and taints now. */
  readonly pools: Readonly<Record<string, PoolClassification>>;
  /**
   * Every label (key=value) and taint each pool ever gave its nodes: a node may lose one
   * of these once its pool no longer has it, and nothing else (labels Cairn did not set stay).
   */
  readonly formerly: Readonly<Record<string, { labelPairs: readonly string[]; taints: readonly Taint[] }>>;
  /** Instance id → the pool and capacity type it was launched for. */
  readonly instances: Readonly<Record<string, { pool?: string; capacityType?: CapacityType }>>;
  /** The cluster is being (or was) deleted: nothing to restore. */
  readonly deleting: boolean;
}

export const emptyPoolView = (): PoolView => ({ pools: {}, formerly: {}, instances: {}, deleting: false });

const taintId = (t: Taint) => `${t.key}\u0000${t.value ?? ""}\u0000${t.effect}`;
const pair = (k: string, v: string) => `${k}=${v}`;

function withPool(view: PoolView, name: string, next: PoolClassification): PoolView {
  const was = view.formerly[name] ?? { taints: [], labelPairs: [] };
  const labelPairs = [
    ...new Set([...was.labelPairs, ...Object.entries(next.labels).map(([k, v]) => pair(k, v))]),
  ];
  const seen = new Set(was.taints.map(taintId));
  const taints = [...was.taints, ...next.taints.filter((t) => !seen.has(taintId(t)))];
  return {
    ...view,
    pools: { ...view.pools, [name]: next },
    formerly: { ...view.formerly, [name]: { taints, labelPairs } },
  };
}

const withSpec = (view: PoolView, spec: ClusterSpec) =>
  spec.pools.reduce((v, p) => withPool(v, p.name, { labels: p.labels ?? {}, taints: p.taints ?? [] }), view);

/** Folds one cluster event into the view; events it does not need leave it as it is. */
export function evolvePoolView(view: PoolView, e: AnyEvent): PoolView {
  switch (e.type) {
    case "cluster.requested":
    case "cluster.rollback-requested":
    case "cluster.scale-failed":
      return withSpec(view, e.data.spec);
    case "cluster.pool-updated":
      return withPool(view, e.data.pool, { labels: e.data.labels, taints: e.data.taints });
    case "cluster.instance-running":
      return { ...view, instances: { ...view.instances, [e.data.instanceId]: launchOf(e) } };
    case "cluster.deletion-requested":
    case "cluster.deleted":
      return { ...view, deleting: true };
    default:
      return view;
  }
}

/** The pool and capacity type an instance was launched for, from its running record. */
function launchOf(e: AnyEvent & { type: "cluster.instance-running" }): PoolView["instances"][string] {
  const { slot, capacityType } = e.data;
  // Events recorded before they carried the pool: a server's slot number says so.
  const pool = e.data.pool ?? (roleOfSlot(slot) === "server" ? SERVER_POOL : undefined);
  return { ...(pool ? { pool } : {}), ...(capacityType ? { capacityType } : {}) };
}

/**
 * Folds many events at once: what `events.reduce(evolvePoolView, view)` gives, with the
 * instance map copied once, not once per event. A 500-node cluster's running instances
 * come in commits of hundreds of `cluster.instance-running`; copying a map of up to 500
 * entries for each was O(n²): 90–130 ms for one 500-event fold on the loaded 2-core
 * machine, the largest of node-ops' costs in a 500-node install's profile. `view` is
 * left as it was.
 */
export function evolvePoolViewAll(view: PoolView, events: readonly AnyEvent[]): PoolView {
  let v = view;
  // This fold's own copy, filled in place: no one else holds it until the fold returns.
  let instances: Record<string, PoolView["instances"][string]> | undefined;
  for (const e of events) {
    if (e.type === "cluster.instance-running") {
      instances ??= { ...view.instances };
      instances[e.data.instanceId] = launchOf(e);
    } else v = evolvePoolView(v, e); // no other event touches the instances
  }
  return instances ? { ...v, instances } : v;
}

export const foldPoolView = (events: readonly AnyEvent[]) => evolvePoolViewAll(emptyPoolView(), events);

/** A node as the kube facts show it now. */
export interface NodeNow {
  readonly instanceId?: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly taints: readonly Taint[];
}

/** The pool the node belongs to: from its launch, else from its own label. */
export function poolOfNode(view: PoolView, node: string, now: NodeNow): string | undefined {
  return (
    view.instances[node]?.pool ??
    (now.instanceId ? view.instances[now.instanceId]?.pool : undefined) ??
    now.labels[POOL_LABEL]
  );
}

/**
 * The change that puts the node's pool classification back, or undefined when it has it.
 * Sets the classification labels and the pool's labels where missing or different; adds
 * the pool's taints where missing; removes the labels and taints the pool once gave and
 * no longer has, only where the node still shows them as the pool gave them. A node
 * whose pool cannot be told is left alone.
 *
 * @example
 * classificationDrift(view, "i-1", { labels: {}, taints: [] })
 * // → { setLabels: { "cairn.dev/pool": "workers", "cairn.dev/capacity-type": "spot" }, removeLabels: [], addTaints: [], removeTaints: [] }
 */
export function classificationDrift(
  view: PoolView,
  node: string,
  now: NodeNow,
): ClassificationChange | undefined {
  if (view.deleting) return undefined;
  const pool = poolOfNode(view, node, now);
  if (!pool) return undefined;
  const launched = view.instances[node] ?? (now.instanceId ? view.instances[now.instanceId] : undefined);
  const capacityType = launched?.capacityType ?? now.labels[CAPACITY_TYPE_LABEL];
  const spec = view.pools[pool] ?? { labels: {}, taints: [] };
  const want: Record<string, string> = {
    ...spec.labels,
    [POOL_LABEL]: pool,
    ...(capacityType ? { [CAPACITY_TYPE_LABEL]: capacityType } : {}),
  };
  const setLabels = Object.fromEntries(Object.entries(want).filter(([k, v]) => now.labels[k] !== v));
  const former: { labelPairs: readonly string[]; taints: readonly Taint[] } = view.formerly[pool] ?? {
    labelPairs: [],
    taints: [],
  };
  const removeLabels = Object.entries(now.labels)
    .filter(([k, v]) => !Object.hasOwn(want, k) && former.labelPairs.includes(pair(k, v)))
    .map(([k]) => k);
  const has = new Set(now.taints.map(taintId));
  const wanted = new Set(spec.taints.map(taintId));
  const addTaints = spec.taints.filter((t) => !has.has(taintId(t)));
  const removeTaints = former.taints
    .filter((t) => !wanted.has(taintId(t)) && has.has(taintId(t)))
    // Unless a wanted taint with the same key and effect replaces it anyway.
    .filter((t) => !spec.taints.some((w) => w.key === t.key && w.effect === t.effect))
    .map((t) => ({ key: t.key, effect: t.effect }));
  if (
    Object.keys(setLabels).length === 0 &&
    removeLabels.length === 0 &&
    addTaints.length === 0 &&
    removeTaints.length === 0
  )
    return undefined;
  return { setLabels, removeLabels, addTaints, removeTaints };
}
