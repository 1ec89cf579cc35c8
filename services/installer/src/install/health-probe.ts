/**
 * The K3s service probe: on an interval, for every installed cluster, one `k3s-check`
 * over SSM on each joined node (the `validateAllChecks` idea): one command for up to 50 of
 * the cluster's joined nodes (the most one SendCommand names), its answers read together
 * (node by node when SSM refuses the batch). A result that differs from what the install
 * holds goes to the install aggregate as `install.record-check`, which turns it into events:
 * a cluster of healthy nodes costs two SSM calls a round per 50 nodes, never a command or an
 * event.
 *
 * A round visits several clusters at once (`concurrency`) and rounds start an interval apart
 * (not an interval after the last one ended): one cluster after the other, a round of 1,000
 * clusters took ~9 minutes, so a node's K3s failing waited that long to be seen.
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
import { type Invocation, type RemoteExec, RUNNING_STATUSES } from "../ports.ts";
import { stepScript } from "../scripts/steps.ts";
import { outputTail } from "./output.ts";
import { checkKey, type InstallNode, type InstallState } from "./state.ts";

export const HEALTH_LEASE = "installer.health";

/**
 * Clusters probed at once. A cluster's probe is mostly waiting (its command running on the
 * nodes, a look every `pollMs`), so eight at once make a round of 1,000 clusters ~75 s on the
 * sim instead of ~9 minutes; the probe's SSM calls still go through the adapter's bulkhead
 * (3 in flight a region), where the installs' own calls queue beside at most eight of them.
 */
export const DEFAULT_PROBE_CONCURRENCY = 8;

/** The most instances one SendCommand may name (SSM refuses more with a ValidationException). */
export const SSM_MAX_INSTANCE_IDS = 50;

export interface HealthProbeOptions {
  nats: Nats;
  handler: CommandHandler<InstallCommand, InstallEvent, InstallState>;
  remote: RemoteExec;
  /** From one round's start to the next's (default 60 s); a round that runs longer is followed at once. */
  intervalMs?: number;
  /** Clusters probed at once in a round (default {@link DEFAULT_PROBE_CONCURRENCY}). */
  concurrency?: number;
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
  const concurrency = Math.max(1, o.concurrency ?? DEFAULT_PROBE_CONCURRENCY);

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

  /** A result the install already holds (k3s-active passing and not failing, or failing and failing) records nothing: skipped. */
  const unchanged = (s: Active, node: string, ok: boolean) =>
    Boolean(s.failing[checkKey("k3s-active", node)]) === !ok;
  const recordResult = async (clusterId: string, s: Active, node: string, ok: boolean, evidence?: string) => {
    if (unchanged(s, node, ok)) return;
    await record(clusterId, {
      check: "k3s-active",
      node,
      ok,
      ...(ok || evidence === undefined ? {} : { evidence }),
    });
  };
  const okOf = (inv: Invocation) => inv.status === "Success" && /^active\s*$/m.test(inv.stdout);
  const evidenceOf = (inv: Invocation) =>
    `probe ${inv.status}: ${outputTail(inv.stdout, inv.stderr, 5, 500)}`;
  const noAnswer = () =>
    `the probe had no answer within ${Math.round(probeTimeoutMs / 1000)} s (is the SSM Agent online?)`;
  const scriptOf = (clusterId: string, s: Active, n: InstallNode) => {
    const { token, kubeconfig } = clusterSecretParameters(clusterId);
    return stepScript({
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
    });
  };

  /**
   * The cluster's joined nodes in one SSM command (the check's script is the same on every
   * node: it finds the node's own unit), its progress in one ListCommandInvocations a look:
   * a healthy cluster costs two SSM calls a round, whatever its size, and no command to the
   * install. Undefined when the batch could not be sent (a node not managed refuses the
   * whole command): the round probes node by node.
   */
  const probeBatch = async (clusterId: string, s: Active, nodes: readonly InstallNode[]) => {
    let commandId: string;
    try {
      commandId = await o.remote.sendBatch(s.plan.region, {
        instanceIds: nodes.map((n) => n.instanceId),
        comment: `cairn k3s-check cluster=${clusterId}`,
        executionTimeoutSeconds: o.executionTimeoutSeconds ?? 60,
        commands: scriptOf(clusterId, s, nodes[0]!),
      });
    } catch {
      return undefined;
    }
    const waiting = new Map(nodes.map((n) => [n.instanceId, n]));
    const deadline = Date.now() + probeTimeoutMs;
    while (waiting.size > 0) {
      // No look straight after the send: the check has not run yet (SSM lists a command's
      // invocations a moment after SendCommand; none yet is "still running").
      await sleep(pollMs);
      const invocations = await o.remote.invocations(s.plan.region, commandId).catch(() => undefined);
      for (const [instanceId, n] of [...waiting]) {
        const inv = invocations?.get(instanceId);
        if (!inv || RUNNING_STATUSES.has(inv.status)) continue;
        waiting.delete(instanceId);
        const ok = okOf(inv);
        await recordResult(clusterId, s, n.node, ok, ok ? undefined : evidenceOf(inv));
      }
      if (waiting.size === 0) break;
      if (Date.now() > deadline) {
        await o.remote.cancel(s.plan.region, commandId, [...waiting.keys()]).catch(() => undefined);
        for (const n of waiting.values()) await recordResult(clusterId, s, n.node, false, noAnswer());
        break;
      }
    }
    return nodes.length;
  };

