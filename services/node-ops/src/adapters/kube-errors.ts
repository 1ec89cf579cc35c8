/**
 * Kubernetes failures (and the SSM read of a cluster's kubeconfig), classified at the
 * boundary: one class per condition, each with `name`, a body-free `cause`, the HTTP
 * `status`, `transient` and a `remediation` hint. Transient ones extend `TransientCondition`
 * and permanent ones `PermanentCondition` (@cairn/events), so the runtime retries the first
 * and dead-letters or records the second, with the hint, without knowing Kubernetes.
 *
 * Messages never carry a response body (it may echo the request) nor credentials: they
 * are recorded in events (`nodeop.failed`, `kube.api-observed`).
 *
 * Pure: client-node's `ApiException` is read by shape (`code`, `body`, `headers`), a
 * watch's error by `statusCode`, Node's network errors by `code`, cockatiel's by its guards.
 */
import { PermanentCondition, TransientCondition } from "@cairn/events";
import { isBrokenCircuitError, isBulkheadRejectedError, isTaskCancelledError } from "@cairn/service";

/** What the adapter knows about the call that failed. */
export interface KubeCallContext {
  readonly clusterId?: string | undefined;
  /** The client method, e.g. `patchNode`. */
  readonly operation?: string | undefined;
  /** What it acted on: a node, `namespace/pod`. */
  readonly target?: string | undefined;
}

/** What the failure itself said. */
export interface KubeErrorDetail {
  /** The HTTP status (undefined: no answer). */
  readonly status?: number | undefined;
  /** The Status object's `reason` (`NotFound`, `Forbidden`, …) or the network error's code. */
  readonly reason?: string | undefined;
  readonly cause?: unknown;
}

/** The body-free stand-in of an HTTP answer, chained as `cause` (an ApiException's message holds its body). */
export class KubeHttpStatus extends Error {
  override readonly name = "KubeHttpStatus";
  readonly status: number;
  constructor(status: number, reason: string | undefined) {
    super(`HTTP ${status}${reason ? ` ${reason}` : ""}`);
    this.status = status;
  }
}

const api = (c: KubeCallContext) => `the Kubernetes API of cluster ${c.clusterId ?? "(unknown)"}`;
const on = (c: KubeCallContext) => (c.target ? ` on ${c.target}` : c.operation ? ` (${c.operation})` : "");

/** A failure that retrying may cure. */
export abstract class TransientKubeError extends TransientCondition {
  readonly status: number | undefined;
  readonly clusterId: string | undefined;
  readonly operation: string | undefined;
  protected constructor(message: string, remediation: string, ctx: KubeCallContext, d: KubeErrorDetail) {
    super(message, remediation, d.cause);
    this.status = d.status;
    this.clusterId = ctx.clusterId;
    this.operation = ctx.operation;
  }
}

/** A failure that retrying the same call will not cure. */
export abstract class PermanentKubeError extends PermanentCondition {
  readonly status: number | undefined;
  readonly clusterId: string | undefined;
  readonly operation: string | undefined;
  protected constructor(message: string, remediation: string, ctx: KubeCallContext, d: KubeErrorDetail) {
    super(message, remediation, d.cause);
    this.status = d.status;
    this.clusterId = ctx.clusterId;
    this.operation = ctx.operation;
  }
}

/** Any failure of node-ops' Kubernetes adapters. */
export type KubeFailure = TransientKubeError | PermanentKubeError;

/** 429 without a disruption budget: the API server's rate limit (APF). Honours Retry-After. */
export class KubeThrottled extends TransientKubeError {
  override readonly name = "KubeThrottled";
  readonly kind = "throttled";
  /** The server's Retry-After, in ms (the retry waits at least this). */
  readonly retryAfterMs: number | undefined;
  constructor(ctx: KubeCallContext, d: KubeErrorDetail & { retryAfterMs?: number | undefined }) {
    super(
      `${api(ctx)} throttled node-ops${on(ctx)} (429)`,
      "the API server's priority and fairness limits are reached: retried after its Retry-After; if it persists, look at what else floods that API server",
      ctx,
      d,
    );
    this.retryAfterMs = d.retryAfterMs;
  }
}

/** 5xx, or no answer at all (connection refused, reset, DNS): the API server is down or unwell. */
export class KubeUnavailable extends TransientKubeError {
  override readonly name = "KubeUnavailable";
  readonly kind = "unavailable";
  constructor(ctx: KubeCallContext, d: KubeErrorDetail) {
    super(
      d.status !== undefined
        ? `${api(ctx)} answered ${d.status}`
        : `${api(ctx)} did not answer${d.reason ? ` (${d.reason})` : ""}`,
      "the cluster's API server is down or restarting: retried with backoff; if it persists, check the server nodes (cairn cluster show) and their K3s service",
      ctx,
      d,
    );
  }
}

