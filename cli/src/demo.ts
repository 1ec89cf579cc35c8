import { exampleClusterCreate } from "@cairn/events";

/** The public contract's example command (DESIGN §7), for a given cluster id. */
export function demoCluster(clusterId: string) {
  return exampleClusterCreate(clusterId, process.env.USER ?? "demo");
}