  /** One command per node: when the batch is refused, each node's own answer (or refusal) is its evidence. */
  const probeEach = async (clusterId: string, s: Active, nodes: readonly InstallNode[]): Promise<number> => {
    const sent = await Promise.all(
      nodes.map(async (n) => {
        try {
          const commandId = await o.remote.send(s.plan.region, {
            instanceId: n.instanceId,
            comment: `cairn k3s-check cluster=${clusterId}`,
            executionTimeoutSeconds: o.executionTimeoutSeconds ?? 60,
            commands: scriptOf(clusterId, s, n),
          });
          return { n, commandId };
        } catch (err) {
          await recordResult(
            clusterId,
            s,
            n.node,
            false,
            `the probe could not be sent: ${describeError(err)}`.slice(0, 2_000),
          );
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
        const ok = okOf(inv);
        await recordResult(clusterId, s, n.node, ok, ok ? undefined : evidenceOf(inv));
      }
      if (waiting.size === 0) break;
      if (Date.now() > deadline) {
        for (const [commandId, n] of waiting) {
          await o.remote.cancel(s.plan.region, commandId, n.instanceId).catch(() => undefined);
          await recordResult(clusterId, s, n.node, false, noAnswer());
        }
        break;
      }
      await sleep(pollMs);
    }
    return sent.length;
  };

  const probeCluster = async (clusterId: string, s: Active): Promise<number> => {
    const nodes = Object.values(s.nodes).filter((n) => n.joined && !n.failed && !n.step);
    const batches: InstallNode[][] = [];
    for (let i = 0; i < nodes.length; i += SSM_MAX_INSTANCE_IDS)
      batches.push(nodes.slice(i, i + SSM_MAX_INSTANCE_IDS));
    const probed = await Promise.all(
      batches.map(async (b) => (await probeBatch(clusterId, s, b)) ?? (await probeEach(clusterId, s, b))),
    );
    return probed.reduce((a, b) => a + b, 0);
  };

  const probeOne = async (id: string): Promise<number | undefined> => {
    // Read fresh: another replica may have written since.
    const { state, lifecycleTraceparent } = await o.handler.read({ type: "install", id });
    if (state.status === "Absent" || !state.completedOnce) return undefined;
    if (state.status === "Failed" || state.status === "Removing" || state.status === "Removed")
      return undefined;
    // A timer's work: its own trace, with a span link to the install's lifecycle trace
    // (the events it records carry both).
    return inMessagingSpan(
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
  };

  const round = async () => {
    let clusters = 0;
    let probes = 0;
    const ids = await installIds(o.nats);
    let next = 0;
    // `concurrency` workers take the clusters in turn; a cluster that fails its probe (a read
    // or a record that threw) is logged and the round goes on with the others.
    const worker = async () => {
      while (next < ids.length) {
        const id = ids[next++]!;
        try {
          const n = await probeOne(id);
          if (n === undefined) continue;
          clusters++;
          probes += n;
        } catch (err) {
          o.logger?.warn({ clusterId: id, err: describeError(err) }, "health probe of a cluster failed");
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, ids.length) }, worker));
    return { clusters, probes };
  };

  let timer: NodeJS.Timeout | undefined;
  let running: Promise<unknown> = Promise.resolve();
  let leading = false;
  const tick = (delayMs: number) => {
    timer = setTimeout(() => {
      const started = Date.now();
      running = round()
        .catch((err) => o.logger?.warn({ err: describeError(err) }, "health round failed"))
        .finally(() => {
          if (leading) tick(Math.max(0, intervalMs - (Date.now() - started)));
        });
    }, delayMs);
  };
  const lease = await acquireLeadership({
    nc: o.nats.nc,
    name: HEALTH_LEASE,
    holder: `${hostname()}-${process.pid}-${newId()}`,
    ...(o.leaseTtlMs !== undefined ? { ttlMs: o.leaseTtlMs } : {}),
    onElected: () => {
      leading = true;
      tick(intervalMs);
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
