import {
  CommandHandler,
  catalogue,
  EventStore,
  type Nats,
  type RunnerLogger,
  serveCommands,
} from "@cairn/events";
import { clusterDecider } from "./cluster/decider.ts";

export interface Provisioner {
  readonly handler: CommandHandler<never, never, unknown>;
  stop(): Promise<void>;
}

/**
 * The provisioner owns the `cluster` aggregate: it serves `cmd.cluster.>` and is the
 * only writer of `evt.cluster.*`. EC2 effects (the reactor) arrive with the
 * provisioner issue; today it decides and records.
 */
export async function startProvisioner(deps: { nats: Nats; logger?: RunnerLogger }): Promise<Provisioner> {
  const store = new EventStore({ js: deps.nats.js, jsm: deps.nats.jsm, catalogue });
  const handler = new CommandHandler({ decider: clusterDecider, store, catalogue });
  const commands = await serveCommands({
    js: deps.nats.js,
    jsm: deps.nats.jsm,
    catalogue,
    commandPrefix: "cluster",
    durable: "provisioner-commands",
    handler,
    ...(deps.logger ? { logger: deps.logger } : {}),
  });
  return {
    handler: handler as unknown as CommandHandler<never, never, unknown>,
    stop: () => commands.stop(),
  };
}
