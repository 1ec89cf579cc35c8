/**
 * The EC2 Query request body (`Action=RunInstances&Version=2016-11-15&InstanceId.1=…`)
 * and the shapes the SDK flattens into it: lists are `Name.1`, `Name.2`, …; structures
 * are `Name.Member`; a list of structures is `Name.1.Member`.
 */
import { Ec2Error, invalidValue } from "./errors.ts";

export class QueryParams {
  readonly #map: Map<string, string>;

  constructor(body: string) {
    this.#map = new Map(new URLSearchParams(body));
  }

  get(name: string): string | undefined {
    return this.#map.get(name);
  }

  /** Every parameter but the ones named, sorted: what idempotency compares. */
  fingerprint(except: readonly string[]): string {
    return [...this.#map]
      .filter(([k]) => !except.includes(k))
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([k, v]) => `${k}=${v}`)
      .join("&");
  }

  /** True when any parameter starts with `prefix` (`LaunchTemplate.` → a launch template was given). */
  hasPrefix(prefix: string): boolean {
    for (const k of this.#map.keys()) if (k.startsWith(prefix)) return true;
    return false;
  }

  /**
   * The indices N of `prefix.N` or `prefix.N.…`, ascending (AWS lists are 1-based and
   * may have gaps; order follows the index, not the body).
   * @example new QueryParams("Tag.2.Key=b&Tag.1.Key=a").indices("Tag") // [1, 2]
   */
  indices(prefix: string): number[] {
    const head = `${prefix}.`;
    const found = new Set<number>();
    for (const k of this.#map.keys()) {
      if (!k.startsWith(head)) continue;
      const rest = k.slice(head.length);
      const dot = rest.indexOf(".");
      const n = dot < 0 ? rest : rest.slice(0, dot);
      if (/^[1-9]\d*$/.test(n)) found.add(Number(n));
    }
    return [...found].sort((a, b) => a - b);
  }

  /**
   * The values of a flattened list of scalars, in index order.
   * @example new QueryParams("InstanceId.1=i-1&InstanceId.2=i-2").list("InstanceId") // ["i-1", "i-2"]
   */
  list(prefix: string): string[] {
    const out: string[] = [];
    for (const n of this.indices(prefix)) {
      const v = this.#map.get(`${prefix}.${n}`);
      if (v !== undefined) out.push(v);
    }
    return out;
  }

  /** An integer parameter, or undefined when absent; InvalidParameterValue when not an integer in range. */
  int(name: string, min = Number.MIN_SAFE_INTEGER, max = Number.MAX_SAFE_INTEGER): number | undefined {
    const raw = this.#map.get(name);
    if (raw === undefined) return undefined;
    if (!/^-?\d+$/.test(raw)) throw invalidValue(name, raw, "Expecting an integer.");
    const n = Number(raw);
    if (n < min || n > max) {
      throw new Ec2Error(
        "InvalidParameterValue",
        `Value (${raw}) for parameter ${name} is invalid. Expecting a value between ${min} and ${max}.`,
      );
    }
    return n;
  }

  /** A boolean parameter (`true`/`false`), or `fallback` when absent. */
  bool(name: string, fallback: boolean): boolean {
    const raw = this.#map.get(name);
    if (raw === undefined) return fallback;
    if (raw === "true") return true;
    if (raw === "false") return false;
    throw invalidValue(name, raw, "Expecting true or false.");
  }

  /** `Tag.N.Key` / `Tag.N.Value` pairs under `prefix` (a missing Value is the empty string). */
  tags(prefix: string): [string, string][] {
    const out: [string, string][] = [];
    for (const n of this.indices(prefix)) {
      const key = this.#map.get(`${prefix}.${n}.Key`);
      if (key === undefined)
        throw new Ec2Error("MissingParameter", `The request must contain the parameter ${prefix}.${n}.Key`);
      out.push([key, this.#map.get(`${prefix}.${n}.Value`) ?? ""]);
    }
    return out;
  }

  /** `Filter.N.Name` / `Filter.N.Value.M`. */
  filters(): { name: string; values: string[] }[] {
    return this.indices("Filter").map((n) => {
      const name = this.#map.get(`Filter.${n}.Name`);
      if (name === undefined)
        throw new Ec2Error("MissingParameter", `The request must contain the parameter Filter.${n}.Name`);
      return { name, values: this.list(`Filter.${n}.Value`) };
    });
  }
}
