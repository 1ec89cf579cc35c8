/**
 * The REST surface of one simulated API server: routing, discovery, and the verbs
 * (get, list, watch, create, update, patch, delete, evict, scale) with the API's
 * status codes and Status errors.
 */
import type { IncomingMessage } from "node:http";
import { gzipSync } from "node:zlib";
import { type Cluster, type Entry, keyOf, type PropagationPolicy } from "./cluster.ts";
import { isObj, isPodReady, type KObj, k8sTime, type Obj } from "./model.ts";
import {
  defaultDaemonSetSpec,
  defaultDeploymentSpec,
  defaultPodSpec,
  defaultReplicaSetSpec,
  K3S_VERSION,
  qosClass,
  randomSuffix,
} from "./objects.ts";
import { jsonEqual, jsonPatch, mergePatch, PatchError, strategicMergePatch } from "./patch.ts";
import { evictionDecision } from "./pdb.ts";
import {
  DAEMONSETS,
  DEPLOYMENTS,
  decode,
  dropNulls,
  NAMESPACES,
  NODES,
  PDBS,
  PODS,
  PVCS,
  REPLICASETS,
  RESOURCES,
  type ResourceDef,
  SCALE,
  validate,
} from "./resources.ts";
import {
  fromSelectorObject,
  type LabelSelectorObject,
  matchesFields,
  matchesLabels,
  parseFieldSelector,
  parseLabelSelector,
  SelectorError,
  selectorString,
} from "./selectors.ts";
import {
  alreadyExists,
  badRequest,
  conflict,
  forbidden,
  internalError,
  invalid,
  KubeError,
  methodNotAllowed,
  notFound,
  success,
  unsupportedMediaType,
} from "./status.ts";

/** A parsed request path. */
export type Route =
  | { t: "discovery"; body: unknown }
  | { t: "text"; body: string }
  | {
      t: "resource";
      def: ResourceDef;
      ns: string | undefined;
      name: string | undefined;
      sub: string | undefined;
      watch: boolean;
    };

export type Verb =
  | "get"
  | "list"
  | "watch"
  | "create"
  | "update"
  | "patch"
  | "delete"
  | "deletecollection"
  | "evict";

/** What a handled request answers: JSON text, or JSON in encoded pieces (lists). */
export interface Answer {
  status: number;
  body: string | Buffer[];
  /** The same body as gzip members (concatenated members are one valid gzip stream). */
  gzip?: () => Buffer[];
  ids: string[];
}

export const PATCH_TYPES = [
  "application/json-patch+json",
  "application/merge-patch+json",
  "application/strategic-merge-patch+json",
] as const;

const GROUPS = [
  { name: "apps", version: "v1" },
  { name: "policy", version: "v1" },
];

/** Parses the path after `/k8s/<cluster>`. */
export function parseRoute(path: string, serverAddress: string): Route | undefined {
  const segs = path
    .split("/")
    .filter((s) => s.length > 0)
    .map((s) => decodeURIComponent(s));
  const [a, b, c] = segs;
  if (segs.length === 0) {
    return {
      t: "discovery",
      body: {
        paths: [
          "/api",
          "/api/v1",
          "/apis",
          "/apis/apps",
          "/apis/apps/v1",
          "/apis/policy",
          "/apis/policy/v1",
          "/healthz",
          "/livez",
          "/readyz",
          "/version",
        ],
      },
    };
  }
  if (segs.length === 1 && (a === "healthz" || a === "livez" || a === "readyz"))
    return { t: "text", body: "ok" };
  if (segs.length === 1 && a === "version") {
    return {
      t: "discovery",
      body: {
        ...K3S_VERSION,
        gitTreeState: "clean",
        buildDate: "2024-12-12T18:35:03Z",
        goVersion: "go1.22.9",
        compiler: "gc",
        platform: "linux/amd64",
      },
    };
  }
  if (a === "api") {
    if (segs.length === 1)
      return {
        t: "discovery",
        body: {
          kind: "APIVersions",
          versions: ["v1"],
          serverAddressByClientCIDRs: [{ clientCIDR: "0.0.0.0/0", serverAddress }],
        },
      };
    if (b !== "v1") return undefined;
    if (segs.length === 2) return { t: "discovery", body: resourceList("", "v1") };
    return resourceRoute("", "v1", segs.slice(2));
  }
  if (a === "apis") {
    if (segs.length === 1) {
      return { t: "discovery", body: { kind: "APIGroupList", apiVersion: "v1", groups: GROUPS.map(group) } };
    }
    const g = GROUPS.find((x) => x.name === b);
    if (!g) return undefined;
    if (segs.length === 2)
      return { t: "discovery", body: { kind: "APIGroup", apiVersion: "v1", ...group(g) } };
    if (c !== g.version) return undefined;
    if (segs.length === 3) return { t: "discovery", body: resourceList(g.name, g.version) };
    return resourceRoute(g.name, g.version, segs.slice(3));
  }
  return undefined;
}

