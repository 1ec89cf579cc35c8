/**
 * One simulated cluster: its objects, the resourceVersion counter, a bounded event
 * history for watches, and the controllers a real control plane runs (scheduler,
 * Deployment/ReplicaSet, node lifecycle, disruption, PVC protection, namespace, pod GC)
 * plus what the kubelets do (start pods, finish terminating them).
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
  defaultPodSpec,
  namespaceObject,
  nodeConditions,
  nodeFromRegistration,
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
} from "./objects.ts";
import { jsonEqual } from "./patch.ts";
import { type IntOrString, pdbCounts, scaledValue } from "./pdb.ts";
import {
  DEPLOYMENTS,
  NAMESPACES,
  NODES,
  PDBS,
  PODS,
  PVCS,
  RESOURCES,
  type ResourceDef,
} from "./resources.ts";
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
  /** The Deployment (ns/name) that owns it. */
  owner?: string;
  hash?: string;
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
  /** Per resource, events with rv <= this are out of the watch cache: a watch from older gets 410. */
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
  readonly #podsByOwner = new Map<string, Set<string>>();
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
  readonly #rsUids = new Map<string, string>();
  /** PDBs (ns/name) the disruption controller has not processed since their last spec change, and when it will. */
  readonly #pdbSyncAt = new Map<string, number>();
  readonly #dirty = {
    nodes: new Set<string>(),
    scheduler: false,
    deployments: new Set<string>(),
    pdbNs: new Set<string>(),
    /** Pods created with owners to check (the garbage collector). */
    gc: new Set<string>(),
    pvcNs: new Set<string>(),
    namespaces: new Set<string>(),
  };

  constructor(id: string, token: string, ctx: SimContext, missingImages: ReadonlySet<string> = new Set()) {
    this.id = id;
    this.token = token;
    this.#ctx = ctx;
    this.#missingImages = missingImages;
    for (const d of RESOURCES) this.#stores.set(d, new Map());
    for (const ns of ["default", "kube-node-lease", "kube-public", "kube-system"]) {
      this.put(NAMESPACES, namespaceObject(ns, ctx.random.uuid(), this.now()));
    }
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

  /** The resourceVersion at or below which the resource's events are out of the watch cache. */
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
    this.#compactedRv.set(def, w.events[head - 1]!.rv);
    w.head = head;
    if (w.head > 4096) {
      w.events.splice(0, w.head);
      w.head = 0;
    }
  }

  #hook(def: ResourceDef, key: string, prev: KObj | undefined, next: KObj | undefined): void {
    if (def === PODS) this.#podHook(key, prev, next);
    else if (def === NODES) {
      this.#dirty.nodes.add(key);
      this.#dirty.scheduler ||= this.#unscheduled.size > 0;
    } else if (def === DEPLOYMENTS) this.#dirty.deployments.add(key);
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

  #podHook(key: string, prev: KObj | undefined, next: KObj | undefined): void {
    const ns = (next ?? prev)!.metadata.namespace!;
    const before = prev?.spec?.nodeName as string | undefined;
    const after = next?.spec?.nodeName as string | undefined;
    if (before !== after || !next) {
      if (before) this.#podsByNode.get(before)?.delete(key);
      if (after && next) {
        getOrInit(this.#podsByNode, after, () => new Set<string>()).add(key);
      }
    }
    if (!prev) {
      getOrInit(this.#podsByNs, ns, () => new Set<string>()).add(key);
      if (next?.metadata.ownerReferences?.length) this.#dirty.gc.add(key);
    }
    if (next && !after && !next.metadata.deletionTimestamp) {
      this.#unscheduled.add(key);
      this.#dirty.scheduler = true;
    } else {
      this.#unscheduled.delete(key);
    }
    this.#dirty.pdbNs.add(ns);
    const x = this.#podX.get(key);
    if (x?.owner) this.#dirty.deployments.add(x.owner);
    if (!next) {
      // A pod gone frees its node's resources: the scheduler looks at the waiting ones again.
      this.#dirty.scheduler ||= this.#unscheduled.size > 0;
      this.#podsByNs.get(ns)?.delete(key);
      if (x?.owner) this.#podsByOwner.get(x.owner)?.delete(key);
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
      if (nodeName && !this.get(NODES, nodeName)) this.drop(PODS, t.key);
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
    this.drop(PODS, t.key);
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
      } else if (d.deployments.size > 0) {
        const keys = [...d.deployments].sort();
        d.deployments.clear();
        for (const k of keys) this.#reconcileDeployment(k);
      } else if (d.pvcNs.size > 0) {
        const nss = [...d.pvcNs].sort();
        d.pvcNs.clear();
        for (const ns of nss) this.#pvcProtection(ns);
      } else if (d.namespaces.size > 0) {
        const nss = [...d.namespaces].sort();
        d.namespaces.clear();
        for (const ns of nss) this.#finalizeNamespace(ns);
      } else if (d.gc.size > 0) {
        const keys = [...d.gc].sort();
        d.gc.clear();
        for (const k of keys) this.#collect(k);
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
   * The garbage collector, for the owners the sim can look up: a pod whose every owner
   * reference points at a ReplicaSet or Deployment that does not exist (no such uid) is
   * deleted at once (background propagation), as the real collector does within
   * milliseconds. Owners of kinds the sim does not serve (DaemonSet, StatefulSet, Job…)
   * are taken on trust.
   */
  #collect(key: string): void {
    const pod = this.get(PODS, key)?.obj;
    const refs = pod?.metadata.ownerReferences ?? [];
    if (!pod || refs.length === 0 || pod.metadata.deletionTimestamp) return;
    const ns = pod.metadata.namespace;
    const known = new Set(this.#rsUids.values());
    const dangling = (r: OwnerReference) => {
      if (r.apiVersion !== "apps/v1") return false;
      if (r.kind === "ReplicaSet") return !known.has(r.uid);
      if (r.kind === "Deployment")
        return this.get(DEPLOYMENTS, keyOf(ns, r.name))?.obj.metadata.uid !== r.uid;
      return false;
    };
    if (refs.every(dangling)) this.deletePod(key, undefined);
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
    const sel = spec.nodeSelector as Record<string, string> | undefined;
    if (sel) {
      const labels = node.metadata.labels ?? {};
      for (const [k, v] of Object.entries(sel))
        if (labels[k] !== v) return "node(s) didn't match Pod's node affinity/selector";
    }
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
    if (!x.owner) {
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

  /** Deployment + ReplicaSet controllers: the right number of pods of the current template, and status. */
  #reconcileDeployment(key: string): void {
    const e = this.get(DEPLOYMENTS, key);
    if (!e || e.obj.metadata.deletionTimestamp) return;
    const d = e.obj;
    const spec = d.spec ?? {};
    const want = (spec.replicas as number | undefined) ?? 1;
    const hash = podTemplateHash(spec.template);
    const rsName = `${d.metadata.name}-${hash}`;
    const ownedKeys = [...(this.#podsByOwner.get(key) ?? [])].sort();
    const live = () =>
      ownedKeys
        .map((k) => this.get(PODS, k))
        .filter((p): p is Entry => p !== undefined && !p.obj.metadata.deletionTimestamp);
    const strategy = (spec.strategy as Obj | undefined) ?? {};
    const keyOfPod = (p: Entry) => keyOf(p.obj.metadata.namespace, p.obj.metadata.name);
    const isNew = (p: Entry) => this.#podX.get(keyOfPod(p))?.hash === hash;
    if (live().some((p) => !isNew(p))) {
      if (strategy.type === "Recreate") {
        for (const p of live()) if (!isNew(p)) this.deletePod(keyOfPod(p), undefined);
      } else {
        this.#rollOut(d, key, hash, rsName, want, live, isNew, keyOfPod);
        this.#deploymentStatus(key, d, want, hash, rsName);
        return;
      }
    }
    const current = live();
    if (current.length < want) {
      for (let i = current.length; i < want; i++) this.#createOwnedPod(d, key, hash, rsName);
    } else if (current.length > want) {
      const rank = (p: Entry) => {
        const x = this.#podX.get(keyOf(p.obj.metadata.namespace, p.obj.metadata.name));
        return [
          p.obj.spec?.nodeName ? 1 : 0,
          p.obj.status?.phase === "Running" ? 1 : 0,
          isPodReady(p.obj) ? 1 : 0,
          -(x?.boundAt ?? 0),
        ];
      };
      const victims = current
        .map((p) => ({ p, r: rank(p) }))
        .sort((a, b) => {
          for (let i = 0; i < a.r.length; i++) if (a.r[i] !== b.r[i]) return a.r[i]! - b.r[i]!;
          return a.p.obj.metadata.name < b.p.obj.metadata.name ? 1 : -1;
        })
        .slice(0, current.length - want);
      for (const v of victims)
        this.deletePod(keyOf(v.p.obj.metadata.namespace, v.p.obj.metadata.name), undefined);
    }
    this.#deploymentStatus(key, d, want, hash, rsName);
  }

  /**
   * A template change rolls out as the Deployment controller's RollingUpdate does: the new
   * ReplicaSet grows while all pods stay within `replicas + maxSurge` (default 25%, rounded
   * up), old pods go (unready ones first) while at least `replicas − maxUnavailable`
   * (default 25%, rounded down; at least 1 when both are 0) stay available. Pods becoming
   * ready move it on.
   */
  #rollOut(
    d: KObj,
    key: string,
    hash: string,
    rsName: string,
    want: number,
    live: () => Entry[],
    isNew: (p: Entry) => boolean,
    keyOfPod: (p: Entry) => string,
  ): void {
    const ru = ((d.spec?.strategy as Obj | undefined)?.rollingUpdate as Obj | undefined) ?? {};
    const maxSurge = scaledValue((ru.maxSurge as IntOrString | undefined) ?? "25%", want, true);
    let maxUnavailable = scaledValue((ru.maxUnavailable as IntOrString | undefined) ?? "25%", want, false);
    if (maxSurge === 0 && maxUnavailable === 0) maxUnavailable = 1;
    const pods = live();
    const fresh = pods.filter(isNew).length;
    const create = Math.max(0, Math.min(want - fresh, want + maxSurge - pods.length));
    for (let i = 0; i < create; i++) this.#createOwnedPod(d, key, hash, rsName);
    let available = live().filter((p) => isPodReady(p.obj)).length;
    const old = live()
      .filter((p) => !isNew(p))
      .sort((a, b) => Number(isPodReady(a.obj)) - Number(isPodReady(b.obj)));
    for (const p of old) {
      const ready = isPodReady(p.obj);
      if (ready && available - 1 < want - maxUnavailable) break;
      if (ready) available--;
      this.deletePod(keyOfPod(p), undefined);
    }
  }

  #deploymentStatus(key: string, d: KObj, want: number, hash: string, rsName: string): void {
    const spec = d.spec ?? {};
    // Status, from the pods as they are now.
    const pods = [...(this.#podsByOwner.get(key) ?? [])]
      .map((k) => this.get(PODS, k)?.obj)
      .filter((p): p is KObj => p !== undefined && !p.metadata.deletionTimestamp);
    const updated = pods.filter((p) => p.metadata.labels?.["pod-template-hash"] === hash).length;
    const ready = pods.filter(isPodReady).length;
    const maxUnavailableSpec = ((spec.strategy as Obj | undefined)?.rollingUpdate as Obj | undefined)
      ?.maxUnavailable as IntOrString | undefined;
    const maxUnavailable = scaledValue(maxUnavailableSpec ?? "25%", want, false);
    const t = k8sTime(this.now());
    const prev = conditionsOf(d);
    const available = ready >= want - maxUnavailable;
    const progressed = updated === want && ready === want && pods.length === want;
    const conditions = carryTransitions(prev, [
      {
        type: "Available",
        status: available ? "True" : "False",
        lastUpdateTime: t,
        lastTransitionTime: t,
        reason: available ? "MinimumReplicasAvailable" : "MinimumReplicasUnavailable",
        message: available
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
      ...nz("replicas", pods.length),
      ...nz("updatedReplicas", updated),
      ...nz("readyReplicas", ready),
      ...nz("availableReplicas", ready),
      ...nz("unavailableReplicas", Math.max(0, want - ready)),
      conditions,
    };
    if (!jsonEqual(status, d.status)) {
      this.edit(DEPLOYMENTS, key, (x) => {
        x.status = status;
      });
    }
  }

  #createOwnedPod(d: KObj, dKey: string, hash: string, rsName: string): void {
    const ns = d.metadata.namespace!;
    const rsKey = `${dKey}/${hash}`;
    const rsUid = getOrInit(this.#rsUids, rsKey, () => this.uuid());
    const template = structuredClone((d.spec?.template as Obj | undefined) ?? {});
    const tmeta = (template.metadata as Obj | undefined) ?? {};
    let name: string;
    do name = `${rsName}-${randomSuffix(() => this.#ctx.random.next())}`;
    while (this.get(PODS, keyOf(ns, name)));
    const owner: OwnerReference = {
      apiVersion: "apps/v1",
      kind: "ReplicaSet",
      name: rsName,
      uid: rsUid,
      controller: true,
      blockOwnerDeletion: true,
    };
    const pod: KObj = {
      kind: "Pod",
      apiVersion: "v1",
      metadata: {
        name,
        generateName: `${rsName}-`,
        namespace: ns,
        uid: this.uuid(),
        resourceVersion: "",
        creationTimestamp: k8sTime(this.now()),
        labels: { ...(tmeta.labels as Record<string, string> | undefined), "pod-template-hash": hash },
        ...(tmeta.annotations ? { annotations: { ...(tmeta.annotations as Record<string, string>) } } : {}),
        ownerReferences: [owner],
      },
      spec: defaultPodSpec((template.spec as Obj | undefined) ?? {}, true),
      status: { phase: "Pending", qosClass: qosClass(template.spec as Obj | undefined) },
    };
    this.createPod(pod, { owner: dKey, hash });
  }

  /** Stores a new pod (bound if spec.nodeName is set, else left to the scheduler). */
  createPod(pod: KObj, x: { owner?: string; hash?: string } = {}): KObj {
    const key = keyOf(pod.metadata.namespace, pod.metadata.name);
    const px: PodX = { ...x };
    this.#podX.set(key, px);
    if (x.owner) {
      getOrInit(this.#podsByOwner, x.owner, () => new Set<string>()).add(key);
    }
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
   * is 0 or no kubelet runs it. Returns the object as the DELETE answers it.
   */
  deletePod(key: string, grace: number | undefined): KObj | undefined {
    const e = this.get(PODS, key);
    if (!e) return undefined;
    const pod = e.obj;
    const nodeName = pod.spec?.nodeName as string | undefined;
    const g = grace ?? (pod.spec?.terminationGracePeriodSeconds as number | undefined) ?? 30;
    if (g === 0 || !nodeName || !this.get(NODES, nodeName)) return this.drop(PODS, key);
    if (pod.metadata.deletionTimestamp) return pod;
    const now = this.now();
    const out = this.edit(PODS, key, (p) => {
      p.metadata.deletionTimestamp = k8sTime(now + g * 1000);
      p.metadata.deletionGracePeriodSeconds = g;
    });
    this.#timer(now + this.#ctx.latencies.podTermination * 1000, "pod-gone", key, pod.metadata.uid);
    return out;
  }

  /** Deletes a Deployment: its pods go too (background propagation) or stay ownerless (Orphan). */
  deleteDeployment(key: string, orphan: boolean): KObj | undefined {
    const gone = this.drop(DEPLOYMENTS, key);
    const pods = [...(this.#podsByOwner.get(key) ?? [])].sort();
    this.#podsByOwner.delete(key);
    for (const k of [...this.#rsUids.keys()]) if (k.startsWith(`${key}/`)) this.#rsUids.delete(k);
    for (const pk of pods) {
      const x = this.#podX.get(pk);
      if (x) delete x.owner;
      if (orphan) this.edit(PODS, pk, (p) => void delete p.metadata.ownerReferences);
      else this.deletePod(pk, undefined);
    }
    return gone;
  }

  /** Namespace deletion: everything in it goes, then the namespace. */
  deleteNamespace(name: string): KObj | undefined {
    const now = this.now();
    const out = this.edit(NAMESPACES, name, (n) => {
      n.metadata.deletionTimestamp ??= k8sTime(now);
      n.status = { ...n.status, phase: "Terminating" };
    });
    for (const e of this.entries(DEPLOYMENTS, name))
      this.deleteDeployment(keyOf(name, e.obj.metadata.name), false);
    for (const e of this.entries(PDBS, name)) this.drop(PDBS, keyOf(name, e.obj.metadata.name));
    for (const e of this.entries(PODS, name)) this.deletePod(keyOf(name, e.obj.metadata.name), undefined);
    for (const e of this.entries(PVCS, name)) this.deletePvc(keyOf(name, e.obj.metadata.name));
    this.#dirty.namespaces.add(name);
    return out;
  }

  #finalizeNamespace(ns: string): void {
    const e = this.get(NAMESPACES, ns);
    if (!e?.obj.metadata.deletionTimestamp) return;
    if ((this.#podsByNs.get(ns)?.size ?? 0) > 0 || this.entries(PVCS, ns).length > 0) return;
    this.drop(NAMESPACES, ns);
  }

  /** PVC deletion waits (kubernetes.io/pvc-protection) while a pod uses the claim. */
  deletePvc(key: string): KObj | undefined {
    const now = this.now();
    const out = this.edit(PVCS, key, (p) => {
      p.metadata.deletionTimestamp ??= k8sTime(now);
    });
    const ns = key.slice(0, key.indexOf("/"));
    this.#dirty.pvcNs.add(ns);
    return out;
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

  #pvcProtection(ns: string): void {
    for (const e of this.entries(PVCS, ns)) {
      if (e.obj.metadata.deletionTimestamp && !this.pvcInUse(ns, e.obj.metadata.name))
        this.drop(PVCS, keyOf(ns, e.obj.metadata.name));
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
      const counts = pdbCounts(
        {
          minAvailable: spec.minAvailable as IntOrString | undefined,
          maxUnavailable: spec.maxUnavailable as IntOrString | undefined,
        },
        selected.map(({ k, p }) => ({
          ready: isPodReady(p),
          terminating: p.metadata.deletionTimestamp !== undefined,
          ...(this.#podX.get(k)?.owner ? { controller: this.#podX.get(k)!.owner! } : {}),
        })),
        (c) => (this.get(DEPLOYMENTS, c)?.obj.spec?.replicas as number | undefined) ?? 0,
      );
      const allowed = counts.disruptionsAllowed > 0;
      const generation = pdb.metadata.generation ?? 1;
      const status: Obj = {
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
      if (!jsonEqual(status, pdb.status))
        this.edit(PDBS, keyOf(ns, pdb.metadata.name), (x) => {
          x.status = status;
        });
    }
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
