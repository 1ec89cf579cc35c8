/**
 * The CLI's failures, one class per condition, each with what a person reads: a one-line
 * message, the details under it, and a hint at what to do. `describeFailure` turns any
 * error (these, the API's answers, a bug) into those lines: never a stack trace.
 */
import { ApiError, ApiUnreachableError } from "./api-client.ts";

interface Hinted {
  readonly hint?: string | undefined;
}

/** Input refused before anything was sent: a flag, an argument, a file. */
export class InvalidInputError extends Error {
  override readonly name = "InvalidInputError";
  readonly issues: readonly string[];
  readonly hint: string | undefined;
  constructor(message: string, issues: readonly string[] = [], o: Hinted = {}) {
    super(message);
    this.issues = issues;
    this.hint = o.hint;
  }
}

/** The API does not know the thing (404), or the caller may not see it. */
export class NotFoundError extends Error {
  override readonly name = "NotFoundError";
  readonly hint: string | undefined;
  constructor(kind: string, id: string, o: Hinted = {}) {
    super(`${kind} ${JSON.stringify(id)} not found`);
    this.hint = o.hint;
  }
}

/** What was asked was refused or ended badly: a rejected command, a Failed session. */
export class OutcomeError extends Error {
  override readonly name = "OutcomeError";
  readonly hint: string | undefined;
  constructor(message: string, o: Hinted = {}) {
    super(message);
    this.hint = o.hint;
  }
}

/** `--wait` ran out of time before the outcome was known. */
export class WaitTimeoutError extends Error {
  override readonly name = "WaitTimeoutError";
  readonly hint: string | undefined;
  constructor(message: string, o: Hinted = {}) {
    super(message);
    this.hint = o.hint;
  }
}

/**
 * A 404 of the API as a NotFoundError for `kind`/`id`; any other error as it is.
 * @example await api.get(`/sessions/${id}`).catch(notFoundAs("session", id))
 */
export const notFoundAs =
  (kind: string, id: string, o: Hinted = {}) =>
  (err: unknown): never => {
    if (err instanceof ApiError && err.status === 404) throw new NotFoundError(kind, id, o);
    throw err;
  };

/** The lines that tell a person what went wrong: message, details, hint. Never throws. */
export function describeFailure(err: unknown): string[] {
  if (err instanceof InvalidInputError)
    return [err.message, ...err.issues.map((i) => `  ${i}`), ...hintLines(err.hint)];
  if (err instanceof ApiUnreachableError) {
    const cause = (err.cause as { cause?: { code?: string } } | undefined)?.cause?.code;
    return [`${err.message}${cause ? ` (${cause})` : ""}`, ...hintLines(err.hint)];
  }
  if (err instanceof ApiError) return [err.message, ...hintLines(apiHint(err))];
  if (err instanceof NotFoundError || err instanceof OutcomeError || err instanceof WaitTimeoutError)
    return [err.message, ...hintLines(err.hint)];
  if (err instanceof Error) return [err.message || err.name];
  return [String(err)];
}

const hintLines = (hint: string | undefined) => (hint ? [`hint: ${hint}`] : []);

function apiHint(err: ApiError): string | undefined {
  switch (err.status) {
    case 401:
      return "give a token with --token, CAIRN_TOKEN or the config file (`cairn token create` makes one)";
    case 403:
      return err.code === "over-quota"
        ? QUOTA_HINT
        : "this token's role may not do that: ask an admin for an operator or admin token";
    case 429:
      return "the API is rate limited: wait a moment and retry";
    default:
      return undefined;
  }
}

export const QUOTA_HINT =
  "free a slot (`cairn session list` then `cairn session terminate <id>`), or ask an operator to raise the quota (CAIRN_QUOTAS_FILE)";
