import {
  type ClusterCommand,
  type ClusterEvent,
  type CommandHandler,
  catalogue,
  type Nats,
  type RunnerLogger,
  serveAggregate,
} from "@cairn/events";
import { createClusterSessions } from "./adapters/cluster-sessions.ts";
import { createEc2Compute, type Ec2ComputeOptions } from "./adapters/ec2.ts";
import { type ClusterObservation, type ClusterState, clusterDecider } from "./cluster/decider.ts";
import { startInstallFollower } from "./cluster/install-follower.ts";
import { startInterruptionFollower } from "./cluster/interruption-follower.ts";
import { startLostInstanceFollower } from "./cluster/lost-instance-follower.ts";
import { startClusterReactor } from "./cluster/reactor.ts";
import type { ClusterSessions, Compute } from "./ports.ts";

/** The cluster's command handler: decisions see what `observe` read (a delete: the live sessions). */
export type ClusterHandler = CommandHandler<ClusterCommand, ClusterEvent, ClusterState, ClusterObservation>;

export interface ProvisionerOptions {
  nats: Nats;
  logger?: RunnerLogger;
  /** The cloud; default: the EC2 adapter, configured the way the AWS SDK reads its environment. */
  compute?: Compute;
  /** EC2 adapter options when `compute` is not given (endpoint, credentials, policies). */
  ec2?: Ec2ComputeOptions;
  /** How soon the reactor looks again at an instance that is not there yet (ms). */
  pollMs?: number;
  maxPollMs?: number;
  /** The first look at a launched instance (ms); default `FIRST_BOOT_POLL_MS`. */
  firstBootPollMs?: number;
  defaultAmi?: string;
  /** The sessions on a cluster; default: read from the log (the idle-detector's ledgers). */
  sessions?: ClusterSessions;
  /**
   * How long a delete waits for the cluster's sessions to end before it terminates the
   * instances under whatever is left (ms); default `SESSIONS_END_TIMEOUT_MS`.
   */
  sessionsEndTimeoutMs?: number;
}

export interface Provisioner {
  readonly handler: ClusterHandler;
  stop(): Promise<void>;
}

/**
 * The provisioner owns the `cluster` aggregate: it serves `cmd.cluster.>`, is the only
 * writer of `evt.cluster.*`, and its reactor carries the decisions out on EC2. Command
 * server and reactor share one handler, so one process sees its own writes at once.
 */
export async function startProvisioner(o: ProvisionerOptions): Promise<Provisioner> {
  const compute = o.compute ?? createEc2Compute({ ...(o.logger ? { logger: o.logger } : {}), ...o.ec2 });
  const sessions = o.sessions ?? createClusterSessions({ nats: o.nats });
  const { handler, stop: stopCommands } = await serveAggregate({
    nats: o.nats,
    catalogue,
    decider: clusterDecider,
    commandPrefix: "cluster",
    durable: "provisioner-commands",
    ...(o.logger ? { logger: o.logger } : {}),
    // A delete is decided on the sessions living on the cluster now, read from the log
    // just before deciding (docs/sessions.md, "Deleting a cluster with sessions").
    observe: async (command): Promise<ClusterObservation | undefined> =>
      command.type === "cluster.delete"
        ? { liveSessions: await sessions.live(command.data.clusterId) }
        : undefined,
  });
  const reactor = await startClusterReactor({
    nats: o.nats,
    handler,
    compute,
    sessions,
    ...(o.sessionsEndTimeoutMs !== undefined ? { sessionsEndTimeoutMs: o.sessionsEndTimeoutMs } : {}),
    ...(o.logger ? { logger: o.logger } : {}),
    ...(o.pollMs !== undefined ? { pollMs: o.pollMs } : {}),
    ...(o.maxPollMs !== undefined ? { maxPollMs: o.maxPollMs } : {}),
    ...(o.firstBootPollMs !== undefined ? { firstBootPollMs: o.firstBootPollMs } : {}),
    ...(o.defaultAmi ? { defaultAmi: o.defaultAmi } : {}),
  });
  const follower = await startInstallFollower({
    nats: o.nats,
    handler,
    ...(o.logger ? { logger: o.logger } : {}),
  });
  const interruptions = await startInterruptionFollower({
    nats: o.nats,
    handler,
    compute,
    ...(o.logger ? { logger: o.logger } : {}),
  });
  // Instances lost behind Cairn's back (node-ops sees their nodes go): relaunch the slot.
  const lost = await startLostInstanceFollower({
    nats: o.nats,
    handler,
    compute,
    ...(o.logger ? { logger: o.logger } : {}),
  });
  return {
    handler,
    stop: async () => {
      await stopCommands();
      await lost.stop();
      await interruptions.stop();
      await follower.stop();
      await reactor.stop();
    },
  };
}
