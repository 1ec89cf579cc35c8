/**
 * Describe* filters and pagination. Filters AND together, a filter's values OR, and a
 * value may hold the `*` and `?` wildcards, as in EC2. A filter on an indexed
 * attribute (a tag, the id, type, zone or lifecycle) narrows the instances to look at
 * before any is read, so a cluster's instances by tag cost the cluster's size, not
 * the region's.
 */
import type { InstanceState } from "../world.ts";
import { Ec2Error } from "./errors.ts";
import { type Ec2World, fnv32, type Instance, type Region, STATE_CODES } from "./model.ts";

export type FilterValue = string | undefined | readonly string[];
/** An attribute a filter compares, read from an instance settled to now. */
export type Getter = (i: Instance, state: InstanceState) => FilterValue;

export interface InstanceFilter {
  readonly name: string;
  test(i: Instance, state: InstanceState): boolean;
  /** The index sets whose union holds every instance that can match; undefined when not indexed. */
  candidates(r: Region): Set<Instance>[] | undefined;
}

/** The filters DescribeInstances understands (besides `tag:<key>`). */
export const INSTANCE_FILTERS: Readonly<Record<string, Getter>> = {
  "instance-id": (i) => i.id,
  "instance-type": (i) => i.instanceType,
  "availability-zone": (i) => i.availabilityZone,
  "instance-state-name": (_, s) => s,
  "instance-state-code": (_, s) => String(STATE_CODES[s]),
  "instance-lifecycle": (i) => (i.spotInstanceRequestId ? "spot" : undefined),
  "spot-instance-request-id": (i) => i.spotInstanceRequestId,
  "image-id": (i) => i.imageId,
  "subnet-id": (i) => i.subnetId,
  "vpc-id": (i) => i.vpcId,
  "private-ip-address": (i) => i.privateIpAddress,
  "private-dns-name": (i) => i.privateDnsName,
  "reservation-id": (i) => i.reservationId,
  "client-token": (i) => i.clientToken,
  architecture: (i) => i.architecture,
  "key-name": (i) => i.keyName,
  "tag-key": (i) => [...i.tags.keys()],
  "tag-value": (i) => [...i.tags.values()],
};

/** `*` any run of characters, `?` one character; everything else literal. */
function valueMatcher(values: readonly string[]): {
  exact: Set<string>;
  wild: boolean;
  test(v: string): boolean;
} {
  const exact = new Set<string>();
  const patterns: RegExp[] = [];
  for (const v of values) {
    if (!/[*?]/.test(v)) exact.add(v);
    else {
      const re = v
        .replace(/[.+^${}()|[\]\\]/g, "\\$&")
        .replaceAll("*", ".*")
        .replaceAll("?", ".");
      patterns.push(new RegExp(`^${re}$`, "s"));
    }
  }
  return {
    exact,
    wild: patterns.length > 0,
    test: (v) => exact.has(v) || patterns.some((p) => p.test(v)),
  };
}

/** The sets of `index` whose key matches. */
function fromIndex<K extends string>(
  index: Map<K, Set<Instance>> | undefined,
  m: ReturnType<typeof valueMatcher>,
): Set<Instance>[] {
  if (!index) return [];
  const out: Set<Instance>[] = [];
  if (!m.wild) {
    for (const v of m.exact) {
      const s = index.get(v as K);
      if (s) out.push(s);
    }
  } else {
    for (const [k, s] of index) if (m.test(k)) out.push(s);
  }
  return out;
}

/**
 * Compiles `Filter.N` into predicates. An unknown filter name or a filter without
 * values is InvalidParameterValue, as in EC2.
 */
