// Wiring only: the harness boots, the installer follows clusters and carries their
// installs out over SSM (the AWS SDK reads endpoint, credentials and region from the
// environment; secrets stay in SSM Parameter Store).
import { envVars, runService, serviceConfig } from "@cairn/service";
import { startInstaller } from "./installer.ts";

const config = serviceConfig.extend({
  /** A node not Ready this long after its instance ran is replaced. */
  CAIRN_INSTALL_JOIN_TIMEOUT_SECONDS: envVars.positiveNumber().default(600),
  /** Agent joins in flight at once per cluster. */
  CAIRN_INSTALL_MAX_PARALLEL_JOINS: envVars.positiveNumber().default(20),
  /** The shortest wait before looking again (15 times it the longest): bounds a running step's polls and the other waits. */
  CAIRN_INSTALL_POLL_MS: envVars.positiveNumber().default(1_000),
  /** Full step output to this S3 bucket (SSM keeps only the first 24,000 characters). */
  CAIRN_INSTALL_OUTPUT_BUCKET: envVars.string().optional(),
});

await runService({
  name: "installer",
  config,
  start: async ({ nats, log, config: c }) =>
    startInstaller({
      nats,
      logger: log,
      policy: {
        joinTimeoutMs: c.CAIRN_INSTALL_JOIN_TIMEOUT_SECONDS * 1000,
        maxParallelJoins: Math.floor(c.CAIRN_INSTALL_MAX_PARALLEL_JOINS),
      },
      reactor: {
        pollMs: c.CAIRN_INSTALL_POLL_MS,
        maxPollMs: c.CAIRN_INSTALL_POLL_MS * 15,
        // A step's first look is at its typical duration on AWS; on a sim that runs
        // faster every duration is shorter alike (CAIRN_SIM_TIME_SCALE is 1 on AWS).
        timeScale: c.CAIRN_SIM_TIME_SCALE,
        ...(c.CAIRN_INSTALL_OUTPUT_BUCKET ? { outputBucket: c.CAIRN_INSTALL_OUTPUT_BUCKET } : {}),
      },
    }),
});