function group(g: { name: string; version: string }) {
  const v = { groupVersion: `${g.name}/${g.version}`, version: g.version };
  return { name: g.name, versions: [v], preferredVersion: v };
}

function resourceList(groupName: string, version: string) {
  const resources: Obj[] = [];
  for (const d of RESOURCES.filter((r) => r.group === groupName && r.version === version)) {
    resources.push({
      name: d.resource,
      singularName: d.singular,
      namespaced: d.namespaced,
      kind: d.kind,
      verbs: d.verbs,
      shortNames: d.shortNames,
    });
    if (d === PODS) {
      resources.push({
        name: "pods/eviction",
        singularName: "",
        namespaced: true,
        group: "policy",
        version: "v1",
        kind: "Eviction",
        verbs: ["create"],
      });
    }
    if (d === DEPLOYMENTS) {
      resources.push({
        name: "deployments/scale",
        singularName: "",
        namespaced: true,
        group: "autoscaling",
        version: "v1",
        kind: "Scale",
        verbs: ["get", "patch", "update"],
      });
    }
    resources.push({
      name: `${d.resource}/status`,
      singularName: "",
      namespaced: d.namespaced,
      kind: d.kind,
      verbs: ["get"],
    });
  }
  return {
    kind: "APIResourceList",
    apiVersion: "v1",
    groupVersion: groupName ? `${groupName}/${version}` : version,
    resources,
  };
}

function resourceRoute(groupName: string, version: string, r: string[]): Route | undefined {
  let rest = r;
  let watch = false;
  if (rest[0] === "watch") {
    watch = true;
    rest = rest.slice(1);
  }
  const find = (plural: string | undefined) =>
    RESOURCES.find((d) => d.group === groupName && d.version === version && d.resource === plural);
  let ns: string | undefined;
  if (rest[0] === "namespaces" && rest.length >= 3) {
    if (find(rest[2])?.namespaced) {
      ns = rest[1];
      rest = rest.slice(2);
    } else if (groupName !== "") {
      return undefined;
    }
  }
  const def = find(rest[0]);
  if (!def || rest.length > 3) return undefined;
  if (ns !== undefined && !def.namespaced) return undefined;
  return { t: "resource", def, ns, name: rest[1], sub: rest[2], watch };
}

/** The verb of a resource request, or undefined when the method does not apply. */
export function verbOf(
  method: string,
  r: Extract<Route, { t: "resource" }>,
  query: URLSearchParams,
): Verb | undefined {
  if (r.sub !== undefined) {
    if (r.def === PODS && r.sub === "eviction") return method === "POST" ? "evict" : undefined;
    if (r.def === DEPLOYMENTS && r.sub === "scale")
      return method === "GET"
        ? "get"
        : method === "PUT"
          ? "update"
          : method === "PATCH"
            ? "patch"
            : undefined;
    if (r.sub === "status") return method === "GET" ? "get" : undefined;
    return undefined;
  }
  if (r.name === undefined) {
    if (method === "GET") return r.watch || isTrue(query.get("watch")) ? "watch" : "list";
    if (method === "POST") return "create";
    if (method === "DELETE") return "deletecollection";
    return undefined;
  }
  if (r.watch) return method === "GET" ? "watch" : undefined;
  if (method === "GET") return isTrue(query.get("watch")) ? "watch" : "get";
  if (method === "PUT") return "update";
  if (method === "PATCH") return "patch";
  if (method === "DELETE") return "delete";
  return undefined;
}

const isTrue = (v: string | null) => v === "true" || v === "1";

/** `list nodes`, `patch node`, `evict pod`, `update deployment/scale`. */
export function actionOf(verb: Verb, r: Extract<Route, { t: "resource" }>): string {
  if (verb === "list" || verb === "watch" || verb === "deletecollection") return `${verb} ${r.def.resource}`;
  if (verb === "evict") return "evict pod";
  return `${verb} ${r.def.singular}${r.sub && r.sub !== "eviction" ? `/${r.sub}` : ""}`;
}

