/**
 * The resources the sim serves: discovery data, field selectors, strategic-merge
 * list strategies, decoding (type) checks (400) and validation (422) like the API's.
 */
import { isObj, type KObj, type Obj, type Taint, type Toleration } from "./model.ts";
import type { ListStrategy, SmpSchema } from "./patch.ts";
import { type IntOrString, scaledValue } from "./pdb.ts";
import {
  dns1123LabelError,
  dns1123SubdomainError,
  fromSelectorObject,
  type LabelSelectorObject,
  labelValueError,
  matchesLabels,
  qualifiedNameError,
} from "./selectors.ts";
import { badRequest, type FieldError, invalid, type Named } from "./status.ts";

export interface ResourceDef extends Named {
  singular: string;
  group: string;
  version: string;
  apiVersion: string;
  listKind: string;
  namespaced: boolean;
  shortNames: string[];
  verbs: string[];
  /** Field selector getters (anything else is `field label not supported`). */
  fields: Record<string, (o: KObj) => string | undefined>;
  smp: SmpSchema;
  /** Does metadata.generation track spec changes? */
  generation: boolean;
  /** The JSON every stored object starts with (`{"kind":"Node","apiVersion":"v1",`). */
  prefix: string;
}

const META_FIELDS = {
  "metadata.name": (o: KObj) => o.metadata.name,
  "metadata.namespace": (o: KObj) => o.metadata.namespace,
};

const str = (v: unknown) => (v === undefined || v === null ? undefined : String(v));

const POD_SPEC_SMP: Record<string, ListStrategy> = {
  containers: { mergeKey: "name" },
  initContainers: { mergeKey: "name" },
  ephemeralContainers: { mergeKey: "name" },
  volumes: { mergeKey: "name" },
  imagePullSecrets: { mergeKey: "name" },
  hostAliases: { mergeKey: "ip" },
  "containers.env": { mergeKey: "name" },
  "containers.ports": { mergeKey: "containerPort" },
  "containers.volumeMounts": { mergeKey: "mountPath" },
  "containers.volumeDevices": { mergeKey: "devicePath" },
  "initContainers.env": { mergeKey: "name" },
  "initContainers.ports": { mergeKey: "containerPort" },
  "initContainers.volumeMounts": { mergeKey: "mountPath" },
};

const COMMON_SMP: Record<string, ListStrategy> = {
  "metadata.ownerReferences": { mergeKey: "uid" },
  "metadata.finalizers": "merge",
  "status.conditions": { mergeKey: "type" },
};

function withPrefix(prefix: string, schema: Record<string, ListStrategy>): Record<string, ListStrategy> {
  return Object.fromEntries(Object.entries(schema).map(([k, v]) => [`${prefix}.${k}`, v]));
}

function def(
  d: Omit<ResourceDef, "apiVersion" | "listKind" | "prefix" | "resource"> & { plural: string },
): ResourceDef {
  const apiVersion = d.group ? `${d.group}/${d.version}` : d.version;
  const { plural, ...rest } = d;
  return {
    ...rest,
    resource: plural,
    apiVersion,
    listKind: `${d.kind}List`,
    prefix: `{"kind":${JSON.stringify(d.kind)},"apiVersion":${JSON.stringify(apiVersion)},`,
  };
}

const ALL_VERBS = ["create", "delete", "get", "list", "patch", "update", "watch"];

export const NODES = def({
  plural: "nodes",
  singular: "node",
  kind: "Node",
  group: "",
  version: "v1",
  namespaced: false,
  shortNames: ["no"],
  verbs: ALL_VERBS,
  fields: {
    "metadata.name": (o) => o.metadata.name,
    "spec.unschedulable": (o) => String(o.spec?.unschedulable === true),
  },
  smp: {
    ...COMMON_SMP,
    "spec.taints": { keys: ["key", "effect"] },
    "status.addresses": { mergeKey: "type" },
  },
  generation: false,
});

export const NAMESPACES = def({
  plural: "namespaces",
  singular: "namespace",
  kind: "Namespace",
  group: "",
  version: "v1",
  namespaced: false,
  shortNames: ["ns"],
  verbs: ALL_VERBS,
  fields: { "metadata.name": (o) => o.metadata.name, "status.phase": (o) => str(o.status?.phase) },
  smp: COMMON_SMP,
  generation: false,
});

