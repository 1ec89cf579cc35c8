/**
 * The three patch types kube-apiserver accepts on PATCH (server-side apply is not
 * modelled):
 * - `application/merge-patch+json`: RFC 7386 (null deletes, lists replace).
 * - `application/strategic-merge-patch+json`: merge with per-field list strategies
 *   (`schema`): lists with a merge key merge element by element, primitive lists with
 *   the `merge` strategy union, other lists replace. Directives: `$patch: replace|delete`
 *   on maps and list elements, `$retainKeys`, `$deleteFromPrimitiveList/<field>`,
 *   `$setElementOrder/<field>` (accepted, order ignored).
 * - `application/json-patch+json`: RFC 6902 (add, remove, replace, move, copy, test),
 *   JSON pointers with `~1`/`~0` escapes and `-` for the end of an array.
 *
 * Each function takes ownership of `doc` (it may change it in place) and returns the
 * patched document.
 */

type Obj = Record<string, unknown>;

export function isObj(v: unknown): v is Obj {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** A patch that cannot be applied: 400 (the patch itself is malformed) or 422 (it does not apply). */
export class PatchError extends Error {
  readonly code: 400 | 422;
  constructor(message: string, code: 400 | 422) {
    super(message);
    this.code = code;
  }
}

export function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!jsonEqual(a[i], b[i])) return false;
    return true;
  }
  if (isObj(a)) {
    if (!isObj(b)) return false;
    const ka = Object.keys(a).filter((k) => a[k] !== undefined);
    const kb = Object.keys(b).filter((k) => b[k] !== undefined);
    if (ka.length !== kb.length) return false;
    for (const k of ka) if (!jsonEqual(a[k], b[k])) return false;
    return true;
  }
  return false;
}

// ---------------------------------------------------------------- RFC 7386

