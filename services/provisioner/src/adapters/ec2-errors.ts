/**
 * EC2 failures, classified at the boundary: one class per condition, each with `name`,
 * the SDK error as `cause`, `transient` and a `remediation` hint. Transient ones extend
 * `TransientError` and permanent ones `PermanentCondition` (@cairn/events' `CairnError`:
 * `failure` and `remediation` are what the runtime, the logs and the events read), so a
 * reactor retries the first with backoff and settles the second at once, and the hint
 * reaches the dead letter or the recorded launch failure, without knowing EC2.
 *
 * Pure: no SDK import. The SDK's exceptions are read by shape (`name`/`Code`, `$fault`,
 * `$metadata.httpStatusCode`), Node's network errors by `code`, cockatiel's by its guards.
 */
import {
  EC2_TAG_RULES,
  MAX_USER_TAGS,
  PermanentCondition,
  PermanentError,
  TransientCondition,
  TransientError,
} from "@cairn/events";
import { isBrokenCircuitError, isBulkheadRejectedError, isTaskCancelledError } from "cockatiel";
import type { CapacityType, ComputeFailure, ComputeFailureKind, Placement } from "../ports.ts";

/** EC2 error codes by the condition they mean (`name` of the SDK's exception). */
export const EC2_ERROR_CODES = {
  throttling: [
    "RequestLimitExceeded",
    "Throttling",
    "ThrottlingException",
    "RequestThrottled",
    "RequestThrottledException",
  ],
  capacity: [
    "InsufficientInstanceCapacity",
    "InsufficientHostCapacity",
    "SpotMaxPriceTooLow",
    "MaxSpotInstanceCountExceeded",
  ],
  unauthorized: ["UnauthorizedOperation", "AuthFailure"],
  idempotencyMismatch: ["IdempotentParameterMismatch"],
  tokenSpent: ["IdempotentInstanceTerminated"],
  incorrectState: ["IncorrectInstanceState"],
  server: [
    "InternalError",
    "InternalFailure",
    "ServiceUnavailable",
    "Unavailable",
    "RequestTimeout",
    "RequestTimeoutException",
  ],
} as const satisfies Record<string, readonly string[]>;

/** Every code starting with this is an AMI that cannot be used (`.NotFound`, `.Malformed`, `.Unavailable`). */
export const IMAGE_CODE_PREFIX = "InvalidAMIID.";
/** `InvalidInstanceID.NotFound`, `InvalidInstanceID.Malformed`. */
export const INSTANCE_ID_CODE_PREFIX = "InvalidInstanceID.";

/** Node/undici error codes of a connection that failed or broke: worth another try. */
export const NETWORK_ERROR_CODES = [
  "ECONNRESET",
  "ECONNREFUSED",
  "ECONNABORTED",
  "ETIMEDOUT",
  "EPIPE",
  "ENOTFOUND",
  "EAI_AGAIN",
  "ENETUNREACH",
  "EHOSTUNREACH",
  "UND_ERR_SOCKET",
  "UND_ERR_CONNECT_TIMEOUT",
] as const;

/** What the adapter knows about the call that failed; every field optional. */
export interface Ec2CallContext {
  readonly region?: string;
  /** The EC2 action, e.g. `RunInstances`. */
  readonly operation?: string;
  readonly instanceType?: string;
  readonly availabilityZone?: string;
  readonly capacityType?: CapacityType;
  readonly imageId?: string;
  readonly instanceIds?: readonly string[];
}

/** What the failure itself said. */
export interface Ec2ErrorDetail {
  readonly code?: string | undefined;
  /** The provider's message. */
  readonly message?: string | undefined;
  readonly cause?: unknown;
}

const where = (ctx: Ec2CallContext) =>
  `${ctx.operation ?? "EC2 call"} in ${ctx.region ?? "an unknown region"}`;
const said = (d: Ec2ErrorDetail) =>
  d.code || d.message ? ` (${[d.code, d.message].filter(Boolean).join(": ")})` : "";

