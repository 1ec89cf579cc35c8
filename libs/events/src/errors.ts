/**
 * One error vocabulary for all of Cairn (nats.js's shape: one class per condition,
 * `name` set, `cause` chained, `isXxx(err)` helpers).
 *
 * Every failure Cairn understands is a `CairnError`: it says whether retrying can help
 * (`failure: "transient" | "permanent"`) and what a person should do about it
 * (`remediation`). Adapters classify at the boundary with one subclass per condition
 * (`Ec2Throttled extends TransientError`, `SsmInvalidDocument extends PermanentError`, …);
 * the runtime, the logs and the events read only this base, never an adapter's type.
 *
 * A wait is not a failure: `RetryLaterError` says "the work is not done yet, look again
 * in `delayMs`" and never counts towards a dead letter.
 */

/** Whether retrying the same work can help. */
export type FailureClass = "transient" | "permanent";

/** The base of every classified failure: its class and a remediation hint for a person. */
export abstract class CairnError extends Error {
  abstract readonly failure: FailureClass;
  readonly remediation: string | undefined;
  constructor(message: string, options?: ErrorOptions & { remediation?: string | undefined }) {
    super(message, options?.cause !== undefined ? { cause: options.cause } : undefined);
    this.remediation = options?.remediation;
  }
}

/** A failure that will not go away by retrying the same message: settled at once. */
export class PermanentError extends CairnError {
  override readonly name: string = "PermanentError";
  readonly failure = "permanent" as const;
}

/** A failure that may go away: the message is retried with backoff, within the failure budget. */
export class TransientError extends CairnError {
  override readonly name: string = "TransientError";
  readonly failure = "transient" as const;
}

/**
 * The base of an adapter's classified conditions (`Ec2Throttled`, `SsmNotManaged`, …):
 * its remediation is always known, and `transient` says the class as a literal, so a
 * union of an adapter's conditions narrows on it.
 */
export abstract class TransientCondition extends TransientError {
  readonly transient = true as const;
  override readonly remediation: string;
  protected constructor(message: string, remediation: string, cause?: unknown) {
    super(message, { cause, remediation });
    this.remediation = remediation;
  }
}

/** As `TransientCondition`, for conditions that retrying cannot cure. */
export abstract class PermanentCondition extends PermanentError {
  readonly transient = false as const;
  override readonly remediation: string;
  protected constructor(message: string, remediation: string, cause?: unknown) {
    super(message, { cause, remediation });
    this.remediation = remediation;
  }
}

/** Another writer appended to the aggregate first: reload and decide again. */
export class ConcurrencyConflictError extends TransientError {
  override readonly name = "ConcurrencyConflictError";
  readonly subject: string;
  readonly expectedSequence: number;
  constructor(subject: string, expectedSequence: number, options?: ErrorOptions) {
    super(`${subject} moved past sequence ${expectedSequence}: another writer appended first`, options);
    this.subject = subject;
    this.expectedSequence = expectedSequence;
  }
}

/** A command kept conflicting with other writers past its retry budget. */
export class ConflictRetriesExhaustedError extends TransientError {
  override readonly name = "ConflictRetriesExhaustedError";
}

/**
 * Not a failure: the work is not done yet (an instance still booting). The runtime
 * hands the message back for redelivery after `delayMs`, so JetStream is the timer
 * and nothing blocks; waits never count towards a dead letter.
 */
export class RetryLaterError extends Error {
  override readonly name = "RetryLaterError";
  readonly delayMs: number;
  constructor(delayMs: number, reason: string) {
    // No stack: a wait is not a fault, and nothing reads where it was thrown (the runtime
    // takes its delay and reason). Each booting instance's event throws one per look, and
    // capturing the stack (the async frames included) was ~5 µs each: 23 % of the
    // provisioner's CPU while a 500-node cluster boots (docs/benchmarks.md, prov500h).
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    try {
      super(reason);
    } finally {
      Error.stackTraceLimit = limit;
    }
    this.delayMs = Math.max(0, Math.round(delayMs));
  }
}

export function isCairnError(err: unknown): err is CairnError {
  return err instanceof CairnError;
}

export function isConcurrencyConflict(err: unknown): err is ConcurrencyConflictError {
  return err instanceof ConcurrencyConflictError;
}

export function isRetryLater(err: unknown): err is RetryLaterError {
  return err instanceof RetryLaterError;
}

/** A message that cannot be read as what it claims (`SchemaError`) is permanent too. */
export function isPermanent(err: unknown): boolean {
  return (
    (err instanceof CairnError && err.failure === "permanent") ||
    (err instanceof Error && err.name === "SchemaError")
  );
}

/** A failure that may go away: a transient `CairnError`, or anything unclassified (a bug, a broken socket). */
export function isTransient(err: unknown): boolean {
  return !isPermanent(err) && !isRetryLater(err);
}

/** How the runtime settles one outcome: done, come back later, retry with backoff, or give up. */
export type Settlement =
  | { readonly kind: "done" }
  | { readonly kind: "wait"; readonly delayMs: number; readonly reason: string }
  | { readonly kind: "transient"; readonly error: unknown }
  | { readonly kind: "permanent"; readonly error: unknown };

/** Classifies one thrown value (or none). */
export function settlementOf(err?: unknown): Settlement {
  if (err === undefined) return { kind: "done" };
  if (isRetryLater(err)) return { kind: "wait", delayMs: err.delayMs, reason: err.message };
  return isPermanent(err) ? { kind: "permanent", error: err } : { kind: "transient", error: err };
}

/**
 * The one rule for settling work made of parts (the events of one commit): a real
 * failure wins over a wait (a permanent one over a transient one), so a wait can never
 * hide a failure from the failure budget; several waits come back at the soonest.
 *
 * @example combineSettlements([wait(5s), transient(e)]) // transient(e)
 */
export function combineSettlements(parts: readonly Settlement[]): Settlement {
  const permanent = parts.find((p) => p.kind === "permanent");
  if (permanent) return permanent;
  const transient = parts.find((p) => p.kind === "transient");
  if (transient) return transient;
  const waits = parts.filter((p): p is Extract<Settlement, { kind: "wait" }> => p.kind === "wait");
  if (waits.length === 0) return { kind: "done" };
  return waits.reduce((a, b) => (b.delayMs < a.delayMs ? b : a));
}

/** The remediation hint of the error or of the first error in its cause chain that has one. */
export function remediationOf(err: unknown): string | undefined {
  let e: unknown = err;
  for (let depth = 0; e && depth < 5; depth++) {
    if (e instanceof CairnError && e.remediation) return e.remediation;
    e = e instanceof Error ? e.cause : undefined;
  }
  return undefined;
}

/** One line for logs and dead letters: the error, its causes, its hint. */
export function describeError(err: unknown): string {
  const parts: string[] = [];
  let e: unknown = err;
  for (let depth = 0; e && depth < 5; depth++) {
    if (e instanceof Error) {
      parts.push(`${e.name}: ${e.message}`);
      e = e.cause;
    } else {
      parts.push(String(e));
      break;
    }
  }
  const hint = remediationOf(err);
  return hint ? `${parts.join(" <- ")} (fix: ${hint})` : parts.join(" <- ");
}
