/**
 * SSM failures, classified at the boundary: one class per condition, each with `name`,
 * the SDK error as `cause`, a `code` (SSM's), `transient` and a `remediation` hint.
 * Transient ones extend `TransientCondition` and permanent ones `PermanentCondition`
 * (@cairn/events), so the runtime retries the first with backoff and dead-letters the
 * second, and logs and dead letters carry the hint, without knowing SSM.
 *
 * Pure: no SDK import. The SDK's exceptions are read by shape (`name`, `$metadata`),
 * Node's network errors by `code`, cockatiel's by its guards.
 */
import { PermanentCondition, TransientCondition } from "@cairn/events";
import { isBrokenCircuitError, isBulkheadRejectedError, isTaskCancelledError } from "@cairn/service";

/** SSM error codes by the condition they mean (`name` of the SDK's exception). */
export const SSM_ERROR_CODES = {
  throttling: ["ThrottlingException", "TooManyUpdates", "RequestLimitExceeded", "Throttling"],
  server: ["InternalServerError", "InternalFailure", "ServiceUnavailable", "RequestTimeout"],
  accessDenied: ["AccessDeniedException", "UnrecognizedClientException", "InvalidSignatureException"],
  invalidDocument: [
    "InvalidDocument",
    "InvalidDocumentVersion",
    "InvalidParameters",
    "InvalidOutputFolder",
    "InvalidRole",
    "MaxDocumentSizeExceeded",
  ],
  invalidInstance: ["InvalidInstanceId"],
  parameterNotFound: ["ParameterNotFound"],
  parameterExists: ["ParameterAlreadyExists"],
  invocationMissing: ["InvocationDoesNotExist", "InvalidCommandId"],
} as const satisfies Record<string, readonly string[]>;

/** Node/undici error codes of a connection that failed or broke. */
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

/** What the adapter knows about the call that failed. */
export interface SsmCallContext {
  readonly operation?: string | undefined;
  readonly region?: string | undefined;
}

interface Detail {
  readonly code: string;
  readonly message?: string | undefined;
  readonly cause?: unknown;
}

const where = (c: SsmCallContext) => `SSM ${c.operation ?? "call"} in ${c.region ?? "an unknown region"}`;
const said = (d: Detail) => `${d.code}${d.message ? `: ${d.message}` : ""}`;

/** A failure that retrying may cure. */
export abstract class TransientSsmError extends TransientCondition {
  readonly code: string;
  readonly operation: string | undefined;
  readonly region: string | undefined;
  protected constructor(message: string, remediation: string, ctx: SsmCallContext, d: Detail) {
    super(message, remediation, d.cause);
    this.code = d.code;
    this.operation = ctx.operation;
    this.region = ctx.region;
  }
}

/** A failure that retrying the same call will not cure. */
export abstract class PermanentSsmError extends PermanentCondition {
  readonly code: string;
  readonly operation: string | undefined;
  readonly region: string | undefined;
  protected constructor(message: string, remediation: string, ctx: SsmCallContext, d: Detail) {
    super(message, remediation, d.cause);
    this.code = d.code;
    this.operation = ctx.operation;
    this.region = ctx.region;
  }
}

/** Any SSM failure the adapter understood (the installer reactor's `RemoteExecFailure`). */
export type SsmFailure = TransientSsmError | PermanentSsmError;

/** `ThrottlingException`, `TooManyUpdates`, HTTP 429: SSM's request rate limit. */
export class SsmThrottled extends TransientSsmError {
  override readonly name = "SsmThrottled";
  readonly kind = "throttled";
  constructor(ctx: SsmCallContext, d: Detail) {
    super(
      `${where(ctx)} was throttled (${said(d)})`,
      "SSM limits Run Command and Parameter Store rates per account and region: retried with backoff; if it persists, spread the installs out (CAIRN_INSTALL_MAX_PARALLEL_JOINS) or ask AWS for a higher quota",
      ctx,
      d,
    );
  }
}

/** 5xx, `InternalServerError`: SSM's own failure. */
export class SsmUnavailable extends TransientSsmError {
  override readonly name = "SsmUnavailable";
  readonly kind = "server";
  constructor(ctx: SsmCallContext, d: Detail) {
    super(
      `${where(ctx)} failed on SSM's side (${said(d)})`,
      `SSM in ${ctx.region ?? "the region"} answered with a server error: retried with backoff; check the AWS Health Dashboard if it persists`,
      ctx,
      d,
    );
  }
}

/** The connection failed or broke before SSM answered. */
export class SsmNetworkError extends TransientSsmError {
  override readonly name = "SsmNetworkError";
  readonly kind = "network";
  constructor(ctx: SsmCallContext, d: Detail) {
    super(
      `could not reach SSM for ${where(ctx)} (${said(d)})`,
      "check the network path to the SSM endpoint (AWS_ENDPOINT_URL_SSM if set, proxies, DNS); retried with backoff",
      ctx,
      d,
    );
  }
}

