// Wiring only: the harness boots, node-ops serves node commands and carries them out on
// each cluster's Kubernetes API (kubeconfigs from SSM; the AWS SDK reads endpoint,
// credentials and region from the environment).
import { runService } from "@cairn/service";
import { startNodeOps } from "./node-ops.ts";

await runService({
  name: "node-ops",
  // Spot interruption warnings from each region's SQS queue (AWS_ENDPOINT_URL_SQS, …), and
  // spot/on-demand placement of the Deployments that opt in.
  start: async ({ nats, log }) => startNodeOps({ nats, logger: log, spot: { placement: {} } }),
});