/** A try ran out of time. */
export class KubeTimeout extends TransientKubeError {
  override readonly name = "KubeTimeout";
  readonly kind = "timeout";
  constructor(ctx: KubeCallContext, d: KubeErrorDetail) {
    super(
      `${api(ctx)} did not answer${on(ctx)} in time`,
      "the API server or the network to it is slow: retried with backoff",
      ctx,
      d,
    );
  }
}

/** The breaker of this cluster's API server is open: the call was not sent. */
export class KubeBreakerOpen extends TransientKubeError {
  override readonly name = "KubeBreakerOpen";
  readonly kind = "breaker-open";
  constructor(ctx: KubeCallContext, d: KubeErrorDetail) {
    super(
      `${api(ctx)} was not called${on(ctx)}: its circuit breaker is open`,
      "the cluster's API server failed repeatedly; calls fail fast until a trial call succeeds (20 s): see docs/runbooks.md, A breaker is open",
      ctx,
      d,
    );
  }
}

/** Too many calls in flight and queued for this cluster: the call was not sent. */
export class KubeBulkheadFull extends TransientKubeError {
  override readonly name = "KubeBulkheadFull";
  readonly kind = "bulkhead-full";
  constructor(ctx: KubeCallContext, d: KubeErrorDetail) {
    super(
      `${api(ctx)} was not called${on(ctx)}: too many calls to it are in flight and queued`,
      "node-ops is overloaded towards this cluster (a large drain): retried later",
      ctx,
      d,
    );
  }
}

/**
 * 409: another writer changed the object first (a stale resourceVersion) or it exists
 * already. Transient for the work (it reads again), but the same request would fail the
 * same way: not retried as a call, not counted by the breaker.
 */
export class KubeConflict extends TransientKubeError {
  override readonly name = "KubeConflict";
  readonly kind = "conflict";
  readonly retryCall = false;
  constructor(ctx: KubeCallContext, d: KubeErrorDetail) {
    super(
      `${api(ctx)} answered 409${on(ctx)}: another writer changed it first`,
      "another writer changed the object in between: read again and retry (done automatically)",
      ctx,
      d,
    );
  }
}

/**
 * An eviction refused by a PodDisruptionBudget (429 naming the budget): an answer, not
 * an error — the drain waits for the budget. Never retried as a call.
 */
export class KubeEvictionBlocked extends TransientKubeError {
  override readonly name = "KubeEvictionBlocked";
  readonly kind = "eviction-blocked";
  readonly retryCall = false;
  /** The budget's name ("unknown" when the answer does not name it). */
  readonly blockedBy: string;
  /**
   * The budget is new or changed and the disruption controller has not processed it yet
   * ("… is still being processed by the server"): not a refusal on the merits, try soon.
   */
  readonly pending: boolean;
  /** The server's Retry-After, in seconds (10 while a budget is being processed). */
  readonly retryAfterSeconds: number | undefined;
  constructor(
    ctx: KubeCallContext,
    d: KubeErrorDetail & { blockedBy: string; pending?: boolean; retryAfterSeconds?: number | undefined },
  ) {
    super(
      `${api(ctx)} refused to evict ${ctx.target ?? "a pod"}: the disruption budget ${d.blockedBy} allows no more disruptions`,
      `wait for the pods under ${d.blockedBy} to be healthy again, or relax the budget (kubectl get pdb -A)`,
      ctx,
      d,
    );
    this.blockedBy = d.blockedBy;
    this.pending = d.pending === true;
    this.retryAfterSeconds = d.retryAfterSeconds;
  }
}

/** The SSM read of the cluster's kubeconfig failed for a while (throttled, 5xx, network). */
export class KubeconfigUnavailable extends TransientKubeError {
  override readonly name = "KubeconfigUnavailable";
  readonly kind = "kubeconfig-unavailable";
  constructor(ctx: KubeCallContext & { parameter: string; region: string }, d: KubeErrorDetail) {
    super(
      `node-ops could not read ${ctx.parameter} in ${ctx.region}${d.reason ? ` (${d.reason})` : ""}`,
      "SSM is throttling or unwell: retried with backoff",
      ctx,
      d,
    );
  }
}

