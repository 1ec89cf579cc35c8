/**
 * The control plane on the simulated cloud, as the end-to-end suites and benchmarks
 * run it: a disposable JetStream, the sim, and the provisioner, node-ops and the
 * installer in-process with their real adapters (EC2 and SSM SDKs, client-node) pointed
 * at the sim by endpoint. Polls and SSM's backstop timeout follow the sim's time scale.
 */
import { CommandBus, catalogue, type RunnerLogger } from "@cairn/events";
import { startJetStream, type TestJetStream } from "@cairn/events/testing";
import { type NodeOps, type NodeOpsOptions, startNodeOps } from "@cairn/node-ops";
import {
  createEc2Compute,
  type Provisioner,
  type ProvisionerOptions,
  startProvisioner,
} from "@cairn/provisioner";
import { type Latencies, SIM_CREDENTIALS, type Sim, startSim } from "@cairn/sim";
import { createSsmRemoteExec, type SsmRemoteExec } from "../adapters/ssm.ts";
import { type Installer, type InstallerOptions, startInstaller } from "../installer.ts";
import type { RemoteExec } from "../ports.ts";

export interface ControlPlaneOptions {
  seed?: number;
  /** The sim's time scale (default 100). */
  timeScale?: number;
  latencies?: Partial<Latencies>;
  logger?: RunnerLogger;
  provisioner?: Omit<ProvisionerOptions, "nats" | "logger" | "compute">;
  nodeOps?: Omit<NodeOpsOptions, "nats" | "logger" | "ssm">;
  installer?: Omit<InstallerOptions, "nats" | "logger" | "remote"> & {
    /** Wraps the real SSM adapter (to see or cut short what is sent). */
    remote?: (real: SsmRemoteExec) => RemoteExec;
  };
}

export interface ControlPlane {
  readonly js: TestJetStream;
  readonly sim: Sim;
  readonly bus: CommandBus;
  /** The AWS SDK options that point a client at the sim. */
  readonly aws: { endpoint: string; credentials: typeof SIM_CREDENTIALS };
  readonly provisioner: Provisioner;
  nodeOps: NodeOps;
  installer: Installer;
  /** Stops node-ops and starts another on the same log (a restart: its watches start afresh). */
  restartNodeOps(pauseMs?: number): Promise<NodeOps>;
  /** Stops the installer and starts another on the same log (a crash and a restart). */
  restartInstaller(pauseMs?: number): Promise<Installer>;
  stop(): Promise<void>;
}

export async function startControlPlane(o: ControlPlaneOptions = {}): Promise<ControlPlane> {
  const timeScale = o.timeScale ?? 100;
  const js = await startJetStream();
  const sim = await startSim({
    seed: o.seed ?? 1,
    timeScale,
    ...(o.latencies ? { latencies: o.latencies } : {}),
  });
  const aws = { endpoint: sim.url, credentials: SIM_CREDENTIALS };
  const log = o.logger ? { logger: o.logger } : {};
  const provisioner = await startProvisioner({
    nats: js.nats,
    compute: createEc2Compute(aws),
    pollMs: 20,
    maxPollMs: 100,
    ...log,
    ...o.provisioner,
  });
  // The spot intake's SQS client, when asked for, goes to the sim like every other client.
  const spot = o.nodeOps?.spot ? { spot: { sqs: aws, ...o.nodeOps.spot } } : {};
  const startTheNodeOps = () => startNodeOps({ nats: js.nats, ssm: aws, ...log, ...o.nodeOps, ...spot });
  const { remote: wrap, ...installerOptions } = o.installer ?? {};
  const real = createSsmRemoteExec(aws);
  const remote = wrap ? wrap(real) : real;
  const startTheInstaller = () =>
    startInstaller({
      nats: js.nats,
      remote,
      ...log,
      ...installerOptions,
      // SSM's own timeout is in the sim's seconds: scale the backstop, and the first looks.
      reactor: {
        pollMs: 20,
        maxPollMs: 200,
        executionTimeoutFactor: 2 * timeScale,
        timeScale,
        ...installerOptions.reactor,
      },
    });
  const plane: ControlPlane = {
    js,
    sim,
    aws,
    bus: new CommandBus({ js: js.nats.js, catalogue }),
    provisioner,
    nodeOps: await startTheNodeOps(),
    installer: await startTheInstaller(),
    async restartNodeOps(pauseMs = 300) {
      await plane.nodeOps.stop();
      await new Promise((r) => setTimeout(r, pauseMs));
      plane.nodeOps = await startTheNodeOps();
      return plane.nodeOps;
    },
    async restartInstaller(pauseMs = 300) {
      await plane.installer.stop();
      await new Promise((r) => setTimeout(r, pauseMs));
      plane.installer = await startTheInstaller();
      return plane.installer;
    },
    async stop() {
      await plane.installer.stop();
      await plane.nodeOps.stop();
      await provisioner.stop();
      await sim.stop();
      await js.dispose();
    },
  };
  return plane;
}