export function mergePatch(doc: unknown, patch: unknown): unknown {
  if (!isObj(patch)) return patch;
  const out: Obj = isObj(doc) ? doc : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

// ---------------------------------------------------------------- strategic merge

/**
 * How a list field merges, by its path of field names from the object's root
 * (`spec.template.spec.containers`; list elements add no segment).
 * - `{ mergeKey }`: elements merge by that key (`$patch: delete` removes one).
 * - `"merge"`: a primitive list whose values are unioned (finalizers).
 * - `{ keys }`: the sim's choice for `spec.taints` (atomic in the real schema): a list
 *   given replaces the whole list, unless one of its elements carries a `$patch`
 *   directive; then elements merge by the composite key and `$patch: delete` removes
 *   the taints with that key (and effect, when given).
 * Any path not listed is atomic: the patch's list replaces.
 */
export type ListStrategy = { mergeKey: string } | "merge" | { keys: readonly string[] };
export type SmpSchema = Readonly<Record<string, ListStrategy>>;

const DIRECTIVE = "$patch";
const RETAIN = "$retainKeys";
const DELETE_FROM = "$deleteFromPrimitiveList/";
const ORDER = "$setElementOrder/";

/** Removes directive keys from a value a patch adds as it is. */
function strip(v: unknown): unknown {
  if (Array.isArray(v))
    return v
      .filter((e) => !(isObj(e) && e[DIRECTIVE] !== undefined && Object.keys(e).length === 1))
      .map(strip);
  if (!isObj(v)) return v;
  const out: Obj = {};
  for (const [k, x] of Object.entries(v)) {
    if (k === DIRECTIVE || k === RETAIN || k.startsWith(DELETE_FROM) || k.startsWith(ORDER)) continue;
    if (x === null) continue;
    out[k] = strip(x);
  }
  return out;
}

export function strategicMergePatch(doc: unknown, patch: unknown, schema: SmpSchema): unknown {
  if (!isObj(patch)) throw new PatchError("strategic merge patch must be a JSON object", 400);
  const r = smpMap(doc, patch, "", schema);
  return r === DELETED ? {} : r;
}

const DELETED = Symbol("deleted");

function smpMap(doc: unknown, patch: Obj, path: string, schema: SmpSchema): Obj | typeof DELETED {
  const directive = patch[DIRECTIVE];
  if (directive !== undefined) {
    if (directive === "replace") return strip(patch) as Obj;
    if (directive === "delete") return DELETED;
    if (directive !== "merge")
      throw new PatchError(`Unknown patch type: ${String(directive)} in map: ${JSON.stringify(patch)}`, 400);
  }
  const out: Obj = isObj(doc) ? doc : {};
  for (const [k, v] of Object.entries(patch)) {
    if (k === DIRECTIVE || k === RETAIN || k.startsWith(ORDER)) continue;
    if (k.startsWith(DELETE_FROM)) {
      const field = k.slice(DELETE_FROM.length);
      if (!Array.isArray(v)) throw new PatchError(`${k} must be a list`, 400);
      const cur = out[field];
      if (Array.isArray(cur)) out[field] = cur.filter((x) => !v.some((d) => jsonEqual(d, x)));
      continue;
    }
    const childPath = path ? `${path}.${k}` : k;
    if (v === null) {
      delete out[k];
    } else if (Array.isArray(v)) {
      out[k] = smpList(out[k], v, childPath, schema);
    } else if (isObj(v)) {
      const m = smpMap(out[k], v, childPath, schema);
      if (m === DELETED) delete out[k];
      else out[k] = m;
    } else {
      out[k] = v;
    }
  }
  const retain = patch[RETAIN];
  if (retain !== undefined) {
    if (!Array.isArray(retain)) throw new PatchError("$retainKeys must be a list", 400);
    for (const k of Object.keys(out)) if (!retain.includes(k)) delete out[k];
  }
  return out;
}

function smpList(doc: unknown, patch: unknown[], path: string, schema: SmpSchema): unknown[] {
  const strategy = schema[path];
  const cur = Array.isArray(doc) ? doc : [];
  if (strategy === undefined) return strip(patch) as unknown[];
  if (strategy === "merge") {
    const out = [...cur];
    for (const v of patch) if (!out.some((x) => jsonEqual(x, v))) out.push(v);
    return out;
  }
  const hasDirective = patch.some((e) => isObj(e) && e[DIRECTIVE] !== undefined);
  if ("keys" in strategy && !hasDirective) return strip(patch) as unknown[];
  if (patch.some((e) => isObj(e) && e[DIRECTIVE] === "replace")) return strip(patch) as unknown[];
  const keys = "keys" in strategy ? strategy.keys : [strategy.mergeKey];
  const out = [...cur];
  for (const el of patch) {
    if (!isObj(el))
      throw new PatchError(`${path}: a merge list holds objects, got ${JSON.stringify(el)}`, 400);
    const given = keys.filter((k) => el[k] !== undefined);
    if (given.length === 0) {
      if (el[DIRECTIVE] !== undefined && Object.keys(el).length === 1) continue;
      throw new PatchError(
        `map: ${JSON.stringify(el)} does not contain declared merge key: ${keys.join(",")}`,
        400,
      );
    }
    const same = (x: unknown) => isObj(x) && given.every((k) => jsonEqual(x[k], el[k]));
    if (el[DIRECTIVE] === "delete") {
      for (let i = out.length - 1; i >= 0; i--) if (same(out[i])) out.splice(i, 1);
      continue;
    }
    const at = out.findIndex(same);
    if (at >= 0) {
      const m = smpMap(out[at], el, path, schema);
      if (m === DELETED) out.splice(at, 1);
      else out[at] = m;
    } else {
      out.push(strip(el));
    }
  }
  return out;
}

// ---------------------------------------------------------------- RFC 6902

interface Op {
  op: string;
  path: string;
  from?: string;
  value?: unknown;
}

function parsePointer(p: string): string[] {
  if (p === "") return [];
  if (!p.startsWith("/")) throw new PatchError(`JSON pointer must start with '/': ${p}`, 422);
  return p
    .slice(1)
    .split("/")
    .map((s) => s.replaceAll("~1", "/").replaceAll("~0", "~"));
}

function walk(doc: unknown, segs: readonly string[]): unknown {
  let cur = doc;
  for (const s of segs) {
    if (Array.isArray(cur)) {
      const i = arrayIndex(s, cur.length - 1);
      if (i === undefined) return undefined;
      cur = cur[i];
    } else if (isObj(cur)) {
      if (!Object.hasOwn(cur, s)) return undefined;
      cur = cur[s];
    } else {
      return undefined;
    }
  }
  return cur;
}

function arrayIndex(s: string, max: number): number | undefined {
  if (!/^(0|[1-9][0-9]*)$/.test(s)) return undefined;
  const i = Number(s);
  return i <= max ? i : undefined;
}

export function jsonPatch(doc: unknown, ops: unknown): unknown {
  if (!Array.isArray(ops))
    throw new PatchError("json: cannot unmarshal object into Go value of type jsonpatch.Patch", 400);
  let root = doc;
  for (const raw of ops) {
    if (!isObj(raw) || typeof raw.op !== "string")
      throw new PatchError('json patch operations are objects with an "op"', 400);
    const op = raw as unknown as Op;
    if (typeof op.path !== "string")
      throw new PatchError(`${op.op} operation does not apply: doc is missing path: ""`, 422);
    switch (op.op) {
      case "add":
        if (!("value" in op)) throw new PatchError(`add operation does not apply: missing value`, 422);
        root = add(root, op.path, structuredClone(op.value), "add");
        break;
      case "remove":
        root = remove(root, op.path, "remove").root;
        break;
      case "replace": {
        if (!("value" in op)) throw new PatchError(`replace operation does not apply: missing value`, 422);
        const segs = parsePointer(op.path);
        if (segs.length === 0) {
          root = structuredClone(op.value);
          break;
        }
        if (walk(root, segs) === undefined) {
          throw new PatchError(
            `replace operation does not apply: doc is missing key: ${op.path}: missing value`,
            422,
          );
        }
        root = remove(root, op.path, "replace").root;
        root = add(root, op.path, structuredClone(op.value), "replace");
        break;
      }
      case "move": {
        if (typeof op.from !== "string")
          throw new PatchError("move operation does not apply: missing from", 422);
        const { root: r, value } = remove(root, op.from, "move");
        root = add(r, op.path, value, "move");
        break;
      }
      case "copy": {
        if (typeof op.from !== "string")
          throw new PatchError("copy operation does not apply: missing from", 422);
        const v = walk(root, parsePointer(op.from));
        if (v === undefined)
          throw new PatchError(`copy operation does not apply: doc is missing from path: ${op.from}`, 422);
        root = add(root, op.path, structuredClone(v), "copy");
        break;
      }
      case "test": {
        const v = walk(root, parsePointer(op.path));
        if (!jsonEqual(v, op.value ?? null) && !(v === undefined && op.value === undefined)) {
          throw new PatchError(`testing value ${op.path} failed: test failed`, 422);
        }
        break;
      }
      default:
        throw new PatchError(`Unexpected kind: ${op.op}`, 422);
    }
  }
  return root;
}

function add(root: unknown, pointer: string, value: unknown, verb: string): unknown {
  const segs = parsePointer(pointer);
  if (segs.length === 0) return value;
  const parent = walk(root, segs.slice(0, -1));
  const last = segs[segs.length - 1]!;
  if (Array.isArray(parent)) {
    if (last === "-") {
      parent.push(value);
    } else {
      const i = arrayIndex(last, parent.length);
      if (i === undefined)
        throw new PatchError(
          `${verb} operation does not apply: doc is missing path: "${pointer}": index out of bounds`,
          422,
        );
      parent.splice(i, 0, value);
    }
  } else if (isObj(parent)) {
    parent[last] = value;
  } else {
    throw new PatchError(
      `${verb} operation does not apply: doc is missing path: "${pointer}": missing value`,
      422,
    );
  }
  return root;
}

function remove(root: unknown, pointer: string, verb: string): { root: unknown; value: unknown } {
  const segs = parsePointer(pointer);
  if (segs.length === 0) return { root: undefined, value: root };
  const parent = walk(root, segs.slice(0, -1));
  const last = segs[segs.length - 1]!;
  if (Array.isArray(parent)) {
    const i = arrayIndex(last, parent.length - 1);
    if (i === undefined)
      throw new PatchError(
        `${verb} operation does not apply: doc is missing path: "${pointer}": index out of bounds`,
        422,
      );
    const [value] = parent.splice(i, 1);
    return { root, value };
  }
  if (isObj(parent) && Object.hasOwn(parent, last)) {
    const value = parent[last];
    delete parent[last];
    return { root, value };
  }
  throw new PatchError(
    `${verb} operation does not apply: doc is missing path: "${pointer}": missing value`,
    422,
  );
}
