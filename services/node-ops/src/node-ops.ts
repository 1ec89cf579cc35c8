import {
  type CommandHandler,
  catalogue,
  type Nats,
  type NodeopCommand,
  type NodeopEvent,
  type RunnerLogger,
  serveAggregate,
} from "@cairn/events";
import { createKube, type KubeAdapterOptions } from "./adapters/kube.ts";
import { type NodeopState, nodeopDecider } from "./nodeop/decider.ts";
import { startNodeopReactor } from "./nodeop/reactor.ts";
import type { Kube } from "./ports.ts";

export interface NodeOpsOptions {
  nats: Nats;
  logger?: RunnerLogger;
  /** The Kubernetes API; default: the client-node adapter, kubeconfigs from SSM. */
  kube?: Kube;
  /** SSM options for the default adapter (endpoint, credentials); absent: the SDK's environment. */
  ssm?: Pick<KubeAdapterOptions, "endpoint" | "credentials">;
  /** A drain's backoff between passes: from `pollMs` (default 200) doubling up to `maxPollMs` (default 5000). */
  drain?: { pollMs?: number; maxPollMs?: number };
}

export interface NodeOps {
  readonly handler: CommandHandler<NodeopCommand, NodeopEvent, NodeopState>;
  stop(): Promise<void>;
}

/**
 * node-ops owns the `nodeop` aggregate (one per node): it serves `cmd.node.>`, is the
 * only writer of `evt.nodeop.*`, and its reactor carries the decisions out on the
 * cluster's Kubernetes API. Command server and reactor share one handler.
 */
export async function startNodeOps(o: NodeOpsOptions): Promise<NodeOps> {
  const kube = o.kube ?? createKube({ nats: o.nats, ...(o.logger ? { logger: o.logger } : {}), ...o.ssm });
  const { handler, stop: stopCommands } = await serveAggregate({
    nats: o.nats,
    catalogue,
    decider: nodeopDecider,
    commandPrefix: "node",
    durable: "node-ops-commands",
    ...(o.logger ? { logger: o.logger } : {}),
  });
  const reactor = await startNodeopReactor({
    nats: o.nats,
    handler,
    kube,
    ...(o.logger ? { logger: o.logger } : {}),
    ...(o.drain?.pollMs !== undefined ? { drainPollMs: o.drain.pollMs } : {}),
    ...(o.drain?.maxPollMs !== undefined ? { drainMaxPollMs: o.drain.maxPollMs } : {}),
  });
  return {
    handler,
    stop: async () => {
      await stopCommands();
      await reactor.stop();
    },
  };
}
