import {
  type ClusterCommand,
  type ClusterEvent,
  type CommandHandler,
  catalogue,
  type Nats,
  type RunnerLogger,
  serveAggregate,
} from "@cairn/events";
import { createEc2Compute, type Ec2ComputeOptions } from "./adapters/ec2.ts";
import { type ClusterState, clusterDecider } from "./cluster/decider.ts";
import { startInstallFollower } from "./cluster/install-follower.ts";
import { startInterruptionFollower } from "./cluster/interruption-follower.ts";
import { startLostInstanceFollower } from "./cluster/lost-instance-follower.ts";
import { startClusterReactor } from "./cluster/reactor.ts";
import type { Compute } from "./ports.ts";

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
}

export interface Provisioner {
  readonly handler: CommandHandler<ClusterCommand, ClusterEvent, ClusterState>;
  stop(): Promise<void>;
}

/**
 * The provisioner owns the `cluster` aggregate: it serves `cmd.cluster.>`, is the only
 * writer of `evt.cluster.*`, and its reactor carries the decisions out on EC2. Command
 * server and reactor share one handler, so one process sees its own writes at once.
 */
export async function startProvisioner(o: ProvisionerOptions): Promise<Provisioner> {
  const compute = o.compute ?? createEc2Compute({ ...(o.logger ? { logger: o.logger } : {}), ...o.ec2 });
  const { handler, stop: stopCommands } = await serveAggregate({
    nats: o.nats,
    catalogue,
    decider: clusterDecider,
    commandPrefix: "cluster",
    durable: "provisioner-commands",
    ...(o.logger ? { logger: o.logger } : {}),
  });
  const reactor = await startClusterReactor({
    nats: o.nats,
    handler,
    compute,
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
