/**
 * Structured JSON logs (pino) that join up with traces and never carry secrets.
 *
 * Every line carries `service`, and `trace_id`/`span_id` of the OpenTelemetry span active when the
 * line was written (omitted when no span is active). Secrets are removed twice:
 *  - by key: any property named in {@link REDACTED_KEYS} (pino `redact`, wildcard paths down to
 *    {@link REDACT_DEPTH} levels, then a second pass on the serialised line for string values at
 *    any depth);
 *  - by shape: K3s join tokens (`K10<hex>::…`), bearer tokens (`Bearer …`) and PEM blocks
 *    (`-----BEGIN …`) anywhere in the line, including the message and error stacks.
 * The shape pass runs on the serialised line (pino `hooks.streamWrite`) rather than in
 * `formatters.log`, because `formatters.log` never sees the message nor the serialised error.
 */
import { hostname } from "node:os";
import { isSpanContextValid, trace } from "@opentelemetry/api";
import { type DestinationStream, type Logger, type LoggerOptions, pino } from "pino";
import type { LogLevel } from "./config.ts";
import { LogKeys } from "./log-keys.ts";

export type { Logger } from "pino";
export { LogKeys } from "./log-keys.ts";

/** Property names whose values are always replaced by {@link CENSOR}, at any depth. */
export const REDACTED_KEYS = [
  "token",
  "password",
  "secret",
  "kubeconfig",
  "authorization",
  "Authorization",
  "joinToken",
  "k3sToken",
  "apiToken",
  "privateKey",
] as const;

/** What a redacted value becomes. */
export const CENSOR = "[redacted]";

/** How many object levels the pino `redact` paths reach (0 = top level). Deeper: see the line pass. */
export const REDACT_DEPTH = 5;

const redactPaths: string[] = REDACTED_KEYS.flatMap((key) =>
  Array.from({ length: REDACT_DEPTH + 1 }, (_, depth) => `${"*.".repeat(depth)}${key}`),
);

// The patterns run on a JSON line, so they stop at `"` and `\` (the start of an escape) and can
// never swallow the quote that ends a JSON string: the line stays valid JSON.
const K3S_TOKEN = /K10[0-9a-fA-F]+::[^"\\\s]*/g;
const BEARER = /\bBearer\s+[A-Za-z0-9\-._~+/]+=*/g;
const PEM = /-----BEGIN [A-Z0-9 ]+-----(?:[^"\\]|\\.)*?(?:-----END [A-Z0-9 ]+-----|(?="))/g;
const SECRET_KEY_VALUE = new RegExp(`"(${REDACTED_KEYS.join("|")})":"(?:[^"\\\\]|\\\\.)*"`, "g");

/**
 * Replaces secret-shaped substrings (K3s tokens, bearer tokens, PEM blocks) with {@link CENSOR}.
 * Pure; safe on plain text and on a JSON line (keeps it valid JSON). Never throws.
 * @example scrubSecrets("join with K10abc::server:s3cr3t") // "join with [redacted]"
 */
export function scrubSecrets(text: string): string {
  let out = text;
  // Cheap guards first: almost no line contains any of these.
  if (out.includes("K10")) out = out.replace(K3S_TOKEN, CENSOR);
  if (out.includes("Bearer")) out = out.replace(BEARER, `Bearer ${CENSOR}`);
  if (out.includes("-----BEGIN")) out = out.replace(PEM, CENSOR);
  return out;
}

function scrubLine(line: string): string {
  return scrubSecrets(line).replace(SECRET_KEY_VALUE, `"$1":"${CENSOR}"`);
}

/** The active span's ids, or nothing when no (valid) span is active. Never throws. */
export function traceFields(): Record<string, string> {
  const ctx = trace.getActiveSpan()?.spanContext();
  if (!ctx || !isSpanContextValid(ctx)) return {};
  return { [LogKeys.traceId]: ctx.traceId, [LogKeys.spanId]: ctx.spanId };
}

export interface CreateLoggerOptions {
  /** Service name, written on every line as `service`. */
  service: string;
  level?: LogLevel;
  /** Where lines go; stdout when omitted. Tests pass a capturing stream. */
  destination?: DestinationStream;
}

/**
 * Creates the process logger.
 * @example
 * const log = createLogger({ service: "provisioner", level: config.LOG_LEVEL });
 * log.info({ [LogKeys.aggregateId]: "demo-1" }, "cluster requested");
 */
export function createLogger(opts: CreateLoggerOptions): Logger {
  const options: LoggerOptions = {
    level: opts.level ?? "info",
    base: { [LogKeys.service]: opts.service, pid: process.pid, hostname: hostname() },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
    mixin: traceFields,
    redact: { paths: redactPaths, censor: CENSOR },
    hooks: { streamWrite: scrubLine },
  };
  return opts.destination ? pino(options, opts.destination) : pino(options);
}