// ---------------------------------------------------------------- helpers

function parseJson(body: Buffer): unknown {
  if (body.length === 0) throw badRequest("the body of the request is empty");
  try {
    return JSON.parse(body.toString("utf8"));
  } catch (e) {
    throw badRequest(`the object provided is unrecognized: ${(e as Error).message}`);
  }
}

function selectors(def: ResourceDef, q: URLSearchParams) {
  try {
    const labels = parseLabelSelector(q.get("labelSelector"));
    const fields = parseFieldSelector(q.get("fieldSelector"));
    for (const f of fields)
      if (!def.fields[f.field]) throw badRequest(`field label not supported: ${f.field}`);
    return { labels, fields };
  } catch (e) {
    if (e instanceof SelectorError) throw badRequest(e.message);
    throw e;
  }
}

const isDryRun = (q: URLSearchParams) => q.getAll("dryRun").includes("All");

function keyFor(r: { def: ResourceDef; ns: string | undefined }, name: string) {
  return keyOf(r.def.namespaced ? r.ns : undefined, name);
}

function mustGet(c: Cluster, def: ResourceDef, ns: string | undefined, name: string) {
  const e = c.get(def, keyOf(def.namespaced ? ns : undefined, name));
  if (!e) throw notFound(def, name);
  return e;
}

const ok = (status: number, obj: unknown, ids: string[]): Answer => ({
  status,
  body: JSON.stringify(obj),
  ids,
});

// ---------------------------------------------------------------- list

export function list(c: Cluster, r: Extract<Route, { t: "resource" }>, q: URLSearchParams): Answer {
  const def = r.def;
  const { labels, fields } = selectors(def, q);
  const eq = (f: string) => fields.find((x) => x.field === f && x.op === "=")?.value;
  const candidates = (): Entry[] => {
    const name = eq("metadata.name");
    if (name !== undefined) {
      const ns = def.namespaced ? (r.ns ?? eq("metadata.namespace")) : undefined;
      if (ns !== undefined || !def.namespaced) {
        const e = c.get(def, keyOf(ns, name));
        return e ? [e] : [];
      }
    }
    const node = def === PODS ? eq("spec.nodeName") : undefined;
    if (node !== undefined && node !== "") {
      const on = c.podsOnNode(node);
      return r.ns === undefined ? on : on.filter((e) => e.obj.metadata.namespace === r.ns);
    }
    return c.entries(def, r.ns);
  };
  const filtered = (): Entry[] => {
    const es = candidates();
    if (labels.length === 0 && fields.length === 0) return es;
    return es.filter(
      (e) =>
        matchesLabels(labels, e.obj.metadata.labels) && matchesFields(fields, (f) => def.fields[f]?.(e.obj)),
    );
  };
  const meta: Obj = { resourceVersion: String(c.rv) };
  const head = () =>
    Buffer.from(
      `{"kind":"${def.listKind}","apiVersion":"${def.apiVersion}","metadata":${JSON.stringify(meta)},"items":[`,
    );
  const cut = def.prefix.length;
  const join = (es: readonly Entry[]) =>
    es
      .map((e) => {
        e.item ??= `{${e.json.slice(cut)}`;
        return e.item;
      })
      .join(",");
  const cont = q.get("continue");
  const limit = Number(q.get("limit") ?? 0);
  if (!cont && !(limit > 0)) {
    const cacheKey = `${def.resource}\n${r.ns ?? ""}\n${q.get("labelSelector") ?? ""}\n${q.get("fieldSelector") ?? ""}`;
    const items = c.listItems(def, cacheKey, () => join(filtered()));
    const h = head();
    // Compressing pays once the same items are listed again; a list that changes every
    // time (a churning cluster) goes uncompressed rather than re-gzipped per request.
    return {
      status: 200,
      body: [h, items.items, LIST_TAIL],
      ...(items.hits > 1 ? { gzip: () => [gzipSync(h), items.gzip(), LIST_TAIL_GZ] } : {}),
      ids: [],
    };
  }
  let entries = filtered();
  if (cont) {
    let start: string;
    try {
      start = String(JSON.parse(Buffer.from(cont, "base64url").toString("utf8")).start);
    } catch {
      throw badRequest(`continue key is not valid: ${cont}`);
    }
    entries = entries.filter((e) => keyOf(e.obj.metadata.namespace, e.obj.metadata.name) > start);
  }
  if (limit > 0 && entries.length > limit) {
    const last = entries[limit - 1]!.obj.metadata;
    const remaining = entries.length - limit;
    entries = entries.slice(0, limit);
    meta.continue = Buffer.from(
      JSON.stringify({ v: "meta.k8s.io/v1", rv: c.rv, start: keyOf(last.namespace, last.name) }),
    ).toString("base64url");
    if (labels.length === 0 && fields.length === 0) meta.remainingItemCount = remaining;
  }
  return { status: 200, body: [head(), Buffer.from(join(entries)), LIST_TAIL], ids: [] };
}

