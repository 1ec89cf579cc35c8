/**
 * Resilience around every outside call (EC2 in the provisioner, SSM in the installer,
 * Kubernetes, SSM and SQS in node-ops), from cockatiel. Per call:
 *
 *   overall timeout (if the policy has one)
 *     → circuit breaker of (service, region)        shared; opens on consecutive failed calls
 *       → retry: exponential backoff, full jitter   per call; transient failures only
 *         → bulkhead of (service, region)           shared; at most N tries in flight
 *           → timeout of one try                    aborts the SDK request
 *             → the call
 *
 * The breaker sits outside the retry, so one failure is a call that still failed after
 * its retries: a short storm is ridden out by retries without opening the breaker, a long
 * one opens it, and then calls fail fast (BreakerOpenError) without reaching the service
 * until a trial call after `halfOpenAfterMs` succeeds. Backoff sleeps hold no bulkhead
 * slot. Every timing is injectable (tests run on milliseconds).
 *
 * Each outside system has its own breaker and bulkhead settings (`SERVICE_SETTINGS`:
 * EC2 3 failures / 30 s / 5 concurrent, SSM 3 / 45 s / 3, …), one pair per (system,
 * region) — for Kubernetes the "region" is the cluster, whose API server is its own.
 */
import {
  type BulkheadPolicy,
  bulkhead,
  type CircuitBreakerPolicy,
  CircuitState,
  ConsecutiveBreaker,
  circuitBreaker,
  handleWhen,
  type IBackoff,
  type IBackoffFactory,
  type IRetryBackoffContext,
  isBrokenCircuitError,
  isBulkheadRejectedError,
  retry,
  TaskCancelledError,
  TimeoutStrategy,
  timeout,
} from "cockatiel";

/** cockatiel's guards, for adapters' classifiers (a breaker that refused, a full bulkhead, a timeout). */
export { isBrokenCircuitError, isBulkheadRejectedError, isTaskCancelledError } from "cockatiel";

/** The named retry policies; each operation of an adapter picks one. */
export type PolicyName = "default" | "aws" | "critical";

export interface RetryPolicyConfig {
  /** Tries in all, the first included (1 = no retry). */
  readonly tries: number;
  /** Backoff before retry n (1-based) is uniform in [0, min(maxDelayMs, baseDelayMs·2^(n-1))). */
  readonly baseDelayMs: number;
  readonly maxDelayMs: number;
  /** The limit of one try; the request is aborted when it passes. */
  readonly callTimeoutMs: number;
  /** The limit of the whole call, retries and backoffs included; undefined: none. */
  readonly overallTimeoutMs?: number | undefined;
}

export const DEFAULT_POLICIES: Readonly<Record<PolicyName, RetryPolicyConfig>> = {
  /** Outside calls in general. */
  default: { tries: 3, baseDelayMs: 1_000, maxDelayMs: 30_000, callTimeoutMs: 30_000 },
  /** AWS APIs: more tries, shorter first step, AWS's own 64 s cap (throttling clears slowly). */
  aws: { tries: 5, baseDelayMs: 500, maxDelayMs: 64_000, callTimeoutMs: 30_000 },
  /** Effects that must happen (terminating what costs money): long patience, bounded overall. */
  critical: {
    tries: 7,
    baseDelayMs: 2_000,
    maxDelayMs: 120_000,
    callTimeoutMs: 30_000,
    overallTimeoutMs: 20 * 60_000,
  },
};

export interface BreakerConfig {
  /** Consecutive failed calls (transient failures, after retries) that open it. */
  readonly consecutiveFailures: number;
  /** How long it stays open before letting one trial call through. */
  readonly halfOpenAfterMs: number;
}

export const DEFAULT_BREAKER: BreakerConfig = { consecutiveFailures: 3, halfOpenAfterMs: 30_000 };

export interface BulkheadConfig {
  /** Tries in flight at once per (service, region). */
  readonly maxConcurrent: number;
  /** Tries waiting for a slot; one more is refused (BulkheadFullError, transient). */
  readonly maxQueued: number;
}

export const DEFAULT_BULKHEAD: BulkheadConfig = { maxConcurrent: 5, maxQueued: 1_000 };

/** The breaker and bulkhead of one outside system (one pair per region or cluster). */
export interface ServiceSettings {
  readonly breaker: BreakerConfig;
  readonly bulkhead: BulkheadConfig;
}

