/** The shapes of the Kubernetes objects the sim stores (loose: unknown fields are kept). */
import { isObj } from "./patch.ts";

export type Obj = Record<string, unknown>;

export interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
  controller?: boolean;
  blockOwnerDeletion?: boolean;
}

export interface ObjectMeta {
  name: string;
  generateName?: string;
  namespace?: string;
  uid: string;
  resourceVersion: string;
  generation?: number;
  creationTimestamp: string;
  deletionTimestamp?: string;
  deletionGracePeriodSeconds?: number;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  ownerReferences?: OwnerReference[];
  finalizers?: string[];
  [k: string]: unknown;
}

export interface KObj {
  kind: string;
  apiVersion: string;
  metadata: ObjectMeta;
  spec?: Obj;
  status?: Obj;
  [k: string]: unknown;
}

export type TaintEffect = "NoSchedule" | "PreferNoSchedule" | "NoExecute";

export interface Taint {
  key: string;
  value?: string;
  effect: TaintEffect;
  timeAdded?: string;
}

export interface Toleration {
  key?: string;
  operator?: "Exists" | "Equal";
  value?: string;
  effect?: TaintEffect | "";
  tolerationSeconds?: number;
}

export interface Condition {
  type: string;
  status: "True" | "False" | "Unknown";
  reason?: string;
  message?: string;
  lastTransitionTime?: string;
  lastHeartbeatTime?: string;
  lastProbeTime?: string | null;
  lastUpdateTime?: string;
  observedGeneration?: number;
  [k: string]: unknown;
}

/** Kubernetes timestamps: RFC 3339, whole seconds (`2026-01-01T00:00:00Z`). */
export function k8sTime(ms: number): string {
  const iso = new Date(ms).toISOString();
  return `${iso.slice(0, 19)}Z`;
}

export { isObj };

/** The map's value for `key`, made and stored first if missing. */
export function getOrInit<K, V>(m: Map<K, V>, key: K, make: () => V): V {
  let v = m.get(key);
  if (v === undefined) {
    v = make();
    m.set(key, v);
  }
  return v;
}

export const taintsOf = (node: KObj): Taint[] => (node.spec?.taints as Taint[] | undefined) ?? [];
export const conditionsOf = (o: KObj): Condition[] => (o.status?.conditions as Condition[] | undefined) ?? [];

export function isNodeReady(node: KObj): boolean {
  return conditionsOf(node).some((c) => c.type === "Ready" && c.status === "True");
}

export function isPodReady(pod: KObj): boolean {
  return conditionsOf(pod).some((c) => c.type === "Ready" && c.status === "True");
}

/** Does the toleration tolerate the taint (`v1.Toleration.ToleratesTaint`)? */
export function tolerates(t: Toleration, taint: Taint): boolean {
  if (t.effect && t.effect !== taint.effect) return false;
  if (t.key && t.key !== taint.key) return false;
  if (!t.key && t.operator !== "Exists") return false;
  if (t.operator === "Exists") return true;
  return (t.value ?? "") === (taint.value ?? "");
}

export function toleratesAll(
  tolerations: readonly Toleration[],
  taints: readonly Taint[],
  effects: readonly string[],
): Taint | undefined {
  for (const taint of taints) {
    if (!effects.includes(taint.effect)) continue;
    if (!tolerations.some((t) => tolerates(t, taint))) return taint;
  }
  return undefined;
}

/**
 * Keeps a condition's lastTransitionTime when its status did not change (the way the
 * controllers maintain conditions).
 */
export function carryTransitions(prev: readonly Condition[] | undefined, next: Condition[]): Condition[] {
  for (const c of next) {
    const p = prev?.find((x) => x.type === c.type);
    if (p && p.status === c.status && p.lastTransitionTime) c.lastTransitionTime = p.lastTransitionTime;
  }
  return next;
}