export const PODS = def({
  plural: "pods",
  singular: "pod",
  kind: "Pod",
  group: "",
  version: "v1",
  namespaced: true,
  shortNames: ["po"],
  verbs: ALL_VERBS,
  fields: {
    ...META_FIELDS,
    "spec.nodeName": (o) => str(o.spec?.nodeName),
    "spec.restartPolicy": (o) => str(o.spec?.restartPolicy),
    "spec.schedulerName": (o) => str(o.spec?.schedulerName),
    "spec.serviceAccountName": (o) => str(o.spec?.serviceAccountName),
    "spec.hostNetwork": (o) => String(o.spec?.hostNetwork === true),
    "status.phase": (o) => str(o.status?.phase),
    "status.podIP": (o) => str(o.status?.podIP),
    "status.nominatedNodeName": (o) => str(o.status?.nominatedNodeName),
  },
  smp: { ...COMMON_SMP, ...withPrefix("spec", POD_SPEC_SMP) },
  generation: false,
});

export const PVCS = def({
  plural: "persistentvolumeclaims",
  singular: "persistentvolumeclaim",
  kind: "PersistentVolumeClaim",
  group: "",
  version: "v1",
  namespaced: true,
  shortNames: ["pvc"],
  verbs: ALL_VERBS,
  fields: META_FIELDS,
  smp: COMMON_SMP,
  generation: false,
});

export const DEPLOYMENTS = def({
  plural: "deployments",
  singular: "deployment",
  kind: "Deployment",
  group: "apps",
  version: "v1",
  namespaced: true,
  shortNames: ["deploy"],
  verbs: ALL_VERBS,
  fields: META_FIELDS,
  smp: { ...COMMON_SMP, ...withPrefix("spec.template.spec", POD_SPEC_SMP) },
  generation: true,
});

export const REPLICASETS = def({
  plural: "replicasets",
  singular: "replicaset",
  kind: "ReplicaSet",
  group: "apps",
  version: "v1",
  namespaced: true,
  shortNames: ["rs"],
  verbs: ALL_VERBS,
  fields: META_FIELDS,
  smp: { ...COMMON_SMP, ...withPrefix("spec.template.spec", POD_SPEC_SMP) },
  generation: true,
});

export const DAEMONSETS = def({
  plural: "daemonsets",
  singular: "daemonset",
  kind: "DaemonSet",
  group: "apps",
  version: "v1",
  namespaced: true,
  shortNames: ["ds"],
  verbs: ALL_VERBS,
  fields: META_FIELDS,
  smp: { ...COMMON_SMP, ...withPrefix("spec.template.spec", POD_SPEC_SMP) },
  generation: true,
});

export const PDBS = def({
  plural: "poddisruptionbudgets",
  singular: "poddisruptionbudget",
  kind: "PodDisruptionBudget",
  group: "policy",
  version: "v1",
  namespaced: true,
  shortNames: ["pdb"],
  verbs: ALL_VERBS,
  fields: META_FIELDS,
  smp: COMMON_SMP,
  generation: true,
});

export const RESOURCES: readonly ResourceDef[] = [
  NODES,
  NAMESPACES,
  PODS,
  PVCS,
  DEPLOYMENTS,
  REPLICASETS,
  DAEMONSETS,
  PDBS,
];

/** The served resource of an owner reference's `apiVersion` and `kind`, if the sim serves it. */
export function resourceOfKind(apiVersion: string, kind: string): ResourceDef | undefined {
  return RESOURCES.find((d) => d.apiVersion === apiVersion && d.kind === kind);
}

/** Named for errors about the autoscaling/v1 Scale subresource. */
export const SCALE: Named = { resource: "deployments", group: "apps", kind: "Scale" };

// ---------------------------------------------------------------- decoding (400)

type T =
  | "string"
  | "boolean"
  | "integer"
  | "stringMap"
  | "intOrString"
  | "object"
  | "array"
  | "quantity"
  | "stringArray";

type Rule = readonly [string, T];