/**
 * Each outside system's own settings; a system not named here gets DEFAULT_BREAKER and
 * DEFAULT_BULKHEAD (which are EC2's). The numbers and their reasons: docs/provisioner-ec2.md
 * (EC2), docs/installer.md (SSM), docs/node-ops.md (Kubernetes, SQS).
 */
export const SERVICE_SETTINGS: Readonly<Record<string, ServiceSettings>> = {
  /** EC2 per region: the seed's numbers. */
  ec2: {
    breaker: { consecutiveFailures: 3, halfOpenAfterMs: 30_000 },
    bulkhead: { maxConcurrent: 5, maxQueued: 1_000 },
  },
  /** SSM per region: the seed's numbers; SSM's Run Command rates are lower than EC2's, so fewer at once and a longer rest. */
  ssm: {
    breaker: { consecutiveFailures: 3, halfOpenAfterMs: 45_000 },
    bulkhead: { maxConcurrent: 3, maxQueued: 1_000 },
  },
  /**
   * One cluster's Kubernetes API server: client-go's own pace (QPS 5, burst 10) as the
   * concurrency; 5 failed calls, as a K3s server restarting answers 503 for a few seconds
   * and one retried storm should not cut the cluster off; 20 s, about a K3s server's restart.
   */
  kubernetes: {
    breaker: { consecutiveFailures: 5, halfOpenAfterMs: 20_000 },
    bulkhead: { maxConcurrent: 10, maxQueued: 1_000 },
  },
  /** SQS per region: one long poll and its deletes at a time per region; 3 failures, 30 s like EC2. */
  sqs: {
    breaker: { consecutiveFailures: 3, halfOpenAfterMs: 30_000 },
    bulkhead: { maxConcurrent: 4, maxQueued: 100 },
  },
};

export type BreakerState = "closed" | "open" | "half-open" | "isolated";

export interface CallSite {
  /** `ec2`, `ssm`, … */
  readonly service: string;
  readonly region: string;
  /** The provider action, e.g. `RunInstances`. */
  readonly operation: string;
}

/**
 * What main.ts turns into metrics and log lines. Every hook is optional and must not
 * throw (a throwing hook is ignored: observation never breaks a call).
 */
export interface ResilienceObserver {
  /** A try failed transiently and will be retried after `delayMs`; `attempt` is the retry's number (1 = first retry). */
  onRetry?(
    e: CallSite & { readonly attempt: number; readonly delayMs: number; readonly error: unknown },
  ): void;
  onBreakerStateChange?(e: Omit<CallSite, "operation"> & { readonly state: BreakerState }): void;
  /** A call was not sent: the breaker is open, or the bulkhead and its queue are full. */
  onRejected?(e: CallSite & { readonly reason: "breaker-open" | "bulkhead-full" }): void;
  /** A call ended: its outcome after all tries. */
  onCall?(
    e: CallSite & {
      readonly policy: PolicyName;
      readonly outcome: "ok" | "error";
      readonly tries: number;
      readonly durationMs: number;
      readonly error?: unknown;
    },
  ): void;
}

