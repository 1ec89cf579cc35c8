/**
 * The AWS JSON 1.1 protocol as SSM speaks it: `X-Amz-Target: AmazonSSM.<Action>`, a JSON
 * body in, a JSON body out; errors as `{"__type": "<Code>", "Message": "…"}` with the
 * HTTP status the service uses. Timestamps are epoch seconds (numbers).
 */
import type { ServerResponse } from "node:http";

export const JSON_CONTENT_TYPE = "application/x-amz-json-1.1";

/**
 * An SSM error the SDK turns into its own exception class (`__type` → name). Some SSM
 * errors name their text member `message`, most `Message`; the body uses the one the
 * service model declares, so the SDK fills the member too.
 */
export class SsmError extends Error {
  readonly code: string;
  readonly status: number;

  constructor(code: string, message: string, status = 400) {
    super(message);
    this.name = "SsmError";
    this.code = code;
    this.status = status;
  }

  body(): Record<string, string> {
    return { __type: this.code, [LOWERCASE_MESSAGE.has(this.code) ? "message" : "Message"]: this.message };
  }
}

/** SSM errors whose model member is `message` (the rest use `Message`). */
const LOWERCASE_MESSAGE = new Set([
  "ParameterNotFound",
  "ParameterAlreadyExists",
  "ParameterLimitExceeded",
  "ParameterMaxVersionLimitExceeded",
  "ParameterVersionNotFound",
  "ParameterPatternMismatchException",
  "HierarchyTypeMismatchException",
  "HierarchyLevelLimitExceededException",
  "UnsupportedParameterType",
  "InvalidKeyId",
  "InvalidAllowedPatternException",
  "InvalidInstanceInformationFilterValue",
]);

export function send(res: ServerResponse, status: number, body: unknown, requestId: string): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": JSON_CONTENT_TYPE,
    "content-length": Buffer.byteLength(text),
    "x-amzn-requestid": requestId,
  });
  res.end(text);
}

/** Epoch seconds, as JSON 1.1 timestamps are. */
export function epochSeconds(ms: number): number {
  return ms / 1000;
}

/** A validation failure worded as AWS words them. */
export function validation(message: string): SsmError {
  return new SsmError("ValidationException", message);
}

/** Opaque pagination tokens (an offset, base64url-encoded with a marker). */
export function encodeToken(offset: number): string {
  return Buffer.from(`sim-ssm:${offset}`).toString("base64url");
}

export function decodeToken(token: string | undefined): number {
  if (token === undefined || token === "") return 0;
  const m = /^sim-ssm:(\d+)$/.exec(Buffer.from(token, "base64url").toString("utf8"));
  if (!m) throw new SsmError("InvalidNextToken", "The specified token isn't valid.");
  return Number(m[1]);
}

/** MaxResults within [1, max], `def` when absent. */
export function maxResults(value: unknown, def: number, max: number): number {
  if (value === undefined || value === null) return def;
  if (typeof value !== "number" || !Number.isInteger(value) || value < 1 || value > max) {
    throw validation(
      `1 validation error detected: Value '${String(value)}' at 'maxResults' failed to satisfy constraint: Member must have value between 1 and ${max}`,
    );
  }
  return value;
}

/** One page of `items` from the token's offset. */
export function page<T>(
  items: readonly T[],
  token: string | undefined,
  size: number,
): { items: T[]; next?: string } {
  const offset = decodeToken(token);
  if (offset > items.length) throw new SsmError("InvalidNextToken", "The specified token isn't valid.");
  const slice = items.slice(offset, offset + size);
  return offset + size < items.length ? { items: slice, next: encodeToken(offset + size) } : { items: slice };
}

/** Reads a string member; undefined when absent; ValidationException when not a string. */
export function optString(input: Record<string, unknown>, key: string): string | undefined {
  const v = input[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "string") throw validation(`${key} must be a string`);
  return v;
}

export function reqString(input: Record<string, unknown>, key: string): string {
  const v = optString(input, key);
  if (v === undefined || v === "") {
    throw validation(
      `1 validation error detected: Value null at '${key[0]!.toLowerCase()}${key.slice(1)}' failed to satisfy constraint: Member must not be null`,
    );
  }
  return v;
}

export function optBool(input: Record<string, unknown>, key: string): boolean | undefined {
  const v = input[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "boolean") throw validation(`${key} must be a boolean`);
  return v;
}

export function optStringList(input: Record<string, unknown>, key: string): string[] | undefined {
  const v = input[key];
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v) || !v.every((x) => typeof x === "string"))
    throw validation(`${key} must be a list of strings`);
  return v as string[];
}