const LIST_TAIL = Buffer.from("]}");
const LIST_TAIL_GZ = gzipSync(LIST_TAIL);

// ---------------------------------------------------------------- create

export function create(
  c: Cluster,
  r: Extract<Route, { t: "resource" }>,
  body: Buffer,
  q: URLSearchParams,
): Answer {
  const def = r.def;
  if (def.namespaced && r.ns === undefined) throw methodNotAllowed();
  const input = parseJson(body);
  decode(def, input);
  const o = input as KObj;
  o.metadata ??= {} as KObj["metadata"];
  dropNulls(o);
  const meta = o.metadata;
  if (def.namespaced && meta.namespace && meta.namespace !== r.ns) {
    throw badRequest("the namespace of the provided object does not match the namespace sent on the request");
  }
  let name = meta.name ?? "";
  if (!name && meta.generateName) {
    do name = `${meta.generateName}${randomSuffix(() => c.random())}`;
    while (c.get(def, keyOf(def.namespaced ? r.ns : undefined, name)));
  }
  const now = c.now();
  const uid = c.uuid();
  const { kind: _k, apiVersion: _a, metadata: _m, spec, status: _s, ...extra } = o;
  const obj: KObj = {
    kind: def.kind,
    apiVersion: def.apiVersion,
    metadata: {
      name,
      ...(meta.generateName ? { generateName: meta.generateName } : {}),
      ...(def.namespaced ? { namespace: r.ns! } : {}),
      uid,
      resourceVersion: "",
      ...(def.generation ? { generation: 1 } : {}),
      creationTimestamp: k8sTime(now),
      ...(meta.labels ? { labels: meta.labels } : {}),
      ...(meta.annotations ? { annotations: meta.annotations } : {}),
      ...(meta.ownerReferences ? { ownerReferences: meta.ownerReferences } : {}),
      ...(meta.finalizers ? { finalizers: meta.finalizers } : {}),
    },
    ...(spec !== undefined ? { spec: spec as Obj } : {}),
    ...extra,
  };
  if (def.namespaced) {
    const ns = c.get(NAMESPACES, r.ns!);
    if (!ns) throw notFound(NAMESPACES, r.ns!);
    if (ns.obj.metadata.deletionTimestamp) {
      throw forbidden(
        def,
        name,
        `unable to create new content in namespace ${r.ns} because it is being terminated`,
      );
    }
  }
  prepareCreate(def, obj);
  validate(def, obj);
  if (c.get(def, keyFor(r, name))) throw alreadyExists(def, name);
  if (isDryRun(q)) return ok(201, obj, [name]);
  const stored = def === PODS ? c.createPod(obj) : c.put(def, obj);
  const out = JSON.stringify(stored);
  c.reconcile();
  return { status: 201, body: out, ids: [name] };
}

