/** Builders and API defaulting for the objects the sim creates or accepts. */
import type { NodeRegistration } from "../world.ts";
import { type KObj, k8sTime, type Obj, type Taint, type Toleration } from "./model.ts";

/** The K3s release the simulated API servers claim to be. */
export const K3S_VERSION = {
  major: "1",
  minor: "31",
  gitVersion: "v1.31.4+k3s1",
  gitCommit: "a562d090b0d9d5e1ac5e2fc08b0d4e7c3f84bd8c",
};

export const UNSCHEDULABLE_TAINT = "node.kubernetes.io/unschedulable";
export const NOT_READY_TAINT = "node.kubernetes.io/not-ready";
export const UNREACHABLE_TAINT = "node.kubernetes.io/unreachable";

const GENERATE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789";

/** `names.SimpleNameGenerator`: 5 characters from the API's safe alphabet. */
export function randomSuffix(next: () => number, n = 5): string {
  let s = "";
  for (let i = 0; i < n; i++) s += GENERATE_ALPHABET[Math.floor(next() * GENERATE_ALPHABET.length)]!;
  return s;
}

/** `pod-template-hash` as the Deployment controller computes it (FNV-32a, SafeEncodeString). */
export function podTemplateHash(template: unknown): string {
  const s = JSON.stringify(template ?? {});
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i) & 0xff;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return [...String(h >>> 0)]
    .map((c) => GENERATE_ALPHABET[c.charCodeAt(0) % GENERATE_ALPHABET.length])
    .join("");
}

// ---------------------------------------------------------------- nodes

interface Shape {
  cpu: number;
  memGiB: number;
  arch: "amd64" | "arm64";
}

const SIZE_VCPU: Record<string, number> = {
  nano: 2,
  micro: 2,
  small: 2,
  medium: 2,
  large: 2,
  xlarge: 4,
  metal: 96,
};
const T_MEM: Record<string, number> = {
  nano: 0.5,
  micro: 1,
  small: 2,
  medium: 4,
  large: 8,
  xlarge: 16,
  "2xlarge": 32,
};

/** Capacity of an EC2 instance type (approximate; unknown types are 2 vCPU / 4 GiB). */
export function instanceShape(type: string | undefined): Shape {
  const m = type ? /^([a-z]+)(\d+)([a-z-]*)\.(\w+)$/.exec(type) : null;
  if (!m) return { cpu: 2, memGiB: 4, arch: "amd64" };
  const [, fam, , attrs, size] = m as unknown as [string, string, string, string, string];
  const arch = attrs.includes("g") ? "arm64" : "amd64";
  const n = /^(\d+)xlarge$/.exec(size);
  let cpu = n ? 4 * Number(n[1]) : (SIZE_VCPU[size] ?? 2);
  if (fam !== "t" && size === "medium") cpu = 1;
  let memGiB: number;
  if (fam === "t") memGiB = T_MEM[size] ?? cpu * 4;
  else if (fam === "c") memGiB = cpu * 2;
  else if (fam === "r" || fam === "x") memGiB = cpu * 8;
  else memGiB = cpu * 4;
  return { cpu, memGiB, arch };
}

export interface NodeFacts {
  uid: string;
  now: number;
  podCidr: string;
  instanceType?: string;
  region?: string;
}

