// Wiring only: the harness boots, the projector builds read models and serves the API.
import { envVars, runService, serviceConfig } from "@cairn/service";
import { startProjector } from "./projector.ts";

await runService({
  name: "projector",
  config: serviceConfig.extend({
    DATABASE_URL: envVars.string(),
    /** The API's address; anything but loopback needs CAIRN_TOKENS_FILE. */
    CAIRN_API_HOST: envVars.string().default("127.0.0.1"),
  }),
  start: async ({ nats, log, config }) => {
    const projector = await startProjector({
      nats,
      databaseUrl: config.DATABASE_URL,
      logger: log,
      api: {
        port: config.CAIRN_API_PORT,
        host: config.CAIRN_API_HOST,
        ...(config.JAEGER_UI_URL ? { jaegerUiUrl: config.JAEGER_UI_URL } : {}),
      },
    });
    log.info({ api: projector.api?.url, docs: `${projector.api?.url}/docs` }, "query API listening");
    return { stop: () => projector.stop() };
  },
});