function prepareCreate(def: ResourceDef, o: KObj): void {
  o.spec ??= {};
  const spec = o.spec;
  if (def === NODES) {
    o.status = {};
  } else if (def === NAMESPACES) {
    o.metadata.labels = { ...o.metadata.labels, "kubernetes.io/metadata.name": o.metadata.name };
    spec.finalizers ??= ["kubernetes"];
    o.status = { phase: "Active" };
  } else if (def === PODS) {
    defaultPodSpec(spec, true);
    o.status = { phase: "Pending", qosClass: qosClass(spec) };
  } else if (def === DEPLOYMENTS) {
    defaultDeploymentSpec(spec);
    o.status = {};
  } else if (def === REPLICASETS) {
    defaultReplicaSetSpec(spec);
    o.status = { replicas: 0 };
  } else if (def === DAEMONSETS) {
    defaultDaemonSetSpec(spec);
    o.status = {
      currentNumberScheduled: 0,
      numberMisscheduled: 0,
      desiredNumberScheduled: 0,
      numberReady: 0,
    };
  } else if (def === PDBS) {
    o.status = { disruptionsAllowed: 0, currentHealthy: 0, desiredHealthy: 0, expectedPods: 0 };
  } else if (def === PVCS) {
    const finalizers = o.metadata.finalizers ?? [];
    if (!finalizers.includes("kubernetes.io/pvc-protection"))
      o.metadata.finalizers = [...finalizers, "kubernetes.io/pvc-protection"];
    o.metadata.annotations = {
      ...o.metadata.annotations,
      "pv.kubernetes.io/bind-completed": "yes",
      "pv.kubernetes.io/bound-by-controller": "yes",
      "volume.beta.kubernetes.io/storage-provisioner": "rancher.io/local-path",
      "volume.kubernetes.io/storage-provisioner": "rancher.io/local-path",
    };
    spec.storageClassName ??= "local-path";
    spec.volumeMode ??= "Filesystem";
    spec.volumeName ??= `pvc-${o.metadata.uid}`;
    spec.resources ??= {};
    const storage = ((spec.resources as Obj).requests as Obj | undefined)?.storage;
    o.status = {
      phase: "Bound",
      accessModes: spec.accessModes,
      ...(storage !== undefined ? { capacity: { storage: String(storage) } } : {}),
    };
  }
}

// ---------------------------------------------------------------- update / patch

function readPatch(
  req: IncomingMessage,
  body: Buffer,
  doc: KObj | Obj,
  def: ResourceDef | undefined,
): unknown {
  const ct = (req.headers["content-type"] ?? "").split(";")[0]!.trim().toLowerCase();
  if (!(PATCH_TYPES as readonly string[]).includes(ct))
    throw unsupportedMediaType([...PATCH_TYPES, "application/apply-patch+yaml (not modelled)"]);
  const patch = parseJson(body);
  const draft = structuredClone(doc);
  try {
    if (ct === "application/json-patch+json") return jsonPatch(draft, patch);
    if (ct === "application/merge-patch+json") {
      if (!isObj(patch)) throw new PatchError("merge patch must be a JSON object", 400);
      return mergePatch(draft, patch);
    }
    return strategicMergePatch(draft, patch, def?.smp ?? {});
  } catch (e) {
    if (e instanceof PatchError) {
      if (e.code === 400) throw badRequest(e.message);
      throw new KubeError(422, "Invalid", e.message, {});
    }
    throw e;
  }
}

export function patch(
  c: Cluster,
  req: IncomingMessage,
  r: Extract<Route, { t: "resource" }>,
  body: Buffer,
  q: URLSearchParams,
): Answer {
  const cur = mustGet(c, r.def, r.ns, r.name!);
  const patched = readPatch(req, body, cur.obj, r.def);
  return replace(c, r, patched, q);
}

export function update(
  c: Cluster,
  r: Extract<Route, { t: "resource" }>,
  body: Buffer,
  q: URLSearchParams,
): Answer {
  return replace(c, r, parseJson(body), q);
}