/** 404: the object (node, pod, Deployment) is not there. */
export class KubeNotFound extends PermanentKubeError {
  override readonly name = "KubeNotFound";
  readonly kind = "not-found";
  constructor(ctx: KubeCallContext, d: KubeErrorDetail, remediation?: string) {
    super(
      `${ctx.target ?? "the object"} not found in cluster ${ctx.clusterId ?? "(unknown)"}`,
      remediation ?? "check the name (kubectl get nodes / pods -A): it may have been deleted by other hands",
      ctx,
      d,
    );
  }
}

/** 401: the kubeconfig's credentials are not accepted. */
export class KubeUnauthorized extends PermanentKubeError {
  override readonly name = "KubeUnauthorized";
  readonly kind = "unauthorized";
  constructor(ctx: KubeCallContext, d: KubeErrorDetail) {
    super(
      `${api(ctx)} refused node-ops (401)${on(ctx)}`,
      "the kubeconfig's credentials are not accepted: re-publish the cluster's kubeconfig",
      ctx,
      d,
    );
  }
}

/** 403: the kubeconfig's user may not do this. */
export class KubeForbidden extends PermanentKubeError {
  override readonly name = "KubeForbidden";
  readonly kind = "forbidden";
  constructor(ctx: KubeCallContext, d: KubeErrorDetail) {
    super(
      `${api(ctx)} refused node-ops (403)${on(ctx)}`,
      `give the kubeconfig's user RBAC permission for ${ctx.operation ?? "this call"} (get, list, watch, patch and delete nodes; list pods; create pods/eviction; Deployments for placement)`,
      ctx,
      d,
    );
  }
}

/** 400/422: the API refused the request as invalid. */
export class KubeInvalid extends PermanentKubeError {
  override readonly name = "KubeInvalid";
  readonly kind = "invalid";
  constructor(ctx: KubeCallContext, d: KubeErrorDetail, remediation?: string) {
    super(
      `${api(ctx)} refused${on(ctx)} as invalid (${d.status ?? 422})`,
      remediation ??
        "the request does not pass the API's validation: check the labels, taints or annotations against the Kubernetes rules; if they are right, it is a bug: report it",
      ctx,
      d,
    );
  }
}

/** Any other refusal (405, 410 outside a watch, …): not worth retrying. */
export class KubeRequestError extends PermanentKubeError {
  override readonly name = "KubeRequestError";
  readonly kind = "invalid-request";
  constructor(ctx: KubeCallContext, d: KubeErrorDetail) {
    super(
      `${api(ctx)} answered ${d.status ?? "with an error"}${on(ctx)}`,
      "an unexpected answer: a bug in node-ops or an API server version it does not know; report it",
      ctx,
      d,
    );
  }
}

/** The cluster has no `cluster.requested` in the log: there is no such cluster. */
export class KubeClusterUnknown extends PermanentKubeError {
  override readonly name = "KubeClusterUnknown";
  readonly kind = "cluster-unknown";
  constructor(clusterId: string) {
    super(
      `cluster ${clusterId} does not exist`,
      "check the cluster id (cairn cluster list)",
      { clusterId },
      {},
    );
  }
}

/** The cluster's kubeconfig parameter is not there (yet). */
export class KubeconfigMissing extends PermanentKubeError {
  override readonly name = "KubeconfigMissing";
  readonly kind = "kubeconfig-missing";
  constructor(ctx: { clusterId: string; parameter: string; region: string }, cause?: unknown) {
    super(
      `cluster ${ctx.clusterId} has no kubeconfig yet (${ctx.parameter} in ${ctx.region})`,
      "wait until the cluster is Ready, then try again",
      ctx,
      { cause },
    );
  }
}

/** The kubeconfig cannot be parsed (the parse error is not passed on: it may quote the document). */
export class KubeconfigUnreadable extends PermanentKubeError {
  override readonly name = "KubeconfigUnreadable";
  readonly kind = "kubeconfig-unreadable";
  constructor(ctx: { clusterId?: string | undefined; parameter: string }, cause?: unknown) {
    super(
      `the kubeconfig of cluster ${ctx.clusterId ?? "(unknown)"} (${ctx.parameter}) cannot be read`,
      "re-publish the cluster's kubeconfig",
      ctx,
      { cause },
    );
  }
}

