/**
 * SQS failures (the spot interruption queue), classified at the boundary: one class per
 * condition, each with `name`, the SDK error as `cause`, a `code`, `transient` and a
 * `remediation` hint; transient ones extend `TransientCondition`, permanent ones
 * `PermanentError` (@cairn/events).
 *
 * Pure: the SDK's exceptions are read by shape (`name`, `$metadata`), Node's network
 * errors by `code`, cockatiel's by its guards.
 */
import { PermanentCondition, TransientCondition } from "@cairn/events";
import { isBrokenCircuitError, isBulkheadRejectedError, isTaskCancelledError } from "@cairn/service";

export interface SqsCallContext {
  readonly operation?: string | undefined;
  readonly region?: string | undefined;
  readonly queue?: string | undefined;
}

interface Detail {
  readonly code: string;
  readonly message?: string | undefined;
  readonly cause?: unknown;
}

const where = (c: SqsCallContext) =>
  `SQS ${c.operation ?? "call"} on ${c.queue ?? "the queue"} in ${c.region ?? "an unknown region"}`;

export abstract class TransientSqsError extends TransientCondition {
  readonly code: string;
  protected constructor(message: string, remediation: string, d: Detail) {
    super(message, remediation, d.cause);
    this.code = d.code;
  }
}

export abstract class PermanentSqsError extends PermanentCondition {
  readonly code: string;
  protected constructor(message: string, remediation: string, d: Detail) {
    super(message, remediation, d.cause);
    this.code = d.code;
  }
}

export type SqsFailure = TransientSqsError | PermanentSqsError;

/** `RequestThrottled`, `ThrottlingException`, `KmsThrottled`, 429. */
export class SqsThrottled extends TransientSqsError {
  override readonly name = "SqsThrottled";
  readonly kind = "throttled";
  constructor(c: SqsCallContext, d: Detail) {
    super(
      `${where(c)} was throttled (${d.code})`,
      "SQS or its KMS key limits the request rate: retried with backoff",
      d,
    );
  }
}

/** 5xx, `InternalError`, `ServiceUnavailable`, or no answer (network). */
export class SqsUnavailable extends TransientSqsError {
  override readonly name = "SqsUnavailable";
  readonly kind = "unavailable";
  constructor(c: SqsCallContext, d: Detail) {
    super(
      `${where(c)} failed (${d.code})`,
      "SQS answered with a server error or could not be reached (AWS_ENDPOINT_URL_SQS, proxies, DNS): retried with backoff",
      d,
    );
  }
}

/** A try ran out of time. */
export class SqsTimeout extends TransientSqsError {
  override readonly name = "SqsTimeout";
  readonly kind = "timeout";
  constructor(c: SqsCallContext, d: Detail) {
    super(`${where(c)} did not answer in time`, "SQS or the network is slow: retried with backoff", d);
  }
}

/** The call was cancelled from outside (the intake stopped or lost its lease): not retried, not counted. */
export class SqsCancelled extends TransientSqsError {
  override readonly name = "SqsCancelled";
  readonly kind = "cancelled";
  readonly retryCall = false;
  constructor(c: SqsCallContext, d: Detail) {
    super(
      `${where(c)} was cancelled`,
      "nothing to do: the intake stopped; the message comes back after its visibility timeout",
      d,
    );
  }
}

/** SQS's breaker for the region is open: the call was not sent. */
export class SqsBreakerOpen extends TransientSqsError {
  override readonly name = "SqsBreakerOpen";
  readonly kind = "breaker-open";
  constructor(c: SqsCallContext, d: Detail) {
    super(
      `${where(c)} was not sent: the circuit breaker for SQS in ${c.region ?? "the region"} is open`,
      "SQS failed repeatedly; calls fail fast until a trial call succeeds (30 s): see docs/runbooks.md, A breaker is open",
      d,
    );
  }
}

/** Too many SQS calls in flight and queued in the region. */
export class SqsBulkheadFull extends TransientSqsError {
  override readonly name = "SqsBulkheadFull";
  readonly kind = "bulkhead-full";
  constructor(c: SqsCallContext, d: Detail) {
    super(`${where(c)} was not sent: too many SQS calls are in flight`, "retried later", d);
  }
}

