/**
 * The production shape, as data: which processes run, as which NATS user, with which environment.
 * `npm run stack` (stack.ts), the e2e harness's production stack (test/harness/stack.ts),
 * deploy/compose.yaml and deploy/kubernetes all give a service the variables
 * {@link serviceEnv} names; test/deploy-manifests.unit.spec.ts holds the four to it.
 * Pure, except {@link newNatsPasswords} (randomness).
 */
import { randomBytes } from "node:crypto";
import { resolve } from "node:path";

/** Every service, in start order. Each runs as the NATS user of its own name (deploy/nats/nats.conf). */
export const STACK_SERVICES = ["provisioner", "installer", "idle-detector", "node-ops", "projector"] as const;
export type StackService = (typeof STACK_SERVICES)[number];

/** The users of deploy/nats/nats.conf: `admin` (bootstrap, operators, the CLI) and one per service. */
export const NATS_USERS = ["admin", ...STACK_SERVICES] as const;
export type NatsUser = (typeof NATS_USERS)[number];

/** The config every NATS node loads. */
export const NATS_CONFIG_FILE = resolve(import.meta.dirname, "../../../deploy/nats/nats.conf");

/** Processes per service and servers in the NATS cluster when nothing says otherwise. */
export const STACK_DEFAULTS = { replicas: 2, natsNodes: 3 } as const;

/** The variable nats-server reads a user's password from (`CAIRN_NATS_NODE_OPS_PASSWORD`). */
export function natsPasswordVariable(user: NatsUser): string {
  return `CAIRN_NATS_${user.toUpperCase().replaceAll("-", "_")}_PASSWORD`;
}

/**
 * A password per user, as deploy/README.md says to make them (nats-server reads each as a config
 * value: a letter first, then letters and digits). A user whose variable is set in `env` keeps it.
 */
export function newNatsPasswords(env: NodeJS.ProcessEnv = {}): Record<NatsUser, string> {
  const out = {} as Record<NatsUser, string>;
  for (const user of NATS_USERS)
    out[user] = env[natsPasswordVariable(user)] || `cairn${randomBytes(24).toString("hex")}`;
  return out;
}

/** The password variables nats-server needs, for its environment. */
export function natsServerEnv(passwords: Record<NatsUser, string>): Record<string, string> {
  return Object.fromEntries(NATS_USERS.map((u) => [natsPasswordVariable(u), passwords[u]]));
}

/** What a service process needs to know about where it runs. */
export interface ServiceEnvContext {
  /** Every NATS server, comma-separated. */
  readonly natsUrl: string;
  /** The service's own NATS password (its user is its name). */
  readonly natsPassword: string;
  /** Replicas of the streams (3 on a three-node cluster). */
  readonly natsReplicas: number;
  readonly healthPort: number;
  readonly healthHost: string;
  readonly logLevel: string;
  readonly dataDir: string;
  /** The projector's Postgres. */
  readonly databaseUrl: string;
  readonly apiPort: number;
  readonly apiHost: string;
  /** Given in a deployment (Jaeger); absent on a machine without one. */
  readonly otlpEndpoint?: string;
  readonly jaegerUiUrl?: string;
}

/**
 * Node's flags for every service process in the production shape (deploy/Dockerfile's
 * NODE_OPTIONS, `npm run stack`): 1 MB semi-spaces, not up to 16 MB — the young generation
 * only grew the RSS (docs/deploy.md, sizing).
 */
export const SERVICE_NODE_OPTIONS = "--max-semi-space-size=1";

/**
 * Node's flags for the sim's process, wherever it is started (`cairn up`, `npm run stack`,
 * the test harness): an old space of 64 MB from the start. A fresh sim's
 * heap is ~15 MB of start-up (its modules compiled) against V8's small initial old space,
 * so the first burst of work — a 500-node cluster's five RunInstances of 100 — met V8's
 * first full collection: 6–28 ms of mark-compact plus up to 37 ms of incremental marking on
 * the one thread that answers, so the calls that came meanwhile were dated later and their
 * instances booted later than the first call's (EC2 has no such pause). 64 MB is a start,
 * not a limit: the heap grows past it as any heap does. docs/sim-ec2.md ("A call is dated
 * when it came"), docs/benchmarks.md (prov500h).
 */
export const SIM_NODE_FLAGS: readonly string[] = ["--initial-old-space-size=64"];

