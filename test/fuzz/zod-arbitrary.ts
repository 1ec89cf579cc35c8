/**
 * fast-check arbitraries derived from zod (v4) schemas: `validOf(schema)` generates values
 * the schema accepts. Written here because the well-known library for this
 * (zod-fast-check) supports zod 3 and fast-check < 4 only, and the catalogue's command
 * schemas use a small set of zod's kinds (objects, strings with length and regex checks,
 * numbers with bounds, enums, arrays, records, booleans, optional and default) that a
 * short walk covers. Refinements (`.refine`, `.superRefine`) cannot be generated from:
 * the result is filtered through the schema itself, so what comes out always parses.
 *
 * @example fc.sample(validOf(ScaleCluster.schema), 1) // [{ clusterId: "a-0", pool: "Z", count: 3 }]
 */
import fc from "fast-check";
import type { z } from "zod";

/** The part of zod 4's internal definition the walk reads. */
interface Def {
  readonly type: string;
  readonly checks?: readonly { readonly _zod: { readonly def: CheckDef } }[];
  readonly format?: string;
  readonly shape?: Record<string, z.ZodType>;
  readonly innerType?: z.ZodType;
  readonly element?: z.ZodType;
  readonly keyType?: z.ZodType;
  readonly valueType?: z.ZodType;
  readonly options?: readonly z.ZodType[];
  readonly entries?: Record<string, string | number>;
  readonly values?: readonly unknown[];
  readonly in?: z.ZodType;
}
interface CheckDef {
  readonly check: string;
  readonly minimum?: number;
  readonly maximum?: number;
  readonly length?: number;
  readonly value?: number;
  readonly inclusive?: boolean;
  readonly format?: string;
  readonly pattern?: RegExp;
}

export function defOf(schema: z.ZodType): Def {
  return (schema as unknown as { _zod: { def: Def } })._zod.def;
}

/** How a value may be left out of an object: optional and defaulted keys may be. */
export function isOmittable(schema: z.ZodType): boolean {
  const t = defOf(schema).type;
  return t === "optional" || t === "default";
}

/** Keeps generated arrays, records and free strings small: a case is one message, not a load test. */
const MAX_ITEMS = 3;
const MAX_FREE_STRING = 24;

/** An arbitrary of values `schema` accepts (its input side: defaults may be left out). */
export function validOf<S extends z.ZodType>(schema: S): fc.Arbitrary<z.input<S>> {
  return raw(schema).filter((v) => schema.safeParse(v).success) as fc.Arbitrary<z.input<S>>;
}

function raw(schema: z.ZodType): fc.Arbitrary<unknown> {
  const def = defOf(schema);
  switch (def.type) {
    case "string":
      return stringOf(def);
    case "number":
      return numberOf(def);
    case "boolean":
      return fc.boolean();
    case "enum":
      return fc.constantFrom(...Object.values(def.entries ?? {}));
    case "literal":
      return fc.constantFrom(...(def.values ?? []));
    case "optional":
    case "default":
      return raw(def.innerType!);
    case "nullable":
      return fc.option(raw(def.innerType!), { nil: null });
    case "array": {
      const { min, max } = lengths(def);
      return fc.array(raw(def.element!), {
        minLength: min,
        maxLength: Math.max(min, Math.min(max, MAX_ITEMS)),
      });
    }
    case "record":
      return fc.dictionary(raw(def.keyType!) as fc.Arbitrary<string>, raw(def.valueType!), {
        maxKeys: MAX_ITEMS,
      });
    case "object": {
      const shape = def.shape ?? {};
      const requiredKeys = Object.keys(shape).filter((k) => !isOmittable(shape[k]!));
      const parts = Object.fromEntries(Object.entries(shape).map(([k, s]) => [k, raw(s)]));
      return fc.record(parts, { requiredKeys });
    }
    case "union":
      return fc.oneof(...(def.options ?? []).map(raw));
    case "pipe":
      return raw(def.in!);
    case "unknown":
    case "any":
      return fc.jsonValue({ maxDepth: 2 });
    default:
      throw new Error(
        `validOf: zod kind ${def.type} is not supported yet; add it to test/fuzz/zod-arbitrary.ts`,
      );
  }
}

function lengths(def: Def): { min: number; max: number } {
  let min = 0;
  let max = Number.POSITIVE_INFINITY;
  for (const c of def.checks ?? []) {
    const d = c._zod.def;
    if (d.check === "min_length") min = Math.max(min, d.minimum ?? 0);
    if (d.check === "max_length") max = Math.min(max, d.maximum ?? max);
    if (d.check === "length_equals") min = max = d.length ?? 0;
  }
  return { min, max };
}

function stringOf(def: Def): fc.Arbitrary<string> {
  const { min, max } = lengths(def);
  const formats = (def.checks ?? [])
    .map((c) => c._zod.def)
    .filter((d) => d.check === "string_format")
    .map((d) => d.format);
  const format = def.format ?? formats[0];
  if (format === "uuid") return fc.uuid();
  if (format === "datetime")
    return fc
      .date({
        min: new Date("2000-01-01T00:00:00Z"),
        max: new Date("2100-01-01T00:00:00Z"),
        noInvalidDate: true,
      })
      .map((d) => d.toISOString());
  const pattern = (def.checks ?? []).map((c) => c._zod.def).find((d) => d.format === "regex")?.pattern;
  const within = (s: string) => s.length >= min && s.length <= max;
  if (pattern) return fc.stringMatching(pattern, { size: "small" }).filter(within);
  return fc.string({ minLength: min, maxLength: Math.max(min, Math.min(max, MAX_FREE_STRING)) });
}

function numberOf(def: Def): fc.Arbitrary<number> {
  let min = -1e9;
  let max = 1e9;
  const checks = (def.checks ?? []).map((c) => c._zod.def);
  const integer = checks.some((d) => d.check === "number_format" && /int/.test(d.format ?? ""));
  for (const d of checks) {
    if (d.check === "greater_than")
      min = Math.max(min, (d.value ?? min) + (d.inclusive ? 0 : integer ? 1 : 1e-9));
    if (d.check === "less_than")
      max = Math.min(max, (d.value ?? max) - (d.inclusive ? 0 : integer ? 1 : 1e-9));
  }
  if (integer) return fc.integer({ min: Math.ceil(min), max: Math.floor(max) });
  return fc.double({ min, max, noNaN: true, noDefaultInfinity: true });
}