/** A failure that retrying the same call may cure. */
export abstract class TransientEc2Error extends TransientCondition implements ComputeFailure {
  abstract readonly kind: ComputeFailureKind;
  readonly code: string | undefined;
  readonly region: string | undefined;
  readonly operation: string | undefined;

  protected constructor(message: string, remediation: string, ctx: Ec2CallContext, d: Ec2ErrorDetail) {
    super(message, remediation, d.cause);
    this.code = d.code;
    this.region = ctx.region;
    this.operation = ctx.operation;
  }
}

/** A failure that retrying the same call will not cure. */
export abstract class PermanentEc2Error extends PermanentCondition implements ComputeFailure {
  abstract readonly kind: ComputeFailureKind;
  readonly code: string | undefined;
  readonly region: string | undefined;
  readonly operation: string | undefined;

  protected constructor(message: string, remediation: string, ctx: Ec2CallContext, d: Ec2ErrorDetail) {
    super(message, remediation, d.cause);
    this.code = d.code;
    this.region = ctx.region;
    this.operation = ctx.operation;
  }
}

export type Ec2Failure = TransientEc2Error | PermanentEc2Error;

/** `RequestLimitExceeded`, `Throttling`, HTTP 429: EC2's request rate limit. */
export class ThrottlingError extends TransientEc2Error {
  override readonly name = "ThrottlingError";
  readonly kind = "throttled";
  constructor(ctx: Ec2CallContext, d: Ec2ErrorDetail = {}) {
    super(
      `EC2 throttled ${where(ctx)}${said(d)}`,
      "back off: EC2 limits the request rate per account and region; retry later with backoff, and spread bulk work out",
      ctx,
      d,
    );
  }
}

/**
 * No capacity for this instance type, zone and capacity type (`InsufficientInstanceCapacity`,
 * `InsufficientHostCapacity`, `SpotMaxPriceTooLow`, `MaxSpotInstanceCountExceeded`).
 * Permanent for this placement: the policy does not retry it; the caller falls back
 * (adapters/placement.ts) to the next combination.
 */
export class CapacityError extends PermanentEc2Error {
  override readonly name = "CapacityError";
  readonly kind = "capacity";
  /** The placement as it was requested (the key the fallback planner marks as failed). */
  readonly placement: Placement;
  /** The zone EC2 says it had no capacity in (it names it even when none was requested). */
  readonly zone: string | undefined;
  constructor(ctx: Ec2CallContext, d: Ec2ErrorDetail = {}) {
    const placement: Placement = {
      instanceType: ctx.instanceType ?? "unknown",
      availabilityZone: ctx.availabilityZone,
      capacityType: ctx.capacityType ?? "on-demand",
    };
    const zone = ctx.availabilityZone ?? zoneInMessage(d.message);
    const at = `${placement.capacityType} ${placement.instanceType} in ${zone ?? ctx.region ?? "the region"}`;
    super(
      `EC2 has no capacity for ${at}: ${where(ctx)} failed${said(d)}`,
      "try the next instance type, then the next availability zone, then on-demand if the pool allows (fallbackToOnDemand)",
      ctx,
      d,
    );
    this.placement = placement;
    this.zone = zone;
  }
}

/** `InvalidAMIID.*`: the image does not exist (or is not usable) in this region. */
export class ImageNotFoundError extends PermanentEc2Error {
  override readonly name = "ImageNotFoundError";
  readonly kind = "image-not-found";
  readonly imageId: string | undefined;
  constructor(ctx: Ec2CallContext, d: Ec2ErrorDetail = {}) {
    const ami = ctx.imageId ?? "given";
    const region = ctx.region ?? "this region";
    super(
      `the AMI ${ami} cannot be used by ${where(ctx)}${said(d)}`,
      `the AMI ${ami} does not exist in ${region}: build or copy the Cairn AMI there, or set \`ami\` in the spec`,
      ctx,
      d,
    );
    this.imageId = ctx.imageId;
  }
}

