/**
 * The K3s service probe: on an interval, for every installed cluster, one `k3s-check`
 * over SSM on each joined node (the `validateAllChecks` idea). Results go to the install
 * aggregate as `install.record-check`, which turns them into events only when they
 * change: a cluster of healthy nodes costs SSM calls, never events.
 *
 * The other checks need no probe: node-ops' facts (Ready, pressure, API server) arrive
 * as events and are recorded by the reactor.
 *
 * One installer process probes at a time (the holder of the `installer.health` lease).
 */
import { hostname } from "node:os";
import {
  type CommandDataInput,
  type CommandHandler,
  catalogue,
  clusterSecretParameters,
  describeError,
  type InstallCommand,
  type InstallEvent,
  inMessagingSpan,
  linkTo,
  type Nats,
  newId,
  type RunnerLogger,
  SpanAttributes,
  SpanKind,
  Streams,
} from "@cairn/events";
import { acquireLeadership } from "@cairn/service";
import { type RemoteExec, RUNNING_STATUSES } from "../ports.ts";
import { stepScript } from "../scripts/steps.ts";
import { outputTail } from "./output.ts";
import type { InstallState } from "./state.ts";

export const HEALTH_LEASE = "installer.health";

export interface HealthProbeOptions {
  nats: Nats;
  handler: CommandHandler<InstallCommand, InstallEvent, InstallState>;
  remote: RemoteExec;
  /** Between two rounds (default 60 s). */
  intervalMs?: number;
  /** How long a round waits for a probe's answer before it counts as failed (default 30 s). */
  probeTimeoutMs?: number;
  /** Between two looks at a probe still running (default 500 ms). */
  pollMs?: number;
  /** SSM's own timeout of a probe, in SSM's seconds (default 60). */
  executionTimeoutSeconds?: number;
  leaseTtlMs?: number;
  logger?: RunnerLogger;
}

export interface HealthProbes {
  /** One round now, over every installed cluster (tests, and the interval). */
  round(): Promise<{ clusters: number; probes: number }>;
  stop(): Promise<void>;
}

type Active = Exclude<InstallState, { status: "Absent" }>;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The clusters that have an install: the install subjects of the event stream. */
async function installIds(nats: Nats): Promise<string[]> {
  const info = await nats.jsm.streams.info(Streams.events, { subjects_filter: "evt.install.*" });
  return Object.keys(info.state.subjects ?? {}).map((s) => s.slice("evt.install.".length));
}

export async function startHealthProbes(o: HealthProbeOptions): Promise<HealthProbes> {
  const intervalMs = o.intervalMs ?? 60_000;
  const probeTimeoutMs = o.probeTimeoutMs ?? 30_000;
  const pollMs = o.pollMs ?? 500;

  const record = async (
    clusterId: string,
    data: Omit<CommandDataInput<"install.record-check">, "clusterId">,
  ) => {
    const parsed = catalogue.parseCommand({
      id: newId(),
      type: "install.record-check",
      data: { clusterId, ...data },
      meta: { actor: "installer" },
    });
    if (!parsed.ok) throw parsed.error;
    await o.handler.handle(parsed.value);
  };

  const probeCluster = async (clusterId: string, s: Active): Promise<number> => {
    const nodes = Object.values(s.nodes).filter((n) => n.joined && !n.failed && !n.step);
    const { token, kubeconfig } = clusterSecretParameters(clusterId);
    const sent = await Promise.all(
      nodes.map(async (n) => {
        try {
          const commandId = await o.remote.send(s.plan.region, {
            instanceId: n.instanceId,
            comment: `cairn k3s-check cluster=${clusterId}`,
            executionTimeoutSeconds: o.executionTimeoutSeconds ?? 60,
            commands: stepScript({
              step: "k3s-check",
              clusterId,
              region: s.plan.region,
              node: n.node,
              role: n.role,
              k3sVersion: s.plan.k3sVersion,
              labels: {},
              taints: [],
              tokenParameter: token,
              kubeconfigParameter: kubeconfig,
              ha: s.plan.servers > 1,
            }),
          });
          return { n, commandId };
        } catch (err) {
          await record(clusterId, {
            check: "k3s-active",
            node: n.node,
            ok: false,
            evidence: `the probe could not be sent: ${describeError(err)}`.slice(0, 2_000),
          });
          return undefined;
        }
      }),
    );
    const waiting = new Map(sent.filter((x) => x !== undefined).map((x) => [x.commandId, x.n]));
    const deadline = Date.now() + probeTimeoutMs;
    while (waiting.size > 0) {
      for (const [commandId, n] of [...waiting]) {
        const inv = await o.remote.invocation(s.plan.region, commandId, n.instanceId).catch(() => undefined);
        if (!inv || RUNNING_STATUSES.has(inv.status)) continue;
        waiting.delete(commandId);
        const ok = inv.status === "Success" && /^active\s*$/m.test(inv.stdout);
        await record(clusterId, {
          check: "k3s-active",
          node: n.node,
          ok,
          ...(ok ? {} : { evidence: `probe ${inv.status}: ${outputTail(inv.stdout, inv.stderr, 5, 500)}` }),
        });
      }
      if (waiting.size === 0) break;
      if (Date.now() > deadline) {
        for (const [commandId, n] of waiting) {
          await o.remote.cancel(s.plan.region, commandId, n.instanceId).catch(() => undefined);
          await record(clusterId, {
            check: "k3s-active",
            node: n.node,
            ok: false,
            evidence: `the probe had no answer within ${Math.round(probeTimeoutMs / 1000)} s (is the SSM Agent online?)`,
          });
        }
        break;
      }
      await sleep(pollMs);
    }
    return sent.length;
  };

  const round = async () => {
    let clusters = 0;
    let probes = 0;
    for (const id of await installIds(o.nats)) {
      // Read fresh: another replica may have written since.
      const { state, lifecycleTraceparent } = await o.handler.read({ type: "install", id });
      if (state.status === "Absent" || !state.completedOnce) continue;
      if (state.status === "Failed" || state.status === "Removing" || state.status === "Removed") continue;
      clusters++;
      // A timer's work: its own trace, with a span link to the install's lifecycle trace
      // (the events it records carry both).
      probes += await inMessagingSpan(
        {
          operation: "process",
          template: "installer.health",
          destination: "installer.health",
          kind: SpanKind.INTERNAL,
          links: linkTo(lifecycleTraceparent),
          attributes: { [SpanAttributes.aggregateType]: "install", [SpanAttributes.aggregateId]: id },
        },
        () => probeCluster(id, state),
      );
    }
    return { clusters, probes };
  };

  let timer: NodeJS.Timeout | undefined;
  let running: Promise<unknown> = Promise.resolve();
  let leading = false;
  const tick = () => {
    timer = setTimeout(() => {
      running = round()
        .catch((err) => o.logger?.warn({ err: describeError(err) }, "health round failed"))
        .finally(() => {
          if (leading) tick();
        });
    }, intervalMs);
  };
  const lease = await acquireLeadership({
    nc: o.nats.nc,
    name: HEALTH_LEASE,
    holder: `${hostname()}-${process.pid}-${newId()}`,
    ...(o.leaseTtlMs !== undefined ? { ttlMs: o.leaseTtlMs } : {}),
    onElected: () => {
      leading = true;
      tick();
    },
    onDeposed: () => {
      leading = false;
      clearTimeout(timer);
    },
  });
  return {
    round,
    stop: async () => {
      leading = false;
      clearTimeout(timer);
      await lease.release();
      await running;
    },
  };
}