/** The update path PUT and PATCH share: preconditions, immutable fields, validation, store. */
function replace(
  c: Cluster,
  r: Extract<Route, { t: "resource" }>,
  input: unknown,
  q: URLSearchParams,
): Answer {
  const def = r.def;
  const name = r.name!;
  decode(def, input);
  const o = input as KObj;
  o.metadata ??= {} as KObj["metadata"];
  dropNulls(o);
  if (o.metadata.name !== undefined && o.metadata.name !== name) {
    throw badRequest(
      `the name of the object (${o.metadata.name}) does not match the name on the URL (${name})`,
    );
  }
  if (def.namespaced && o.metadata.namespace !== undefined && o.metadata.namespace !== r.ns) {
    throw badRequest("the namespace of the provided object does not match the namespace sent on the request");
  }
  const cur = mustGet(c, def, r.ns, name);
  const old = cur.obj;
  const rv = o.metadata.resourceVersion;
  if (rv !== undefined && rv !== "" && rv !== old.metadata.resourceVersion) throw conflict(def, name);
  const { kind: _k, apiVersion: _a, metadata, spec, status: _s, ...extra } = o;
  const next: KObj = {
    kind: def.kind,
    apiVersion: def.apiVersion,
    metadata: {
      ...metadata,
      name,
      ...(def.namespaced ? { namespace: r.ns! } : {}),
      uid: old.metadata.uid,
      resourceVersion: old.metadata.resourceVersion,
      creationTimestamp: old.metadata.creationTimestamp,
      ...(old.metadata.deletionTimestamp ? { deletionTimestamp: old.metadata.deletionTimestamp } : {}),
      ...(old.metadata.deletionGracePeriodSeconds !== undefined
        ? { deletionGracePeriodSeconds: old.metadata.deletionGracePeriodSeconds }
        : {}),
    },
    ...(spec !== undefined ? { spec: spec as Obj } : {}),
    ...(old.status !== undefined ? { status: old.status } : {}),
    ...extra,
  };
  delete next.metadata.generation;
  if (!next.metadata.deletionTimestamp) delete next.metadata.deletionTimestamp;
  if (def === PODS || def === DEPLOYMENTS || def === REPLICASETS || def === DAEMONSETS) {
    next.spec ??= {};
    if (def === PODS) defaultPodSpec(next.spec, false);
    else if (def === DEPLOYMENTS) defaultDeploymentSpec(next.spec);
    else if (def === REPLICASETS) defaultReplicaSetSpec(next.spec);
    else defaultDaemonSetSpec(next.spec);
  }
  if (def === NAMESPACES)
    next.metadata.labels = { ...next.metadata.labels, "kubernetes.io/metadata.name": name };
  if (def.generation) {
    const gen = old.metadata.generation ?? 1;
    next.metadata.generation = jsonEqual(old.spec, next.spec) ? gen : gen + 1;
  }
  orderMeta(next);
  validate(def, next, old);
  const ids = [name];
  if (jsonEqual(next, old)) return { status: 200, body: cur.json, ids };
  if (isDryRun(q)) return ok(200, next, ids);
  const stored = c.put(def, next);
  const out = JSON.stringify(stored);
  c.reconcile();
  return { status: 200, body: out, ids };
}

const META_ORDER = [
  "name",
  "generateName",
  "namespace",
  "uid",
  "resourceVersion",
  "generation",
  "creationTimestamp",
  "deletionTimestamp",
  "deletionGracePeriodSeconds",
  "labels",
  "annotations",
  "ownerReferences",
  "finalizers",
];

/** Puts metadata fields in the API's order (cosmetic; the JSON reads like the real thing). */
function orderMeta(o: KObj): void {
  const m = o.metadata;
  const out: Obj = {};
  for (const k of META_ORDER) if (m[k] !== undefined) out[k] = m[k];
  for (const [k, v] of Object.entries(m)) if (!(k in out) && v !== undefined) out[k] = v;
  o.metadata = out as KObj["metadata"];
}

// ---------------------------------------------------------------- delete

interface DeleteOptions {
  gracePeriodSeconds?: number;
  propagationPolicy?: string;
  preconditions?: { uid?: string; resourceVersion?: string };
  dryRun?: string[];
}

function deleteOptions(body: Buffer, q: URLSearchParams): DeleteOptions {
  let o: DeleteOptions = {};
  if (body.length > 0) {
    const parsed = parseJson(body);
    if (!isObj(parsed)) throw badRequest("DeleteOptions must be an object");
    o = parsed as DeleteOptions;
  }
  const g = q.get("gracePeriodSeconds");
  if (g !== null) o.gracePeriodSeconds = Number(g);
  const p = q.get("propagationPolicy");
  if (p !== null) o.propagationPolicy = p;
  if (
    o.gracePeriodSeconds !== undefined &&
    !(Number.isInteger(o.gracePeriodSeconds) && o.gracePeriodSeconds >= 0)
  ) {
    throw badRequest(`gracePeriodSeconds must be a non-negative integer`);
  }
  if (
    o.propagationPolicy !== undefined &&
    !["Orphan", "Background", "Foreground"].includes(o.propagationPolicy)
  ) {
    throw new KubeError(
      422,
      "Invalid",
      `DeleteOptions.meta.k8s.io "" is invalid: propagationPolicy: Unsupported value: "${o.propagationPolicy}": supported values: "Foreground", "Background", "Orphan", "nil"`,
      {
        kind: "DeleteOptions",
        group: "meta.k8s.io",
      },
    );
  }
  return o;
}