export function compileFilters(
  specs: readonly { name: string; values: readonly string[] }[],
  getters: Readonly<Record<string, Getter>>,
  opts: { tags: boolean } = { tags: true },
): InstanceFilter[] {
  return specs.map(({ name, values }) => {
    if (values.length === 0) {
      throw new Ec2Error("InvalidParameterValue", `The filter '${name}' needs at least one value.`);
    }
    const m = valueMatcher(values);
    if (opts.tags && name.startsWith("tag:")) {
      const key = name.slice(4);
      return {
        name,
        test: (i) => {
          const v = i.tags.get(key);
          return v !== undefined && m.test(v);
        },
        candidates: (r) => fromIndex(r.tagIndex.get(key), m),
      };
    }
    const get = Object.hasOwn(getters, name) ? getters[name] : undefined;
    if (!get) throw new Ec2Error("InvalidParameterValue", `The filter '${name}' is invalid`);
    const test = (i: Instance, s: InstanceState) => {
      const v = get(i, s);
      if (v === undefined) return false;
      if (typeof v === "string") return m.test(v);
      return v.some((x) => m.test(x));
    };
    const candidates = (r: Region): Set<Instance>[] | undefined => {
      switch (name) {
        case "instance-type":
          return fromIndex(r.byType, m);
        case "availability-zone":
          return fromIndex(r.byAz, m);
        case "instance-lifecycle":
          return m.test("spot") ? [r.spot] : [];
        case "instance-id":
          if (m.wild) return undefined;
          return [...m.exact].flatMap((id) => {
            const i = r.byId.get(id);
            return i ? [new Set([i])] : [];
          });
        case "tag-key":
          return [...r.tagIndex].filter(([k]) => m.test(k)).flatMap(([, values]) => [...values.values()]);
        default:
          return undefined;
      }
    };
    return { name, test, candidates };
  });
}

export interface PageRequest {
  /** Instances named by id (InstanceId.N); then only those are considered. */
  named?: readonly Instance[];
  filters: readonly InstanceFilter[];
  /** A further condition (DescribeInstanceStatus: running only). */
  where?: (i: Instance, state: InstanceState) => boolean;
  /** Only instances launched after this seq (from NextToken). */
  afterSeq: number;
  limit: number;
}

/**
 * One page of matching, visible instances in launch order, each settled to `now`, and
 * whether more match after it. Looks at the smallest indexed candidate set when one
 * is much smaller than the region, else walks the region from the token's position.
 */
export function selectPage(
  world: Ec2World,
  r: Region,
  req: PageRequest,
  now: number,
): { instances: Instance[]; more: boolean } {
  let source: readonly Instance[];
  if (req.named) {
    source = [...req.named].sort((a, b) => a.seq - b.seq);
  } else {
    let best: Set<Instance>[] | undefined;
    let bestSize = Number.POSITIVE_INFINITY;
    for (const f of req.filters) {
      const sets = f.candidates(r);
      if (!sets) continue;
      let size = 0;
      for (const s of sets) size += s.size;
      if (size < bestSize) {
        best = sets;
        bestSize = size;
      }
    }
    if (best && bestSize <= r.ordered.length / 4) {
      const merged = best.length === 1 ? [...best[0]!] : [...new Set(best.flatMap((s) => [...s]))];
      source = merged.sort((a, b) => a.seq - b.seq);
    } else {
      source = r.ordered;
    }
  }

  const instances: Instance[] = [];
  let more = false;
  for (let k = firstAfter(source, req.afterSeq); k < source.length; k++) {
    const i = source[k]!;
    if (!world.visible(i, now)) continue;
    const state = i.phase.state;
    if (req.where && !req.where(i, state)) continue;
    let ok = true;
    for (const f of req.filters) {
      if (!f.test(i, state)) {
        ok = false;
        break;
      }
    }
    if (!ok) continue;
    if (instances.length === req.limit) {
      more = true;
      break;
    }
    instances.push(i);
  }
  return { instances, more };
}

/** The first position in a seq-ordered list whose seq is greater than `afterSeq`. */
function firstAfter(list: readonly Instance[], afterSeq: number): number {
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (list[mid]!.seq <= afterSeq) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * An opaque NextToken: where the last page ended, bound to the request that made it
 * (a token used with other filters is InvalidPaginationToken, as EC2 answers).
 */
export function encodeToken(afterSeq: number, requestKey: string): string {
  return Buffer.from(`${afterSeq}.${fnv32(requestKey).toString(36)}`).toString("base64url");
}

export function decodeToken(token: string, requestKey: string): number {
  const m = /^(\d+)\.([0-9a-z]+)$/.exec(Buffer.from(token, "base64url").toString("utf8"));
  if (!m || m[2] !== fnv32(requestKey).toString(36)) {
    throw new Ec2Error(
      "InvalidPaginationToken",
      `The pagination token '${token}' is not valid or is expired.`,
    );
  }
  return Number(m[1]);
}
