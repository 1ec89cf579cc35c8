/**
 * JSON with Maps and Sets: what a module's snapshot (journal compaction, see journal.ts)
 * is written as. `toJson` turns a Map into `{ "$map": [[key, value], …] }` and a Set into
 * `{ "$set": […] }`, recursively; `fromJson` turns them back. Shared references are not
 * kept (a module snapshots its primary data and rebuilds its indexes on restore), and an
 * undefined property is dropped, as `JSON.stringify` drops it.
 *
 * @example toJson(new Map([["a", new Set([1])]])) // { $map: [["a", { $set: [1] }]] }
 */
export function toJson(v: unknown): unknown {
  if (v instanceof Map) return { $map: [...v].map(([k, x]) => [toJson(k), toJson(x)]) };
  if (v instanceof Set) return { $set: [...v].map(toJson) };
  if (Array.isArray(v)) return v.map(toJson);
  if (v !== null && typeof v === "object") {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) if (x !== undefined) out[k] = toJson(x);
    return out;
  }
  if (typeof v === "number" && !Number.isFinite(v)) throw new Error(`a snapshot cannot hold ${v}`);
  if (typeof v === "function" || typeof v === "symbol" || typeof v === "bigint")
    throw new Error(`a snapshot cannot hold a ${typeof v}`);
  return v;
}

/** The inverse of `toJson`. */
export function fromJson(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(fromJson);
  if (v !== null && typeof v === "object") {
    const o = v as Record<string, unknown>;
    const keys = Object.keys(o);
    if (keys.length === 1 && keys[0] === "$map" && Array.isArray(o.$map))
      return new Map((o.$map as [unknown, unknown][]).map(([k, x]) => [fromJson(k), fromJson(x)]));
    if (keys.length === 1 && keys[0] === "$set" && Array.isArray(o.$set))
      return new Set(o.$set.map(fromJson));
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(o)) out[k] = fromJson(x);
    return out;
  }
  return v;
}