const META_RULES: Rule[] = [
  ["metadata", "object"],
  ["metadata.name", "string"],
  ["metadata.generateName", "string"],
  ["metadata.namespace", "string"],
  ["metadata.resourceVersion", "string"],
  ["metadata.uid", "string"],
  ["metadata.labels", "stringMap"],
  ["metadata.annotations", "stringMap"],
  ["metadata.finalizers", "stringArray"],
  ["metadata.ownerReferences", "array"],
  ["metadata.ownerReferences.*", "object"],
  ["metadata.ownerReferences.*.name", "string"],
  ["metadata.ownerReferences.*.kind", "string"],
  ["metadata.ownerReferences.*.uid", "string"],
  ["metadata.ownerReferences.*.controller", "boolean"],
  ["spec", "object"],
  ["status", "object"],
];

const POD_SPEC_RULES: Rule[] = [
  ["nodeName", "string"],
  ["nodeSelector", "stringMap"],
  ["tolerations", "array"],
  ["tolerations.*", "object"],
  ["tolerations.*.key", "string"],
  ["tolerations.*.operator", "string"],
  ["tolerations.*.value", "string"],
  ["tolerations.*.effect", "string"],
  ["tolerations.*.tolerationSeconds", "integer"],
  ["containers", "array"],
  ["containers.*", "object"],
  ["containers.*.name", "string"],
  ["containers.*.image", "string"],
  ["volumes", "array"],
  ["volumes.*", "object"],
  ["volumes.*.persistentVolumeClaim", "object"],
  ["volumes.*.persistentVolumeClaim.claimName", "string"],
  ["restartPolicy", "string"],
  ["terminationGracePeriodSeconds", "integer"],
  ["priority", "integer"],
  ["affinity", "object"],
  ["hostNetwork", "boolean"],
];

/** A workload's selector and pod template (Deployments, ReplicaSets, DaemonSets). */
const TEMPLATE_RULES: Rule[] = [
  ["spec.minReadySeconds", "integer"],
  ["spec.selector", "object"],
  ["spec.selector.matchLabels", "stringMap"],
  ["spec.selector.matchExpressions", "array"],
  ["spec.template", "object"],
  ["spec.template.metadata", "object"],
  ["spec.template.metadata.labels", "stringMap"],
  ["spec.template.metadata.annotations", "stringMap"],
  ["spec.template.spec", "object"],
  ...POD_SPEC_RULES.map(([p, t]) => [`spec.template.spec.${p}`, t] as const),
];

const RULES: Map<ResourceDef, Rule[]> = new Map([
  [
    NODES,
    [
      ...META_RULES,
      ["spec.unschedulable", "boolean"],
      ["spec.providerID", "string"],
      ["spec.taints", "array"],
      ["spec.taints.*", "object"],
      ["spec.taints.*.key", "string"],
      ["spec.taints.*.value", "string"],
      ["spec.taints.*.effect", "string"],
    ] as Rule[],
  ],
  [NAMESPACES, [...META_RULES, ["spec.finalizers", "stringArray"]] as Rule[]],
  [PODS, [...META_RULES, ...POD_SPEC_RULES.map(([p, t]) => [`spec.${p}`, t] as const)]],
  [
    PVCS,
    [
      ...META_RULES,
      ["spec.accessModes", "stringArray"],
      ["spec.resources", "object"],
      ["spec.resources.requests", "object"],
      ["spec.resources.requests.storage", "quantity"],
      ["spec.storageClassName", "string"],
      ["spec.volumeName", "string"],
    ] as Rule[],
  ],
  [
    DEPLOYMENTS,
    [
      ...META_RULES,
      ["spec.replicas", "integer"],
      ["spec.paused", "boolean"],
      ["spec.revisionHistoryLimit", "integer"],
      ["spec.strategy", "object"],
      ["spec.strategy.type", "string"],
      ["spec.strategy.rollingUpdate", "object"],
      ["spec.strategy.rollingUpdate.maxSurge", "intOrString"],
      ["spec.strategy.rollingUpdate.maxUnavailable", "intOrString"],
      ...TEMPLATE_RULES,
    ] as Rule[],
  ],
  [REPLICASETS, [...META_RULES, ["spec.replicas", "integer"], ...TEMPLATE_RULES] as Rule[]],
  [
    DAEMONSETS,
    [
      ...META_RULES,
      ["spec.revisionHistoryLimit", "integer"],
      ["spec.updateStrategy", "object"],
      ["spec.updateStrategy.type", "string"],
      ["spec.updateStrategy.rollingUpdate", "object"],
      ["spec.updateStrategy.rollingUpdate.maxUnavailable", "intOrString"],
      ["spec.updateStrategy.rollingUpdate.maxSurge", "intOrString"],
      ...TEMPLATE_RULES,
    ] as Rule[],
  ],
  [
    PDBS,
    [
      ...META_RULES,
      ["spec.minAvailable", "intOrString"],
      ["spec.maxUnavailable", "intOrString"],
      ["spec.selector", "object"],
      ["spec.selector.matchLabels", "stringMap"],
      ["spec.selector.matchExpressions", "array"],
      ["spec.unhealthyPodEvictionPolicy", "string"],
    ] as Rule[],
  ],
]);

