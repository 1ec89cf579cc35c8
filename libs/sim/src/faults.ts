/**
 * Fault injection. A rule names where it applies (service, action, region and
 * optional matches) and how often: the next `count` matching calls, or each call
 * with probability `rate` (drawn from the seeded PRNG), optionally until a sim time.
 * Protocol modules ask `take()` at the right moment and turn a hit into the exact
 * error the real service sends.
 */
import type { SimRandom } from "./random.ts";

export const FAULT_KINDS = [
  /** EC2 `RequestLimitExceeded`, SSM `ThrottlingException`, Kubernetes 429. */
  "throttle",
  /** EC2 `InsufficientInstanceCapacity` (match instanceType and/or availabilityZone). */
  "insufficient-capacity",
  /** An SSM command fails (exit code 1, with `output`). */
  "command-fail",
  /** An SSM command hangs until its timeout (TimedOut). */
  "command-hang",
  /**
   * An SSM command runs `delaySeconds` longer than it would (a slow package mirror, a busy
   * node): InProgress all that time, then Success, or TimedOut when the run passes its
   * execution timeout, as the agent ends a script that outlives it.
   */
  "command-slow",
  /** A Kubernetes API server answers 503 (connection-level outage). */
  "kube-down",
  /** A 500 InternalError / InternalServerError. */
  "internal-error",
] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

export interface FaultRule {
  id: string;
  kind: FaultKind;
  service?: "ec2" | "ssm" | "kube" | "sqs";
  /** The API action (`RunInstances`, `SendCommand`) or, for kube, the verb (`list`, `patch`, `evict`). */
  action?: string;
  region?: string;
  /** Free-form matches the module checks: instanceType, availabilityZone, instanceId, step, clusterId, node. */
  match?: Record<string, string>;
  /** Applies to the next `count` matching calls, then is used up. */
  count?: number;
  /** Applies to each matching call with this probability (0..1). */
  rate?: number;
  /** Sim time (epoch ms) after which the rule no longer applies. */
  until?: number;
  /** Text a failing command prints. */
  output?: string;
  /** `command-slow`: how much longer the script runs, in sim seconds (default 60). */
  delaySeconds?: number;
  /**
   * `insufficient-capacity`: how many instances EC2 can still launch for the call it hits
   * (default 0). A RunInstances whose MinCount is above it launches nothing
   * (InsufficientInstanceCapacity); one whose MinCount is at most it launches that many
   * (never more than MaxCount), as EC2 launches "the largest possible number above the
   * minimum count".
   */
  available?: number;
}

export type FaultInput = Omit<FaultRule, "id"> & { id?: string };

export interface FaultQuery {
  service: "ec2" | "ssm" | "kube" | "sqs";
  action: string;
  region?: string;
  /** Facts of this call, matched against a rule's `match`. */
  facts?: Record<string, string | undefined>;
}

export interface FaultsSnapshot {
  seq: number;
  rules: FaultRule[];
  hits: [string, number][];
}

export class FaultRegistry {
  readonly #rules: FaultRule[] = [];
  readonly #random: SimRandom;
  readonly #now: () => number;
  #seq = 0;
  /** Rules from the config (not the cloud's state: each start puts them in force again). */
  readonly #fromConfig = new Set<string>();
  /** Hits so far, per rule id (observable through the admin API). */
  readonly hits = new Map<string, number>();

  constructor(random: SimRandom, now: () => number) {
    this.#random = random;
    this.#now = now;
  }

  /** Puts a rule in force; `fromConfig` marks one of the config's (see `snapshot`). */
  add(input: FaultInput, opts: { fromConfig?: boolean } = {}): FaultRule {
    if (input.count === undefined && input.rate === undefined) {
      throw new Error("a fault needs `count` (the next N calls) or `rate` (a probability)");
    }
    if (input.rate !== undefined && !(input.rate >= 0 && input.rate <= 1))
      throw new Error("rate is a probability in [0, 1]");
    if (input.delaySeconds !== undefined && !(input.delaySeconds >= 0))
      throw new Error("delaySeconds is a duration in seconds, 0 or more");
    if (input.available !== undefined && !(Number.isInteger(input.available) && input.available >= 0))
      throw new Error("available is a number of instances, 0 or more");
    const rule: FaultRule = { ...input, id: input.id ?? `fault-${++this.#seq}` };
    this.#rules.push(rule);
    if (opts.fromConfig) this.#fromConfig.add(rule.id);
    return rule;
  }

  /**
   * The rules added at run time (the admin API), with what is left of their counts, and
   * their hits (journal compaction). The config's rules are not part of it: every start
   * puts them in force again as configured.
   */
  snapshot(): FaultsSnapshot {
    const rules = this.#rules.filter((r) => !this.#fromConfig.has(r.id)).map((r) => ({ ...r }));
    return {
      seq: this.#seq,
      rules,
      hits: rules.flatMap((r) =>
        this.hits.has(r.id) ? [[r.id, this.hits.get(r.id)!] as [string, number]] : [],
      ),
    };
  }

  /** Adds a snapshot's rules after the config's. */
  restore(s: FaultsSnapshot): void {
    this.#seq = Math.max(this.#seq, s.seq);
    for (const r of s.rules) this.#rules.push({ ...r });
    for (const [id, n] of s.hits) this.hits.set(id, n);
  }

  remove(id: string): boolean {
    const i = this.#rules.findIndex((r) => r.id === id);
    if (i >= 0) this.#rules.splice(i, 1);
    return i >= 0;
  }

  clear(): void {
    this.#rules.length = 0;
  }

  list(): readonly FaultRule[] {
    return this.#rules;
  }

  /**
   * The first rule of one of `kinds` that applies to this call, consumed if counted;
   * undefined when the call goes through.
   */
  take(q: FaultQuery, kinds: readonly FaultKind[]): FaultRule | undefined {
    const now = this.#now();
    for (let i = 0; i < this.#rules.length; i++) {
      const r = this.#rules[i]!;
      if (!kinds.includes(r.kind)) continue;
      if (r.service && r.service !== q.service) continue;
      if (r.action && r.action !== q.action) continue;
      if (r.region && q.region && r.region !== q.region) continue;
      if (r.until !== undefined && now > r.until) continue;
      if (r.match && !Object.entries(r.match).every(([k, v]) => q.facts?.[k] === v)) continue;
      if (r.count !== undefined) {
        if (r.count <= 0) continue;
        r.count--;
        if (r.count === 0) this.#rules.splice(i, 1);
      } else if (r.rate !== undefined && this.#random.next() >= r.rate) {
        continue;
      }
      this.hits.set(r.id, (this.hits.get(r.id) ?? 0) + 1);
      return r;
    }
    return undefined;
  }
}
