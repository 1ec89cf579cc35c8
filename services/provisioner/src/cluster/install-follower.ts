/**
 * The provisioner's ear on the installer: the install aggregate's outcomes become
 * cluster decisions. `install.completed` makes a Configuring (or Recovering) cluster
 * Ready; `install.failed` fails it; `install.node-failed` replaces the slot's instance.
 * Commands are named after the install event that caused them, so a redelivery decides
 * nothing twice; a decision that changes nothing is checked against the log by the
 * handler, so a replica's write is never missed.
 */
import {
  commandCausedBy,
  type EventOfAggregate,
  type EventsByAggregate,
  type Nats,
  type ParsedCommand,
  type RunnerLogger,
  type RunningConsumer,
  startReactor,
} from "@cairn/events";
import type { ClusterHandler } from "../provisioner.ts";

export interface InstallFollowerOptions {
  nats: Nats;
  handler: ClusterHandler;
  logger?: RunnerLogger;
}

/** The install events that decide something about the cluster. */
export const INSTALL_EVENTS_FOLLOWED = [
  "install.completed",
  "install.failed",
  "install.degraded",
  "install.remediation-requested",
  "install.upgraded",
  "install.recovered",
  "install.node-failed",
] as const satisfies readonly EventsByAggregate["install"]["type"][];

const by = { actor: "provisioner" } as const;

/**
 * The cluster command an install event asks for, if any, parsed and named after the
 * event (the install aggregate's id is the cluster's).
 */
export function clusterCommandFor(e: EventOfAggregate<"install">): ParsedCommand | undefined {
  const clusterId = e.aggregate.id;
  switch (e.type) {
    case "install.completed":
      return commandCausedBy(
        e,
        "cluster.record-installed",
        { clusterId, nodes: e.data.nodes, k3sVersion: e.data.k3sVersion },
        by,
      );
    case "install.failed":
      return commandCausedBy(
        e,
        "cluster.record-install-failure",
        { clusterId, reason: e.data.reason, remediation: e.data.remediation },
        by,
      );
    case "install.degraded": {
      const reason = e.data.failing
        .map((f) => `${f.check}${f.node ? ` on ${f.node}` : ""}: ${f.evidence}`)
        .join("; ");
      return commandCausedBy(
        e,
        "cluster.record-health",
        { clusterId, health: "degraded", reason, remediation: e.data.remediation },
        by,
      );
    }
    case "install.remediation-requested": {
      const d = e.data;
      return commandCausedBy(
        e,
        "cluster.record-health",
        {
          clusterId,
          health: "recovering",
          reason: `${d.action} (attempt ${d.attempt}) on ${d.node}: ${d.reason}`,
        },
        by,
      );
    }
    case "install.upgraded":
      return commandCausedBy(e, "cluster.record-k3s-version", { clusterId, k3sVersion: e.data.to }, by);
    case "install.recovered":
      return commandCausedBy(
        e,
        "cluster.record-health",
        { clusterId, health: "healthy", reason: "every health check passes" },
        by,
      );
    case "install.node-failed":
      return commandCausedBy(
        e,
        "cluster.replace-node",
        { clusterId, slot: e.data.slot, instanceId: e.data.instanceId, reason: e.data.reason },
        by,
      );
    default:
      return undefined;
  }
}

export async function startInstallFollower(o: InstallFollowerOptions): Promise<RunningConsumer> {
  return await startReactor({
    nats: o.nats,
    // The durable consumer's name since the first release: a deployment resumes where it was.
    name: "provisioner-install",
    aggregate: "install",
    types: INSTALL_EVENTS_FOLLOWED,
    ...(o.logger ? { logger: o.logger } : {}),
    react: async (e) => {
      const command = clusterCommandFor(e);
      // No atLeastSequence: the cause is another aggregate's commit. The handler decides
      // on the log's state (a decision that appends nothing is checked against it).
      if (command) await o.handler.handle(command);
    },
  });
}