/** node-ops may not read (or decrypt) the kubeconfig parameter. */
export class KubeconfigForbidden extends PermanentKubeError {
  override readonly name = "KubeconfigForbidden";
  readonly kind = "kubeconfig-forbidden";
  constructor(ctx: { clusterId?: string; parameter: string; region: string }, d: KubeErrorDetail) {
    super(
      `node-ops may not read ${ctx.parameter} in ${ctx.region}`,
      "grant node-ops ssm:GetParameter and kms:Decrypt on the cluster's kubeconfig parameter",
      ctx,
      d,
    );
  }
}

/** Node/undici error codes of a connection that failed or broke (the SSM read's). */
const NETWORK_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ECONNABORTED",
  "ETIMEDOUT",
  "EPIPE",
  "ENOTFOUND",
  "EAI_AGAIN",
  "ENETUNREACH",
  "EHOSTUNREACH",
  "UND_ERR_SOCKET",
  "UND_ERR_CONNECT_TIMEOUT",
]);

interface Shape {
  name?: unknown;
  code?: unknown;
  statusCode?: unknown;
  message?: unknown;
  body?: unknown;
  headers?: unknown;
  cause?: { code?: unknown };
}

/** The Status object of an answer's body (a string or already parsed), if it is one. */
function statusOf(
  body: unknown,
): { reason?: string; message?: string; causes?: unknown[]; retryAfterSeconds?: number } | undefined {
  let s: unknown = body;
  if (typeof body === "string") {
    try {
      s = JSON.parse(body);
    } catch {
      return { message: body };
    }
  }
  if (typeof s !== "object" || s === null) return undefined;
  const o = s as {
    reason?: unknown;
    message?: unknown;
    details?: { causes?: unknown; retryAfterSeconds?: unknown };
  };
  return {
    ...(typeof o.reason === "string" ? { reason: o.reason } : {}),
    ...(typeof o.message === "string" ? { message: o.message } : {}),
    ...(Array.isArray(o.details?.causes) ? { causes: o.details.causes } : {}),
    ...(typeof o.details?.retryAfterSeconds === "number"
      ? { retryAfterSeconds: o.details.retryAfterSeconds }
      : {}),
  };
}

/** The PDB named in a 429 eviction answer: "The disruption budget <name> needs …"; "unknown" if none is named. */
export function pdbOfEvictionRefusal(body: unknown): string {
  const s = statusOf(body);
  const causes = (s?.causes ?? []) as { reason?: string; message?: string }[];
  const messages = [
    ...causes.filter((c) => c.reason === "DisruptionBudget").map((c) => c.message ?? ""),
    s?.message ?? "",
  ];
  for (const m of messages) {
    const match = /disruption budget (\S+) (?:needs|is still being processed)/.exec(m);
    if (match?.[1]) return match[1];
  }
  return "unknown";
}

/** Every message of a Status body (its causes' and its own), for matching the server's words. */
function refusalText(body: unknown): string {
  const s = statusOf(body);
  const causes = (s?.causes ?? []) as { message?: string }[];
  return [...causes.map((c) => c.message ?? ""), s?.message ?? ""].join("\n");
}

/** The Retry-After of a 429, in seconds: the header, else the Status' `details.retryAfterSeconds`. */
function retryAfterSecondsOf(body: unknown, headers: unknown): number | undefined {
  const ms = retryAfterMsOf(headers);
  if (ms !== undefined && ms > 0) return Math.ceil(ms / 1000);
  const detail = statusOf(body)?.retryAfterSeconds;
  return detail !== undefined && detail > 0 ? detail : undefined;
}

/** Whether a 429's body says a disruption budget refused it (not a rate limit). */
function isBudgetRefusal(body: unknown): boolean {
  const s = statusOf(body);
  const causes = (s?.causes ?? []) as { reason?: string }[];
  return causes.some((c) => c.reason === "DisruptionBudget") || /disruption budget/i.test(s?.message ?? "");
}

