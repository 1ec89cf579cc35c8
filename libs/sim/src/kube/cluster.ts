/**
 * One simulated cluster: its objects, the resourceVersion counter, a bounded event
 * history for watches, and the controllers a real control plane runs (scheduler,
 * Deployment, ReplicaSet, DaemonSet, node lifecycle, disruption, PVC protection,
 * namespace, garbage collector, pod GC) plus what the kubelets do (start pods, finish
 * terminating them).
 *
 * Every write goes through `put`/`drop`, which bump the resourceVersion, record the
 * event and tell the open watches. Controllers run synchronously after each mutation
 * (`reconcile`); what time makes happen (a pod ready after `deploymentReady`, gone after
 * `podTermination`) sits in a timer queue that `advance(now)` works off in time order,
 * each effect stamped with its own due time, so results do not depend on when the sim
 * is next asked.
 */
import { gzipSync } from "node:zlib";
import type { NodeRegistration, SimContext } from "../world.ts";
import {
  type Condition,
  carryTransitions,
  conditionsOf,
  getOrInit,
  isNodeReady,
  isPodReady,
  type KObj,
  k8sTime,
  type Obj,
  type OwnerReference,
  type Taint,
  type Toleration,
  taintsOf,
  tolerates,
  toleratesAll,
} from "./model.ts";
import {
  affinityNode,
  daemonPodTolerations,
  defaultPodSpec,
  matchesNode,
  namespaceObject,
  nodeConditions,
  nodeFromRegistration,
  nodeNameAffinity,
  normalizedImage,
  podRequests,
  podTemplateHash,
  qosClass,
  quantityValue,
  randomSuffix,
  SYSTEM_TAINT_KEYS,
  systemTaints,
  UNSCHEDULABLE_TAINT,
  unknownConditions,
  withTolerations,
} from "./objects.ts";
import { jsonEqual } from "./patch.ts";
import { type IntOrString, NoControllerError, pdbCounts, scaledValue } from "./pdb.ts";
import {
  DAEMONSETS,
  DEPLOYMENTS,
  NAMESPACES,
  NODES,
  PDBS,
  PODS,
  PVCS,
  REPLICASETS,
  RESOURCES,
  type ResourceDef,
  resourceOfKind,
} from "./resources.ts";
import { rollingStep } from "./rollout.ts";
import { fromSelectorObject, type LabelSelectorObject, matchesLabels } from "./selectors.ts";

/**
 * The watch cache, per resource, as kube-apiserver's (`k8s.io/apiserver/pkg/storage/cacher/
 * watch_cache.go`): a window of events sized between a lower bound of 100 and an upper
 * bound of 100 × 1024, which grows to hold the last `eventFreshDuration` (75 s) of events
 * and shrinks past it. So a watch can resume from any of the last 100 events of its
 * resource however old, and from anything in the last 75 s however busy; older than the
 * window, 410 "too old resource version". Nothing expires by time alone.
 */
export const WATCH_CACHE_MIN = 100;
export const WATCH_CACHE_MAX = 100 * 1024;
export const WATCH_CACHE_FRESH_MS = 75_000;

/** After a failed pull the kubelet backs off (10 s at first): ErrImagePull turns ImagePullBackOff. */
export const IMAGE_PULL_BACKOFF_MS = 10_000;

/** The garbage collector's finalizers (`metav1.FinalizerOrphanDependents`, `FinalizerDeleteDependents`). */
export const ORPHAN_FINALIZER = "orphan";
export const FOREGROUND_FINALIZER = "foregroundDeletion";

export type PropagationPolicy = "Orphan" | "Background" | "Foreground";

const PVC_PROTECTION = "kubernetes.io/pvc-protection";
/** The Deployment controller's annotations on its ReplicaSets (and the revision on itself). */
const REVISION = "deployment.kubernetes.io/revision";
const DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas";

/** What a delete did: the object is gone, or it stays (finalizers, graceful termination) as `obj`. */
export interface Deleted {
  obj: KObj;
  gone: boolean;
}

/** An object's place in the store, as the garbage collector's graph names it. */
interface ObjRef {
  def: ResourceDef;
  key: string;
}
const refText = (def: ResourceDef, key: string) => `${def.resource}\n${key}`;
function parseRef(text: string): ObjRef {
  const i = text.indexOf("\n");
  const resource = text.slice(0, i);
  return { def: RESOURCES.find((d) => d.resource === resource)!, key: text.slice(i + 1) };
}

/** The owner reference that says who controls the object (`metav1.GetControllerOf`). */
export const controllerOf = (o: KObj): OwnerReference | undefined =>
  o.metadata.ownerReferences?.find((r) => r.controller === true);

/** A pod that counts for its controller: not terminating, not finished (`controller.FilterActivePods`). */
const isActivePod = (p: KObj) =>
  !p.metadata.deletionTimestamp && p.status?.phase !== "Succeeded" && p.status?.phase !== "Failed";

export type EventType = "ADDED" | "MODIFIED" | "DELETED";

export interface Entry {
  obj: KObj;
  json: string;
  /** The JSON as a list item (without kind and apiVersion), made on first list. */
  item?: string;
}

export interface HistEvent {
  rv: number;
  time: number;
  def: ResourceDef;
  type: EventType;
  obj: KObj;
  json: string;
  prev: KObj | undefined;
}

/** An open watch as the cluster sees it. */
export interface WatchSink {
  readonly def: ResourceDef;
  offer(ev: HistEvent): void;
}

/** What the sim knows about a pod beyond the object (the kubelet's and controllers' view). */
interface PodX {
  /**
   * Made by one of the sim's controllers (ReplicaSet, DaemonSet): its kubelet pulls the
   * images and starts it after the latencies. A pod made through the API starts at once.
   */
  managed?: boolean;
  /** Its termination is over but finalizers hold the object. */
  finished?: boolean;
  /** Sim ms the containers run and pass readiness (never, while an image cannot be pulled). */
  startAt?: number;
  /** An image of it the registry does not have: the pull fails at `at`, then backs off. */
  pullError?: { at: number; image: string };
  boundAt?: number;
  ip?: string;
  /** Why the scheduler could not place it. */
  unschedulable?: string;
  /** Termination waits for its NotReady node to come back. */
  awaitingNode?: boolean;
  /** When the taint manager is due to evict it (a NoExecute taint's tolerationSeconds run out). */
  evictAt?: number;
}

interface Timer {
  at: number;
  seq: number;
  kind: "pod-start" | "pod-gone" | "taint-evict" | "pdb-sync" | "node-unknown" | "pod-gc";
  key: string;
  uid: string;
}

/** What `Cluster.snapshot` takes: plain data. */
export interface ClusterSnapshot {
  id: string;
  token: string;
  rv: number;
  timerSeq: number;
  objects: [string, KObj[]][];
  timers: Timer[];
  podX: [string, PodX][];
  nodeIndex: [string, number][];
  nodeReady: [string, boolean][];
  kubeletDown: [string, number][];
  nextIp: [string, number][];
  images: [string, [string, number][]][];
  pdbSyncAt: [string, number][];
}

/** A list's items, encoded, and (made on first need) gzipped as one gzip member. */
export interface ListItems {
  items: Buffer;
  /** How many lists have used these items (1 on the list that built them). */
  hits: number;
  gzip(): Buffer;
}

export const keyOf = (ns: string | undefined, name: string) => (ns ? `${ns}/${name}` : name);

export class Cluster {
  readonly id: string;
  readonly token: string;
  rv = 0;
  /** Per resource, a watch from a resourceVersion older than this gets 410 (one before its oldest event kept). */
  readonly #compactedRv = new Map<ResourceDef, number>();
  readonly watchers = new Set<WatchSink>();

  readonly #ctx: SimContext;
  readonly #stores = new Map<ResourceDef, Map<string, Entry>>();
  readonly #sorted = new Map<ResourceDef, string[]>();
  /** Bumped on every write of a kind: what list caches are checked against. */
  readonly #versions = new Map<ResourceDef, number>();
  /** Encoded list items by (kind, namespace, selectors), valid while the kind's version holds. */
  readonly #listCache = new Map<string, ListItems & { version: number }>();
  /** Per resource: the watch cache's window of events, oldest first, from `head`. */
  readonly #history = new Map<ResourceDef, { events: HistEvent[]; head: number }>();
  readonly #timers: Timer[] = [];
  #timerSeq = 0;
  /** The effective time while a timer's effects apply. */
  #at: number | undefined;

