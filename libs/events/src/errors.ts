/**
 * One error class per condition, each with `name`, a chained `cause`, and where it
 * helps a remediation hint. The boundary classifies: transient errors are retried
 * (nak with backoff), permanent ones are settled (rejection event or dead letter).
 */

/** Another writer appended to the aggregate first: reload and decide again. */
export class ConcurrencyConflictError extends Error {
  override readonly name = "ConcurrencyConflictError";
  readonly subject: string;
  readonly expectedSequence: number;
  constructor(subject: string, expectedSequence: number, options?: ErrorOptions) {
    super(`${subject} moved past sequence ${expectedSequence}: another writer appended first`, options);
    this.subject = subject;
    this.expectedSequence = expectedSequence;
  }
}

/** A failure that will not go away by retrying the same message. */
export class PermanentError extends Error {
  override readonly name: string = "PermanentError";
  readonly remediation: string | undefined;
  constructor(message: string, options?: ErrorOptions & { remediation?: string }) {
    super(message, options);
    this.remediation = options?.remediation;
  }
}

/** A failure that may go away: the message is retried with backoff. */
export class TransientError extends Error {
  override readonly name: string = "TransientError";
  readonly remediation: string | undefined;
  constructor(message: string, options?: ErrorOptions & { remediation?: string }) {
    super(message, options);
    this.remediation = options?.remediation;
  }
}

/** A command kept conflicting with other writers past its retry budget. */
export class ConflictRetriesExhaustedError extends TransientError {
  override readonly name = "ConflictRetriesExhaustedError";
}

export function isConcurrencyConflict(err: unknown): err is ConcurrencyConflictError {
  return err instanceof ConcurrencyConflictError;
}

export function isPermanent(err: unknown): boolean {
  return err instanceof PermanentError || (err instanceof Error && err.name === "SchemaError");
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
  const hint = err instanceof PermanentError || err instanceof TransientError ? err.remediation : undefined;
  return hint ? `${parts.join(" <- ")} (fix: ${hint})` : parts.join(" <- ");
}

/**
 * Not a failure: the work is not done yet (an instance still booting). The runner
 * hands the message back for redelivery after `delayMs`, so JetStream is the timer
 * and nothing blocks; it never dead-letters for this.
 */
export class RetryLaterError extends Error {
  override readonly name = "RetryLaterError";
  readonly delayMs: number;
  constructor(delayMs: number, reason: string) {
    super(reason);
    this.delayMs = delayMs;
  }
}

export function isRetryLater(err: unknown): err is RetryLaterError {
  return err instanceof RetryLaterError;
}