function typeOk(v: unknown, t: T): boolean {
  switch (t) {
    case "string":
      return typeof v === "string";
    case "boolean":
      return typeof v === "boolean";
    case "integer":
      return typeof v === "number" && Number.isInteger(v);
    case "intOrString":
      return typeof v === "string" || (typeof v === "number" && Number.isInteger(v));
    case "quantity":
      return typeof v === "string" || typeof v === "number";
    case "object":
      return isObj(v);
    case "array":
      return Array.isArray(v);
    case "stringArray":
      return Array.isArray(v) && v.every((x) => typeof x === "string");
    case "stringMap":
      return isObj(v) && Object.values(v).every((x) => typeof x === "string" || x === null);
  }
}

const GO_TYPE: Record<T, string> = {
  string: "string",
  boolean: "bool",
  integer: "int32",
  intOrString: "intstr.IntOrString",
  quantity: "resource.Quantity",
  object: "struct",
  array: "slice",
  stringArray: "[]string",
  stringMap: "map[string]string",
};

function jsonType(v: unknown): string {
  if (Array.isArray(v)) return "array";
  if (v === null) return "null";
  if (typeof v === "object") return "object";
  return typeof v;
}

function collect(v: unknown, segs: readonly string[], path: string, out: [string, unknown][]): void {
  if (v === undefined || v === null) return;
  if (segs.length === 0) {
    out.push([path, v]);
    return;
  }
  const [s, ...rest] = segs;
  if (s === "*") {
    if (Array.isArray(v)) {
      for (let i = 0; i < v.length; i++) collect(v[i], rest, `${path}[${i}]`, out);
    }
    return;
  }
  if (!isObj(v)) return;
  collect(v[s!], rest, path ? `${path}.${s}` : s!, out);
}

/**
 * Checks the JSON types of the fields the sim relies on: a wrong type is what the API
 * server's decoder rejects with 400 (`cannot unmarshal number into Go struct field`).
 */
export function decode(d: ResourceDef, o: unknown): asserts o is KObj {
  if (!isObj(o))
    throw badRequest(
      `${d.kind} in version "${d.version}" cannot be handled as a ${d.kind}: json: cannot unmarshal ${jsonType(o)} into Go value of type ${d.kind}`,
    );
  for (const [path, t] of RULES.get(d) ?? []) {
    const found: [string, unknown][] = [];
    collect(o, path.split("."), "", found);
    for (const [p, v] of found) {
      if (!typeOk(v, t)) {
        throw badRequest(
          `${d.kind} in version "${d.version}" cannot be handled as a ${d.kind}: json: cannot unmarshal ${jsonType(v)} into Go struct field ${p} of type ${GO_TYPE[t]}`,
        );
      }
    }
  }
  if (o.kind !== undefined && o.kind !== d.kind) {
    throw badRequest(
      `${String(o.kind)} in version "${String(o.apiVersion ?? d.version)}" cannot be handled as a ${d.kind}: the object provided is unrecognized`,
    );
  }
  if (o.apiVersion !== undefined && o.apiVersion !== d.apiVersion) {
    throw badRequest(
      `the API version in the data (${String(o.apiVersion)}) does not match the expected API version (${d.apiVersion})`,
    );
  }
}

/** Removes nulls from the metadata maps (a JSON null decodes as an absent field). */
export function dropNulls(o: KObj): void {
  for (const k of ["labels", "annotations"] as const) {
    const m = o.metadata[k];
    if (m) for (const [key, v] of Object.entries(m)) if (v === null) delete m[key];
  }
  for (const [k, v] of Object.entries(o.metadata)) if (v === null) delete o.metadata[k];
}

