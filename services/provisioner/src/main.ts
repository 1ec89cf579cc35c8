// Wiring only: the harness boots, the provisioner serves cluster commands and carries
// them out on EC2 (the AWS SDK reads endpoint, credentials and region from the environment).
import { envVars, runService, serviceConfig } from "@cairn/service";
import { FIRST_BOOT_POLL_MS, SESSIONS_END_TIMEOUT_MS } from "./cluster/reactor.ts";
import { cloudMetricsObserver } from "./observability.ts";
import { startProvisioner } from "./provisioner.ts";

const config = serviceConfig.extend({
  /** How long a cluster's delete waits for its sessions to end before terminating its instances. */
  CAIRN_CLUSTER_DELETE_SESSIONS_TIMEOUT_SECONDS: envVars
    .positiveNumber()
    .default(SESSIONS_END_TIMEOUT_MS / 1000),
});

await runService({
  name: "provisioner",
  config,
  start: async ({ nats, log, config: c }) =>
    startProvisioner({
      nats,
      logger: log,
      ec2: { observer: cloudMetricsObserver(log) },
      // The first look at a booting instance: on a sim that runs faster every boot is
      // shorter alike (CAIRN_SIM_TIME_SCALE is 1 on AWS).
      firstBootPollMs: FIRST_BOOT_POLL_MS / c.CAIRN_SIM_TIME_SCALE,
      sessionsEndTimeoutMs: c.CAIRN_CLUSTER_DELETE_SESSIONS_TIMEOUT_SECONDS * 1000,
    }),
});