function checkPreconditions(def: ResourceDef, o: KObj, p: DeleteOptions["preconditions"]): void {
  if (p?.uid && p.uid !== o.metadata.uid) {
    throw conflict(
      def,
      o.metadata.name,
      `Precondition failed: UID in precondition: ${p.uid}, UID in object meta: ${o.metadata.uid}`,
    );
  }
  if (p?.resourceVersion && p.resourceVersion !== o.metadata.resourceVersion) {
    throw conflict(
      def,
      o.metadata.name,
      `Precondition failed: ResourceVersion in precondition: ${p.resourceVersion}, ResourceVersion in meta: ${o.metadata.resourceVersion}`,
    );
  }
}

const PROTECTED_NAMESPACES = ["default", "kube-system", "kube-public"];

export function remove(
  c: Cluster,
  r: Extract<Route, { t: "resource" }>,
  body: Buffer,
  q: URLSearchParams,
): Answer {
  const def = r.def;
  const name = r.name!;
  const opts = deleteOptions(body, q);
  const cur = mustGet(c, def, r.ns, name);
  checkPreconditions(def, cur.obj, opts.preconditions);
  if (def === NAMESPACES && PROTECTED_NAMESPACES.includes(name))
    throw forbidden(def, name, "this namespace may not be deleted");
  const ids = [name];
  const gone = () =>
    success({
      name,
      ...(def.group ? { group: def.group } : {}),
      kind: def.resource,
      uid: cur.obj.metadata.uid,
    });
  if (isDryRun(q) || opts.dryRun?.includes("All")) {
    return def === PODS || def === NAMESPACES || def === PVCS
      ? { status: 200, body: cur.json, ids }
      : ok(200, gone(), ids);
  }
  const key = keyFor(r, name);
  const policy = opts.propagationPolicy as PropagationPolicy | undefined;
  let answer: Answer;
  if (def === NAMESPACES) {
    answer = ok(200, c.deleteNamespace(name), ids);
  } else {
    const d = c.deleteObject(def, key, policy, opts.gracePeriodSeconds)!;
    // Pods and PVCs answer with the object (their stores return it); other kinds with a
    // Status once gone, or with the object while finalizers hold it.
    answer = ok(200, def === PODS || def === PVCS || !d.gone ? d.obj : gone(), ids);
  }
  c.reconcile();
  return answer;
}

// ---------------------------------------------------------------- eviction

export function evict(
  c: Cluster,
  r: Extract<Route, { t: "resource" }>,
  body: Buffer,
  q: URLSearchParams,
): Answer {
  const name = r.name!;
  const ns = r.ns!;
  const ev = parseJson(body);
  if (!isObj(ev)) throw badRequest("Eviction must be an object");
  const meta = isObj(ev.metadata) ? ev.metadata : {};
  if (meta.name !== undefined && meta.name !== name)
    throw badRequest("name in URL does not match name in Eviction object");
  if (meta.namespace !== undefined && meta.namespace !== ns) {
    throw badRequest("the namespace of the provided object does not match the namespace sent on the request");
  }
  if (ev.kind !== undefined && ev.kind !== "Eviction")
    throw badRequest(`${String(ev.kind)} is not an Eviction`);
  const opts = isObj(ev.deleteOptions) ? (ev.deleteOptions as DeleteOptions) : {};
  const pod = mustGet(c, PODS, ns, name).obj;
  checkPreconditions(PODS, pod, opts.preconditions);
  const pdbs = c.entries(PDBS, ns).filter((e) => {
    try {
      const sel = fromSelectorObject(e.obj.spec?.selector as LabelSelectorObject | undefined);
      // policy/v1: an empty selector selects every pod of the namespace, a null one none.
      return sel !== undefined && matchesLabels(sel, pod.metadata.labels);
    } catch {
      return false;
    }
  });
  const decision = evictionDecision(
    {
      phase: String(pod.status?.phase ?? "Pending"),
      ready: isPodReady(pod),
      terminating: pod.metadata.deletionTimestamp !== undefined,
    },
    pdbs.map((e) => {
      const s = e.obj.status ?? {};
      const num = (k: string) => (typeof s[k] === "number" ? (s[k] as number) : 0);
      return {
        name: e.obj.metadata.name,
        counts: {
          expectedPods: num("expectedPods"),
          desiredHealthy: num("desiredHealthy"),
          currentHealthy: num("currentHealthy"),
          disruptionsAllowed: num("disruptionsAllowed"),
        },
        generation: e.obj.metadata.generation ?? 1,
        observedGeneration:
          typeof e.obj.status?.observedGeneration === "number"
            ? (e.obj.status.observedGeneration as number)
            : 0,
        ...(typeof e.obj.spec?.unhealthyPodEvictionPolicy === "string"
          ? { unhealthyPodEvictionPolicy: e.obj.spec.unhealthyPodEvictionPolicy }
          : {}),
      };
    }),
  );
  if (!decision.allowed) {
    if (decision.code === 500) throw internalError(decision.message);
    throw new KubeError(
      429,
      "TooManyRequests",
      decision.message,
      {
        causes: [{ reason: "DisruptionBudget", message: decision.cause }],
        ...(decision.retryAfterSeconds > 0 ? { retryAfterSeconds: decision.retryAfterSeconds } : {}),
      },
      decision.retryAfterSeconds > 0 ? { "Retry-After": String(decision.retryAfterSeconds) } : {},
    );
  }
  const ids = [name];
  if (isDryRun(q) || opts.dryRun?.includes("All")) return ok(201, success(undefined, 201), ids);
  c.deletePod(keyOf(ns, name), opts.gracePeriodSeconds);
  c.reconcile();
  return ok(201, success(undefined, 201), ids);
}