/**
 * glibc malloc's settings for every service process, beside {@link SERVICE_NODE_OPTIONS}
 * (deploy/Dockerfile's ENV, `npm run stack`, `npm start`, the test harness; glibc reads them at
 * exec, so a process cannot set them for itself). A variable already set in the environment wins.
 * - `MALLOC_ARENA_MAX=2`: glibc gives each thread that allocates an arena of its own, up to 8 a
 *   core; a service's V8 workers (concurrent compilation and marking) and libuv's pool kept 6–7,
 *   holding 10–26 MB at 50 clusters, mostly free chunks no other thread reused.
 * - `MALLOC_MMAP_THRESHOLD_` and `MALLOC_TRIM_THRESHOLD_` at 128 KiB, glibc's own starting
 *   values, fixed: by default each free of a large block raises them (up to 32 MB), after which
 *   such blocks stay in the arenas instead of going back to the kernel.
 * Measured: node-ops' RSS peak at 50 clusters 133 MB against 147–156, the projector's 109–113
 * against 118–120 (docs/deploy.md, sizing; docs/benchmarks.md, load, "the per-process floor").
 */
export const SERVICE_MALLOC_ENV: Readonly<Record<string, string>> = {
  MALLOC_ARENA_MAX: "2",
  MALLOC_MMAP_THRESHOLD_: "131072",
  MALLOC_TRIM_THRESHOLD_: "131072",
};

/**
 * The environment of one process of `service`, exactly the variables a deployment gives it
 * (deploy/compose.yaml, deploy/kubernetes): NATS as its own user (`NATS_USER`/`NATS_PASSWORD`,
 * never in the URL), the streams' replica count, the health endpoint, logging and tracing, and
 * the projector's database and API.
 * @example serviceEnv("provisioner", ctx) // { NATS_URL, NATS_USER: "provisioner", NATS_PASSWORD, CAIRN_NATS_REPLICAS: "3", … }
 */
export function serviceEnv(service: StackService, ctx: ServiceEnvContext): Record<string, string> {
  return {
    NATS_URL: ctx.natsUrl,
    NATS_USER: service,
    NATS_PASSWORD: ctx.natsPassword,
    CAIRN_NATS_REPLICAS: String(ctx.natsReplicas),
    CAIRN_HEALTH_PORT: String(ctx.healthPort),
    CAIRN_HEALTH_HOST: ctx.healthHost,
    CAIRN_DATA_DIR: ctx.dataDir,
    LOG_LEVEL: ctx.logLevel,
    ...(ctx.otlpEndpoint ? { OTEL_EXPORTER_OTLP_ENDPOINT: ctx.otlpEndpoint } : {}),
    ...(ctx.jaegerUiUrl ? { JAEGER_UI_URL: ctx.jaegerUiUrl } : {}),
    ...(service === "projector"
      ? { DATABASE_URL: ctx.databaseUrl, CAIRN_API_PORT: String(ctx.apiPort), CAIRN_API_HOST: ctx.apiHost }
      : {}),
  };
}

/**
 * What a run on one machine adds and a deployment does not set: the simulated cloud's endpoints
 * and keys (a deployment reaches AWS with a role), and the simulator's own settings.
 */
export const LOCAL_ONLY_VARIABLES = [
  "AWS_ENDPOINT_URL_EC2",
  "AWS_ENDPOINT_URL_SSM",
  "AWS_ENDPOINT_URL_SQS",
  "AWS_ACCESS_KEY_ID",
  "AWS_SECRET_ACCESS_KEY",
  "AWS_REGION",
  "CAIRN_SIM_PORT",
  "CAIRN_SIM_TIME_SCALE",
  "CAIRN_API_RATE_LIMIT",
] as const;

/** The sim's endpoints and keys, as `cairn up` hands them over (cli/src/up.ts step 3). */
export function simEnv(
  simUrl: string,
  opts: { region?: string; timeScale?: number } = {},
): Record<string, string> {
  const port = new URL(simUrl).port;
  return {
    AWS_ENDPOINT_URL_EC2: simUrl,
    AWS_ENDPOINT_URL_SSM: simUrl,
    AWS_ENDPOINT_URL_SQS: simUrl,
    AWS_ACCESS_KEY_ID: "SIMACCESSKEY",
    AWS_SECRET_ACCESS_KEY: "simsecretkey",
    AWS_REGION: opts.region ?? "eu-west-1",
    CAIRN_SIM_PORT: port,
    ...(opts.timeScale !== undefined ? { CAIRN_SIM_TIME_SCALE: String(opts.timeScale) } : {}),
  };
}
