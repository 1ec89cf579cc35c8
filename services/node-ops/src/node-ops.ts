import {
  CommandHandler,
  catalogue,
  EventStore,
  type Nats,
  type NodeopCommand,
  type NodeopEvent,
  type RunnerLogger,
  serveCommands,
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
  const store = new EventStore({ js: o.nats.js, jsm: o.nats.jsm, catalogue });
  const handler = new CommandHandler({ decider: nodeopDecider, store, catalogue });
  const kube = o.kube ?? createKube({ nats: o.nats, ...(o.logger ? { logger: o.logger } : {}), ...o.ssm });
  const commands = await serveCommands({
    js: o.nats.js,
    jsm: o.nats.jsm,
    catalogue,
    commandPrefix: "node",
    durable: "node-ops-commands",
    handler: handler as unknown as CommandHandler<never, never, unknown>,
    ...(o.logger ? { logger: o.logger } : {}),
  });
  const reactor = await startNodeopReactor({
    nats: o.nats,
    handler,
    kube,
    ...(o.logger ? { logger: o.logger } : {}),
  });
  return {
    handler,
    stop: async () => {
      await commands.stop();
      await reactor.stop();
    },
  };
}
