// Wiring only: the harness boots, the provisioner serves cluster commands and carries
// them out on EC2 (the AWS SDK reads endpoint, credentials and region from the environment).
import { runService } from "@cairn/service";
import { cloudMetricsObserver } from "./observability.ts";
import { startProvisioner } from "./provisioner.ts";

await runService({
  name: "provisioner",
  start: async ({ nats, log }) =>
    startProvisioner({ nats, logger: log, ec2: { observer: cloudMetricsObserver(log) } }),
});
