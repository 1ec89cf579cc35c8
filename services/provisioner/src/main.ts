// Wiring only: the harness boots, the provisioner serves cluster commands.
import { runService } from "@cairn/service";
import { startProvisioner } from "./provisioner.ts";

await runService({
  name: "provisioner",
  start: async ({ nats, log }) => startProvisioner({ nats, logger: log }),
});