// ---------------------------------------------------------------- validation (422)

const req = (field: string): FieldError => ({ type: "FieldValueRequired", field, detail: "Required value" });
const bad = (field: string, value: unknown, why: string): FieldError => ({
  type: "FieldValueInvalid",
  field,
  detail: `Invalid value: ${typeof value === "string" ? JSON.stringify(value) : goValue(value)}: ${why}`,
});

function goValue(v: unknown): string {
  if (isObj(v)) {
    return `map[string]string{${Object.entries(v)
      .map(([k, x]) => `${JSON.stringify(k)}:${JSON.stringify(x)}`)
      .join(", ")}}`;
  }
  return String(v);
}

function validateMeta(d: ResourceDef, o: KObj, errs: FieldError[]): void {
  const name = o.metadata.name;
  if (!name)
    errs.push({
      type: "FieldValueRequired",
      field: "metadata.name",
      detail: "Required value: name or generateName is required",
    });
  else {
    const e = d === NAMESPACES ? dns1123LabelError(name) : dns1123SubdomainError(name);
    if (e) errs.push(bad("metadata.name", name, e));
  }
  for (const [k, v] of Object.entries(o.metadata.labels ?? {})) {
    const ke = qualifiedNameError(k);
    if (ke) errs.push(bad("metadata.labels", k, ke));
    const ve = labelValueError(v);
    if (ve) errs.push(bad("metadata.labels", v, ve));
  }
  for (const k of Object.keys(o.metadata.annotations ?? {})) {
    const ke = qualifiedNameError(k.toLowerCase());
    if (ke) errs.push(bad("metadata.annotations", k, ke));
  }
}

const EFFECTS = ["NoSchedule", "PreferNoSchedule", "NoExecute"];

function validateTaints(taints: readonly Taint[], errs: FieldError[]): void {
  const seen = new Set<string>();
  taints.forEach((t, i) => {
    const f = `spec.taints[${i}]`;
    if (!t.key) errs.push(req(`${f}.key`));
    else {
      const e = qualifiedNameError(t.key);
      if (e) errs.push(bad(`${f}.key`, t.key, e));
    }
    if (t.value) {
      const e = labelValueError(t.value);
      if (e) errs.push(bad(`${f}.value`, t.value, e));
    }
    if (!t.effect) errs.push(req(`${f}.effect`));
    else if (!EFFECTS.includes(t.effect)) {
      errs.push({
        type: "FieldValueNotSupported",
        field: `${f}.effect`,
        detail: `Unsupported value: "${t.effect}": supported values: "NoSchedule", "PreferNoSchedule", "NoExecute"`,
      });
    }
    const k = `${t.key}:${t.effect}`;
    if (seen.has(k)) {
      errs.push({
        type: "FieldValueDuplicate",
        field: `spec.taints[${i}]`,
        detail: `Duplicate value: "${k}": taints must be unique by key and effect pair`,
      });
    }
    seen.add(k);
  });
}

function validateTolerations(tols: readonly Toleration[], prefix: string, errs: FieldError[]): void {
  tols.forEach((t, i) => {
    const f = `${prefix}.tolerations[${i}]`;
    if (t.operator && t.operator !== "Exists" && t.operator !== "Equal") {
      errs.push({
        type: "FieldValueNotSupported",
        field: `${f}.operator`,
        detail: `Unsupported value: "${t.operator}": supported values: "Equal", "Exists"`,
      });
    }
    if (t.operator === "Exists" && t.value)
      errs.push(bad(`${f}.operator`, t.value, "value must be empty when `operator` is 'Exists'"));
    if (!t.key && t.operator !== "Exists")
      errs.push(
        bad(
          `${f}.operator`,
          t.operator ?? "",
          'operator must be Exists when `key` is empty, which means "match all values and all keys"',
        ),
      );
    if (t.effect && !EFFECTS.includes(t.effect)) {
      errs.push({
        type: "FieldValueNotSupported",
        field: `${f}.effect`,
        detail: `Unsupported value: "${t.effect}": supported values: "NoSchedule", "PreferNoSchedule", "NoExecute"`,
      });
    }
    if (t.tolerationSeconds !== undefined && t.effect !== "NoExecute") {
      errs.push(
        bad(`${f}.effect`, t.effect ?? "", "effect must be 'NoExecute' when `tolerationSeconds` is set"),
      );
    }
  });
}

