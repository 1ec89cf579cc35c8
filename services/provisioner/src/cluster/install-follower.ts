/**
 * The provisioner's ear on the installer: the install aggregate's outcomes become
 * cluster decisions. `install.completed` makes a Configuring (or Recovering) cluster
 * Ready; `install.failed` fails it; `install.node-failed` replaces the slot's instance.
 * Commands are named after the install event that caused them, so a redelivery decides
 * nothing twice.
 */
import {
  type ClusterCommand,
  type ClusterEvent,
  type CommandHandler,
  catalogue,
  commandCausedBy,
  eventFilter,
  type Nats,
  type RawEventEnvelope,
  type RunnerLogger,
  type RunningConsumer,
  Streams,
  startConsumer,
} from "@cairn/events";
import type { ClusterState } from "./decider.ts";

export interface InstallFollowerOptions {
  nats: Nats;
  handler: CommandHandler<ClusterCommand, ClusterEvent, ClusterState>;
  logger?: RunnerLogger;
}

/** The cluster command an install event asks for, if any. */
export function clusterCommandFor(
  e: RawEventEnvelope,
): { type: ClusterCommand["type"]; data: object } | undefined {
  const d = e.data as Record<string, unknown>;
  switch (e.type) {
    case "install.completed":
      return { type: "cluster.record-installed", data: { nodes: d.nodes, k3sVersion: d.k3sVersion } };
    case "install.failed":
      return {
        type: "cluster.record-install-failure",
        data: { reason: d.reason, remediation: d.remediation },
      };
    case "install.degraded": {
      const failing = (d.failing as { check: string; node?: string; evidence: string }[]) ?? [];
      const reason = failing
        .map((f) => `${f.check}${f.node ? ` on ${f.node}` : ""}: ${f.evidence}`)
        .join("; ");
      return {
        type: "cluster.record-health",
        data: { health: "degraded", reason, remediation: d.remediation },
      };
    }
    case "install.remediation-requested":
      return {
        type: "cluster.record-health",
        data: {
          health: "recovering",
          reason: `${d.action} (attempt ${d.attempt}) on ${d.node}: ${d.reason}`,
        },
      };
    case "install.upgraded":
      return { type: "cluster.record-k3s-version", data: { k3sVersion: d.to } };
    case "install.recovered":
      return {
        type: "cluster.record-health",
        data: { health: "healthy", reason: "every health check passes" },
      };
    case "install.node-failed":
      return {
        type: "cluster.replace-node",
        data: { slot: d.slot, instanceId: d.instanceId, reason: d.reason },
      };
    default:
      return undefined;
  }
}

export async function startInstallFollower(o: InstallFollowerOptions): Promise<RunningConsumer> {
  return await startConsumer({
    js: o.nats.js,
    jsm: o.nats.jsm,
    stream: Streams.events,
    durable: "provisioner-install",
    filterSubject: eventFilter("install"),
    concurrency: 16,
    ...(o.logger ? { logger: o.logger } : {}),
    handle: async (msg) => {
      const commit = catalogue.parseCommit(msg.json());
      for (const e of commit.events) {
        const wanted = clusterCommandFor(e);
        if (!wanted) continue;
        const command = commandCausedBy(
          e,
          wanted.type,
          { clusterId: e.aggregate.id, ...wanted.data },
          { actor: "provisioner" },
        );
        // No atLeastSequence: the cause is another aggregate's commit, and this process
        // is the cluster's only writer, so its cached state is current.
        await o.handler.handle(command);
      }
    },
  });
}
