/**
 * Environment configuration: every service reads its settings from env vars once, at start,
 * through a zod object schema, and refuses to start with a message that names each bad variable.
 */
import { z } from "zod";

/** The environment as Node gives it (`process.env`) or as a test builds it. */
export type Env = Readonly<Record<string, string | undefined>>;

/** One bad variable: its name and why it was refused (never its value: values may be secrets). */
export interface ConfigIssue {
  readonly variable: string;
  readonly reason: string;
}

/**
 * The environment does not satisfy the schema. `message` lists one `NAME: reason` line per bad
 * variable; `issues` holds the same as data; `cause` is the underlying `ZodError`.
 */
export class ConfigError extends Error {
  override readonly name = "ConfigError";
  readonly issues: readonly ConfigIssue[];

  constructor(issues: readonly ConfigIssue[], options?: ErrorOptions) {
    super(`invalid configuration:\n${issues.map((i) => `  ${i.variable}: ${i.reason}`).join("\n")}`, options);
    this.issues = issues;
  }
}

const LOG_LEVELS = ["trace", "debug", "info", "warn", "error", "fatal"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/**
 * Building blocks for env var schemas, with messages a human can act on. Services use them when
 * they extend {@link baseConfig}, so every port or URL is checked and explained the same way.
 */
export const envVars = {
  /** A TCP port, 1–65535. */
  port: () => {
    const msg = "must be a number between 1 and 65535";
    return z.coerce.number(msg).int(msg).min(1, msg).max(65535, msg);
  },
  /** An http(s) URL. */
  url: () => z.url({ protocol: /^https?$/, error: "must be an http(s) URL, e.g. http://localhost:4318" }),
  /** A number > 0. */
  positiveNumber: () => {
    const msg = "must be a positive number";
    return z.coerce.number(msg).positive(msg);
  },
  /** A non-empty string. */
  string: () => z.string().min(1, "must not be empty"),
  /** A pino log level. */
  logLevel: () => z.enum(LOG_LEVELS, `must be one of ${LOG_LEVELS.join(", ")}`),
} as const;

/**
 * The env vars every Cairn process understands. Services extend it with their own:
 * @example
 * const schema = baseConfig.extend({ CAIRN_SWEEP_EVERY_MS: envVars.positiveNumber().default(5_000) });
 * const config = loadConfig(schema);
 */
export const baseConfig = z.object({
  /**
   * NATS server(s), e.g. `nats://127.0.0.1:4222` (comma-separated for a cluster). A user and
   * password may be written in it (`nats://provisioner:…@nats-1:4222`); they are never logged.
   */
  NATS_URL: envVars.string().optional(),
  /** The service's own NATS user (deploy/nats/nats.conf), with NATS_PASSWORD. */
  NATS_USER: envVars.string().optional(),
  NATS_PASSWORD: envVars.string().optional(),
  /** A NATS creds file (user JWT and nkey seed), for NATS in operator mode; instead of a user. */
  NATS_CREDS: envVars.string().optional(),
  /** TLS to NATS: the CA's PEM file (TLS on, servers verified); a client cert and key (both or neither). */
  NATS_CA: envVars.string().optional(),
  NATS_CERT: envVars.string().optional(),
  NATS_KEY: envVars.string().optional(),
  /**
   * Replicas of the streams and buckets Cairn expects: 1 on one server, 3 on a three-node
   * cluster (what deploy/nats/bootstrap.ts made), so a start checks them without drift warnings.
   */
  CAIRN_NATS_REPLICAS: z.coerce.number("must be 1, 3 or 5").int("must be 1, 3 or 5").min(1).max(5).default(1),
  /** Postgres connection string (projector only). */
  DATABASE_URL: envVars.string().optional(),
  CAIRN_API_PORT: envVars.port().default(8080),
  /** Where local state lives (nats store, embedded Postgres, tokens). */
  CAIRN_DATA_DIR: envVars.string().default(".cairn"),
  /** OTLP/HTTP collector base URL; spans go to `<url>/v1/traces`. Unset: spans are not exported. */
  OTEL_EXPORTER_OTLP_ENDPOINT: envVars.url().optional(),
  /** Milliseconds finished spans wait before they are exported in a batch (the OTel SDK's variable; default 5000). */
  OTEL_BSP_SCHEDULE_DELAY: envVars.positiveNumber().optional(),
  /** Where a human can look at traces; only used to print links. */
  JAEGER_UI_URL: envVars.url().optional(),
  LOG_LEVEL: envVars.logLevel().default("info"),
  /** Port of the AWS simulator. */
  CAIRN_SIM_PORT: envVars.port().default(4566),
  /** Simulated time runs this many times faster than wall time. */
  CAIRN_SIM_TIME_SCALE: envVars.positiveNumber().default(1),
  /** File holding API tokens. */
  CAIRN_TOKENS_FILE: envVars.string().optional(),
});

export type BaseConfig = z.output<typeof baseConfig>;

/**
 * Parses `env` with `schema` and returns the typed config. An empty string counts as unset (so a
 * blank line in an env file takes the default instead of failing). Unknown variables are ignored.
 * Throws {@link ConfigError} naming every bad variable; never echoes values.
 * @example
 * const config = loadConfig(baseConfig); // config.CAIRN_API_PORT: number
 */
export function loadConfig<S extends z.ZodObject>(schema: S, env: Env = process.env): z.output<S> {
  const input: Record<string, string> = {};
  for (const [key, value] of Object.entries(env)) {
    if (value !== undefined && value !== "") input[key] = value;
  }
  const result = schema.safeParse(input);
  if (result.success) return result.data;

  const issues: ConfigIssue[] = [];
  const seen = new Set<string>();
  for (const issue of result.error.issues) {
    const variable = issue.path.map(String).join(".") || "(environment)";
    // One line per variable: the first reason is the one to fix first.
    if (seen.has(variable)) continue;
    seen.add(variable);
    const missing = issue.code === "invalid_type" && issue.path.length === 1 && !(variable in input);
    issues.push({ variable, reason: missing ? "is required" : issue.message });
  }
  throw new ConfigError(issues, { cause: result.error });
}