/** A try (or the whole call) ran out of time. */
export class SsmTimeout extends TransientSsmError {
  override readonly name = "SsmTimeout";
  readonly kind = "timeout";
  constructor(ctx: SsmCallContext, d: Detail) {
    super(
      `${where(ctx)} did not answer in time`,
      "SSM or the network is slow: retried with backoff (a step already sent is found again by its comment, never sent twice)",
      ctx,
      d,
    );
  }
}

/** SSM's circuit breaker for this region is open: the call was not sent. */
export class SsmBreakerOpen extends TransientSsmError {
  override readonly name = "SsmBreakerOpen";
  readonly kind = "breaker-open";
  constructor(ctx: SsmCallContext, d: Detail) {
    super(
      `${where(ctx)} was not sent: the circuit breaker for SSM in ${ctx.region ?? "the region"} is open`,
      "SSM failed repeatedly; calls fail fast until a trial call succeeds (45 s): see docs/runbooks.md, A breaker is open",
      ctx,
      d,
    );
  }
}

/** Too many SSM calls in flight and queued in this region: the call was not sent. */
export class SsmBulkheadFull extends TransientSsmError {
  override readonly name = "SsmBulkheadFull";
  readonly kind = "bulkhead-full";
  constructor(ctx: SsmCallContext, d: Detail) {
    super(
      `${where(ctx)} was not sent: too many SSM calls are in flight and queued`,
      "the installer is overloaded towards SSM in this region: retried later; lower CAIRN_INSTALL_MAX_PARALLEL_JOINS if it persists",
      ctx,
      d,
    );
  }
}

/** The instance is not (yet, or any more) a managed instance: its SSM Agent is not online. */
export class SsmNotManaged extends TransientSsmError {
  override readonly name = "SsmNotManaged";
  readonly kind = "not-managed";
  readonly instanceId: string;
  constructor(instanceId: string, cause?: unknown) {
    super(
      `instance ${instanceId} is not a managed instance (its SSM Agent is not online)`,
      "wait for the SSM Agent; check the instance profile has AmazonSSMManagedInstanceCore",
      {},
      { code: "InvalidInstanceId", cause },
    );
    this.instanceId = instanceId;
  }
}

/** SSM answered SendCommand without a command id (never seen; worth another try). */
export class SsmNoCommandId extends TransientSsmError {
  override readonly name = "SsmNoCommandId";
  readonly kind = "no-command-id";
  constructor(ctx: SsmCallContext) {
    super(
      `${where(ctx)} answered without a CommandId`,
      "retried; the step is found again by its comment if SSM did run it",
      ctx,
      { code: "NoCommandId" },
    );
  }
}

/** `AccessDeniedException`, `UnrecognizedClientException`: the credentials are refused or lack a permission. */
export class SsmAccessDenied extends PermanentSsmError {
  override readonly name = "SsmAccessDenied";
  readonly kind = "access-denied";
  constructor(ctx: SsmCallContext, d: Detail) {
    super(
      `${where(ctx)} was refused (${said(d)})`,
      d.code === "AccessDeniedException"
        ? `give the installer's role ssm:${ctx.operation ?? "SendCommand"} (with ssm:SendCommand, ssm:GetCommandInvocation, ssm:ListCommandInvocations and the parameter actions: docs/installer.md)`
        : "the credentials were refused: check AWS_PROFILE / AWS_ACCESS_KEY_ID (expired or wrong keys)",
      ctx,
      d,
    );
  }
}

/** `InvalidDocument`, `InvalidParameters`, …: the command itself is wrong. */
export class SsmInvalidDocument extends PermanentSsmError {
  override readonly name = "SsmInvalidDocument";
  readonly kind = "invalid-document";
  constructor(ctx: SsmCallContext, d: Detail) {
    super(
      `SSM refused the command of ${where(ctx)} (${said(d)})`,
      "the step's document or parameters are invalid (AWS-RunShellScript, its commands, executionTimeout, the output bucket): a bug in the installer's step scripts; report it",
      ctx,
      d,
    );
  }
}

/** `InvalidInstanceId` on a call: SSM does not know the instance as managed (send() turns it into SsmNotManaged). */
export class SsmInvalidInstance extends PermanentSsmError {
  override readonly name = "SsmInvalidInstance";
  readonly kind = "invalid-instance";
  constructor(ctx: SsmCallContext, d: Detail) {
    super(
      `${where(ctx)}: the instance is not a managed instance (${said(d)})`,
      "the instance's SSM Agent is not online (yet): check the instance profile has AmazonSSMManagedInstanceCore",
      ctx,
      d,
    );
  }
}

/** `ParameterNotFound`: the parameter does not exist. */
export class SsmParameterNotFound extends PermanentSsmError {
  override readonly name = "SsmParameterNotFound";
  readonly kind = "parameter-not-found";
  constructor(ctx: SsmCallContext, d: Detail) {
    super(
      `${where(ctx)}: the parameter does not exist (${said(d)})`,
      "the cluster's secret parameter is missing: the installer writes it before the first step; if it was deleted by hand, reinstall the cluster",
      ctx,
      d,
    );
  }
}