function validatePodSpec(spec: Obj | undefined, prefix: string, errs: FieldError[]): void {
  const containers = (spec?.containers as Obj[] | undefined) ?? [];
  if (containers.length === 0) errs.push(req(`${prefix}.containers`));
  const names = new Set<string>();
  containers.forEach((c, i) => {
    const name = c.name as string | undefined;
    if (!name) errs.push(req(`${prefix}.containers[${i}].name`));
    else {
      const e = dns1123LabelError(name);
      if (e) errs.push(bad(`${prefix}.containers[${i}].name`, name, e));
      if (names.has(name))
        errs.push({
          type: "FieldValueDuplicate",
          field: `${prefix}.containers[${i}].name`,
          detail: `Duplicate value: "${name}"`,
        });
      names.add(name);
    }
    if (!c.image) errs.push(req(`${prefix}.containers[${i}].image`));
  });
  for (const [k, v] of Object.entries((spec?.nodeSelector as Record<string, string> | undefined) ?? {})) {
    const ke = qualifiedNameError(k);
    if (ke) errs.push(bad(`${prefix}.nodeSelector`, k, ke));
    const ve = labelValueError(v);
    if (ve) errs.push(bad(`${prefix}.nodeSelector`, v, ve));
  }
  validateTolerations((spec?.tolerations as Toleration[] | undefined) ?? [], prefix, errs);
  const rp = spec?.restartPolicy;
  if (rp !== undefined && rp !== "Always" && rp !== "OnFailure" && rp !== "Never") {
    errs.push({
      type: "FieldValueNotSupported",
      field: `${prefix}.restartPolicy`,
      detail: `Unsupported value: "${String(rp)}": supported values: "Always", "OnFailure", "Never"`,
    });
  }
}

function validateIntOrPercent(v: IntOrString | undefined, field: string, errs: FieldError[]): void {
  if (v === undefined) return;
  if (typeof v === "number") {
    if (v < 0) errs.push(bad(field, v, "must be greater than or equal to 0"));
    return;
  }
  if (!/^[0-9]+%$/.test(v)) {
    errs.push(
      bad(
        field,
        v,
        "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')",
      ),
    );
    return;
  }
  if (scaledValue(v, 100, false) > 100) errs.push(bad(field, v, "must not be greater than 100%"));
}

function validateSelectorObject(
  sel: LabelSelectorObject | undefined,
  field: string,
  errs: FieldError[],
): void {
  if (!sel) return;
  for (const [k, v] of Object.entries(sel.matchLabels ?? {})) {
    const ke = qualifiedNameError(k);
    if (ke) errs.push(bad(`${field}.matchLabels`, k, ke));
    const ve = labelValueError(v);
    if (ve) errs.push(bad(`${field}.matchLabels`, v, ve));
  }
  (sel.matchExpressions ?? []).forEach((e, i) => {
    const f = `${field}.matchExpressions[${i}]`;
    if (!isObj(e)) return;
    if (e.operator === "In" || e.operator === "NotIn") {
      if (!e.values || e.values.length === 0) errs.push(req(`${f}.values`));
    } else if (e.operator === "Exists" || e.operator === "DoesNotExist") {
      if (e.values && e.values.length > 0)
        errs.push({
          type: "FieldValueForbidden",
          field: `${f}.values`,
          detail: "Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
        });
    } else {
      errs.push(bad(`${f}.operator`, e.operator, "not a valid selector operator"));
    }
  });
}