// ---------------------------------------------------------------- scale

function scaleOf(d: KObj): Obj {
  let selector = "";
  try {
    selector = selectorString(fromSelectorObject(d.spec?.selector as LabelSelectorObject | undefined) ?? []);
  } catch {
    selector = "";
  }
  return {
    kind: "Scale",
    apiVersion: "autoscaling/v1",
    metadata: {
      name: d.metadata.name,
      namespace: d.metadata.namespace,
      uid: d.metadata.uid,
      resourceVersion: d.metadata.resourceVersion,
      creationTimestamp: d.metadata.creationTimestamp,
    },
    spec: { replicas: d.spec?.replicas ?? 1 },
    status: { replicas: (d.status?.replicas as number | undefined) ?? 0, selector },
  };
}

export function scale(
  c: Cluster,
  req: IncomingMessage,
  verb: Verb,
  r: Extract<Route, { t: "resource" }>,
  body: Buffer,
  q: URLSearchParams,
): Answer {
  const name = r.name!;
  const cur = mustGet(c, DEPLOYMENTS, r.ns, name);
  const ids = [name];
  if (verb === "get") return ok(200, scaleOf(cur.obj), ids);
  const input = verb === "patch" ? readPatch(req, body, scaleOf(cur.obj), undefined) : parseJson(body);
  if (!isObj(input)) throw badRequest("Scale must be an object");
  const meta = isObj(input.metadata) ? input.metadata : {};
  if (meta.name !== undefined && meta.name !== name)
    throw badRequest(
      `the name of the object (${String(meta.name)}) does not match the name on the URL (${name})`,
    );
  const rv = meta.resourceVersion;
  if (typeof rv === "string" && rv !== "" && rv !== cur.obj.metadata.resourceVersion)
    throw conflict(SCALE, name);
  const replicas = isObj(input.spec) ? input.spec.replicas : undefined;
  if (replicas !== undefined && !(typeof replicas === "number" && Number.isInteger(replicas))) {
    throw badRequest(
      `Scale in version "v1" cannot be handled as a Scale: json: cannot unmarshal ${typeof replicas} into Go struct field ScaleSpec.spec.replicas of type int32`,
    );
  }
  const n = (replicas as number | undefined) ?? 0;
  if (n < 0) {
    throw invalid(SCALE, name, [
      {
        type: "FieldValueInvalid",
        field: "spec.replicas",
        detail: `Invalid value: ${n}: must be greater than or equal to 0`,
      },
    ]);
  }
  if (n === cur.obj.spec?.replicas) return ok(200, scaleOf(cur.obj), ids);
  if (isDryRun(q)) return ok(200, { ...scaleOf(cur.obj), spec: { replicas: n } }, ids);
  const updated = c.edit(DEPLOYMENTS, keyOf(r.ns, name), (d) => {
    d.spec = { ...d.spec, replicas: n };
    d.metadata.generation = (d.metadata.generation ?? 1) + 1;
  })!;
  const out = scaleOf(updated);
  c.reconcile();
  return ok(200, out, ids);
}

export function get(c: Cluster, r: Extract<Route, { t: "resource" }>): Answer {
  const e = mustGet(c, r.def, r.ns, r.name!);
  return { status: 200, body: e.json, ids: [r.name!] };
}