/** The subset of pino the default observer writes with. */
export interface LoggerLike {
  debug?(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

/** Keys of the fields the default observer logs (shared with metrics labels by main.ts). */
export const RESILIENCE_LOG_KEYS = {
  service: "service_name",
  region: "region",
  operation: "operation",
  policy: "policy",
  attempt: "attempt",
  tries: "tries",
  delayMs: "delay_ms",
  durationMs: "duration_ms",
  breakerState: "breaker_state",
  err: "err",
} as const;

const K = RESILIENCE_LOG_KEYS;
const errText = (e: unknown) =>
  e instanceof Error ? `${e.name}: ${e.message}${hint(e) ? ` (fix: ${hint(e)})` : ""}` : String(e);
const hint = (e: Error) => (e as { remediation?: unknown }).remediation as string | undefined;

/**
 * The default observer: one log line per retry (warn), breaker change (open: error,
 * half-open: warn, closed: info) and failed call (warn); a call that succeeded is debug.
 */
export function loggingObserver(log: LoggerLike): ResilienceObserver {
  return {
    onRetry: (e) =>
      log.warn(
        {
          [K.service]: e.service,
          [K.region]: e.region,
          [K.operation]: e.operation,
          [K.attempt]: e.attempt,
          [K.delayMs]: e.delayMs,
          [K.err]: errText(e.error),
        },
        "outside call failed; retrying",
      ),
    onRejected: (e) =>
      log.debug?.(
        { [K.service]: e.service, [K.region]: e.region, [K.operation]: e.operation, reason: e.reason },
        "outside call not sent",
      ),
    onBreakerStateChange: (e) => {
      const fields = { [K.service]: e.service, [K.region]: e.region, [K.breakerState]: e.state };
      if (e.state === "open" || e.state === "isolated")
        log.error(fields, "circuit breaker open: calls fail fast until a trial call succeeds");
      else if (e.state === "half-open")
        log.warn(fields, "circuit breaker half-open: letting a trial call through");
      else log.info(fields, "circuit breaker closed: calls flow again");
    },
    onCall: (e) => {
      const fields = {
        [K.service]: e.service,
        [K.region]: e.region,
        [K.operation]: e.operation,
        [K.policy]: e.policy,
        [K.tries]: e.tries,
        [K.durationMs]: Math.round(e.durationMs),
      };
      if (e.outcome === "error") log.warn({ ...fields, [K.err]: errText(e.error) }, "outside call failed");
      else log.debug?.(fields, "outside call done");
    },
  };
}

export interface ResilienceOptions {
  /** Overrides of the named policies, field by field. */
  readonly policies?: { readonly [P in PolicyName]?: Partial<RetryPolicyConfig> };
  /** Overrides of every system's breaker (tests: short recoveries). */
  readonly breaker?: Partial<BreakerConfig>;
  /** Overrides of every system's bulkhead. */
  readonly bulkhead?: Partial<BulkheadConfig>;
  /** Overrides of one system's settings, field by field (over `breaker`/`bulkhead`). */
  readonly services?: {
    readonly [service: string]:
      | { readonly breaker?: Partial<BreakerConfig>; readonly bulkhead?: Partial<BulkheadConfig> }
      | undefined;
  };
  readonly observer?: ResilienceObserver;
  /** The jitter's source of randomness in [0, 1). Default Math.random. */
  readonly random?: () => number;
  /** A monotonic clock in ms for durations. Default performance.now. */
  readonly now?: () => number;
}

/**
 * What a classifier makes of a failure: an error that says whether retrying can help,
 * as a CairnError's `failure` (@cairn/events) or a `transient` flag.
 */
export type ClassifiedFailure = Error & {
  readonly failure?: "transient" | "permanent";
  readonly transient?: boolean;
  /**
   * `false`: transient for the work (a retry of the message, which reads again, can
   * succeed) but this same request would fail the same way (a 409 on a stale
   * resourceVersion, an eviction refused by a budget): not retried here, and not counted
   * by the breaker (the server is well).
   */
  readonly retryCall?: boolean;
  /** The server asked to wait this long (Retry-After): the next try waits at least this. */
  readonly retryAfterMs?: number;
  /** `bulkhead-full`: our own overload, which the breaker does not count. */
  readonly kind?: string;
};

/** A classifier turns anything a try threw into an error that says whether it is transient. */
export type Classify = (err: unknown) => ClassifiedFailure;

/** Whether a classified failure is transient: its `failure`, else its `transient` flag. */
export function isTransientFailure(e: unknown): boolean {
  const f = e as ClassifiedFailure | undefined;
  if (f?.failure !== undefined) return f.failure === "transient";
  return f?.transient === true;
}

/** Whether the same request is worth another try: transient, and not marked `retryCall: false`. */
export function isRetryableFailure(e: unknown): boolean {
  return isTransientFailure(e) && (e as ClassifiedFailure).retryCall !== false;
}

/** The policies with the overrides applied. Pure. */
export function resolvePolicies(
  overrides: ResilienceOptions["policies"] = {},
): Readonly<Record<PolicyName, RetryPolicyConfig>> {
  const out = {} as Record<PolicyName, RetryPolicyConfig>;
  for (const name of Object.keys(DEFAULT_POLICIES) as PolicyName[]) {
    const p = { ...DEFAULT_POLICIES[name], ...overrides[name] };
    if (!(Number.isInteger(p.tries) && p.tries >= 1))
      throw new RangeError(`policy ${name}: tries must be ≥ 1`);
    if (!(p.baseDelayMs >= 0 && p.maxDelayMs >= 0))
      throw new RangeError(`policy ${name}: delays must be ≥ 0`);
    if (!(p.callTimeoutMs > 0)) throw new RangeError(`policy ${name}: callTimeoutMs must be > 0`);
    out[name] = p;
  }
  return out;
}

/**
 * The backoff before retry `attempt` (1-based): exponential with FULL jitter, uniform in
 * [0, min(maxDelayMs, baseDelayMs·2^(attempt-1))). Pure given `random`.
 * @example backoffDelay(3, 500, 64_000, () => 0.5) // 1000 (half of 2000)
 */
export function backoffDelay(attempt: number, baseDelayMs: number, maxDelayMs: number, random: () => number) {
  const ceiling = Math.min(maxDelayMs, baseDelayMs * 2 ** Math.max(0, attempt - 1));
  return Math.floor(random() * ceiling);
}

/**
 * cockatiel's backoff for `backoffDelay`, honouring a Retry-After the failure carries
 * (`retryAfterMs`, capped at `maxDelayMs`): the wait is the larger of the two.
 */
function fullJitter(
  p: RetryPolicyConfig,
  random: () => number,
): IBackoffFactory<IRetryBackoffContext<unknown>> {
  const at = (attempt: number): IBackoff<IRetryBackoffContext<unknown>> & { duration: number } => ({
    duration: 0,
    next(ctx) {
      const asked = "error" in ctx.result ? (ctx.result.error as ClassifiedFailure)?.retryAfterMs : undefined;
      const jittered = backoffDelay(attempt, p.baseDelayMs, p.maxDelayMs, random);
      const duration =
        typeof asked === "number" && asked > 0 ? Math.max(jittered, Math.min(asked, p.maxDelayMs)) : jittered;
      return { ...at(attempt + 1), duration };
    },
  });
  return { next: (ctx) => at(1).next(ctx) };
}

const STATE_NAMES: Record<CircuitState, BreakerState> = {
  [CircuitState.Closed]: "closed",
  [CircuitState.Open]: "open",
  [CircuitState.HalfOpen]: "half-open",
  [CircuitState.Isolated]: "isolated",
};

interface Cell {
  readonly breaker: CircuitBreakerPolicy;
  readonly bulkhead: BulkheadPolicy;
}

/**
 * The breakers and bulkheads of one process, one pair per (service, region), and the
 * named policies. Share one instance between the adapters of a process.
 */
export class Resilience {
  readonly policies: Readonly<Record<PolicyName, RetryPolicyConfig>>;
  /** The breaker of a system not in SERVICE_SETTINGS (EC2's), with the `breaker` override. */
  readonly breakerConfig: BreakerConfig;
  /** The bulkhead of a system not in SERVICE_SETTINGS (EC2's), with the `bulkhead` override. */
  readonly bulkheadConfig: BulkheadConfig;
  readonly #opts: ResilienceOptions;
  readonly #observer: ResilienceObserver;
  readonly #random: () => number;
  readonly #now: () => number;
  readonly #cells = new Map<string, Cell>();

  constructor(opts: ResilienceOptions = {}) {
    this.policies = resolvePolicies(opts.policies);
    this.breakerConfig = { ...DEFAULT_BREAKER, ...opts.breaker };
    this.bulkheadConfig = { ...DEFAULT_BULKHEAD, ...opts.bulkhead };
    this.#opts = opts;
    this.#observer = opts.observer ?? {};
    this.#random = opts.random ?? Math.random;
    this.#now = opts.now ?? (() => performance.now());
  }

  /**
   * The settings of one system: SERVICE_SETTINGS (or the defaults), then the `breaker`
   * and `bulkhead` overrides, then the system's own in `services`.
   */
  settingsOf(service: string): ServiceSettings {
    const base = SERVICE_SETTINGS[service] ?? { breaker: DEFAULT_BREAKER, bulkhead: DEFAULT_BULKHEAD };
    const own = this.#opts.services?.[service];
    return {
      breaker: { ...base.breaker, ...this.#opts.breaker, ...own?.breaker },
      bulkhead: { ...base.bulkhead, ...this.#opts.bulkhead, ...own?.bulkhead },
    };
  }

  /** The breaker's state for (service, region); `closed` before the first call. */
  breakerState(service: string, region: string): BreakerState {
    const cell = this.#cells.get(`${service}\u0000${region}`);
    return cell ? STATE_NAMES[cell.breaker.state] : "closed";
  }

  /**
   * Runs `fn` under `policy` for `site`. `fn` gets the try's AbortSignal (pass it to the
   * SDK). Rejects with `classify(err)` of the last failure: transient ones after the
   * policy's tries (or at once when the breaker is open), permanent ones at once.
   * `signal` (optional) cancels the call from outside: no try starts after it aborts.
   */
  async run<T>(
    site: CallSite,
    policy: PolicyName,
    fn: (signal: AbortSignal) => Promise<T>,
    classify: Classify,
    signal?: AbortSignal,
  ): Promise<T> {
    const p = this.policies[policy];
    const cell = this.#cell(site.service, site.region);
    const started = this.#now();
    let tries = 0;

    const retrying = retry(
      handleWhen((e) => isRetryableFailure(classify(e))),
      { maxAttempts: p.tries - 1, backoff: fullJitter(p, this.#random) },
    );
    const subscription = retrying.onRetry((r) =>
      this.#emit(() =>
        this.#observer.onRetry?.({
          ...site,
          attempt: r.attempt,
          delayMs: r.delay,
          error: "error" in r ? r.error : r.value,
        }),
      ),
    );
    const perTry = timeout(p.callTimeoutMs, { strategy: TimeoutStrategy.Aggressive, abortOnReturn: true });

    // 1. one try: a bulkhead slot, then the call under its own timeout; failures classified.
    const oneTry = async (outer: AbortSignal): Promise<T> => {
      tries++;
      try {
        return await cell.bulkhead.execute(() => perTry.execute((_ctx, signal) => fn(signal), outer), outer);
      } catch (err) {
        if (isBulkheadRejectedError(err)) this.#rejected(site, "bulkhead-full");
        throw classify(err);
      }
    };
    // 2. the tries under the retry policy, the whole under the breaker.
    const guarded = (outer: AbortSignal | undefined): Promise<T> =>
      cell.breaker.execute(({ signal }) => retrying.execute(({ signal: s }) => oneTry(s), signal), outer);

    try {
      const result =
        p.overallTimeoutMs === undefined
          ? await guarded(signal)
          : await timeout(p.overallTimeoutMs, TimeoutStrategy.Aggressive).execute(
              ({ signal: overall }) => guarded(overall),
              signal,
            );
      this.#emit(() =>
        this.#observer.onCall?.({ ...site, policy, outcome: "ok", tries, durationMs: this.#now() - started }),
      );
      return result;
    } catch (raw) {
      if (isBrokenCircuitError(raw)) this.#rejected(site, "breaker-open");
      // A try's own timeout is classified inside; one reaching here is the overall limit's.
      const err =
        raw instanceof TaskCancelledError
          ? classify(new TaskCancelledError(`the overall limit of ${p.overallTimeoutMs} ms passed`))
          : classify(raw);
      this.#emit(() =>
        this.#observer.onCall?.({
          ...site,
          policy,
          outcome: "error",
          tries,
          durationMs: this.#now() - started,
          error: err,
        }),
      );
      throw err;
    } finally {
      subscription.dispose();
    }
  }

  #rejected(site: CallSite, reason: "breaker-open" | "bulkhead-full"): void {
    this.#emit(() => this.#observer.onRejected?.({ ...site, reason }));
  }

  #cell(service: string, region: string): Cell {
    const key = `${service}\u0000${region}`;
    let cell = this.#cells.get(key);
    if (!cell) {
      const { breaker: b, bulkhead: h } = this.settingsOf(service);
      const breaker = circuitBreaker(
        // Only transient failures say the service is unwell; a refused request does not.
        handleWhen((e) => isBreakerFailure(e)),
        { halfOpenAfter: b.halfOpenAfterMs, breaker: new ConsecutiveBreaker(b.consecutiveFailures) },
      );
      breaker.onStateChange((s) =>
        this.#emit(() => this.#observer.onBreakerStateChange?.({ service, region, state: STATE_NAMES[s] })),
      );
      cell = {
        breaker,
        bulkhead: bulkhead(h.maxConcurrent, h.maxQueued),
      };
      this.#cells.set(key, cell);
    }
    return cell;
  }

  #emit(hook: () => void): void {
    try {
      hook();
    } catch {
      // An observer that throws must not break the call it observes.
    }
  }
}

/**
 * A failure the breaker counts: transient and worth another try (the server is unwell),
 * and not our own overload (a full bulkhead).
 */
function isBreakerFailure(e: unknown): boolean {
  const f = e as ClassifiedFailure;
  return isRetryableFailure(f) && f.kind !== "bulkhead-full" && !isBulkheadRejectedError(f.cause);
}
