import {
  type CommandHandler,
  catalogue,
  type InstallCommand,
  type InstallEvent,
  type Nats,
  type RunnerLogger,
  serveAggregate,
} from "@cairn/events";
import { createSsmRemoteExec, type SsmRemoteExecOptions } from "./adapters/ssm.ts";
import {
  createInstallDecider,
  DEFAULT_INSTALL_POLICY,
  type InstallPolicy,
  type InstallState,
} from "./install/decider.ts";
import { type HealthProbeOptions, startHealthProbes } from "./install/health-probe.ts";
import { type InstallReactorOptions, startInstallReactor } from "./install/reactor.ts";
import type { RemoteExec } from "./ports.ts";

export interface InstallerOptions {
  nats: Nats;
  logger?: RunnerLogger;
  /** SSM; default: the AWS SDK adapter, configured the way the SDK reads its environment. */
  remote?: RemoteExec;
  /** SSM adapter options when `remote` is not given (endpoint, credentials, policies). */
  ssm?: SsmRemoteExecOptions;
  policy?: Partial<InstallPolicy>;
  reactor?: Pick<
    InstallReactorOptions,
    | "pollMs"
    | "maxPollMs"
    | "firstPollMs"
    | "timeScale"
    | "executionTimeoutFactor"
    | "outputBucket"
    | "now"
    | "maxInHand"
  >;
  /** The K3s service probe's timing; `false`: no probes (node-ops' facts still count). */
  health?:
    | Pick<
        HealthProbeOptions,
        "intervalMs" | "concurrency" | "probeTimeoutMs" | "pollMs" | "executionTimeoutSeconds" | "leaseTtlMs"
      >
    | false;
}

export interface Installer {
  readonly handler: CommandHandler<InstallCommand, InstallEvent, InstallState>;
  /** One round of K3s service probes now (undefined when probes are off). */
  probe?(): Promise<{ clusters: number; probes: number }>;
  stop(): Promise<void>;
}

/**
 * The installer owns the `install` aggregate (one per cluster): it serves
 * `cmd.install.>`, is the only writer of `evt.install.*`, and its reactors carry the
 * decisions out over SSM. Command server and reactors share one handler.
 */
export async function startInstaller(o: InstallerOptions): Promise<Installer> {
  const policy: InstallPolicy = {
    ...DEFAULT_INSTALL_POLICY,
    ...o.policy,
    stepTimeoutMs: { ...DEFAULT_INSTALL_POLICY.stepTimeoutMs, ...o.policy?.stepTimeoutMs },
  };
  const remote = o.remote ?? createSsmRemoteExec({ ...(o.logger ? { logger: o.logger } : {}), ...o.ssm });
  const { handler, stop: stopCommands } = await serveAggregate({
    nats: o.nats,
    catalogue,
    decider: createInstallDecider(policy),
    commandPrefix: "install",
    durable: "installer-commands",
    ...(o.logger ? { logger: o.logger } : {}),
  });
  const reactor = await startInstallReactor({
    nats: o.nats,
    handler,
    remote,
    policy,
    ...(o.logger ? { logger: o.logger } : {}),
    ...o.reactor,
  });
  const health =
    o.health === false
      ? undefined
      : await startHealthProbes({
          nats: o.nats,
          handler,
          remote,
          ...(o.logger ? { logger: o.logger } : {}),
          ...o.health,
        });
  return {
    handler,
    ...(health ? { probe: () => health.round() } : {}),
    stop: async () => {
      await health?.stop();
      await stopCommands();
      await reactor.stop();
    },
  };
}