/** `QueueDoesNotExist`: the spot interruption queue is not there (looked for again at the next poll). */
export class SqsQueueMissing extends PermanentSqsError {
  override readonly name = "SqsQueueMissing";
  readonly kind = "queue-missing";
  constructor(c: SqsCallContext, d: Detail) {
    super(
      `${where(c)}: the queue does not exist`,
      `create the queue ${c.queue ?? ""} in ${c.region ?? "the region"} with the EventBridge rule that feeds it (EC2 Spot Instance Interruption Warning): docs/node-ops.md`,
      d,
    );
  }
}

/** `AccessDenied`: the credentials may not use the queue. */
export class SqsAccessDenied extends PermanentSqsError {
  override readonly name = "SqsAccessDenied";
  readonly kind = "access-denied";
  constructor(c: SqsCallContext, d: Detail) {
    super(
      `${where(c)} was refused (${d.code})`,
      "grant node-ops sqs:GetQueueUrl, sqs:ReceiveMessage and sqs:DeleteMessage on the queue (and kms:Decrypt on its key)",
      d,
    );
  }
}

/** `ReceiptHandleIsInvalid`: the message was received again elsewhere, or its receipt expired. */
export class SqsReceiptInvalid extends PermanentSqsError {
  override readonly name = "SqsReceiptInvalid";
  readonly kind = "receipt-invalid";
  constructor(c: SqsCallContext, d: Detail) {
    super(
      `${where(c)}: the receipt handle is no longer valid`,
      "nothing to do: the message comes back and is taken again (recording it is idempotent)",
      d,
    );
  }
}

/** Any other refusal. */
export class SqsRequestError extends PermanentSqsError {
  override readonly name = "SqsRequestError";
  readonly kind = "invalid-request";
  constructor(c: SqsCallContext, d: Detail) {
    super(
      `SQS refused ${where(c)} (${d.code})`,
      `fix what ${d.code} names; if the settings are right, it is a bug: report it`,
      d,
    );
  }
}

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
const THROTTLED = new Set([
  "RequestThrottled",
  "ThrottlingException",
  "Throttling",
  "KmsThrottled",
  "OverLimit",
]);
const SERVER = new Set(["InternalError", "InternalFailure", "ServiceUnavailable"]);
const MISSING = new Set(["QueueDoesNotExist", "AWS.SimpleQueueService.NonExistentQueue"]);
const DENIED = new Set([
  "AccessDenied",
  "AccessDeniedException",
  "UnrecognizedClientException",
  "InvalidClientTokenId",
]);
const RECEIPT = new Set(["ReceiptHandleIsInvalid", "InvalidReceiptHandle"]);

/** Anything an SQS call threw as one of the classes above (an SqsFailure as it is). Never throws. */
export function classifySqsError(err: unknown, c: SqsCallContext = {}): SqsFailure {
  if (err instanceof TransientSqsError || err instanceof PermanentSqsError) return err;
  const e = (typeof err === "object" && err !== null ? err : {}) as {
    name?: unknown;
    code?: unknown;
    message?: unknown;
    $metadata?: { httpStatusCode?: unknown };
  };
  const name = typeof e.name === "string" ? e.name : "Error";
  const message = typeof e.message === "string" ? e.message : undefined;
  if (isTaskCancelledError(err) || name === "TimeoutError" || name === "AbortError")
    return new SqsTimeout(c, { code: name, message, cause: err });
  if (isBrokenCircuitError(err)) return new SqsBreakerOpen(c, { code: "BreakerOpen", cause: err });
  if (isBulkheadRejectedError(err)) return new SqsBulkheadFull(c, { code: "BulkheadFull", cause: err });
  if (typeof e.code === "string" && NETWORK_CODES.has(e.code))
    return new SqsUnavailable(c, { code: e.code, message, cause: err });
  const status = typeof e.$metadata?.httpStatusCode === "number" ? e.$metadata.httpStatusCode : undefined;
  const d = { code: name, message, cause: err };
  if (THROTTLED.has(name) || status === 429) return new SqsThrottled(c, d);
  if (MISSING.has(name)) return new SqsQueueMissing(c, d);
  if (DENIED.has(name) || status === 403) return new SqsAccessDenied(c, d);
  if (RECEIPT.has(name)) return new SqsReceiptInvalid(c, d);
  if (SERVER.has(name) || (status !== undefined && status >= 500)) return new SqsUnavailable(c, d);
  return new SqsRequestError(c, d);
}