/** `UnauthorizedOperation`, `AuthFailure`: the credentials are refused or lack a permission. */
export class UnauthorizedError extends PermanentEc2Error {
  override readonly name = "UnauthorizedError";
  readonly kind = "unauthorized";
  constructor(ctx: Ec2CallContext, d: Ec2ErrorDetail = {}) {
    const action = `ec2:${ctx.operation ?? "RunInstances"}`;
    const region = ctx.region ?? "the region";
    super(
      `EC2 refused the credentials for ${where(ctx)}${said(d)}`,
      d.code === "AuthFailure"
        ? `the credentials were refused in ${region}: check AWS_PROFILE / AWS_ACCESS_KEY_ID (expired or wrong keys), then make sure they allow ${action}`
        : `the credentials lack ${action} in ${region}: grant ${action} (and the other actions in docs/provisioner-ec2.md) to the provisioner's IAM role`,
      ctx,
      d,
    );
  }
}

/** `IdempotentParameterMismatch`: the ClientToken was used before with other parameters. */
export class IdempotencyMismatchError extends PermanentEc2Error {
  override readonly name = "IdempotencyMismatchError";
  readonly kind = "idempotency-mismatch";
  constructor(ctx: Ec2CallContext, d: Ec2ErrorDetail = {}) {
    super(
      `EC2 refused ${where(ctx)}: its ClientToken was used with other parameters${said(d)}`,
      "a launch with this token had other parameters: a bug; report it",
      ctx,
      d,
    );
  }
}

/** `IdempotentInstanceTerminated`: the instance this ClientToken launched is terminated. */
export class TokenSpentError extends PermanentEc2Error {
  override readonly name = "TokenSpentError";
  readonly kind = "token-spent";
  constructor(ctx: Ec2CallContext, d: Ec2ErrorDetail = {}) {
    super(
      `EC2 refused ${where(ctx)}: the instance its ClientToken launched has been terminated${said(d)}`,
      "the slot's instance is gone: launch it again as the next attempt (a new token)",
      ctx,
      d,
    );
  }
}

/** `InvalidInstanceID.*`: EC2 does not know the instance in this region. */
export class InstanceNotFoundError extends PermanentEc2Error {
  override readonly name = "InstanceNotFoundError";
  readonly kind = "instance-not-found";
  constructor(ctx: Ec2CallContext, d: Ec2ErrorDetail = {}) {
    super(
      `EC2 does not know the instance(s) of ${where(ctx)}${said(d)}`,
      `the instance is not in ${ctx.region ?? "this region"} (terminated over an hour ago, never launched, or in another region): treat it as gone and reconcile with describeCluster`,
      ctx,
      d,
    );
  }
}

/** `IncorrectInstanceState`: the instance is not in a state the action applies to. */
export class IncorrectInstanceStateError extends PermanentEc2Error {
  override readonly name = "IncorrectInstanceStateError";
  readonly kind = "incorrect-state";
  constructor(ctx: Ec2CallContext, d: Ec2ErrorDetail = {}) {
    super(
      `the instance's state does not allow ${where(ctx)}${said(d)}`,
      "describe the instance and act on the state it is in; retry once it has settled (e.g. stopped)",
      ctx,
      d,
    );
  }
}

/** 5xx, `InternalError`, `ServiceUnavailable`: EC2's own failure. */
export class Ec2ServerError extends TransientEc2Error {
  override readonly name = "Ec2ServerError";
  readonly kind = "server";
  constructor(ctx: Ec2CallContext, d: Ec2ErrorDetail = {}) {
    super(
      `EC2 failed ${where(ctx)}${said(d)}`,
      `EC2 in ${ctx.region ?? "the region"} answered with a server error; retry with backoff, and check the AWS Health Dashboard if it persists`,
      ctx,
      d,
    );
  }
}