/** Validates an object about to be stored (`old` on update). Throws the 422 Invalid. */
export function validate(d: ResourceDef, o: KObj, old?: KObj): void {
  const errs: FieldError[] = [];
  validateMeta(d, o, errs);
  const spec = o.spec;
  if (d === NODES) validateTaints((spec?.taints as Taint[] | undefined) ?? [], errs);
  if (d === PODS) {
    validatePodSpec(spec, "spec", errs);
    if (old) validatePodUpdate(old, o, errs);
  }
  if (d === DEPLOYMENTS || d === REPLICASETS || d === DAEMONSETS) {
    const replicas = spec?.replicas as number | undefined;
    if (replicas !== undefined && replicas < 0)
      errs.push(bad("spec.replicas", replicas, "must be greater than or equal to 0"));
    const sel = spec?.selector as LabelSelectorObject | undefined;
    const template = spec?.template as
      | { metadata?: { labels?: Record<string, string> }; spec?: Obj }
      | undefined;
    if (!sel) errs.push(req("spec.selector"));
    else {
      validateSelectorObject(sel, "spec.selector", errs);
      const empty =
        Object.keys(sel.matchLabels ?? {}).length === 0 && (sel.matchExpressions ?? []).length === 0;
      if (empty) errs.push(bad("spec.selector", sel, `empty selector is invalid for ${d.singular}`));
      const labels = template?.metadata?.labels ?? {};
      let matches = false;
      try {
        matches = matchesLabels(fromSelectorObject(sel) ?? [], labels);
      } catch {
        matches = false;
      }
      if (!empty && !matches)
        errs.push(
          bad("spec.template.metadata.labels", labels, "`selector` does not match template `labels`"),
        );
      if (old && JSON.stringify(old.spec?.selector) !== JSON.stringify(sel))
        errs.push(bad("spec.selector", sel, "field is immutable"));
    }
    if (!template) errs.push(req("spec.template"));
    else validatePodSpec(template.spec, "spec.template.spec", errs);
  }
  if (d === PDBS) {
    const min = spec?.minAvailable as IntOrString | undefined;
    const max = spec?.maxUnavailable as IntOrString | undefined;
    if (min !== undefined && max !== undefined) {
      errs.push({
        type: "FieldValueInvalid",
        field: "spec",
        detail: `Invalid value: policy.PodDisruptionBudgetSpec: minAvailable and maxUnavailable cannot be both set`,
      });
    }
    validateIntOrPercent(min, "spec.minAvailable", errs);
    validateIntOrPercent(max, "spec.maxUnavailable", errs);
    validateSelectorObject(spec?.selector as LabelSelectorObject | undefined, "spec.selector", errs);
    const policy = spec?.unhealthyPodEvictionPolicy;
    if (policy !== undefined && policy !== "IfHealthyBudget" && policy !== "AlwaysAllow") {
      errs.push({
        type: "FieldValueNotSupported",
        field: "spec.unhealthyPodEvictionPolicy",
        detail: `Unsupported value: "${String(policy)}": supported values: "AlwaysAllow", "IfHealthyBudget"`,
      });
    }
  }
  if (d === PVCS) {
    const modes = (spec?.accessModes as string[] | undefined) ?? [];
    if (modes.length === 0)
      errs.push({
        type: "FieldValueRequired",
        field: "spec.accessModes",
        detail: "Required value: at least 1 access mode is required",
      });
    const storage = (spec?.resources as { requests?: { storage?: unknown } } | undefined)?.requests?.storage;
    if (storage === undefined) errs.push(req("spec.resources[storage]"));
    if (old) {
      const strip = (s: Obj | undefined) =>
        JSON.stringify({ ...s, resources: undefined, volumeName: undefined });
      if (strip(old.spec) !== strip(spec)) {
        errs.push({
          type: "FieldValueForbidden",
          field: "spec",
          detail:
            "Forbidden: spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims",
        });
      }
    }
  }
  if (errs.length > 0) throw invalid(d, o.metadata.name ?? "", errs);
}

/** Pod updates may change little of the spec (`ValidatePodUpdate`). */
function validatePodUpdate(old: KObj, next: KObj, errs: FieldError[]): void {
  const comparable = (spec: Obj | undefined) => {
    const s = structuredClone(spec ?? {});
    for (const c of (s.containers as Obj[] | undefined) ?? []) delete c.image;
    for (const c of (s.initContainers as Obj[] | undefined) ?? []) delete c.image;
    delete s.activeDeadlineSeconds;
    delete s.tolerations;
    delete s.terminationGracePeriodSeconds;
    return JSON.stringify(s);
  };
  if (comparable(old.spec) !== comparable(next.spec)) {
    errs.push({
      type: "FieldValueForbidden",
      field: "spec",
      detail:
        "Forbidden: pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)",
    });
  }
}
