/**
 * Why a cluster failed, in a word a machine can switch on, and what a person should do
 * about it when the event that says so carries no hint of its own.
 *
 * The events carry the remediation where the failure is classified (an adapter's
 * `CairnError.remediation`, the installer's hint): that one is always preferred. These
 * defaults are for the events that have none — recorded before they carried one, or a
 * failure nothing classified (an instance EC2 stopped before it ran) — so that every
 * Failed, Degraded or Recovering cluster says what to do.
 */
import { z } from "zod";

/** What kind of failure made a cluster Failed (`cluster.failed.code`). */
export const CLUSTER_FAILURE_CODES = [
  /** The spec does not suit the region (the AMI is missing, or does not fit an instance type). */
  "validation-failed",
  /** Every instance type, zone and capacity type a slot may use ran out of capacity. */
  "no-capacity",
  /** EC2 refused a launch for good, or lost an instance before it ran, too often. */
  "launch-failed",
  /** K3s could not be installed (the installer gave up on the cluster). */
  "install-failed",
] as const;
export const clusterFailureCode = z.enum(CLUSTER_FAILURE_CODES);
export type ClusterFailureCode = z.infer<typeof clusterFailureCode>;

/** The hint for each kind of trouble a cluster can be in, when its event has none. */
export const CLUSTER_REMEDIATIONS = {
  "validation-failed":
    "fix the spec for the region (its ami, or instance types of the AMI's architecture), then create the cluster again; a retry runs the same spec",
  "no-capacity":
    "add instance types or availability zones to the pool, or allow fallbackToOnDemand, then retry (`cairn cluster retry <id>`)",
  "launch-failed":
    "read EC2's reason above and fix what it names (usually the spec: tags, instance types, AMI; or the account's limits), then retry (`cairn cluster retry <id>`) or delete the cluster and create it with a fixed spec",
  "install-failed":
    "`cairn install <id>` shows the failed step and its output; fix what it names (K3s version, outbound HTTPS, the SSM Agent), then retry (`cairn cluster retry <id>`) or delete the cluster",
  /** An instance that EC2 stopped or terminated before it ran (`code: "instance-lost"`). */
  "instance-lost":
    "EC2 stopped or terminated the instance before it ran; its state reason (above) says why (spot capacity reclaimed, an account limit, an AMI that does not boot): fix that, then retry (`cairn cluster retry <id>`)",
  degraded:
    'Cairn is working through its recovery ladder (restart K3s, rejoin, replace the node); if the cluster stays Degraded, `cairn install <id>` shows the failing checks and their evidence (docs/runbooks.md, "A cluster is Degraded or Recovering")',
  recovering:
    'nothing to do yet: Cairn is repairing the cluster; if it does not come back Ready, `cairn install <id>` shows the steps and the failing checks (docs/runbooks.md, "A cluster is Degraded or Recovering")',
  "scale-failed":
    "the cluster went back to its last good spec; fix what the reason names (capacity: more instance types or zones), then scale again",
} as const satisfies Record<ClusterFailureCode, string> & Record<string, string>;
export type ClusterTrouble = keyof typeof CLUSTER_REMEDIATIONS;

/**
 * The hint to show: the event's own when it has one, else the default for its kind.
 * @example clusterRemediation("launch-failed", undefined) // "read EC2's reason above and fix …"
 * @example clusterRemediation("launch-failed", "remove tags") // "remove tags"
 */
export function clusterRemediation(kind: ClusterTrouble, given: string | undefined | null): string {
  return given?.trim() ? given : CLUSTER_REMEDIATIONS[kind];
}