export function nodeFromRegistration(reg: NodeRegistration, f: NodeFacts): KObj {
  const shape = instanceShape(f.instanceType);
  const type = f.instanceType ?? "k3s";
  const memKi = Math.round(shape.memGiB * 1024 * 1024 * 0.955);
  const ip = reg.internalIp;
  const labels: Record<string, string> = {
    "beta.kubernetes.io/arch": shape.arch,
    "beta.kubernetes.io/instance-type": type,
    "beta.kubernetes.io/os": "linux",
    "kubernetes.io/arch": shape.arch,
    "kubernetes.io/hostname": reg.name,
    "kubernetes.io/os": "linux",
    "node.kubernetes.io/instance-type": type,
    ...(reg.role === "server" ? { "node-role.kubernetes.io/control-plane": "true" } : {}),
    ...(reg.availabilityZone ? { "topology.kubernetes.io/zone": reg.availabilityZone } : {}),
    ...(f.region ? { "topology.kubernetes.io/region": f.region } : {}),
    ...reg.labels,
  };
  const annotations: Record<string, string> = {
    ...(ip ? { "alpha.kubernetes.io/provided-node-ip": ip, "k3s.io/internal-ip": ip } : {}),
    "k3s.io/hostname": reg.name,
    "node.alpha.kubernetes.io/ttl": "0",
    "volumes.kubernetes.io/controller-managed-attach-detach": "true",
  };
  const t = k8sTime(f.now);
  const capacity = {
    cpu: String(shape.cpu),
    "ephemeral-storage": "20959212Ki",
    "hugepages-1Gi": "0",
    "hugepages-2Mi": "0",
    memory: `${memKi}Ki`,
    pods: "110",
  };
  return {
    kind: "Node",
    apiVersion: "v1",
    metadata: {
      name: reg.name,
      uid: f.uid,
      resourceVersion: "",
      creationTimestamp: t,
      labels,
      annotations,
    },
    spec: {
      podCIDR: f.podCidr,
      podCIDRs: [f.podCidr],
      ...(reg.instanceId ? { providerID: `aws:///${reg.availabilityZone ?? ""}/${reg.instanceId}` } : {}),
      ...(reg.taints.length > 0 ? { taints: reg.taints.map((x) => ({ ...x })) } : {}),
    },
    status: {
      capacity,
      allocatable: { ...capacity, "ephemeral-storage": "20389121418", memory: `${memKi - 102400}Ki` },
      conditions: nodeConditions(true, t),
      addresses: [
        ...(ip ? [{ type: "InternalIP", address: ip }] : []),
        { type: "Hostname", address: reg.name },
      ],
      daemonEndpoints: { kubeletEndpoint: { Port: 10250 } },
      nodeInfo: {
        machineID: f.uid.replaceAll("-", ""),
        systemUUID: f.uid,
        bootID: f.uid,
        kernelVersion: "6.8.0-1021-aws",
        osImage: "Ubuntu 24.04.1 LTS",
        containerRuntimeVersion: "containerd://1.7.23-k3s2",
        kubeletVersion: K3S_VERSION.gitVersion,
        kubeProxyVersion: K3S_VERSION.gitVersion,
        operatingSystem: "linux",
        architecture: shape.arch,
      },
    },
  };
}