  readonly #podsByNode = new Map<string, Set<string>>();
  readonly #podsByNs = new Map<string, Set<string>>();
  /** Per namespace, the live pods no controller owns (what a ReplicaSet or DaemonSet may adopt). */
  readonly #orphans = new Map<string, Set<string>>();
  /** Every object by uid: how the garbage collector finds an owner. */
  readonly #byUid = new Map<string, ObjRef>();
  /** The garbage collector's graph: owner uid → its dependents (`refText`). */
  readonly #dependents = new Map<string, Set<string>>();
  readonly #podX = new Map<string, PodX>();
  readonly #unscheduled = new Set<string>();
  readonly #nodeIndex = new Map<string, number>();
  readonly #nodeReady = new Map<string, boolean>();
  /** Nodes whose kubelet stopped posting status (its instance stopped or went away), since when. */
  readonly #kubeletDown = new Map<string, number>();
  readonly #nextIp = new Map<string, number>();
  /** Per node, the images its kubelet has pulled (or is pulling) and when each is there (sim ms). */
  readonly #images = new Map<string, Map<string, number>>();
  /** Images the registry does not have (normalized references), shared by every cluster. */
  readonly #missingImages: ReadonlySet<string>;
  /** PDBs (ns/name) the disruption controller has not processed since their last spec change, and when it will. */
  readonly #pdbSyncAt = new Map<string, number>();
  readonly #dirty = {
    nodes: new Set<string>(),
    scheduler: false,
    deployments: new Set<string>(),
    replicaSets: new Set<string>(),
    daemonSets: new Set<string>(),
    pdbNs: new Set<string>(),
    /** Objects whose owners the garbage collector checks (`refText`). */
    gc: new Set<string>(),
    /** Objects being deleted whose finalizers the garbage collector works off (`refText`). */
    deleting: new Set<string>(),
    pvcNs: new Set<string>(),
    namespaces: new Set<string>(),
  };

  /** A new cluster with its default namespaces; or, from a snapshot, the cluster as it was. */
  constructor(
    id: string,
    token: string,
    ctx: SimContext,
    missingImages: ReadonlySet<string> = new Set(),
    from?: ClusterSnapshot,
  ) {
    this.id = id;
    this.token = token;
    this.#ctx = ctx;
    this.#missingImages = missingImages;
    for (const d of RESOURCES) this.#stores.set(d, new Map());
    if (from) {
      this.#load(from);
      return;
    }
    for (const ns of ["default", "kube-node-lease", "kube-public", "kube-system"]) {
      this.put(NAMESPACES, namespaceObject(ns, ctx.random.uuid(), this.now()));
    }
  }

  /**
   * The cluster's whole state as JSON-able data (journal compaction): its objects, the
   * resourceVersion, what the controllers and kubelets keep beside the objects, and the
   * timers. The watch cache is not kept: like a restarted kube-apiserver, the restored
   * one starts its window at the current resourceVersion (older watches get 410).
   */
  snapshot(): ClusterSnapshot {
    return {
      id: this.id,
      token: this.token,
      rv: this.rv,
      timerSeq: this.#timerSeq,
      objects: RESOURCES.map((d) => [d.resource, [...this.#stores.get(d)!.values()].map((e) => e.obj)]),
      timers: this.#timers.map((t) => ({ ...t })),
      podX: [...this.#podX].map(([k, x]) => [k, { ...x }]),
      nodeIndex: [...this.#nodeIndex],
      nodeReady: [...this.#nodeReady],
      kubeletDown: [...this.#kubeletDown],
      nextIp: [...this.#nextIp],
      images: [...this.#images].map(([n, m]) => [n, [...m]]),
      pdbSyncAt: [...this.#pdbSyncAt],
    };
  }

  #load(s: ClusterSnapshot): void {
    this.rv = s.rv;
    this.#timerSeq = s.timerSeq;
    for (const [resource, objs] of s.objects) {
      const def = RESOURCES.find((d) => d.resource === resource);
      if (!def) continue;
      const store = this.#stores.get(def)!;
      for (const obj of objs) {
        const key = keyOf(obj.metadata.namespace, obj.metadata.name);
        store.set(key, { obj, json: JSON.stringify(obj) });
        // The indexes the hooks keep, without their side effects (the snapshot was settled).
        const ref = refText(def, key);
        this.#byUid.set(obj.metadata.uid, { def, key });
        for (const r of obj.metadata.ownerReferences ?? [])
          getOrInit(this.#dependents, r.uid, () => new Set<string>()).add(ref);
        if (def === PODS) {
          const ns = obj.metadata.namespace!;
          const node = obj.spec?.nodeName as string | undefined;
          getOrInit(this.#podsByNs, ns, () => new Set<string>()).add(key);
          if (node) getOrInit(this.#podsByNode, node, () => new Set<string>()).add(key);
          else if (!obj.metadata.deletionTimestamp) this.#unscheduled.add(key);
          if (!controllerOf(obj) && isActivePod(obj))
            getOrInit(this.#orphans, ns, () => new Set<string>()).add(key);
        }
      }
      this.#versions.set(def, 1);
      this.#compactedRv.set(def, s.rv);
    }
    this.#timers.push(...s.timers);
    for (const [k, x] of s.podX) this.#podX.set(k, x);
    for (const [k, v] of s.nodeIndex) this.#nodeIndex.set(k, v);
    for (const [k, v] of s.nodeReady) this.#nodeReady.set(k, v);
    for (const [k, v] of s.kubeletDown) this.#kubeletDown.set(k, v);
    for (const [k, v] of s.nextIp) this.#nextIp.set(k, v);
    for (const [n, m] of s.images) this.#images.set(n, new Map(m));
    for (const [k, v] of s.pdbSyncAt) this.#pdbSyncAt.set(k, v);
  }

  now(): number {
    return this.#at ?? this.#ctx.clock.now();
  }

  uuid(): string {
    return this.#ctx.random.uuid();
  }

  /** A float in [0, 1) from the sim's seeded PRNG. */
  random(): number {
    return this.#ctx.random.next();
  }

  // -------------------------------------------------------------- reads

  get(def: ResourceDef, key: string): Entry | undefined {
    return this.#stores.get(def)!.get(key);
  }

  /** Entries in the API's order (by namespace, then name); `ns` narrows to one namespace. */
  entries(def: ResourceDef, ns?: string): Entry[] {
    const store = this.#stores.get(def)!;
    if (def === PODS && ns !== undefined) {
      const keys = [...(this.#podsByNs.get(ns) ?? [])].sort();
      return keys.map((k) => store.get(k)!);
    }
    let keys = this.#sorted.get(def);
    if (!keys) {
      keys = [...store.keys()].sort();
      this.#sorted.set(def, keys);
    }
    const out: Entry[] = [];
    if (ns === undefined) {
      for (const k of keys) out.push(store.get(k)!);
    } else {
      const prefix = `${ns}/`;
      for (const k of keys) if (k.startsWith(prefix)) out.push(store.get(k)!);
    }
    return out;
  }

  /** How many writes the kind has seen (a list cache key). */
  version(def: ResourceDef): number {
    return this.#versions.get(def) ?? 0;
  }

  /** The encoded items of a list, from the cache while the kind is unchanged, else built and kept. */
  listItems(def: ResourceDef, key: string, build: () => string): ListItems {
    const version = this.version(def);
    const hit = this.#listCache.get(key);
    if (hit && hit.version === version) {
      hit.hits++;
      return hit;
    }
    const items = Buffer.from(build(), "utf8");
    let gz: Buffer | undefined;
    const entry = { version, items, hits: 1, gzip: () => (gz ??= gzipSync(items, { level: 1 })) };
    this.#listCache.delete(key);
    this.#listCache.set(key, entry);
    if (this.#listCache.size > 64) this.#listCache.delete(this.#listCache.keys().next().value!);
    return entry;
  }

  /** Pods bound to a node, in key order. */
  podsOnNode(node: string): Entry[] {
    const keys = [...(this.#podsByNode.get(node) ?? [])].sort();
    return keys.map((k) => this.get(PODS, k)!);
  }

  /** A watch from a resourceVersion below this gets 410: one before the oldest event the watch cache keeps. */
  compactedRv(def: ResourceDef): number {
    return this.#compactedRv.get(def) ?? 0;
  }

  /** The resource's events after `rv` (caller checks `compactedRv` first). */
  eventsSince(def: ResourceDef, rv: number): HistEvent[] {
    const w = this.#history.get(def);
    if (!w) return [];
    const h = w.events;
    let lo = w.head;
    let hi = h.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (h[mid]!.rv <= rv) lo = mid + 1;
      else hi = mid;
    }
    return h.slice(lo);
  }

  // -------------------------------------------------------------- writes

  /** Stores an object (ADDED or MODIFIED): bumps the resourceVersion, records, tells watches. */
  put(def: ResourceDef, input: KObj): KObj {
    let obj = input;
    const key = keyOf(obj.metadata.namespace, obj.metadata.name);
    const store = this.#stores.get(def)!;
    const prev = store.get(key)?.obj;
    obj.metadata.resourceVersion = String(++this.rv);
    this.#versions.set(def, this.version(def) + 1);
    let json = JSON.stringify(obj);
    if (!json.startsWith(def.prefix)) {
      // Keep kind and apiVersion first: list items are the JSON without that prefix.
      const { kind: _k, apiVersion: _a, ...rest } = obj;
      obj = { kind: def.kind, apiVersion: def.apiVersion, ...rest } as KObj;
      json = JSON.stringify(obj);
    }
    store.set(key, { obj, json });
    if (!prev) this.#sorted.delete(def);
    this.#event(def, prev ? "MODIFIED" : "ADDED", obj, json, prev);
    this.#hook(def, key, prev, obj);
    return obj;
  }

  /** Removes an object (DELETED carries a new resourceVersion). */
  drop(def: ResourceDef, key: string): KObj | undefined {
    const store = this.#stores.get(def)!;
    const e = store.get(key);
    if (!e) return undefined;
    store.delete(key);
    this.#sorted.delete(def);
    this.#versions.set(def, this.version(def) + 1);
    const obj: KObj = { ...e.obj, metadata: { ...e.obj.metadata, resourceVersion: String(++this.rv) } };
    this.#event(def, "DELETED", obj, JSON.stringify(obj), e.obj);
    this.#hook(def, key, e.obj, undefined);
    return obj;
  }

  /** Applies `change` to a copy of the object and stores it if anything changed. */
  edit(def: ResourceDef, key: string, change: (draft: KObj) => void): KObj | undefined {
    const e = this.get(def, key);
    if (!e) return undefined;
    const draft = structuredClone(e.obj);
    change(draft);
    draft.metadata.resourceVersion = e.obj.metadata.resourceVersion;
    if (jsonEqual(draft, e.obj)) return e.obj;
    return this.put(def, draft);
  }

  #event(def: ResourceDef, type: EventType, obj: KObj, json: string, prev: KObj | undefined): void {
    const ev: HistEvent = { rv: this.rv, time: this.now(), def, type, obj, json, prev };
    const w = getOrInit(this.#history, def, () => ({ events: [] as HistEvent[], head: 0 }));
    w.events.push(ev);
    this.#trim(def, w);
    for (const x of this.watchers) if (x.def === def) x.offer(ev);
  }

  /** Drops what falls out of the resource's watch-cache window (see WATCH_CACHE_MIN). */
  #trim(def: ResourceDef, w: { events: HistEvent[]; head: number }): void {
    const now = this.now();
    let head = w.head;
    const size = () => w.events.length - head;
    while (
      size() > WATCH_CACHE_MAX ||
      (size() > WATCH_CACHE_MIN && w.events[head]!.time < now - WATCH_CACHE_FRESH_MS)
    )
      head++;
    if (head === w.head) return;
    // What a watch may start from: one before the oldest event kept, as kube-apiserver's
    // watch cache answers (watch_cache.go, getAllEventsSinceLocked: 410 "too old resource
    // version" when `resourceVersion < oldest-1`), not the last event dropped: the versions
    // between them (other resources' writes) are too old as well.
    this.#compactedRv.set(def, (w.events[head]?.rv ?? this.rv + 1) - 1);
    w.head = head;
    if (w.head > 4096) {
      w.events.splice(0, w.head);
      w.head = 0;
    }
  }

  #hook(def: ResourceDef, key: string, prev: KObj | undefined, next: KObj | undefined): void {
    this.#graph(def, key, prev, next);
    if (def === PODS) this.#podHook(key, prev, next);
    else if (def === NODES) {
      this.#dirty.nodes.add(key);
      this.#dirty.scheduler ||= this.#unscheduled.size > 0;
      // A node added, removed, relabelled or retainted: where DaemonSets run may change.
      for (const k of this.#stores.get(DAEMONSETS)!.keys()) this.#dirty.daemonSets.add(k);
    } else if (def === DEPLOYMENTS) this.#dirty.deployments.add(key);
    else if (def === REPLICASETS) {
      this.#dirty.replicaSets.add(key);
      // Its Deployment follows its status (and adopts or scales it).
      for (const o of [prev, next]) {
        const c = o && controllerOf(o);
        if (c?.kind === "Deployment") this.#dirty.deployments.add(keyOf(o!.metadata.namespace, c.name));
      }
    } else if (def === DAEMONSETS) this.#dirty.daemonSets.add(key);
    else if (def === PVCS) this.#dirty.pvcNs.add((next ?? prev)!.metadata.namespace!);
    else if (def === PDBS) {
      // The real disruption controller processes a new or changed budget a moment later;
      // until then its observedGeneration lags and evictions it covers answer 429.
      const lag = this.#ctx.latencies.pdbSync * 1000;
      if (!next) this.#pdbSyncAt.delete(key);
      else if (lag > 0 && (!prev || prev.metadata.generation !== next.metadata.generation)) {
        const at = this.now() + lag;
        this.#pdbSyncAt.set(key, at);
        this.#timer(at, "pdb-sync", key, next.metadata.uid);
      }
      this.#dirty.pdbNs.add((next ?? prev)!.metadata.namespace!);
    }
  }

  /**
   * The garbage collector's graph (`graph_builder.go`): every object by uid, every owner's
   * dependents. A new or changed owner reference is checked; an owner gone makes its
   * dependents garbage to check; an object being deleted has its finalizers worked off.
   */
  #graph(def: ResourceDef, key: string, prev: KObj | undefined, next: KObj | undefined): void {
    const ref = refText(def, key);
    const uid = (next ?? prev)!.metadata.uid;
    if (next) this.#byUid.set(uid, { def, key });
    else if (this.#byUid.get(uid)?.key === key) this.#byUid.delete(uid);
    const before = prev?.metadata.ownerReferences ?? [];
    const after = next?.metadata.ownerReferences ?? [];
    if (before.length > 0 || after.length > 0) {
      const changed = !next || !jsonEqual(before, after);
      if (changed) {
        for (const r of before) {
          if (next && after.some((a) => a.uid === r.uid)) continue;
          const set = this.#dependents.get(r.uid);
          set?.delete(ref);
          if (set?.size === 0) this.#dependents.delete(r.uid);
        }
        if (next) for (const r of after) getOrInit(this.#dependents, r.uid, () => new Set<string>()).add(ref);
        if (next && after.length > 0) this.#dirty.gc.add(ref);
        // A dependent gone or let go: an owner waiting for its dependents may finish.
        for (const r of before) {
          const o = this.#byUid.get(r.uid);
          if (o) this.#dirty.deleting.add(refText(o.def, o.key));
        }
      }
    }
    if (!next) for (const d of this.#dependents.get(uid) ?? []) this.#dirty.gc.add(d);
    if (next?.metadata.deletionTimestamp) this.#dirty.deleting.add(ref);
  }

  #podHook(key: string, prev: KObj | undefined, next: KObj | undefined): void {
    const ns = (next ?? prev)!.metadata.namespace!;
    // Its controller follows it; an orphan may be adopted by a ReplicaSet or DaemonSet of its namespace.
    for (const o of [prev, next]) {
      const c = o && controllerOf(o);
      if (c?.kind === "ReplicaSet") this.#dirty.replicaSets.add(keyOf(ns, c.name));
      else if (c?.kind === "DaemonSet") this.#dirty.daemonSets.add(keyOf(ns, c.name));
    }
    // A pod gone: a Recreate rollout waits for the last old one (`dc.deletePod`).
    const c = !next && prev ? controllerOf(prev) : undefined;
    const rs = c?.kind === "ReplicaSet" ? this.get(REPLICASETS, keyOf(ns, c.name))?.obj : undefined;
    const d = rs && controllerOf(rs);
    if (d?.kind === "Deployment") this.#dirty.deployments.add(keyOf(ns, d.name));
    const orphan = next !== undefined && !controllerOf(next) && isActivePod(next);
    if (orphan) {
      getOrInit(this.#orphans, ns, () => new Set<string>()).add(key);
      if (!prev || !jsonEqual(prev.metadata.labels, next.metadata.labels) || controllerOf(prev)) {
        for (const e of this.entries(REPLICASETS, ns))
          this.#dirty.replicaSets.add(keyOf(ns, e.obj.metadata.name));
        for (const e of this.entries(DAEMONSETS, ns))
          this.#dirty.daemonSets.add(keyOf(ns, e.obj.metadata.name));
      }
    } else this.#orphans.get(ns)?.delete(key);
    const before = prev?.spec?.nodeName as string | undefined;
    const after = next?.spec?.nodeName as string | undefined;
    if (before !== after || !next) {
      if (before) this.#podsByNode.get(before)?.delete(key);
      if (after && next) {
        getOrInit(this.#podsByNode, after, () => new Set<string>()).add(key);
      }
    }
    if (!prev) getOrInit(this.#podsByNs, ns, () => new Set<string>()).add(key);
    if (next && !after && !next.metadata.deletionTimestamp) {
      this.#unscheduled.add(key);
      this.#dirty.scheduler = true;
    } else {
      this.#unscheduled.delete(key);
    }
    this.#dirty.pdbNs.add(ns);
    if (!next) {
      // A pod gone frees its node's resources: the scheduler looks at the waiting ones again.
      this.#dirty.scheduler ||= this.#unscheduled.size > 0;
      this.#podsByNs.get(ns)?.delete(key);
      this.#podX.delete(key);
      this.#dirty.pvcNs.add(ns);
      this.#dirty.namespaces.add(ns);
    }
  }

  // -------------------------------------------------------------- time

  #timer(at: number, kind: Timer["kind"], key: string, uid: string): void {
    const t: Timer = { at, seq: ++this.#timerSeq, kind, key, uid };
    const q = this.#timers;
    let lo = 0;
    let hi = q.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const m = q[mid]!;
      if (m.at < at || (m.at === at && m.seq < t.seq)) lo = mid + 1;
      else hi = mid;
    }
    q.splice(lo, 0, t);
  }

  /** The sim time of the next effect time will make happen (undefined: none is queued). */
  nextDueAt(): number | undefined {
    return this.#timers[0]?.at;
  }

  /** Applies everything due by `now`, in time order, then compacts old history. */
  advance(now: number): void {
    const q = this.#timers;
    while (q.length > 0 && q[0]!.at <= now) {
      const t = q.shift()!;
      this.#at = t.at;
      try {
        this.#fire(t);
        this.reconcile();
      } finally {
        this.#at = undefined;
      }
    }
    for (const [def, w] of this.#history) this.#trim(def, w);
  }

  #fire(t: Timer): void {
    if (t.kind === "node-unknown") {
      const node = this.get(NODES, t.key);
      if (!node || node.obj.metadata.uid !== t.uid || !this.#kubeletDown.has(t.key)) return;
      const at = k8sTime(this.now());
      this.edit(NODES, t.key, (n) => {
        n.status = { ...n.status, conditions: unknownConditions(conditionsOf(n) as unknown as Obj[], at) };
      });
      return;
    }
    if (t.kind === "pod-gc") {
      // The pod GC controller: a pod bound to a Node that is (still) gone is force-deleted.
      const e = this.get(PODS, t.key);
      if (!e || e.obj.metadata.uid !== t.uid) return;
      const nodeName = e.obj.spec?.nodeName as string | undefined;
      if (nodeName && !this.get(NODES, nodeName)) this.#podGone(t.key);
      return;
    }
    if (t.kind === "pdb-sync") {
      if (this.#pdbSyncAt.get(t.key) !== t.at) return;
      this.#pdbSyncAt.delete(t.key);
      this.#dirty.pdbNs.add(t.key.slice(0, t.key.indexOf("/")));
      return;
    }
    const e = this.get(PODS, t.key);
    if (!e || e.obj.metadata.uid !== t.uid) return;
    if (t.kind === "pod-start") {
      this.#refreshPod(t.key);
      return;
    }
    if (t.kind === "taint-evict") {
      const x = this.#podX.get(t.key);
      if (x?.evictAt !== t.at) return;
      const nodeName = e.obj.spec?.nodeName as string | undefined;
      if (nodeName) this.#dirty.nodes.add(nodeName);
      return;
    }
    const nodeName = e.obj.spec?.nodeName as string | undefined;
    const node = nodeName ? this.get(NODES, nodeName) : undefined;
    if (node && !isNodeReady(node.obj)) {
      // No kubelet to confirm the termination: the pod stays Terminating until its node is back.
      this.#podX.get(t.key)!.awaitingNode = true;
      return;
    }
    this.#podGone(t.key);
  }

  /** The pod's termination is over: it goes, unless finalizers hold it (until they are removed). */
  #podGone(key: string): void {
    const e = this.get(PODS, key);
    if (!e) return;
    if ((e.obj.metadata.finalizers ?? []).length === 0) {
      this.drop(PODS, key);
      return;
    }
    const x = this.#podX.get(key);
    if (x) x.finished = true;
    if (!e.obj.metadata.deletionTimestamp) {
      const now = this.now();
      this.edit(PODS, key, (p) => {
        p.metadata.deletionTimestamp = k8sTime(now);
        p.metadata.deletionGracePeriodSeconds = 0;
      });
    }
  }

  // -------------------------------------------------------------- controllers

  /** Runs the controllers until nothing they watch is left to act on. */
  reconcile(): void {
    const d = this.#dirty;
    for (let guard = 0; guard < 10_000; guard++) {
      if (d.nodes.size > 0) {
        const names = [...d.nodes].sort();
        d.nodes.clear();
        for (const n of names) this.#nodeLifecycle(n);
      } else if (d.scheduler) {
        d.scheduler = false;
        this.#schedule();
      } else if (d.replicaSets.size > 0) {
        const keys = [...d.replicaSets].sort();
        d.replicaSets.clear();
        for (const k of keys) this.#reconcileReplicaSet(k);
      } else if (d.daemonSets.size > 0) {
        const keys = [...d.daemonSets].sort();
        d.daemonSets.clear();
        for (const k of keys) this.#reconcileDaemonSet(k);
      } else if (d.deployments.size > 0) {
        const keys = [...d.deployments].sort();
        d.deployments.clear();
        for (const k of keys) this.#reconcileDeployment(k);
      } else if (d.gc.size > 0) {
        const refs = [...d.gc].sort();
        d.gc.clear();
        for (const r of refs) this.#collect(parseRef(r));
      } else if (d.deleting.size > 0) {
        const refs = [...d.deleting].sort();
        d.deleting.clear();
        for (const r of refs) this.#finalize(parseRef(r));
      } else if (d.pvcNs.size > 0) {
        const nss = [...d.pvcNs].sort();
        d.pvcNs.clear();
        for (const ns of nss) this.#pvcProtection(ns);
      } else if (d.namespaces.size > 0) {
        const nss = [...d.namespaces].sort();
        d.namespaces.clear();
        for (const ns of nss) this.#finalizeNamespace(ns);
      } else if (d.pdbNs.size > 0) {
        const nss = [...d.pdbNs].sort();
        d.pdbNs.clear();
        for (const ns of nss) this.#disruption(ns);
      } else {
        return;
      }
    }
    throw new Error(`kube: controllers of cluster ${this.id} did not settle`);
  }

  /**
   * The garbage collector (`garbagecollector.go`, `attemptToDeleteItem`) for an object with
   * owner references. Each owner is looked up by kind, namespace and name and must carry
   * the reference's uid: absent or another uid, it is *dangling*; being deleted in the
   * foreground, the object is *waited for*; else *solid*. Owners of kinds the sim does not
   * serve (StatefulSet, Job…) cannot be looked up and count as solid.
   *  1. A solid owner left: the references to dangling and waiting owners are removed.
   *  2. Only waiting owners, and it has dependents of its own: deleted in the foreground.
   *  3. Otherwise it is garbage: deleted with the policy its own finalizers ask (orphan,
   *     foreground), else in the background. A pod goes gracefully.
   * The real collector does this within milliseconds; the sim at once.
   */
  #collect({ def, key }: ObjRef): void {
    const obj = this.get(def, key)?.obj;
    const refs = obj?.metadata.ownerReferences ?? [];
    if (!obj || refs.length === 0 || obj.metadata.deletionTimestamp) return;
    const ns = obj.metadata.namespace;
    let solid = 0;
    const dangling: string[] = [];
    const waiting: string[] = [];
    for (const r of refs) {
      const od = resourceOfKind(r.apiVersion, r.kind);
      if (!od) {
        solid++;
        continue;
      }
      const owner =
        od.namespaced && !ns ? undefined : this.get(od, keyOf(od.namespaced ? ns : undefined, r.name))?.obj;
      if (!owner || owner.metadata.uid !== r.uid) dangling.push(r.uid);
      else if (owner.metadata.deletionTimestamp && owner.metadata.finalizers?.includes(FOREGROUND_FINALIZER))
        waiting.push(r.uid);
      else solid++;
    }
    if (solid > 0) {
      if (dangling.length + waiting.length === 0) return;
      const drop = new Set([...dangling, ...waiting]);
      this.edit(def, key, (x) => {
        const kept = (x.metadata.ownerReferences ?? []).filter((r) => !drop.has(r.uid));
        if (kept.length > 0) x.metadata.ownerReferences = kept;
        else delete x.metadata.ownerReferences;
      });
      return;
    }
    if (waiting.length > 0 && (this.#dependents.get(obj.metadata.uid)?.size ?? 0) > 0) {
      this.deleteObject(def, key, "Foreground");
      return;
    }
    const fins = obj.metadata.finalizers ?? [];
    this.deleteObject(
      def,
      key,
      fins.includes(ORPHAN_FINALIZER)
        ? "Orphan"
        : fins.includes(FOREGROUND_FINALIZER)
          ? "Foreground"
          : "Background",
    );
  }

  /**
   * An object being deleted, with the garbage collector's finalizers worked off:
   * `orphan` — its dependents lose their references to it, then the finalizer goes;
   * `foregroundDeletion` — its dependents are deleted, and the finalizer goes once none
   * with `blockOwnerDeletion` is left. An object whose finalizers are all gone is removed
   * (a pod once its termination is over; namespaces have their own controller).
   */
  #finalize({ def, key }: ObjRef): void {
    const obj = this.get(def, key)?.obj;
    if (!obj?.metadata.deletionTimestamp || def === NAMESPACES) return;
    const uid = obj.metadata.uid;
    const before = obj.metadata.finalizers ?? [];
    let fins = before;
    const dependents = () =>
      [...(this.#dependents.get(uid) ?? [])]
        .map(parseRef)
        .map((r) => ({ ...r, obj: this.get(r.def, r.key)?.obj }))
        .filter((r): r is ObjRef & { obj: KObj } => r.obj !== undefined);
    if (fins.includes(ORPHAN_FINALIZER)) {
      for (const d of dependents()) {
        this.edit(d.def, d.key, (x) => {
          const kept = (x.metadata.ownerReferences ?? []).filter((r) => r.uid !== uid);
          if (kept.length > 0) x.metadata.ownerReferences = kept;
          else delete x.metadata.ownerReferences;
        });
      }
      fins = fins.filter((f) => f !== ORPHAN_FINALIZER);
    }
    if (fins.includes(FOREGROUND_FINALIZER)) {
      const deps = dependents();
      for (const d of deps) if (!d.obj.metadata.deletionTimestamp) this.#dirty.gc.add(refText(d.def, d.key));
      const blocking = deps.some((d) =>
        d.obj.metadata.ownerReferences?.some((r) => r.uid === uid && r.blockOwnerDeletion === true),
      );
      if (!blocking) fins = fins.filter((f) => f !== FOREGROUND_FINALIZER);
    }
    if (fins.length !== before.length) {
      this.edit(def, key, (x) => {
        if (fins.length > 0) x.metadata.finalizers = fins;
        else delete x.metadata.finalizers;
      });
    }
    if (fins.length > 0) return;
    if (def === PODS && !this.#podX.get(key)?.finished) return; // the kubelet is still terminating it
    this.drop(def, key);
  }

  /** Node lifecycle: system taints, pods' readiness, pod GC for a removed node. */
  #nodeLifecycle(name: string): void {
    const e = this.get(NODES, name);
    if (!e) {
      this.#nodeReady.delete(name);
      this.#images.delete(name);
      this.#kubeletDown.delete(name);
      // Pod GC finds them orphaned after its quarantine, not at once.
      const at = this.now() + this.#ctx.latencies.orphanPodGc * 1000;
      for (const p of this.podsOnNode(name))
        this.#timer(at, "pod-gc", keyOf(p.obj.metadata.namespace, p.obj.metadata.name), p.obj.metadata.uid);
      return;
    }
    const ready = isNodeReady(e.obj);
    const unreachable = conditionsOf(e.obj).some((c) => c.type === "Ready" && c.status === "Unknown");
    const unschedulable = e.obj.spec?.unschedulable === true;
    const taints = taintsOf(e.obj);
    const want = systemTaints(unschedulable, ready, k8sTime(this.now()), unreachable);
    const same = (a: Taint, b: Taint) => a.key === b.key && a.effect === b.effect;
    const kept = taints.filter((t) => !SYSTEM_TAINT_KEYS.includes(t.key) || want.some((w) => same(w, t)));
    const added = want.filter((w) => !taints.some((t) => same(w, t)));
    if (kept.length !== taints.length || added.length > 0) {
      this.edit(NODES, name, (n) => {
        const next = [...kept, ...added];
        if (next.length > 0) n.spec = { ...n.spec, taints: next };
        else if (n.spec) delete n.spec.taints;
      });
    }
    this.#taintManager(name);
    if (this.#nodeReady.get(name) !== ready) {
      this.#nodeReady.set(name, ready);
      for (const p of this.podsOnNode(name)) {
        const key = keyOf(p.obj.metadata.namespace, p.obj.metadata.name);
        this.#refreshPod(key);
        const x = this.#podX.get(key);
        if (ready && x?.awaitingNode) {
          x.awaitingNode = false;
          this.#timer(
            this.now() + this.#ctx.latencies.podTermination * 1000,
            "pod-gone",
            key,
            p.obj.metadata.uid,
          );
        }
      }
    }
  }

  /**
   * The taint manager (taint-based eviction): a pod that does not tolerate a NoExecute
   * taint of its node is evicted at once; one that tolerates it for tolerationSeconds is
   * evicted when they run out (counted from the taint's timeAdded); without
   * tolerationSeconds, never. Every pod gets `node.kubernetes.io/not-ready:NoExecute`
   * for 300 s by default, so the pods of a NotReady node go after 5 minutes.
   */
  #taintManager(nodeName: string): void {
    const node = this.get(NODES, nodeName)?.obj;
    if (!node) return;
    const taints = taintsOf(node).filter((t) => t.effect === "NoExecute");
    const now = this.now();
    for (const p of this.podsOnNode(nodeName)) {
      if (p.obj.metadata.deletionTimestamp) continue;
      const key = keyOf(p.obj.metadata.namespace, p.obj.metadata.name);
      const x = this.#podX.get(key);
      if (!x) continue;
      const tols = (p.obj.spec?.tolerations as Toleration[] | undefined) ?? [];
      let due = Number.POSITIVE_INFINITY;
      for (const taint of taints) {
        const matching = tols.filter((t) => tolerates(t, taint));
        const since = taint.timeAdded ? Date.parse(taint.timeAdded) : now;
        if (matching.length === 0) {
          due = now;
          break;
        }
        const secs = matching.map((t) => t.tolerationSeconds).filter((s): s is number => s !== undefined);
        if (secs.length > 0) due = Math.min(due, since + Math.max(0, Math.min(...secs)) * 1000);
      }
      if (!Number.isFinite(due)) {
        x.evictAt = undefined; // tolerated for ever, or no NoExecute taint left: cancelled
        continue;
      }
      // Like the real taint manager, an eviction already scheduled keeps its start.
      const at = x.evictAt !== undefined ? Math.min(x.evictAt, due) : due;
      if (at <= now) {
        x.evictAt = undefined;
        this.deletePod(key, undefined);
      } else if (at !== x.evictAt) {
        x.evictAt = at;
        this.#timer(at, "taint-evict", key, p.obj.metadata.uid);
      }
    }
  }

  /**
   * Why a node cannot take the pod (the scheduler's filter plugins, which stop at the
   * first plugin that fails; NodeResourcesFit names every resource short), or undefined.
   */
  #unfit(pod: KObj, node: KObj): string | string[] | undefined {
    const spec = pod.spec ?? {};
    const tols = (spec.tolerations as Toleration[] | undefined) ?? [];
    if (
      node.spec?.unschedulable === true &&
      !tols.some((t) => tolerates(t, { key: UNSCHEDULABLE_TAINT, effect: "NoSchedule" }))
    ) {
      return "node(s) were unschedulable";
    }
    if (!matchesNode(spec, node)) return "node(s) didn't match Pod's node affinity/selector";
    const taint = toleratesAll(tols, taintsOf(node), ["NoSchedule", "NoExecute"]);
    if (taint) return `node(s) had untolerated taint {${taint.key}: ${taint.value ?? ""}}`;
    if (!isNodeReady(node)) return "node(s) had untolerated taint {node.kubernetes.io/not-ready: }";
    // NodeResourcesFit: the pod count, and the requests of every pod bound to the node
    // (terminating ones too: they hold their resources until they are gone) against allocatable.
    const allocatable = (node.status?.allocatable as Obj | undefined) ?? {};
    const bound = this.#podsByNode.get(node.metadata.name) ?? new Set<string>();
    const short: string[] = [];
    if (bound.size >= Number(allocatable.pods ?? 110)) short.push("Too many pods");
    const want = podRequests(spec);
    if (want.milliCpu > 0 || want.memory > 0) {
      let cpu = 0;
      let memory = 0;
      for (const k of bound) {
        const r = podRequests(this.get(PODS, k)?.obj.spec);
        cpu += r.milliCpu;
        memory += r.memory;
      }
      const cpuCap = Math.round((quantityValue(allocatable.cpu) ?? 0) * 1000);
      const memCap = quantityValue(allocatable.memory) ?? 0;
      if (want.milliCpu > 0 && cpu + want.milliCpu > cpuCap) short.push("Insufficient cpu");
      if (want.memory > 0 && memory + want.memory > memCap) short.push("Insufficient memory");
    }
    return short.length > 0 ? short : undefined;
  }

  #schedule(): void {
    if (this.#unscheduled.size === 0) return;
    const nodes = this.entries(NODES);
    for (const key of [...this.#unscheduled]) {
      const e = this.get(PODS, key);
      if (!e) continue;
      const reasons = new Map<string, number>();
      // Nodes short of resources: preemption could help there were there lower-priority pods.
      let resourceShort = 0;
      let best: KObj | undefined;
      let bestCount = Number.POSITIVE_INFINITY;
      for (const n of nodes) {
        const why = this.#unfit(e.obj, n.obj);
        if (why) {
          for (const w of typeof why === "string" ? [why] : why) reasons.set(w, (reasons.get(w) ?? 0) + 1);
          if (typeof why !== "string") resourceShort++;
          continue;
        }
        const count = this.#podsByNode.get(n.obj.metadata.name)?.size ?? 0;
        if (count < bestCount) {
          best = n.obj;
          bestCount = count;
        }
      }
      if (best) {
        this.#bind(key, best);
        continue;
      }
      const n = nodes.length;
      // The preemption part as kube-scheduler words it with no lower-priority pods to evict:
      // nodes short of resources have "No preemption victims", the others are "not helpful".
      const preemption = [
        ...(n - resourceShort > 0 ? [`${n - resourceShort} Preemption is not helpful for scheduling`] : []),
        ...(resourceShort > 0 ? [`${resourceShort} No preemption victims found for incoming pod`] : []),
      ].join(", ");
      const msg =
        n === 0
          ? "no nodes available to schedule pods"
          : `0/${n} nodes are available: ${[...reasons]
              .sort(([a], [b]) => (a < b ? -1 : 1))
              .map(([why, c]) => `${c} ${why}`)
              .join(", ")}. preemption: 0/${n} nodes are available: ${preemption}.`;
      const x = this.#podX.get(key)!;
      x.unschedulable = msg;
      this.#refreshPod(key);
    }
  }

  #bind(key: string, node: KObj): void {
    const x = this.#podX.get(key)!;
    const now = this.now();
    const nodeName = node.metadata.name;
    x.boundAt = now;
    x.unschedulable = undefined;
    x.ip = this.#allocateIp(nodeName);
    const e = this.get(PODS, key)!;
    this.#kubeletStart(key, x, nodeName, e.obj);
    const draft = structuredClone(e.obj);
    draft.spec = { ...draft.spec, nodeName };
    draft.status = this.#podStatus(draft, x);
    this.put(PODS, draft);
    this.#dirty.nodes.add(nodeName);
  }

  /**
   * What the kubelet of `nodeName` will do with a pod just bound to it: pull its images
   * (the first pod of an image on a node pulls it, `imagePull`; a later one finds it there
   * or waits for the pull under way), then start it (`deploymentReady`). An image the
   * registry does not have fails its pull (ErrImagePull, then ImagePullBackOff) and the
   * pod never starts. Bare pods start at once (the sim's simplification).
   */
  #kubeletStart(key: string, x: PodX, nodeName: string, pod: KObj): void {
    const now = this.now();
    const uid = pod.metadata.uid;
    if (!x.managed) {
      x.startAt = now;
      return;
    }
    const pullMs = this.#ctx.latencies.imagePull * 1000;
    const onNode = getOrInit(this.#images, nodeName, () => new Map<string, number>());
    const images = ((pod.spec?.containers as { image?: string }[] | undefined) ?? []).map((c) =>
      normalizedImage(c.image ?? ""),
    );
    const missing = images.find((i) => this.#missingImages.has(i));
    if (missing !== undefined) {
      x.startAt = undefined;
      x.pullError = { at: now + pullMs, image: missing };
      this.#timer(x.pullError.at, "pod-start", key, uid);
      this.#timer(x.pullError.at + IMAGE_PULL_BACKOFF_MS, "pod-start", key, uid);
      return;
    }
    let pulled = now;
    for (const image of images) {
      let at = onNode.get(image);
      if (at === undefined) {
        at = now + pullMs;
        onNode.set(image, at);
      }
      pulled = Math.max(pulled, at);
    }
    x.startAt = pulled + this.#ctx.latencies.deploymentReady * 1000;
    if (x.startAt > now) this.#timer(x.startAt, "pod-start", key, uid);
  }

  #allocateIp(nodeName: string): string {
    const idx = this.#nodeIndex.get(nodeName) ?? 0;
    const n = this.#nextIp.get(nodeName) ?? 2;
    this.#nextIp.set(nodeName, n >= 254 ? 2 : n + 1);
    return `10.${42 + (idx >> 8)}.${idx & 255}.${n}`;
  }

  #refreshPod(key: string): void {
    const e = this.get(PODS, key);
    const x = this.#podX.get(key);
    if (!e || !x) return;
    const status = this.#podStatus(e.obj, x);
    if (jsonEqual(status, e.obj.status)) return;
    const draft = structuredClone(e.obj);
    draft.status = status;
    this.put(PODS, draft);
  }

  /** The pod's status as its kubelet (or the scheduler, while unbound) would report it now. */
  #podStatus(pod: KObj, x: PodX): Obj {
    const now = this.now();
    const t = k8sTime(now);
    const prev = conditionsOf(pod);
    const qos = qosClass(pod.spec);
    const nodeName = pod.spec?.nodeName as string | undefined;
    if (!nodeName) {
      const conditions: Condition[] = [
        {
          type: "PodScheduled",
          status: "False",
          lastProbeTime: null,
          lastTransitionTime: t,
          reason: "Unschedulable",
          message: x.unschedulable ?? "",
        },
      ];
      return { phase: "Pending", conditions: carryTransitions(prev, conditions), qosClass: qos };
    }
    const node = this.get(NODES, nodeName)?.obj;
    // No kubelet, no containers: a pod bound to a node that does not exist stays Pending.
    const started = node !== undefined && x.startAt !== undefined && now >= x.startAt;
    const nodeReady = node !== undefined && isNodeReady(node);
    const ready = started && nodeReady;
    const containers = (pod.spec?.containers as { name: string; image: string }[] | undefined) ?? [];
    const notReady = `containers with unready status: [${containers.map((c) => c.name).join(" ")}]`;
    const cond = (type: string, ok: boolean, reason?: string, message?: string): Condition => ({
      type,
      status: ok ? "True" : "False",
      lastProbeTime: null,
      lastTransitionTime: t,
      ...(!ok && reason ? { reason, message } : {}),
    });
    const conditions = carryTransitions(prev, [
      cond("PodReadyToStartContainers", started),
      cond("Initialized", true),
      cond("Ready", ready, "ContainersNotReady", notReady),
      cond("ContainersReady", ready, "ContainersNotReady", notReady),
      cond("PodScheduled", true),
    ]);
    const ip = node?.status?.addresses as { type: string; address: string }[] | undefined;
    const hostIP = ip?.find((a) => a.type === "InternalIP")?.address;
    const startedAt = k8sTime(x.startAt ?? now);
    return {
      phase: started ? "Running" : "Pending",
      conditions,
      ...(hostIP ? { hostIP, hostIPs: [{ ip: hostIP }] } : {}),
      ...(x.ip ? { podIP: x.ip, podIPs: [{ ip: x.ip }] } : {}),
      startTime: k8sTime(x.boundAt ?? now),
      containerStatuses: containers.map((c) => ({
        name: c.name,
        state: started ? { running: { startedAt } } : { waiting: this.#waiting(c.image, x, now) },
        lastState: {},
        ready,
        restartCount: 0,
        image: c.image,
        imageID: "",
        started,
      })),
      qosClass: qos,
    };
  }

  /** Why a container that is not running waits, as its kubelet reports it. */
  #waiting(image: string, x: PodX, now: number): Obj {
    const err = x.pullError;
    if (!err || normalizedImage(image) !== err.image || now < err.at) return { reason: "ContainerCreating" };
    if (now < err.at + IMAGE_PULL_BACKOFF_MS)
      return {
        reason: "ErrImagePull",
        message: `rpc error: code = NotFound desc = failed to pull and unpack image "${err.image}": failed to resolve reference "${err.image}": ${err.image}: not found`,
      };
    return { reason: "ImagePullBackOff", message: `Back-off pulling image "${image}"` };
  }

  // -------------------------------------------------------------- workloads

  /** The objects of `def` that `uid` controls, oldest first (name breaks ties). */
  #controlled(def: ResourceDef, uid: string): Entry[] {
    const out: Entry[] = [];
    for (const r of this.#dependents.get(uid) ?? []) {
      const { def: d, key } = parseRef(r);
      if (d !== def) continue;
      const e = this.get(def, key);
      if (e && controllerOf(e.obj)?.uid === uid) out.push(e);
    }
    return out.sort((a, b) => {
      const ta = a.obj.metadata.creationTimestamp;
      const tb = b.obj.metadata.creationTimestamp;
      if (ta !== tb) return ta < tb ? -1 : 1;
      return a.obj.metadata.name < b.obj.metadata.name ? -1 : 1;
    });
  }

  /**
   * The pods a ReplicaSet or DaemonSet manages, as its `ControllerRefManager` claims them:
   * those it controls whose labels still match its selector (one that no longer matches is
   * released: its reference removed), plus, unless it is being deleted, orphans of its
   * namespace that match (adopted: it becomes their controller).
   */
  #claimPods(owner: KObj): Entry[] {
    const ns = owner.metadata.namespace!;
    const uid = owner.metadata.uid;
    let sel: ReturnType<typeof fromSelectorObject>;
    try {
      sel = fromSelectorObject(owner.spec?.selector as LabelSelectorObject | undefined);
    } catch {
      sel = undefined;
    }
    const matches = (p: KObj) => sel !== undefined && sel.length > 0 && matchesLabels(sel, p.metadata.labels);
    const claimed: Entry[] = [];
    for (const e of this.#controlled(PODS, uid)) {
      if (matches(e.obj) || e.obj.metadata.deletionTimestamp) claimed.push(e);
      else
        this.edit(PODS, keyOf(ns, e.obj.metadata.name), (p) => {
          const kept = (p.metadata.ownerReferences ?? []).filter((r) => r.uid !== uid);
          if (kept.length > 0) p.metadata.ownerReferences = kept;
          else delete p.metadata.ownerReferences;
        });
    }
    if (owner.metadata.deletionTimestamp) return claimed;
    for (const k of [...(this.#orphans.get(ns) ?? [])].sort()) {
      const p = this.get(PODS, k)?.obj;
      if (!p || !matches(p)) continue;
      const adopted = this.edit(PODS, k, (x) => {
        x.metadata.ownerReferences = [...(x.metadata.ownerReferences ?? []), this.#controllerRef(owner)];
      });
      if (adopted) claimed.push(this.get(PODS, k)!);
    }
    return claimed;
  }

  #controllerRef(owner: KObj): OwnerReference {
    return {
      apiVersion: owner.apiVersion,
      kind: owner.kind,
      name: owner.metadata.name,
      uid: owner.metadata.uid,
      controller: true,
      blockOwnerDeletion: true,
    };
  }

  /**
   * A pod of a workload's template, as its controller creates it: `<name>-<5 chars>`, the
   * template's labels and annotations (plus `extraLabels`), the workload as its controller.
   */
  #podFromTemplate(owner: KObj, extraLabels: Record<string, string>, spec: Obj): KObj {
    const ns = owner.metadata.namespace!;
    const tmeta = ((owner.spec?.template as Obj | undefined)?.metadata as Obj | undefined) ?? {};
    let name: string;
    do name = `${owner.metadata.name}-${randomSuffix(() => this.#ctx.random.next())}`;
    while (this.get(PODS, keyOf(ns, name)));
    return {
      kind: "Pod",
      apiVersion: "v1",
      metadata: {
        name,
        generateName: `${owner.metadata.name}-`,
        namespace: ns,
        uid: this.uuid(),
        resourceVersion: "",
        creationTimestamp: k8sTime(this.now()),
        labels: { ...(tmeta.labels as Record<string, string> | undefined), ...extraLabels },
        ...(tmeta.annotations ? { annotations: { ...(tmeta.annotations as Record<string, string>) } } : {}),
        ownerReferences: [this.#controllerRef(owner)],
      },
      spec: defaultPodSpec(spec, true),
      status: { phase: "Pending", qosClass: qosClass(spec) },
    };
  }

  /** Which of `pods` a controller deletes first when it has too many (`controller.ActivePods` order). */
  #byDeletionCost(pods: Entry[]): Entry[] {
    const rank = (p: Entry) => {
      const x = this.#podX.get(keyOf(p.obj.metadata.namespace, p.obj.metadata.name));
      return [
        p.obj.spec?.nodeName ? 1 : 0,
        p.obj.status?.phase === "Running" ? 1 : 0,
        isPodReady(p.obj) ? 1 : 0,
        -(x?.boundAt ?? 0),
      ];
    };
    return pods
      .map((p) => ({ p, r: rank(p) }))
      .sort((a, b) => {
        for (let i = 0; i < a.r.length; i++) if (a.r[i] !== b.r[i]) return a.r[i]! - b.r[i]!;
        return a.p.obj.metadata.name < b.p.obj.metadata.name ? 1 : -1;
      })
      .map(({ p }) => p);
  }

  /**
   * The ReplicaSet controller (`replica_set.go`): `spec.replicas` active pods of its
   * template (while it is not being deleted), surplus ones deleted in `#byDeletionCost`
   * order, and its status.
   */
  #reconcileReplicaSet(key: string): void {
    const e = this.get(REPLICASETS, key);
    if (!e) return;
    const rs = e.obj;
    const active = () => this.#claimPods(rs).filter((p) => isActivePod(p.obj));
    if (!rs.metadata.deletionTimestamp) {
      // In a namespace being deleted the API refuses new pods, so its controller makes none.
      const closed = this.#terminating(rs.metadata.namespace!);
      const want = (rs.spec?.replicas as number | undefined) ?? 1;
      const pods = active();
      const template = (rs.spec?.template as Obj | undefined) ?? {};
      for (let i = pods.length; i < want && !closed; i++) {
        const spec = structuredClone((template.spec as Obj | undefined) ?? {});
        this.createPod(this.#podFromTemplate(rs, {}, spec), { managed: true });
      }
      if (pods.length > want)
        for (const p of this.#byDeletionCost(pods).slice(0, pods.length - want))
          this.deletePod(keyOf(p.obj.metadata.namespace, p.obj.metadata.name), undefined);
    }
    const pods = this.#controlled(PODS, rs.metadata.uid).filter((p) => isActivePod(p.obj));
    const tlabels =
      (((rs.spec?.template as Obj | undefined)?.metadata as Obj | undefined)?.labels as
        | Record<string, string>
        | undefined) ?? {};
    const ready = pods.filter((p) => isPodReady(p.obj)).length;
    const nz = (k: string, v: number) => (v > 0 ? { [k]: v } : {});
    const status: Obj = {
      replicas: pods.length,
      ...nz(
        "fullyLabeledReplicas",
        pods.filter((p) => Object.entries(tlabels).every(([k, v]) => p.obj.metadata.labels?.[k] === v))
          .length,
      ),
      ...nz("readyReplicas", ready),
      ...nz("availableReplicas", ready),
      observedGeneration: rs.metadata.generation ?? 1,
    };
    if (!jsonEqual(status, rs.status))
      this.edit(REPLICASETS, key, (x) => {
        x.status = status;
      });
  }

  /**
   * The Deployment controller (`deployment_controller.go`, `rolling.go`, `recreate.go`)
   * over the ReplicaSets it controls: the *new* one is the one whose `pod-template-hash`
   * is the template's (created `<name>-<hash>` when missing, with the next revision); the
   * others are old. RollingUpdate grows the new one while all stay within `replicas +
   * maxSurge` (default 25%, rounded up) and shrinks old ones while `replicas −
   * maxUnavailable` (default 25%, rounded down; 1 when both are 0) stay available;
   * Recreate scales old ones to 0 and grows the new one once their pods are gone. Old ones
   * at 0 beyond `revisionHistoryLimit` are deleted. Status comes from the ReplicaSets'.
   */
  #reconcileDeployment(key: string): void {
    const e = this.get(DEPLOYMENTS, key);
    if (!e) return;
    const d = e.obj;
    const spec = d.spec ?? {};
    const want = (spec.replicas as number | undefined) ?? 1;
    const hash = podTemplateHash(spec.template);
    const rsKey = (rs: Entry) => keyOf(rs.obj.metadata.namespace, rs.obj.metadata.name);
    const replicasOf = (rs: Entry) => (rs.obj.spec?.replicas as number | undefined) ?? 0;
    const statusOf = (rs: Entry, k: string) => (rs.obj.status?.[k] as number | undefined) ?? 0;
    const revisionOf = (rs: Entry) => Number(rs.obj.metadata.annotations?.[REVISION] ?? 0);
    const scaleTo = (rs: Entry, n: number) =>
      this.edit(REPLICASETS, rsKey(rs), (x) => {
        x.spec = { ...x.spec, replicas: n };
        x.metadata.generation = (x.metadata.generation ?? 1) + 1;
        x.metadata.annotations = { ...x.metadata.annotations, [DESIRED_REPLICAS]: String(want) };
      });
    const all = () => this.#controlled(REPLICASETS, d.metadata.uid);
    if (d.metadata.deletionTimestamp) {
      this.#deploymentStatus(key, d, all(), undefined);
      return;
    }
    const strategy = (spec.strategy as Obj | undefined) ?? {};
    const ru = (strategy.rollingUpdate as Obj | undefined) ?? {};
    const maxSurge = scaledValue((ru.maxSurge as IntOrString | undefined) ?? "25%", want, true);
    let maxUnavailable = scaledValue((ru.maxUnavailable as IntOrString | undefined) ?? "25%", want, false);
    if (maxSurge === 0 && maxUnavailable === 0) maxUnavailable = 1;
    const recreate = strategy.type === "Recreate";

    // 1. The new ReplicaSet, created when missing; a template rolled back to takes the next revision.
    const isNew = (rs: Entry) => rs.obj.metadata.labels?.["pod-template-hash"] === hash;
    const maxOldRevision = Math.max(
      0,
      ...all()
        .filter((rs) => !isNew(rs))
        .map(revisionOf),
    );
    let fresh = all().find(isNew);
    const oldPods = () =>
      all()
        .filter((rs) => !isNew(rs))
        .some((rs) => this.#controlled(PODS, rs.obj.metadata.uid).length > 0);
    if (!fresh && !(recreate && oldPods())) {
      const sum = all().reduce((n, rs) => n + replicasOf(rs), 0);
      const first = recreate ? want : Math.max(0, Math.min(want, want + maxSurge - sum));
      this.#createReplicaSet(d, hash, first, maxOldRevision + 1, want, maxSurge);
      fresh = all().find(isNew);
    } else if (fresh && revisionOf(fresh) <= maxOldRevision) {
      const f = fresh;
      this.edit(REPLICASETS, rsKey(f), (x) => {
        x.metadata.annotations = { ...x.metadata.annotations, [REVISION]: String(maxOldRevision + 1) };
      });
    }
    const old = () => all().filter((rs) => !isNew(rs));

    if (recreate) {
      // 2a. Old ones to 0; the new one grows once no old pod is left.
      for (const rs of old()) if (replicasOf(rs) > 0) scaleTo(rs, 0);
      fresh = all().find(isNew);
      if (fresh && !oldPods() && replicasOf(fresh) !== want) scaleTo(fresh, want);
    } else if (fresh) {
      // 2b. RollingUpdate: one step of rolling.go (rollout.ts); pods becoming available
      //     bring the next.
      const f = fresh;
      const olds = old();
      const scale = (rs: Entry) => ({
        replicas: replicasOf(rs),
        available: statusOf(rs, "availableReplicas"),
      });
      const step = rollingStep({ want, maxSurge, maxUnavailable }, scale(f), olds.map(scale));
      if (step.fresh !== replicasOf(f)) scaleTo(f, step.fresh);
      olds.forEach((rs, i) => {
        if (step.old[i] !== replicasOf(rs)) scaleTo(rs, step.old[i]!);
      });
    }

    // 3. Old ReplicaSets at 0, past the history limit: deleted, oldest first.
    const limit = (spec.revisionHistoryLimit as number | undefined) ?? 10;
    const idle = old().filter(
      (rs) => replicasOf(rs) === 0 && statusOf(rs, "replicas") === 0 && !rs.obj.metadata.deletionTimestamp,
    );
    for (const rs of idle.slice(0, Math.max(0, idle.length - limit)))
      this.deleteObject(REPLICASETS, rsKey(rs), "Background");

    this.#deploymentStatus(key, d, all(), all().find(isNew));
  }

  #createReplicaSet(
    d: KObj,
    hash: string,
    replicas: number,
    revision: number,
    want: number,
    surge: number,
  ): void {
    const ns = d.metadata.namespace!;
    const spec = d.spec ?? {};
    const template = structuredClone((spec.template as Obj | undefined) ?? {});
    const tmeta = ((template.metadata as Obj | undefined) ?? {}) as Obj;
    const labels = { ...(tmeta.labels as Record<string, string> | undefined), "pod-template-hash": hash };
    template.metadata = { ...tmeta, labels };
    const selector = structuredClone((spec.selector as Obj | undefined) ?? {});
    selector.matchLabels = {
      ...(selector.matchLabels as Record<string, string> | undefined),
      "pod-template-hash": hash,
    };
    const rs: KObj = {
      kind: "ReplicaSet",
      apiVersion: "apps/v1",
      metadata: {
        name: `${d.metadata.name}-${hash}`,
        namespace: ns,
        uid: this.uuid(),
        resourceVersion: "",
        generation: 1,
        creationTimestamp: k8sTime(this.now()),
        labels,
        annotations: {
          [DESIRED_REPLICAS]: String(want),
          "deployment.kubernetes.io/max-replicas": String(want + surge),
          [REVISION]: String(revision),
        },
        ownerReferences: [this.#controllerRef(d)],
      },
      spec: {
        replicas,
        ...(spec.minReadySeconds !== undefined ? { minReadySeconds: spec.minReadySeconds } : {}),
        selector,
        template,
      },
      status: { replicas: 0 },
    };
    this.put(REPLICASETS, rs);
  }

  #deploymentStatus(key: string, d: KObj, rss: Entry[], fresh: Entry | undefined): void {
    const spec = d.spec ?? {};
    const want = (spec.replicas as number | undefined) ?? 1;
    const sum = (rs: Entry[], k: string) =>
      rs.reduce((n, x) => n + ((x.obj.status?.[k] as number | undefined) ?? 0), 0);
    const replicas = sum(rss, "replicas");
    const updated = fresh ? sum([fresh], "replicas") : 0;
    const ready = sum(rss, "readyReplicas");
    const available = sum(rss, "availableReplicas");
    const rsName = fresh?.obj.metadata.name ?? `${d.metadata.name}-${podTemplateHash(spec.template)}`;
    const maxUnavailableSpec = ((spec.strategy as Obj | undefined)?.rollingUpdate as Obj | undefined)
      ?.maxUnavailable as IntOrString | undefined;
    const maxUnavailable = scaledValue(maxUnavailableSpec ?? "25%", want, false);
    const t = k8sTime(this.now());
    const prev = conditionsOf(d);
    const isAvailable = available >= want - maxUnavailable;
    const progressed = updated === want && replicas === want && available === want;
    const conditions = carryTransitions(prev, [
      {
        type: "Available",
        status: isAvailable ? "True" : "False",
        lastUpdateTime: t,
        lastTransitionTime: t,
        reason: isAvailable ? "MinimumReplicasAvailable" : "MinimumReplicasUnavailable",
        message: isAvailable
          ? "Deployment has minimum availability."
          : "Deployment does not have minimum availability.",
      },
      {
        type: "Progressing",
        status: "True",
        lastUpdateTime: t,
        lastTransitionTime: t,
        reason: progressed ? "NewReplicaSetAvailable" : "ReplicaSetUpdated",
        message: progressed
          ? `ReplicaSet "${rsName}" has successfully progressed.`
          : `ReplicaSet "${rsName}" is progressing.`,
      },
    ]);
    for (const c of conditions) {
      const p = prev.find((x) => x.type === c.type);
      if (p && p.status === c.status && p.reason === c.reason && p.lastUpdateTime)
        c.lastUpdateTime = p.lastUpdateTime;
    }
    const nz = (k: string, v: number) => (v > 0 ? { [k]: v } : {});
    const status: Obj = {
      observedGeneration: d.metadata.generation ?? 1,
      ...nz("replicas", replicas),
      ...nz("updatedReplicas", updated),
      ...nz("readyReplicas", ready),
      ...nz("availableReplicas", available),
      ...nz("unavailableReplicas", Math.max(0, want - available)),
      conditions,
    };
    const revision = fresh?.obj.metadata.annotations?.[REVISION];
    if (!jsonEqual(status, d.status) || (revision && d.metadata.annotations?.[REVISION] !== revision)) {
      this.edit(DEPLOYMENTS, key, (x) => {
        x.status = status;
        if (revision) x.metadata.annotations = { ...x.metadata.annotations, [REVISION]: revision };
      });
    }
  }

  /**
   * The DaemonSet controller (`daemon_controller.go`): one pod on every node that should
   * run it — the template's node selector and required affinity match and every
   * NoSchedule/NoExecute taint is tolerated, counting the tolerations the controller adds
   * (not-ready and unreachable for ever, unschedulable, pressure) — pinned there by node
   * affinity for the scheduler to bind. A pod on a node that no longer should keep it (an
   * untolerated NoExecute taint, a selector that stopped matching) goes; a new one waits
   * until the node's old one is gone. A template change rolls with `maxUnavailable`
   * (default 1) unless `updateStrategy.type` is OnDelete.
   */
  #reconcileDaemonSet(key: string): void {
    const e = this.get(DAEMONSETS, key);
    if (!e || e.obj.metadata.deletionTimestamp) return;
    const ds = e.obj;
    const template = (ds.spec?.template as Obj | undefined) ?? {};
    const tspec = (template.spec as Obj | undefined) ?? {};
    const hash = podTemplateHash(template);
    const tols = withTolerations(
      (tspec.tolerations as Toleration[] | undefined) ?? [],
      daemonPodTolerations(tspec.hostNetwork === true),
    );
    const podKey = (p: Entry) => keyOf(p.obj.metadata.namespace, p.obj.metadata.name);
    const byNode = new Map<string, Entry[]>();
    for (const p of this.#claimPods(ds)) {
      const n = (p.obj.spec?.nodeName as string | undefined) ?? affinityNode(p.obj.spec);
      if (n) getOrInit(byNode, n, () => [] as Entry[]).push(p);
    }
    const nodes = this.entries(NODES).map((n) => n.obj);
    const verdict = (node: KObj) => {
      const fits = matchesNode(tspec, node);
      const taints = taintsOf(node);
      return {
        run: fits && !toleratesAll(tols, taints, ["NoSchedule", "NoExecute"]),
        keep: fits && !toleratesAll(tols, taints, ["NoExecute"]),
      };
    };
    for (const node of nodes) {
      const name = node.metadata.name;
      const { run, keep } = verdict(node);
      const pods = byNode.get(name) ?? [];
      const live = pods.filter((p) => isActivePod(p.obj));
      if (run && pods.length === 0 && !this.#terminating(ds.metadata.namespace!)) {
        const spec = structuredClone(tspec);
        spec.tolerations = tols;
        spec.affinity = { ...(spec.affinity as Obj | undefined), ...nodeNameAffinity(name) };
        const labels = {
          "controller-revision-hash": hash,
          "pod-template-generation": String(ds.metadata.generation ?? 1),
        };
        this.createPod(this.#podFromTemplate(ds, labels, spec), { managed: true });
      } else if (!keep) {
        for (const p of live) this.deletePod(podKey(p), undefined);
      } else if (live.length > 1) {
        for (const p of live.slice(1)) this.deletePod(podKey(p), undefined);
      }
    }
    const strategy = (ds.spec?.updateStrategy as Obj | undefined) ?? {};
    const live = (n: string) =>
      (byNode.get(n) ?? [])
        .map((p) => this.get(PODS, podKey(p)))
        .filter((p): p is Entry => p !== undefined && isActivePod(p.obj));
    const eligible = nodes.filter((n) => verdict(n).run).map((n) => n.metadata.name);
    if (strategy.type !== "OnDelete") {
      const ru = (strategy.rollingUpdate as Obj | undefined) ?? {};
      const maxUnavailable = Math.max(
        1,
        scaledValue((ru.maxUnavailable as IntOrString | undefined) ?? 1, eligible.length, true),
      );
      const isOld = (p: Entry) => p.obj.metadata.labels?.["controller-revision-hash"] !== hash;
      let unavailable = eligible.filter((n) => !live(n).some((p) => isPodReady(p.obj))).length;
      for (const n of eligible) {
        for (const p of live(n).filter(isOld)) {
          if (!isPodReady(p.obj)) this.deletePod(podKey(p), undefined);
          else if (unavailable < maxUnavailable) {
            this.deletePod(podKey(p), undefined);
            unavailable++;
          }
        }
      }
    }
    const scheduled = (n: string) => live(n).length > 0;
    const readyOn = (n: string) => live(n).some((p) => isPodReady(p.obj));
    const ready = eligible.filter(readyOn).length;
    const nz = (k: string, v: number) => (v > 0 ? { [k]: v } : {});
    const status: Obj = {
      currentNumberScheduled: eligible.filter(scheduled).length,
      numberMisscheduled: nodes.filter((n) => !verdict(n).run && scheduled(n.metadata.name)).length,
      desiredNumberScheduled: eligible.length,
      numberReady: ready,
      observedGeneration: ds.metadata.generation ?? 1,
      ...nz(
        "updatedNumberScheduled",
        eligible.filter((n) =>
          live(n).some((p) => p.obj.metadata.labels?.["controller-revision-hash"] === hash),
        ).length,
      ),
      ...nz("numberAvailable", ready),
      ...nz("numberUnavailable", eligible.length - ready),
    };
    if (!jsonEqual(status, ds.status))
      this.edit(DAEMONSETS, key, (x) => {
        x.status = status;
      });
  }

  #terminating(ns: string): boolean {
    return this.get(NAMESPACES, ns)?.obj.metadata.deletionTimestamp !== undefined;
  }

  /** Stores a new pod (bound if spec.nodeName is set, else left to the scheduler). */
  createPod(pod: KObj, x: { managed?: boolean } = {}): KObj {
    const key = keyOf(pod.metadata.namespace, pod.metadata.name);
    const px: PodX = { ...x };
    this.#podX.set(key, px);
    const nodeName = pod.spec?.nodeName as string | undefined;
    if (nodeName) {
      px.boundAt = this.now();
      px.ip = this.#allocateIp(nodeName);
      this.#kubeletStart(key, px, nodeName, pod);
    }
    const stored = this.put(PODS, pod);
    if (nodeName) {
      this.#refreshPod(key);
      this.#dirty.nodes.add(nodeName);
    }
    return stored;
  }

  /**
   * Deletes a pod the way the API server does: gracefully (deletionTimestamp now, gone
   * after `podTermination` once its kubelet confirms), or at once when the grace period
   * is 0 or no kubelet runs it; finalizers keep the object until they are removed.
   * Returns the object as the DELETE answers it.
   */
  deletePod(key: string, grace: number | undefined): KObj | undefined {
    const e = this.get(PODS, key);
    if (!e) return undefined;
    const pod = e.obj;
    const nodeName = pod.spec?.nodeName as string | undefined;
    const g = grace ?? (pod.spec?.terminationGracePeriodSeconds as number | undefined) ?? 30;
    if (g === 0 || !nodeName || !this.get(NODES, nodeName)) {
      if ((pod.metadata.finalizers ?? []).length === 0) return this.drop(PODS, key);
      this.#podGone(key);
      return this.get(PODS, key)?.obj;
    }
    if (pod.metadata.deletionTimestamp) return pod;
    const now = this.now();
    const out = this.edit(PODS, key, (p) => {
      p.metadata.deletionTimestamp = k8sTime(now + g * 1000);
      p.metadata.deletionGracePeriodSeconds = g;
    });
    this.#timer(now + this.#ctx.latencies.podTermination * 1000, "pod-gone", key, pod.metadata.uid);
    return out;
  }

  /**
   * Deletes an object as kube-apiserver's generic store does (`store.go`, `Delete`): the
   * propagation policy (given, else the one its finalizers ask, else Background — the
   * default of every resource the sim serves) becomes the `orphan` or `foregroundDeletion`
   * finalizer; an object left with finalizers is only marked (deletionTimestamp,
   * `deletionGracePeriodSeconds: 0`, generation bumped) and the garbage collector or its
   * owner works them off; one without is removed at once, and the collector deletes its
   * dependents in the background. Pods terminate gracefully (`deletePod`) and namespaces
   * empty themselves first (`deleteNamespace`).
   */
  deleteObject(
    def: ResourceDef,
    key: string,
    policy?: PropagationPolicy,
    grace?: number,
  ): Deleted | undefined {
    const e = this.get(def, key);
    if (!e) return undefined;
    if (def === NAMESPACES) return { obj: this.deleteNamespace(key)!, gone: false };
    const obj = e.obj;
    const had = obj.metadata.finalizers ?? [];
    // Finalizers cannot change once a deletion is under way.
    if (obj.metadata.deletionTimestamp) {
      if (def === PODS) this.deletePod(key, grace);
      const now = this.get(def, key)?.obj;
      return now ? { obj: now, gone: false } : { obj, gone: true };
    }
    const p =
      policy ??
      (had.includes(ORPHAN_FINALIZER)
        ? "Orphan"
        : had.includes(FOREGROUND_FINALIZER)
          ? "Foreground"
          : "Background");
    const fins = had.filter((f) => f !== ORPHAN_FINALIZER && f !== FOREGROUND_FINALIZER);
    if (p === "Orphan") fins.push(ORPHAN_FINALIZER);
    if (p === "Foreground") fins.push(FOREGROUND_FINALIZER);
    if (!jsonEqual(fins, had))
      this.edit(def, key, (x) => {
        if (fins.length > 0) x.metadata.finalizers = fins;
        else delete x.metadata.finalizers;
      });
    if (def === PODS) {
      const out = this.deletePod(key, grace)!;
      return { obj: out, gone: !this.get(PODS, key) };
    }
    if (fins.length === 0) return { obj: this.drop(def, key)!, gone: true };
    const now = this.now();
    const marked = this.edit(def, key, (x) => {
      x.metadata.deletionTimestamp = k8sTime(now);
      x.metadata.deletionGracePeriodSeconds = 0;
      if (x.metadata.generation) x.metadata.generation++;
    })!;
    return { obj: marked, gone: false };
  }

  /**
   * Namespace deletion (the namespace controller): it turns Terminating, everything in it
   * is deleted (background propagation, pods gracefully), and it goes once nothing of it
   * is left (objects with finalizers hold it).
   */
  deleteNamespace(name: string): KObj | undefined {
    const now = this.now();
    const out = this.edit(NAMESPACES, name, (n) => {
      n.metadata.deletionTimestamp ??= k8sTime(now);
      n.status = { ...n.status, phase: "Terminating" };
    });
    for (const def of RESOURCES)
      if (def.namespaced)
        for (const e of this.entries(def, name))
          this.deleteObject(def, keyOf(name, e.obj.metadata.name), "Background");
    this.#dirty.namespaces.add(name);
    return out;
  }

  #finalizeNamespace(ns: string): void {
    const e = this.get(NAMESPACES, ns);
    if (!e?.obj.metadata.deletionTimestamp) return;
    for (const def of RESOURCES) if (def.namespaced && this.entries(def, ns).length > 0) return;
    this.drop(NAMESPACES, ns);
  }

  /** PVC deletion waits (kubernetes.io/pvc-protection) while a pod uses the claim. */
  deletePvc(key: string): KObj | undefined {
    return this.deleteObject(PVCS, key)?.obj;
  }

  pvcInUse(ns: string, claim: string): boolean {
    for (const k of this.#podsByNs.get(ns) ?? []) {
      const p = this.get(PODS, k)?.obj;
      const phase = p?.status?.phase;
      if (!p || phase === "Succeeded" || phase === "Failed") continue;
      const vols =
        (p.spec?.volumes as { persistentVolumeClaim?: { claimName?: string } }[] | undefined) ?? [];
      if (vols.some((v) => v.persistentVolumeClaim?.claimName === claim)) return true;
    }
    return false;
  }

  /** The PVC protection controller: a claim being deleted that no pod uses loses its finalizer. */
  #pvcProtection(ns: string): void {
    for (const e of this.entries(PVCS, ns)) {
      const m = e.obj.metadata;
      if (!m.deletionTimestamp || !m.finalizers?.includes(PVC_PROTECTION) || this.pvcInUse(ns, m.name))
        continue;
      this.edit(PVCS, keyOf(ns, m.name), (x) => {
        const kept = (x.metadata.finalizers ?? []).filter((f) => f !== PVC_PROTECTION);
        if (kept.length > 0) x.metadata.finalizers = kept;
        else delete x.metadata.finalizers;
      });
    }
  }

  /** The disruption controller: every PDB's status in the namespace. */
  #disruption(ns: string): void {
    const pdbs = this.entries(PDBS, ns);
    if (pdbs.length === 0) return;
    const pods = [...(this.#podsByNs.get(ns) ?? [])].map((k) => ({ k, p: this.get(PODS, k)!.obj }));
    for (const e of pdbs) {
      const pdb = e.obj;
      if (this.#pdbSyncAt.has(keyOf(ns, pdb.metadata.name))) continue; // not processed yet
      const spec = pdb.spec ?? {};
      let selected: { k: string; p: KObj }[] = [];
      try {
        const sel = fromSelectorObject(spec.selector as LabelSelectorObject | undefined);
        if (sel) selected = pods.filter(({ p }) => matchesLabels(sel, p.metadata.labels));
      } catch {
        selected = [];
      }
      const generation = pdb.metadata.generation ?? 1;
      let status: Obj;
      try {
        const counts = pdbCounts(
          {
            minAvailable: spec.minAvailable as IntOrString | undefined,
            maxUnavailable: spec.maxUnavailable as IntOrString | undefined,
          },
          selected.map(({ p }) => {
            const controller = controllerOf(p);
            return {
              ready: isPodReady(p),
              terminating: p.metadata.deletionTimestamp !== undefined,
              name: p.metadata.name,
              ...(controller ? { controller: this.#scaleKey(ns, controller) } : {}),
            };
          }),
          (c) => this.#scaleOf(c),
        );
        const allowed = counts.disruptionsAllowed > 0;
        status = {
          observedGeneration: generation,
          disruptionsAllowed: counts.disruptionsAllowed,
          currentHealthy: counts.currentHealthy,
          desiredHealthy: counts.desiredHealthy,
          expectedPods: counts.expectedPods,
          conditions: carryTransitions(conditionsOf(pdb), [
            {
              type: "DisruptionAllowed",
              status: allowed ? "True" : "False",
              observedGeneration: generation,
              lastTransitionTime: k8sTime(this.now()),
              reason: allowed ? "SufficientPods" : "InsufficientPods",
              message: "",
            },
          ]),
        };
      } catch (err) {
        if (!(err instanceof NoControllerError)) throw err;
        // `failSafe`: nothing may be disrupted, and the budget stays unprocessed
        // (observedGeneration as it was), so evictions it covers keep answering 429.
        const observed = (pdb.status?.observedGeneration as number | undefined) ?? 0;
        status = {
          ...pdb.status,
          disruptionsAllowed: 0,
          conditions: carryTransitions(conditionsOf(pdb), [
            {
              type: "DisruptionAllowed",
              status: "False",
              observedGeneration: observed,
              lastTransitionTime: k8sTime(this.now()),
              reason: "SyncFailed",
              message: err.message,
            },
          ]),
        };
      }
      if (!jsonEqual(status, pdb.status))
        this.edit(PDBS, keyOf(ns, pdb.metadata.name), (x) => {
          x.status = status;
        });
    }
  }

  /**
   * Whose scale counts for a pod with this controller (the disruption controller's
   * finders): a ReplicaSet's Deployment, else the ReplicaSet; a Deployment itself; any
   * other kind has no scale the sim can read.
   */
  #scaleKey(ns: string, c: OwnerReference): string {
    if (c.kind === "ReplicaSet" && c.apiVersion === "apps/v1") {
      const rs = this.get(REPLICASETS, keyOf(ns, c.name))?.obj;
      const d = rs && rs.metadata.uid === c.uid ? controllerOf(rs) : undefined;
      if (d?.kind === "Deployment") return refText(DEPLOYMENTS, keyOf(ns, d.name));
      return refText(REPLICASETS, keyOf(ns, c.name));
    }
    if (c.kind === "Deployment" && c.apiVersion === "apps/v1") return refText(DEPLOYMENTS, keyOf(ns, c.name));
    return `${c.apiVersion}/${c.kind}\n${keyOf(ns, c.name)}`;
  }

  #scaleOf(scaleKey: string): number | undefined {
    const { def, key } = parseRef(scaleKey);
    if (def !== DEPLOYMENTS && def !== REPLICASETS) return undefined;
    const o = this.get(def, key)?.obj;
    return o ? ((o.spec?.replicas as number | undefined) ?? 1) : undefined;
  }

  // -------------------------------------------------------------- nodes (the kubelet's side)

  registerNode(reg: NodeRegistration, instanceType: string | undefined, region: string | undefined): void {
    const existing = this.get(NODES, reg.name)?.obj;
    const idx = getOrInit(this.#nodeIndex, reg.name, () => this.#nodeIndex.size);
    const podCidr = `10.${42 + (idx >> 8)}.${idx & 255}.0/24`;
    const fresh = nodeFromRegistration(reg, {
      uid: existing?.metadata.uid ?? this.uuid(),
      now: this.now(),
      podCidr,
      ...(instanceType ? { instanceType } : {}),
      ...(region ? { region } : {}),
    });
    this.#kubeletDown.delete(reg.name); // a kubelet registering posts status again
    if (!existing) {
      this.put(NODES, fresh);
      return;
    }
    // Re-registration: the kubelet refreshes its labels, addresses and status; taints it
    // registers with are added if missing; what the API set (other labels, cordon) stays.
    this.edit(NODES, reg.name, (n) => {
      n.metadata.labels = { ...n.metadata.labels, ...fresh.metadata.labels };
      n.metadata.annotations = { ...n.metadata.annotations, ...fresh.metadata.annotations };
      const taints = taintsOf(n).slice();
      for (const t of reg.taints)
        if (!taints.some((x) => x.key === t.key && x.effect === t.effect)) taints.push({ ...t });
      n.spec = {
        ...n.spec,
        ...(fresh.spec?.providerID ? { providerID: fresh.spec.providerID } : {}),
        ...(taints.length > 0 ? { taints } : {}),
      };
      const t = k8sTime(this.now());
      n.status = {
        ...fresh.status,
        conditions: carryTransitions(conditionsOf(n), nodeConditions(true, t) as unknown as Condition[]),
      };
    });
  }

  /**
   * The node's kubelet stops posting status (its instance stopped, was reclaimed or
   * terminated): the node keeps its last status for the grace period, then the node
   * lifecycle controller marks it Unknown and `unreachable`.
   */
  stopKubelet(name: string): void {
    const e = this.get(NODES, name);
    if (!e || this.#kubeletDown.has(name)) return;
    const now = this.now();
    this.#kubeletDown.set(name, now);
    this.#timer(now + this.#ctx.latencies.nodeMonitorGrace * 1000, "node-unknown", name, e.obj.metadata.uid);
  }

  /** Is the node's kubelet down (stopped posting)? */
  kubeletDown(name: string): boolean {
    return this.#kubeletDown.has(name);
  }

  setNodeReady(name: string, ready: boolean): void {
    const e = this.get(NODES, name);
    if (!e) throw new Error(`kube: cluster ${this.id} has no node "${name}"`);
    if (ready) this.#kubeletDown.delete(name);
    const t = k8sTime(this.now());
    this.edit(NODES, name, (n) => {
      const next = nodeConditions(ready, t) as unknown as Condition[];
      const prev = conditionsOf(n);
      n.status = { ...n.status, conditions: carryTransitions(prev, next) };
    });
  }

  // -------------------------------------------------------------- admin view

  state(): unknown {
    const podsPerNode: Record<string, number> = {};
    let pending = 0;
    for (const e of this.entries(PODS)) {
      const n = e.obj.spec?.nodeName as string | undefined;
      if (n) podsPerNode[n] = (podsPerNode[n] ?? 0) + 1;
      else pending++;
    }
    return {
      resourceVersion: String(this.rv),
      nodes: this.entries(NODES).map(({ obj }) => ({
        name: obj.metadata.name,
        ready: isNodeReady(obj),
        unschedulable: obj.spec?.unschedulable === true,
        labels: obj.metadata.labels ?? {},
        taints: taintsOf(obj).map((t) => `${t.key}${t.value ? `=${t.value}` : ""}:${t.effect}`),
      })),
      podsPerNode,
      pendingPods: pending,
      deployments: this.entries(DEPLOYMENTS).map(({ obj }) => ({
        name: keyOf(obj.metadata.namespace, obj.metadata.name),
        replicas: obj.spec?.replicas,
        readyReplicas: obj.status?.readyReplicas ?? 0,
      })),
      replicaSets: this.entries(REPLICASETS).map(({ obj }) => ({
        name: keyOf(obj.metadata.namespace, obj.metadata.name),
        owner: controllerOf(obj)?.name,
        replicas: obj.spec?.replicas,
        readyReplicas: obj.status?.readyReplicas ?? 0,
      })),
      daemonSets: this.entries(DAEMONSETS).map(({ obj }) => ({
        name: keyOf(obj.metadata.namespace, obj.metadata.name),
        desired: obj.status?.desiredNumberScheduled ?? 0,
        ready: obj.status?.numberReady ?? 0,
      })),
      pdbs: this.entries(PDBS).map(({ obj }) => ({
        name: keyOf(obj.metadata.namespace, obj.metadata.name),
        minAvailable: obj.spec?.minAvailable,
        maxUnavailable: obj.spec?.maxUnavailable,
        currentHealthy: obj.status?.currentHealthy,
        desiredHealthy: obj.status?.desiredHealthy,
        disruptionsAllowed: obj.status?.disruptionsAllowed,
        expectedPods: obj.status?.expectedPods,
      })),
    };
  }
}