/** The connection failed or broke before EC2 answered. */
export class NetworkError extends TransientEc2Error {
  override readonly name = "NetworkError";
  readonly kind = "network";
  constructor(ctx: Ec2CallContext, d: Ec2ErrorDetail = {}) {
    super(
      `could not reach EC2 for ${where(ctx)}${said(d)}`,
      "check the network path to the EC2 endpoint (AWS_ENDPOINT_URL_EC2 if set, proxies, DNS); retry with backoff",
      ctx,
      d,
    );
  }
}

/** A try (or the whole call) ran out of time. */
export class CallTimeoutError extends TransientEc2Error {
  override readonly name = "CallTimeoutError";
  readonly kind = "timeout";
  constructor(ctx: Ec2CallContext, d: Ec2ErrorDetail = {}) {
    super(
      `EC2 did not answer ${where(ctx)} in time${said(d)}`,
      "EC2 or the network is slow; retry with backoff (launches are idempotent by ClientToken, so a retry never launches twice)",
      ctx,
      d,
    );
  }
}

/** The circuit breaker for EC2 in this region is open: the call was not sent. */
export class BreakerOpenError extends TransientEc2Error {
  override readonly name = "BreakerOpenError";
  readonly kind = "breaker-open";
  constructor(ctx: Ec2CallContext, d: Ec2ErrorDetail = {}) {
    const region = ctx.region ?? "the region";
    super(
      `${where(ctx)} was not sent: the circuit breaker for EC2 in ${region} is open`,
      `EC2 in ${region} failed repeatedly; waiting for it to recover`,
      ctx,
      d,
    );
  }
}

/** Too many calls in flight and queued for EC2 in this region: the call was not sent. */
export class BulkheadFullError extends TransientEc2Error {
  override readonly name = "BulkheadFullError";
  readonly kind = "bulkhead-full";
  constructor(ctx: Ec2CallContext, d: Ec2ErrorDetail = {}) {
    super(
      `${where(ctx)} was not sent: too many EC2 calls are in flight and queued`,
      "the provisioner is overloaded towards EC2 in this region; retry later, or raise the bulkhead's queue",
      ctx,
      d,
    );
  }
}

/**
 * The hint for a refusal about the launch's tags: the spec's tags broke EC2's rules (a spec
 * recorded before creates were checked against them; libs/events `ec2-tags.ts`).
 */
function tagHint(d: Ec2ErrorDetail): string | undefined {
  if (
    d.code === "TagLimitExceeded" ||
    (d.code === "InvalidParameterValue" && /\bTag\.(Key|Value)\b/.test(d.message ?? ""))
  )
    return `EC2 refused the instance's tags (${d.code}): a cluster keeps at most ${MAX_USER_TAGS} tags (EC2's ${EC2_TAG_RULES.maxTagsPerResource} less Cairn's own), keys of 1-${EC2_TAG_RULES.maxKeyCharacters} characters not starting with aws:, values of at most ${EC2_TAG_RULES.maxValueCharacters}; delete the cluster and create it with tags EC2 takes`;
  return undefined;
}

/** Any other refusal (`InvalidParameterValue`, …) or an unexpected error: not worth retrying. */
export class Ec2RequestError extends PermanentEc2Error {
  override readonly name = "Ec2RequestError";
  readonly kind = "invalid-request";
  constructor(ctx: Ec2CallContext, d: Ec2ErrorDetail = {}) {
    super(
      `EC2 refused ${where(ctx)}${said(d)}`,
      tagHint(d) ??
        (d.code
          ? `EC2 rejected the request (${d.code}): fix what the message names (usually the cluster spec); if the spec is right, it is a bug: report it`
          : "an unexpected error in the EC2 adapter: a bug; report it"),
      ctx,
      d,
    );
  }
}

/** The zone an `InsufficientInstanceCapacity` message names ("…the Availability Zone you requested (eu-west-1a)"). */
function zoneInMessage(message: string | undefined): string | undefined {
  return message ? /Availability Zone you requested \(([a-z0-9-]+)\)/.exec(message)?.[1] : undefined;
}

interface ErrorShape {
  name?: unknown;
  Code?: unknown;
  code?: unknown;
  message?: unknown;
  $fault?: unknown;
  $metadata?: { httpStatusCode?: unknown };
}