/** Retry-After in ms, from a headers object (any case); seconds or an HTTP date. */
export function retryAfterMsOf(headers: unknown, now = Date.now()): number | undefined {
  if (typeof headers !== "object" || headers === null) return undefined;
  const entry = Object.entries(headers as Record<string, unknown>).find(
    ([k]) => k.toLowerCase() === "retry-after",
  );
  const v = typeof entry?.[1] === "string" ? entry[1].trim() : undefined;
  if (!v) return undefined;
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/**
 * Turns anything a Kubernetes call threw (client-node's `ApiException`, a watch's
 * error, a network error, cockatiel's) into one of the classes above; a KubeFailure is
 * returned as it is. Never throws.
 *
 * 401 → KubeUnauthorized, 403 → KubeForbidden, 404 → KubeNotFound, 409 → KubeConflict,
 * 400/422 → KubeInvalid, 429 → KubeEvictionBlocked (a budget) or KubeThrottled,
 * 5xx and no answer → KubeUnavailable, timeouts → KubeTimeout, else KubeRequestError.
 */
export function classifyKubeError(err: unknown, ctx: KubeCallContext = {}): KubeFailure {
  if (err instanceof TransientKubeError || err instanceof PermanentKubeError) return err;
  const e: Shape = typeof err === "object" && err !== null ? (err as Shape) : {};
  if (isTaskCancelledError(err) || e.name === "TimeoutError" || e.name === "AbortError")
    return new KubeTimeout(ctx, { cause: err });
  if (isBrokenCircuitError(err)) return new KubeBreakerOpen(ctx, { cause: err });
  if (isBulkheadRejectedError(err)) return new KubeBulkheadFull(ctx, { cause: err });

  const status =
    typeof e.code === "number" ? e.code : typeof e.statusCode === "number" ? e.statusCode : undefined;
  if (status === undefined) {
    // No answer: a refused or broken connection (fetch's TypeError names it in `cause`).
    const code =
      typeof e.code === "string" ? e.code : typeof e.cause?.code === "string" ? e.cause.code : undefined;
    const reason = code ?? (typeof e.message === "string" ? e.message : undefined);
    return new KubeUnavailable(ctx, { reason, cause: err });
  }
  const reason = statusOf(e.body)?.reason;
  const d: KubeErrorDetail = { status, reason, cause: new KubeHttpStatus(status, reason) };
  if (status === 401) return new KubeUnauthorized(ctx, d);
  if (status === 403) return new KubeForbidden(ctx, d);
  if (status === 404) return new KubeNotFound(ctx, d);
  if (status === 409) return new KubeConflict(ctx, d);
  if (status === 400 || status === 422) return new KubeInvalid(ctx, d);
  if (status === 429)
    return isBudgetRefusal(e.body)
      ? new KubeEvictionBlocked(ctx, {
          ...d,
          blockedBy: pdbOfEvictionRefusal(e.body),
          pending: /is still being processed by the server/.test(refusalText(e.body)),
          retryAfterSeconds: retryAfterSecondsOf(e.body, e.headers),
        })
      : new KubeThrottled(ctx, { ...d, retryAfterMs: retryAfterMsOf(e.headers) });
  if (status >= 500) return new KubeUnavailable(ctx, d);
  return new KubeRequestError(ctx, d);
}

/** SSM's error codes as the kubeconfig read meets them. */
const SSM_TRANSIENT = new Set([
  "ThrottlingException",
  "TooManyUpdates",
  "RequestLimitExceeded",
  "InternalServerError",
  "ServiceUnavailable",
]);

/**
 * A failed SSM read of a kubeconfig: throttled, 5xx, network, timeout or an open
 * breaker → KubeconfigUnavailable (transient); refused → KubeconfigForbidden; the
 * rest → KubeconfigUnreadable. `ParameterNotFound` is the caller's answer
 * (KubeconfigMissing) and never reaches here.
 */
export function classifyKubeconfigReadError(
  err: unknown,
  ctx: { clusterId?: string; parameter: string; region: string },
): KubeFailure {
  if (err instanceof TransientKubeError || err instanceof PermanentKubeError) return err;
  const e = (typeof err === "object" && err !== null ? err : {}) as {
    name?: unknown;
    code?: unknown;
    $metadata?: { httpStatusCode?: unknown };
  };
  const name = typeof e.name === "string" ? e.name : undefined;
  const status = typeof e.$metadata?.httpStatusCode === "number" ? e.$metadata.httpStatusCode : undefined;
  const ssmCtx = { ...ctx, operation: "GetParameter" };
  if (name === "AccessDeniedException" || name === "UnrecognizedClientException" || status === 403)
    return new KubeconfigForbidden(ssmCtx, { status, reason: name, cause: err });
  if (
    isTaskCancelledError(err) ||
    isBrokenCircuitError(err) ||
    isBulkheadRejectedError(err) ||
    (name !== undefined && SSM_TRANSIENT.has(name)) ||
    status === 429 ||
    (status !== undefined && status >= 500) ||
    name === "TimeoutError" ||
    name === "AbortError" ||
    (typeof e.code === "string" && NETWORK_CODES.has(e.code))
  )
    return new KubeconfigUnavailable(ssmCtx, {
      status,
      reason: name ?? (typeof e.code === "string" ? e.code : undefined),
      cause: err,
    });
  return new KubeconfigUnreadable(ctx, err);
}
