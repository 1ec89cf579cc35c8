// Wiring only: the harness boots, the provisioner serves cluster commands and carries
// them out on EC2 (the AWS SDK reads endpoint, credentials and region from the environment).
import { runService } from "@cairn/service";
import { FIRST_BOOT_POLL_MS } from "./cluster/reactor.ts";
import { cloudMetricsObserver } from "./observability.ts";
import { startProvisioner } from "./provisioner.ts";

await runService({
  name: "provisioner",
  start: async ({ nats, log, config }) =>
    startProvisioner({
      nats,
      logger: log,
      ec2: { observer: cloudMetricsObserver(log) },
      // The first look at a booting instance: on a sim that runs faster every boot is
      // shorter alike (CAIRN_SIM_TIME_SCALE is 1 on AWS).
      firstBootPollMs: FIRST_BOOT_POLL_MS / config.CAIRN_SIM_TIME_SCALE,
    }),
});
