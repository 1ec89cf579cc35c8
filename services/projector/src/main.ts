// Wiring only: the harness boots, the projector builds read models and serves the API.
import { envVars, postgresUrlWithTls, runService, serviceConfig } from "@cairn/service";
import { z } from "zod";
import { loadTokensFile, parseRateLimit } from "./api/auth.ts";
import { PROJECTOR_ROLES, startProjector } from "./projector.ts";

const isRateLimit = (s: string) => {
  try {
    return parseRateLimit(s).max > 0;
  } catch {
    return false;
  }
};

await runService({
  name: "projector",
  config: serviceConfig.extend({
    DATABASE_URL: envVars.string(),
    /** The API's address; anything but loopback needs CAIRN_TOKENS_FILE. */
    CAIRN_API_HOST: envVars.string().default("127.0.0.1"),
    /** Requests per window per token holder (or address), e.g. 600/min; `off` for none. */
    CAIRN_API_RATE_LIMIT: envVars
      .string()
      .refine((s) => s === "off" || isRateLimit(s), {
        message: "must read <count>/<s|min|hour> (e.g. 600/min) or off",
      })
      .optional(),
    /** The idle-detector's grace (DESIGN §7): the API's `idleAt` of a Running session adds it. */
    CAIRN_SESSION_IDLE_GRACE_SECONDS: z.coerce.number().int().nonnegative().default(60),
    /**
     * `all`: serve the API and project while holding the lease; `api`: serve the API only
     * (never project); `projection`: project only, no API (docs/projector.md).
     */
    CAIRN_PROJECTOR_ROLE: z.enum(PROJECTOR_ROLES).default("all"),
    /**
     * `GET /clusters/:id` from memory kept fresh by the change announcements: `1` / `0`;
     * unset: in role `api` only (docs/projector.md, "The cluster cache").
     */
    CAIRN_API_CLUSTER_CACHE: z.enum(["0", "1"]).optional(),
  }),
  start: async ({ nats, connectNats, log, config }) => {
    const limit = config.CAIRN_API_RATE_LIMIT;
    const role = config.CAIRN_PROJECTOR_ROLE;
    const cache = config.CAIRN_API_CLUSTER_CACHE;
    const projector = await startProjector({
      role,
      ...(cache !== undefined ? { clusterCache: cache === "1" } : {}),
      nats,
      heartbeatNats: () => connectNats({ name: "projector-heartbeats", noEcho: true }),
      // TLS from PGSSLMODE/PGSSLROOTCERT/PGSSLCERT/PGSSLKEY, as psql reads them (docs/security.md).
      databaseUrl: postgresUrlWithTls(config.DATABASE_URL, process.env),
      streamReplicas: config.CAIRN_NATS_REPLICAS,
      logger: log,
      api:
        role === "projection"
          ? false
          : {
              port: config.CAIRN_API_PORT,
              host: config.CAIRN_API_HOST,
              // Without a tokens file the API serves loopback only (startProjector refuses otherwise).
              ...(config.CAIRN_TOKENS_FILE ? { auth: await loadTokensFile(config.CAIRN_TOKENS_FILE) } : {}),
              // Unset: 600/min per token holder with tokens, none on loopback without them.
              ...(limit !== undefined ? { rateLimit: limit === "off" ? false : parseRateLimit(limit) } : {}),
              ...(config.JAEGER_UI_URL ? { jaegerUiUrl: config.JAEGER_UI_URL } : {}),
              sessions: { idleGraceSeconds: config.CAIRN_SESSION_IDLE_GRACE_SECONDS },
            },
    });
    if (projector.api)
      log.info({ api: projector.api.url, docs: `${projector.api.url}/docs` }, "query API listening");
    return { stop: () => projector.stop() };
  },
});