export function nodeConditions(ready: boolean, t: string): Obj[] {
  const ok = (type: string, reason: string, message: string) => ({
    type,
    status: "False",
    lastHeartbeatTime: t,
    lastTransitionTime: t,
    reason,
    message,
  });
  return [
    ok("MemoryPressure", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
    ok("DiskPressure", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
    ok("PIDPressure", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
    ready
      ? {
          type: "Ready",
          status: "True",
          lastHeartbeatTime: t,
          lastTransitionTime: t,
          reason: "KubeletReady",
          message: "kubelet is posting ready status",
        }
      : {
          type: "Ready",
          status: "False",
          lastHeartbeatTime: t,
          lastTransitionTime: t,
          reason: "KubeletNotReady",
          message: "container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady",
        },
  ];
}

/** The node lifecycle controller's taints for a node's state (TaintNodesByCondition, taint-based eviction). */
/**
 * The taints the controllers keep on a node: `unschedulable` for a cordon; for a node not
 * Ready, `not-ready` (Ready=False: the kubelet says so) or `unreachable` (Ready=Unknown:
 * the kubelet stopped posting), NoSchedule and NoExecute, as the node lifecycle
 * controller's taint-based eviction sets them.
 */
export function systemTaints(
  unschedulable: boolean,
  ready: boolean,
  t: string,
  unreachable = false,
): Taint[] {
  const out: Taint[] = [];
  if (unschedulable) out.push({ key: UNSCHEDULABLE_TAINT, effect: "NoSchedule" });
  if (!ready) {
    const key = unreachable ? UNREACHABLE_TAINT : NOT_READY_TAINT;
    out.push({ key, effect: "NoSchedule" });
    out.push({ key, effect: "NoExecute", timeAdded: t });
  }
  return out;
}

/**
 * What the node lifecycle controller writes when a kubelet has not posted status for the
 * grace period: every condition Unknown, `NodeStatusUnknown`, "Kubelet stopped posting
 * node status." (`tryUpdateNodeHealth`), heartbeats left as the kubelet last sent them.
 */
export function unknownConditions(prev: readonly Obj[], t: string): Obj[] {
  return ["MemoryPressure", "DiskPressure", "PIDPressure", "Ready"].map((type) => {
    const p = prev.find((c) => c.type === type);
    return {
      type,
      status: "Unknown",
      ...(p?.lastHeartbeatTime ? { lastHeartbeatTime: p.lastHeartbeatTime } : {}),
      lastTransitionTime: p?.status === "Unknown" ? p.lastTransitionTime : t,
      reason: "NodeStatusUnknown",
      message: "Kubelet stopped posting node status.",
    };
  });
}

export const SYSTEM_TAINT_KEYS = [UNSCHEDULABLE_TAINT, NOT_READY_TAINT, UNREACHABLE_TAINT];

// ---------------------------------------------------------------- pods and others

const DEFAULT_TOLERATIONS: Toleration[] = [
  { key: NOT_READY_TAINT, operator: "Exists", effect: "NoExecute", tolerationSeconds: 300 },
  { key: UNREACHABLE_TAINT, operator: "Exists", effect: "NoExecute", tolerationSeconds: 300 },
];

/** Pod spec defaults (API defaulting plus the DefaultTolerationSeconds admission plugin). */
export function defaultPodSpec(spec: Obj, admission: boolean): Obj {
  for (const c of (spec.containers as Obj[] | undefined) ?? []) {
    const image = String(c.image ?? "");
    c.imagePullPolicy ??= image.endsWith(":latest") || !/:[^/]+$/.test(image) ? "Always" : "IfNotPresent";
    c.resources ??= {};
    c.terminationMessagePath ??= "/dev/termination-log";
    c.terminationMessagePolicy ??= "File";
  }
  spec.restartPolicy ??= "Always";
  spec.terminationGracePeriodSeconds ??= 30;
  spec.dnsPolicy ??= "ClusterFirst";
  spec.securityContext ??= {};
  spec.schedulerName ??= "default-scheduler";
  spec.enableServiceLinks ??= true;
  if (admission) {
    spec.serviceAccountName ??= "default";
    spec.serviceAccount ??= spec.serviceAccountName;
    spec.priority ??= 0;
    spec.preemptionPolicy ??= "PreemptLowerPriority";
    const tols = ((spec.tolerations as Toleration[] | undefined) ?? []).slice();
    for (const d of DEFAULT_TOLERATIONS) {
      if (!tols.some((t) => t.key === d.key && (t.effect === d.effect || !t.effect))) tols.push({ ...d });
    }
    spec.tolerations = tols;
  }
  return spec;
}

export function qosClass(spec: Obj | undefined): "BestEffort" | "Burstable" | "Guaranteed" {
  const cs = (spec?.containers as { resources?: { requests?: Obj; limits?: Obj } }[] | undefined) ?? [];
  const any = cs.some(
    (c) =>
      Object.keys(c.resources?.requests ?? {}).length + Object.keys(c.resources?.limits ?? {}).length > 0,
  );
  if (!any) return "BestEffort";
  const guaranteed = cs.every((c) => {
    const l = c.resources?.limits ?? {};
    const r = c.resources?.requests ?? l;
    return l.cpu !== undefined && l.memory !== undefined && r.cpu === l.cpu && r.memory === l.memory;
  });
  return guaranteed ? "Guaranteed" : "Burstable";
}

export function defaultDeploymentSpec(spec: Obj): Obj {
  spec.replicas ??= 1;
  spec.strategy ??= { type: "RollingUpdate", rollingUpdate: { maxUnavailable: "25%", maxSurge: "25%" } };
  spec.revisionHistoryLimit ??= 10;
  spec.progressDeadlineSeconds ??= 600;
  defaultTemplate(spec);
  return spec;
}

export function defaultReplicaSetSpec(spec: Obj): Obj {
  spec.replicas ??= 1;
  defaultTemplate(spec);
  return spec;
}

export function defaultDaemonSetSpec(spec: Obj): Obj {
  spec.updateStrategy ??= { type: "RollingUpdate", rollingUpdate: { maxUnavailable: 1, maxSurge: 0 } };
  spec.revisionHistoryLimit ??= 10;
  defaultTemplate(spec);
  return spec;
}

function defaultTemplate(spec: Obj): void {
  spec.template ??= {};
  const template = spec.template as Obj;
  template.metadata ??= {};
  (template.metadata as Obj).creationTimestamp ??= null;
  template.spec ??= {};
  defaultPodSpec(template.spec as Obj, false);
}

/**
 * The tolerations the DaemonSet controller adds to its pods (`util.AddOrUpdateDaemonPodTolerations`):
 * they stay on NotReady and unreachable nodes for ever, and on cordoned or pressured nodes.
 */
export function daemonPodTolerations(hostNetwork: boolean): Toleration[] {
  return [
    { key: NOT_READY_TAINT, operator: "Exists", effect: "NoExecute" },
    { key: UNREACHABLE_TAINT, operator: "Exists", effect: "NoExecute" },
    { key: "node.kubernetes.io/disk-pressure", operator: "Exists", effect: "NoSchedule" },
    { key: "node.kubernetes.io/memory-pressure", operator: "Exists", effect: "NoSchedule" },
    { key: "node.kubernetes.io/pid-pressure", operator: "Exists", effect: "NoSchedule" },
    { key: UNSCHEDULABLE_TAINT, operator: "Exists", effect: "NoSchedule" },
    ...(hostNetwork
      ? [
          {
            key: "node.kubernetes.io/network-unavailable",
            operator: "Exists" as const,
            effect: "NoSchedule" as const,
          },
        ]
      : []),
  ];
}

/** `tols` with `extra` added where no toleration of the same key and effect is there yet. */
export function withTolerations(tols: readonly Toleration[], extra: readonly Toleration[]): Toleration[] {
  const out = tols.map((t) => ({ ...t }));
  for (const e of extra)
    if (!out.some((t) => t.key === e.key && (t.effect ?? "") === (e.effect ?? ""))) out.push({ ...e });
  return out;
}

interface NodeSelectorRequirement {
  key: string;
  operator: string;
  values?: string[];
}
interface NodeSelectorTerm {
  matchExpressions?: NodeSelectorRequirement[];
  matchFields?: NodeSelectorRequirement[];
}

/** The required node affinity a DaemonSet pod gets: exactly its node (`metadata.name In [node]`). */
export function nodeNameAffinity(node: string): Obj {
  return {
    nodeAffinity: {
      requiredDuringSchedulingIgnoredDuringExecution: {
        nodeSelectorTerms: [{ matchFields: [{ key: "metadata.name", operator: "In", values: [node] }] }],
      },
    },
  };
}

/** The node a pod's required affinity pins it to by `metadata.name In [one]`, if it does. */
export function affinityNode(spec: Obj | undefined): string | undefined {
  const terms = requiredTerms(spec);
  if (terms?.length !== 1) return undefined;
  const f = terms[0]!.matchFields?.find((m) => m.key === "metadata.name" && m.operator === "In");
  return f?.values?.length === 1 ? f.values[0] : undefined;
}

function requiredTerms(spec: Obj | undefined): NodeSelectorTerm[] | undefined {
  const a = (spec?.affinity as Obj | undefined)?.nodeAffinity as Obj | undefined;
  const req = a?.requiredDuringSchedulingIgnoredDuringExecution as Obj | undefined;
  return req?.nodeSelectorTerms as NodeSelectorTerm[] | undefined;
}

function requirementHolds(r: NodeSelectorRequirement, value: string | undefined): boolean {
  const values = r.values ?? [];
  switch (r.operator) {
    case "In":
      return value !== undefined && values.includes(value);
    case "NotIn":
      return value === undefined || !values.includes(value);
    case "Exists":
      return value !== undefined;
    case "DoesNotExist":
      return value === undefined;
    case "Gt":
    case "Lt": {
      const n = Number(value);
      const v = Number(values[0]);
      if (value === undefined || !Number.isInteger(n) || !Number.isInteger(v)) return false;
      return r.operator === "Gt" ? n > v : n < v;
    }
    default:
      return false;
  }
}

/**
 * Does the node satisfy the pod spec's `nodeSelector` and required node affinity (the
 * scheduler's NodeAffinity filter)? Terms are ORed; the requirements of a term ANDed; an
 * empty term matches nothing. `matchFields` knows `metadata.name` only, as the real one.
 */
export function matchesNode(spec: Obj | undefined, node: KObj): boolean {
  const labels = node.metadata.labels ?? {};
  const sel = spec?.nodeSelector as Record<string, string> | undefined;
  if (sel) for (const [k, v] of Object.entries(sel)) if (labels[k] !== v) return false;
  const terms = requiredTerms(spec);
  if (!terms) return true;
  return terms.some((t) => {
    const exprs = t.matchExpressions ?? [];
    const fields = t.matchFields ?? [];
    if (exprs.length === 0 && fields.length === 0) return false;
    return (
      exprs.every((r) => requirementHolds(r, labels[r.key])) &&
      fields.every((r) => requirementHolds(r, r.key === "metadata.name" ? node.metadata.name : undefined))
    );
  });
}

export function namespaceObject(name: string, uid: string, now: number): KObj {
  return {
    kind: "Namespace",
    apiVersion: "v1",
    metadata: {
      name,
      uid,
      resourceVersion: "",
      creationTimestamp: k8sTime(now),
      labels: { "kubernetes.io/metadata.name": name },
    },
    spec: { finalizers: ["kubernetes"] },
    status: { phase: "Active" },
  };
}

// ---------------------------------------------------------------- resources

const SUFFIX: Record<string, number> = {
  "": 1,
  n: 1e-9,
  u: 1e-6,
  m: 1e-3,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  E: 1e18,
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
  Pi: 2 ** 50,
  Ei: 2 ** 60,
};

/** A resource.Quantity in base units (cores, bytes); undefined when it is not one. */
export function quantityValue(q: unknown): number | undefined {
  if (typeof q === "number") return q;
  if (typeof q !== "string") return undefined;
  const m = /^([+-]?\d+(?:\.\d*)?|[+-]?\.\d+)(?:[eE]([+-]?\d+))?(n|u|m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$/.exec(
    q,
  );
  if (!m) return undefined;
  return Number(m[1]) * 10 ** Number(m[2] ?? 0) * SUFFIX[m[3] ?? ""]!;
}

/** What a pod asks of a node's allocatable (NodeResourcesFit): millicores and bytes. */
export interface PodRequests {
  milliCpu: number;
  memory: number;
}

/**
 * The pod's effective requests as the scheduler computes them: the sum over its
 * containers, or the largest init container if that is more. A container with limits
 * and no requests requests its limits (API defaulting does that).
 */
export function podRequests(spec: Obj | undefined): PodRequests {
  type C = { resources?: { requests?: Obj; limits?: Obj } };
  const of = (c: C, r: "cpu" | "memory") =>
    quantityValue(c.resources?.requests?.[r] ?? c.resources?.limits?.[r]) ?? 0;
  const sum = (cs: C[], r: "cpu" | "memory") => cs.reduce((a, c) => a + of(c, r), 0);
  const max = (cs: C[], r: "cpu" | "memory") => cs.reduce((a, c) => Math.max(a, of(c, r)), 0);
  const cs = (spec?.containers as C[] | undefined) ?? [];
  const init = (spec?.initContainers as C[] | undefined) ?? [];
  return {
    milliCpu: Math.round(Math.max(sum(cs, "cpu"), max(init, "cpu")) * 1000),
    memory: Math.round(Math.max(sum(cs, "memory"), max(init, "memory"))),
  };
}

/**
 * An image reference as containerd names it: `ubuntu` → `docker.io/library/ubuntu:latest`,
 * `acme/ide:1` → `docker.io/acme/ide:1`; a registry host (a dot, a port or `localhost`) stays.
 */
export function normalizedImage(image: string): string {
  let ref = image;
  const first = ref.split("/")[0]!;
  const hasRegistry =
    ref.includes("/") && (first.includes(".") || first.includes(":") || first === "localhost");
  if (!hasRegistry) ref = `docker.io/${ref.includes("/") ? "" : "library/"}${ref}`;
  const last = ref.slice(ref.lastIndexOf("/") + 1);
  if (!last.includes(":") && !ref.includes("@")) ref = `${ref}:latest`;
  return ref;
}