const inList = (list: readonly string[], code: string) => list.includes(code);

/**
 * Turns anything a call threw into one of the classes above (an Ec2Failure is returned
 * as it is). Never throws.
 *
 * 1. Timeouts (cockatiel's, the SDK's `TimeoutError`, an abort) → CallTimeoutError.
 * 2. cockatiel's open breaker / full bulkhead → BreakerOpenError / BulkheadFullError.
 * 3. Node network errors (`ECONNREFUSED`, …) → NetworkError.
 * 4. EC2 errors by code first (InsufficientInstanceCapacity comes as a 500 but is not
 *    a server error), then by status/fault: 429 → throttling, 5xx → server error.
 * 5. Anything else → Ec2RequestError (permanent).
 */
export function classifyEc2Error(err: unknown, ctx: Ec2CallContext = {}): Ec2Failure {
  if (err instanceof TransientEc2Error || err instanceof PermanentEc2Error) return err;
  const e: ErrorShape = typeof err === "object" && err !== null ? (err as ErrorShape) : {};
  const name = typeof e.name === "string" ? e.name : undefined;
  const message = typeof e.message === "string" ? e.message : typeof err === "string" ? err : undefined;
  const cause = err;

  if (isTaskCancelledError(err) || name === "TimeoutError" || name === "AbortError") {
    return new CallTimeoutError(ctx, { code: isTaskCancelledError(err) ? undefined : name, message, cause });
  }
  if (isBrokenCircuitError(err)) return new BreakerOpenError(ctx, { cause });
  if (isBulkheadRejectedError(err)) return new BulkheadFullError(ctx, { cause });

  const errno = typeof e.code === "string" ? e.code : undefined;
  if ((errno && inList(NETWORK_ERROR_CODES, errno)) || message === "socket hang up") {
    return new NetworkError(ctx, { code: errno, message, cause });
  }

  const status = typeof e.$metadata?.httpStatusCode === "number" ? e.$metadata.httpStatusCode : undefined;
  const fault = e.$fault;
  const code =
    typeof e.Code === "string" ? e.Code : fault !== undefined || status !== undefined ? name : undefined;
  if (code !== undefined || status !== undefined) {
    const d: Ec2ErrorDetail = { code, message, cause };
    const c = code ?? "";
    if (inList(EC2_ERROR_CODES.throttling, c) || status === 429) return new ThrottlingError(ctx, d);
    if (inList(EC2_ERROR_CODES.capacity, c)) return new CapacityError(ctx, d);
    if (c.startsWith(IMAGE_CODE_PREFIX)) return new ImageNotFoundError(ctx, d);
    if (inList(EC2_ERROR_CODES.unauthorized, c)) return new UnauthorizedError(ctx, d);
    if (inList(EC2_ERROR_CODES.idempotencyMismatch, c)) return new IdempotencyMismatchError(ctx, d);
    if (inList(EC2_ERROR_CODES.tokenSpent, c)) return new TokenSpentError(ctx, d);
    if (c.startsWith(INSTANCE_ID_CODE_PREFIX)) return new InstanceNotFoundError(ctx, d);
    if (inList(EC2_ERROR_CODES.incorrectState, c)) return new IncorrectInstanceStateError(ctx, d);
    if (inList(EC2_ERROR_CODES.server, c) || (status !== undefined && status >= 500) || fault === "server") {
      return new Ec2ServerError(ctx, d);
    }
    return new Ec2RequestError(ctx, d);
  }
  return new Ec2RequestError(ctx, { message: message ?? String(err), cause });
}

/**
 * True when retrying the same call may succeed. Classified errors say so themselves;
 * any other error is classified as an EC2 call's failure would be.
 */
export function isTransient(err: unknown): boolean {
  if (err instanceof TransientEc2Error || err instanceof PermanentEc2Error) return err.transient;
  if (err instanceof TransientError) return true;
  if (err instanceof PermanentError) return false;
  return classifyEc2Error(err).transient;
}