/** `ParameterAlreadyExists`: a create-only put found the parameter there. */
export class SsmParameterExists extends PermanentSsmError {
  override readonly name = "SsmParameterExists";
  readonly kind = "parameter-exists";
  constructor(ctx: SsmCallContext, d: Detail) {
    super(
      `${where(ctx)}: the parameter exists already (${said(d)})`,
      "nothing to do: the parameter is kept as it is",
      ctx,
      d,
    );
  }
}

/** `InvocationDoesNotExist`: SSM does not know the command on this instance (yet). */
export class SsmInvocationNotFound extends PermanentSsmError {
  override readonly name = "SsmInvocationNotFound";
  readonly kind = "invocation-not-found";
  constructor(ctx: SsmCallContext, d: Detail) {
    super(
      `${where(ctx)}: SSM does not know the invocation (${said(d)})`,
      "the command id or instance is wrong, or SSM forgot the command (kept 30 days): the step is sent again",
      ctx,
      d,
    );
  }
}

/** Any other refusal, or an error the adapter did not expect: not worth retrying. */
export class SsmRequestError extends PermanentSsmError {
  override readonly name = "SsmRequestError";
  readonly kind = "invalid-request";
  constructor(ctx: SsmCallContext, d: Detail) {
    super(
      `SSM refused ${where(ctx)} (${said(d)})`,
      `SSM rejected the request (${d.code}): fix what the message names; if the cluster spec is right, it is a bug: report it`,
      ctx,
      d,
    );
  }
}

interface ErrorShape {
  name?: unknown;
  code?: unknown;
  message?: unknown;
  $fault?: unknown;
  $metadata?: { httpStatusCode?: unknown };
}

const inList = (list: readonly string[], code: string) => list.includes(code);

/**
 * Turns anything an SSM call threw into one of the classes above (an SsmFailure is
 * returned as it is). Never throws.
 *
 * 1. Timeouts (cockatiel's, the SDK's `TimeoutError`, an abort) → SsmTimeout.
 * 2. cockatiel's open breaker / full bulkhead → SsmBreakerOpen / SsmBulkheadFull.
 * 3. Node network errors (`ECONNREFUSED`, …) → SsmNetworkError.
 * 4. SSM errors by code first, then by status: 429 → throttled, 5xx → unavailable,
 *    403 → access denied.
 * 5. Anything else → SsmRequestError (permanent).
 */
export function classifySsmError(err: unknown, ctx: SsmCallContext | string = {}): SsmFailure {
  const c: SsmCallContext = typeof ctx === "string" ? { operation: ctx } : ctx;
  if (err instanceof TransientSsmError || err instanceof PermanentSsmError) return err;
  const e: ErrorShape = typeof err === "object" && err !== null ? (err as ErrorShape) : {};
  const name = typeof e.name === "string" ? e.name : undefined;
  const message = typeof e.message === "string" ? e.message : typeof err === "string" ? err : undefined;
  const cause = err;

  if (isTaskCancelledError(err) || name === "TimeoutError" || name === "AbortError")
    return new SsmTimeout(c, { code: name ?? "Timeout", message, cause });
  if (isBrokenCircuitError(err)) return new SsmBreakerOpen(c, { code: "BreakerOpen", cause });
  if (isBulkheadRejectedError(err)) return new SsmBulkheadFull(c, { code: "BulkheadFull", cause });
  const errno = typeof e.code === "string" ? e.code : undefined;
  if ((errno && NETWORK_CODES.has(errno)) || message === "socket hang up")
    return new SsmNetworkError(c, { code: errno ?? "NetworkError", message, cause });

  const status = typeof e.$metadata?.httpStatusCode === "number" ? e.$metadata.httpStatusCode : undefined;
  const code = name ?? "Error";
  const d: Detail = { code, message, cause };
  const C = SSM_ERROR_CODES;
  if (inList(C.throttling, code) || status === 429) return new SsmThrottled(c, d);
  if (inList(C.accessDenied, code)) return new SsmAccessDenied(c, d);
  if (inList(C.invalidInstance, code)) return new SsmInvalidInstance(c, d);
  if (inList(C.parameterNotFound, code)) return new SsmParameterNotFound(c, d);
  if (inList(C.parameterExists, code)) return new SsmParameterExists(c, d);
  if (inList(C.invocationMissing, code)) return new SsmInvocationNotFound(c, d);
  if (inList(C.invalidDocument, code)) return new SsmInvalidDocument(c, d);
  if (inList(C.server, code) || (status !== undefined && status >= 500) || e.$fault === "server")
    return new SsmUnavailable(c, d);
  if (status === 403) return new SsmAccessDenied(c, d);
  return new SsmRequestError(c, d);
}
