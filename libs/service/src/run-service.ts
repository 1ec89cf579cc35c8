import {
  connectNats,
  DEFAULT_NATS_URL,
  describeNatsAccess,
  ensureStreams,
  expectedStreams,
  type Nats,
  type NatsAccess,
  resolveNatsAccess,
} from "@cairn/events";
import { z } from "zod";
import { type BaseConfig, baseConfig, envVars, loadConfig } from "./config.ts";
import { applyHeapGrowing, DEFAULT_HEAP_GROWING_PERCENT } from "./heap.ts";
import { startHealthServer } from "./http.ts";
import { createLogger, type Logger } from "./logger.ts";
import { createShutdown, type Shutdown } from "./shutdown.ts";
import { tellSupervisorReady } from "./supervised.ts";
import { startTelemetry } from "./telemetry.ts";

/** The default NATS of a local run; `npm start` sets NATS_URL for the processes it spawns. */
export { DEFAULT_NATS_URL };

/** What every service's main gets: parsed config, a logger, NATS with the streams in place. */
export interface ServiceContext<C extends BaseConfig = BaseConfig> {
  readonly name: string;
  readonly config: C;
  readonly log: Logger;
  readonly nats: Nats;
  /**
   * Another connection as the same user, for traffic that wants its own (e.g. `noEcho`:
   * one that does not hear its own publishes). The caller closes it.
   */
  readonly connectNats: (o: { name: string; noEcho?: boolean }) => Promise<Nats>;
  readonly shutdown: Shutdown;
}

/** What a started service hands back: how to stop it and how it is doing. */
export interface StartedService {
  stop(): Promise<void>;
  /** Extra readiness checks (NATS is checked already). */
  checks?(): Promise<Record<string, string>>;
}

export const serviceConfig = baseConfig.extend({
  /** The service's /healthz /readyz /metrics port; 0 picks a free one (logged). */
  CAIRN_HEALTH_PORT: z.coerce.number("must be a port number").int().min(0).max(65535).default(0),
  CAIRN_HEALTH_HOST: envVars.string().default("127.0.0.1"),
  /**
   * V8 lets the heap grow to (1 + this/100) × what survived its last full collection before
   * the next one (heap.ts); 0: V8's own factor (up to 4× for a small heap). Default 20.
   */
  CAIRN_HEAP_GROWING_PERCENT: z.coerce
    .number("must be a whole number ≥ 0")
    .int("must be a whole number ≥ 0")
    .min(0, "must be a whole number ≥ 0")
    .default(DEFAULT_HEAP_GROWING_PERCENT),
});
export type ServiceConfig = z.output<typeof serviceConfig>;

/**
 * Boots a service the same way every time, as numbered steps:
 *  1. config from env (a clear error naming the bad variable);
 *  2. telemetry first, so every later span and log line has a trace;
 *  3. logger and shutdown (SIGINT/SIGTERM drain in reverse order);
 *  4. NATS as the service's own user (NATS_URL, NATS_USER/NATS_PASSWORD or NATS_CREDS; TLS with
 *     NATS_CA/NATS_CERT/NATS_KEY), reconnecting forever, and the streams at CAIRN_NATS_REPLICAS
 *     (drift is logged, not rewritten);
 *  5. the service itself;
 *  6. /healthz /readyz /metrics;
 *  7. ready: logged, and told to the supervisor when there is one (`cairn up`).
 * A start-up failure logs why and exits with 1.
 */
export async function runService<S extends z.ZodObject = typeof serviceConfig>(opts: {
  name: string;
  config?: S;
  start(ctx: ServiceContext<z.output<S> & ServiceConfig>): Promise<StartedService>;
}): Promise<void> {
  // 1.
  let config: z.output<S> & ServiceConfig;
  let natsAccess: NatsAccess;
  try {
    config = loadConfig(opts.config ?? serviceConfig) as z.output<S> & ServiceConfig;
    natsAccess = resolveNatsAccess(config);
    // Before anything has grown the heap.
    applyHeapGrowing(config.CAIRN_HEAP_GROWING_PERCENT);
  } catch (err) {
    process.stderr.write(`${opts.name}: ${(err as Error).message}\n`);
    process.exit(1);
  }
  // 2.
  const telemetry = startTelemetry({
    serviceName: opts.name,
    ...(config.OTEL_EXPORTER_OTLP_ENDPOINT ? { otlpEndpoint: config.OTEL_EXPORTER_OTLP_ENDPOINT } : {}),
    exportDelayMs: config.OTEL_BSP_SCHEDULE_DELAY,
  });
  // 3.
  const log = createLogger({ service: opts.name, level: config.LOG_LEVEL });
  const shutdown = createShutdown(log);
  shutdown.install();
  shutdown.onShutdown("telemetry", () => telemetry.shutdown());
  try {
    // 4.
    const nats = await connectNats(natsAccess, { name: opts.name });
    shutdown.onShutdown("nats", () => nats.close());
    const streams = await ensureStreams(nats.jsm, expectedStreams({ replicas: config.CAIRN_NATS_REPLICAS }));
    for (const d of streams.drift) log.warn(d, "stream differs from the expected config");
    // 5.
    const service = await opts.start({
      name: opts.name,
      config,
      log,
      nats,
      connectNats: (o) => connectNats(natsAccess, o),
      shutdown,
    });
    shutdown.onShutdown(opts.name, () => service.stop());
    // 6.
    const health = await startHealthServer({
      port: config.CAIRN_HEALTH_PORT,
      host: config.CAIRN_HEALTH_HOST,
      readiness: async () => {
        const checks: Record<string, string> = {
          nats: nats.nc.isClosed() ? "closed" : "ok",
          ...(await service.checks?.()),
        };
        return { ready: Object.values(checks).every((v) => v === "ok"), checks };
      },
    });
    shutdown.onShutdown("health", () => health.close());
    // 7.
    // Servers without user info, the user's name, never a password (run-service.int.spec.ts).
    log.info({ ...describeNatsAccess(natsAccess), health: health.url }, `${opts.name} ready`);
    tellSupervisorReady({ service: opts.name, health: health.url });
  } catch (err) {
    log.fatal({ err }, `${opts.name} failed to start`);
    await shutdown.shutdown("start-up failed");
    process.exit(1);
  }
}
