import { hostname } from "node:os";
import {
  CommandHandler,
  catalogue,
  EventStore,
  exponentialDelay,
  type KubeCommand,
  type KubeEvent,
  type Nats,
  newId,
  type RunnerLogger,
  serveAggregate,
  type WorkloadCommand,
  type WorkloadEvent,
} from "@cairn/events";
import {
  acquireLeadership,
  type LeaderLease,
  leaseLogging,
  Resilience,
  resilienceMetricsObserver,
} from "@cairn/service";
import { createKube, type KubeAdapterOptions } from "./adapters/kube.ts";
import { createSessionWorkloads } from "./adapters/session-workloads.ts";
import { createWorkloads } from "./adapters/workloads.ts";
import { startClassificationRestore } from "./classification/restore.ts";
import { type KubeState, kubeDecider } from "./kube/decider.ts";
import { startWatchedClusters, type WatchedClusters } from "./kube/watched-clusters.ts";
import { createNodeWatcher, type NodeWatcher } from "./kube/watcher.ts";
import type { DisruptionLimit } from "./nodeop/admission.ts";
import { clusterNodesProbe, type NodeopHandler } from "./nodeop/cluster-nodes-probe.ts";
import { nodeopDecider } from "./nodeop/decider.ts";
import { startInterruptionReactor } from "./nodeop/interruption-reactor.ts";
import { startNodeopReactor } from "./nodeop/reactor.ts";
import { startRetiredNodes } from "./nodeop/retired-nodes.ts";
import type { Kube, KubeNodes } from "./ports.ts";
import { type SpotIntake, type SpotIntakeOptions, startSpotIntake } from "./spot/intake.ts";
import { type SessionMoves, startSessionMoves } from "./workload/moves.ts";
import {
  createSessionPodWatch,
  type SessionPodWatch,
  type SessionPodWatchOptions,
} from "./workload/session-pod-watch.ts";
import type { SessionWorkloads } from "./workload/session-port.ts";
import { type SessionReactorOptions, startSessionWorkloadReactor } from "./workload/session-reactor.ts";
import { type WorkloadState, workloadDecider } from "./workload/workload.decider.ts";

/** The leader lease that lets one node-ops process watch the clusters' nodes. */
export const NODE_WATCH_LEASE = "node-ops.node-watch";

export interface NodeFactsOptions {
  /** The node lists and watches; default: the client-node adapter (as `kube`). */
  nodes?: KubeNodes;
  /** The watcher's backoff after a failure (default 500 ms doubling up to 30 s, full jitter). */
  backoff?: { baseMs?: number; maxMs?: number };
  /** The leader lease's time to live (default 10 s): how long a dead leader's clusters go unwatched. */
  leaseTtlMs?: number;
  /** A node watch silent (no event, no bookmark) this long is relisted (default 150 s; kube/watcher.ts). */
  silenceMs?: number;
}

export interface NodeOpsOptions {
  nats: Nats;
  logger?: RunnerLogger;
  /** The Kubernetes API; default: the client-node adapter, kubeconfigs from SSM. */
  kube?: Kube;
  /** SSM options for the default adapter (endpoint, credentials); absent: the SDK's environment. */
  ssm?: Pick<KubeAdapterOptions, "endpoint" | "credentials">;
  /** A drain's backoff between passes: from `pollMs` (default 200) doubling up to `maxPollMs` (default 5000). */
  drain?: { pollMs?: number; maxPollMs?: number };
  /**
   * How long a cordon, uncordon or label/taint change keeps trying through transient
   * Kubernetes failures before it is recorded as failed (default 10 minutes).
   */
  operationPatienceMs?: number;
  /** Node facts (the kube aggregate); `false`: this process does not watch nodes. */
  facts?: NodeFactsOptions | false;
  /**
   * At most this many nodes of a cluster cordoned or draining by Cairn at once
   * (nodeop/admission.ts; default 10% of its nodes, at least 1); `false`: no limit.
   */
  limit?: DisruptionLimit | false;
  /** Classification drift restore (classification/restore.ts); `false`: off. */
  restore?: { busyRetryMs?: number } | false;
  /**
   * Spot interruption intake (SQS long polls per region, under a lease): on when given
   * (`{}`: the SDK's environment, `AWS_ENDPOINT_URL_SQS`, …), off by default.
   */
  spot?: Omit<SpotIntakeOptions, "nats" | "handler" | "logger">;
  /**
   * Breakers, bulkheads and retries of every outside call (Kubernetes per cluster, SSM
   * and SQS per region); default: one for the process, with metrics and log lines.
   */
  resilience?: Resilience;
  /**
   * Session workloads (the `workload` aggregate: cmd.workload.>, workload/session-reactor.ts);
   * on by default, `false`: off.
   */
  sessions?: SessionWorkloadOptions | false;
}

export interface SessionWorkloadOptions
  extends Pick<SessionReactorOptions, "poll" | "unschedulableGraceMs" | "startTimeoutMs"> {
  /** The Kubernetes side; default: the client-node adapter (kubeconfigs as `kube`). */
  workloads?: SessionWorkloads;
  /** How often the holder of the moves lease looks for moved session pods (default 10 s). */
  movesIntervalMs?: number;
  movesLeaseTtlMs?: number;
  /**
   * The session pod watch (workload/session-pod-watch.ts): a start or stop under way is
   * seen done the moment its pod is Ready (or gone), not at the next poll. On by
   * default; `false`: the polls alone.
   */
  podWatch?: Pick<SessionPodWatchOptions, "lingerMs" | "backoff" | "silenceMs"> | false;
}

export interface NodeOps {
  readonly handler: NodeopHandler;
  /** The kube aggregate's handler (node facts), when facts are on. */
  readonly kubeHandler: CommandHandler<KubeCommand, KubeEvent, KubeState> | undefined;
  /** The workload aggregate's handler (session workloads), when they are on. */
  readonly workloadHandler: CommandHandler<WorkloadCommand, WorkloadEvent, WorkloadState> | undefined;
  /** One look for moved session pods now (when this process holds the moves lease). */
  lookForMovedSessions(): Promise<number>;
  /** The clusters whose session pods this process watches now (a start or stop waits there). */
  sessionPodWatches(): string[];
  /** True while this process holds the node-watch lease and watches the clusters. */
  watching(): boolean;
  /** The clusters whose nodes this process watches now (none unless `watching()`). */
  watchedClusters(): string[];
  /** The regions whose spot interruption queue this process polls now. */
  spotRegions(): string[];
  /** One spot/on-demand placement pass now (when `spot.placement` is on and this process leads). */
  reconcilePlacement(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * node-ops owns the `nodeop` aggregate (one per node): it serves `cmd.node.>`, is the
 * only writer of `evt.nodeop.*`, and its reactor carries the decisions out on the
 * cluster's Kubernetes API. Command server and reactor share one handler.
 *
 * It also owns the `kube` aggregate (one per cluster): the process holding the
 * node-watch lease watches the nodes of every live cluster and records the facts.
 */
export async function startNodeOps(o: NodeOpsOptions): Promise<NodeOps> {
  const resilience = o.resilience ?? new Resilience({ observer: resilienceMetricsObserver(o.logger) });
  const adapter = createKube({
    nats: o.nats,
    resilience,
    ...(o.logger ? { logger: o.logger } : {}),
    ...o.ssm,
  });
  const kube = o.kube ?? adapter;
  const { handler, stop: stopCommands } = await serveAggregate({
    nats: o.nats,
    catalogue,
    decider: nodeopDecider,
    commandPrefix: "node",
    durable: "node-ops-commands",
    ...(o.logger ? { logger: o.logger } : {}),
    // A command naming a node is decided on the cluster's nodes as node-ops' facts have
    // them (nodeop/known-nodes.ts): a node the cluster does not have is refused at once.
    observe: clusterNodesProbe(
      new EventStore({ js: o.nats.js, jsm: o.nats.jsm, catalogue, onUnreadable: () => {} }),
    ),
  });
  const reactor = await startNodeopReactor({
    nats: o.nats,
    handler,
    kube,
    ...(o.logger ? { logger: o.logger } : {}),
    ...(o.drain?.pollMs !== undefined ? { drainPollMs: o.drain.pollMs } : {}),
    ...(o.drain?.maxPollMs !== undefined ? { drainMaxPollMs: o.drain.maxPollMs } : {}),
    ...(o.limit !== undefined ? { limit: o.limit } : {}),
    ...(o.operationPatienceMs !== undefined ? { patienceMs: o.operationPatienceMs } : {}),
  });
  const restore =
    o.restore === false
      ? undefined
      : await startClassificationRestore({
          nats: o.nats,
          handler,
          ...(o.logger ? { logger: o.logger } : {}),
          ...(o.restore?.busyRetryMs !== undefined ? { busyRetryMs: o.restore.busyRetryMs } : {}),
        });
  const retired = await startRetiredNodes({
    nats: o.nats,
    handler,
    kube,
    ...(o.logger ? { logger: o.logger } : {}),
    ...(o.drain?.pollMs !== undefined ? { pollMs: o.drain.pollMs } : {}),
    ...(o.drain?.maxPollMs !== undefined ? { maxPollMs: o.drain.maxPollMs } : {}),
  });
  const interruptions = await startInterruptionReactor({
    nats: o.nats,
    handler,
    kube,
    ...(o.logger ? { logger: o.logger } : {}),
    ...(o.drain?.pollMs !== undefined ? { pollMs: o.drain.pollMs } : {}),
    ...(o.drain?.maxPollMs !== undefined ? { maxPollMs: o.drain.maxPollMs } : {}),
  });
  const spot: SpotIntake | undefined = o.spot
    ? await startSpotIntake({
        nats: o.nats,
        handler,
        resilience,
        ...(o.logger ? { logger: o.logger } : {}),
        ...o.spot,
        // Placement on: the client-node adapter unless a port is given.
        ...(o.spot.placement
          ? { placement: { workloads: createWorkloads(adapter), ...o.spot.placement } }
          : {}),
      })
    : undefined;
  const facts = o.facts === false ? undefined : await startNodeFacts(o, o.facts?.nodes ?? adapter);
  const sessions =
    o.sessions === false ? undefined : await startSessionWorkloads(o, o.sessions ?? {}, adapter, kube);
  return {
    handler,
    kubeHandler: facts?.handler,
    workloadHandler: sessions?.handler,
    lookForMovedSessions: async () => (await sessions?.moves.look()) ?? 0,
    sessionPodWatches: () => sessions?.podWatch?.clusters() ?? [],
    watching: () => facts?.watching() ?? false,
    watchedClusters: () => facts?.clusters() ?? [],
    spotRegions: () => spot?.regions() ?? [],
    reconcilePlacement: async () => {
      await spot?.reconcilePlacement();
    },
    stop: async () => {
      await sessions?.stop();
      await spot?.stop();
      await facts?.stop();
      await restore?.stop();
      await stopCommands();
      await reactor.stop();
      await interruptions.stop();
      await retired.stop();
    },
  };
}

/**
 * Session workloads: node-ops serves cmd.workload.> (the idle-detector's commands) and
 * carries each attempt out on the session's cluster; one process at a time looks for
 * session pods that moved.
 */
async function startSessionWorkloads(
  o: NodeOpsOptions,
  opts: SessionWorkloadOptions,
  adapter: ReturnType<typeof createKube>,
  kube: Kube,
): Promise<{
  handler: CommandHandler<WorkloadCommand, WorkloadEvent, WorkloadState>;
  moves: SessionMoves;
  podWatch: SessionPodWatch | undefined;
  stop(): Promise<void>;
}> {
  const workloads = opts.workloads ?? createSessionWorkloads(adapter);
  const podWatch =
    opts.podWatch === false
      ? undefined
      : createSessionPodWatch({ workloads, ...(o.logger ? { logger: o.logger } : {}), ...opts.podWatch });
  const served = await serveAggregate({
    nats: o.nats,
    catalogue,
    decider: workloadDecider,
    commandPrefix: "workload",
    durable: "node-ops-workload-commands",
    ...(o.logger ? { logger: o.logger } : {}),
  });
  const reactor = await startSessionWorkloadReactor({
    nats: o.nats,
    handler: served.handler,
    workloads,
    ...(o.logger ? { logger: o.logger } : {}),
    ...(opts.poll ? { poll: opts.poll } : {}),
    ...(opts.unschedulableGraceMs !== undefined ? { unschedulableGraceMs: opts.unschedulableGraceMs } : {}),
    ...(opts.startTimeoutMs !== undefined ? { startTimeoutMs: opts.startTimeoutMs } : {}),
    ...(podWatch ? { podWatch } : {}),
  });
  const moves = await startSessionMoves({
    nats: o.nats,
    handler: served.handler,
    workloads,
    kube,
    ...(podWatch ? { podWatch } : {}),
    ...(o.logger ? { logger: o.logger } : {}),
    ...(opts.movesIntervalMs !== undefined ? { intervalMs: opts.movesIntervalMs } : {}),
    ...(opts.movesLeaseTtlMs !== undefined ? { leaseTtlMs: opts.movesLeaseTtlMs } : {}),
  });
  return {
    handler: served.handler,
    moves,
    podWatch,
    stop: async () => {
      await moves.stop();
      await served.stop();
      await reactor.stop();
      await podWatch?.stop();
    },
  };
}

/**
 * Node facts: one process at a time (the holder of the node-watch lease) reads which
 * clusters are live and watches their nodes. Elected: start; deposed or stopped: every
 * watch ends. The kube commands are internal (nobody else may send them), so they are
 * decided in-process by a plain handler and no command server listens for them.
 */
async function startNodeFacts(o: NodeOpsOptions, nodes: KubeNodes) {
  const store = new EventStore({ js: o.nats.js, jsm: o.nats.jsm, catalogue });
  const handler = new CommandHandler({ decider: kubeDecider, store, catalogue });
  const opts = o.facts || {};
  let leading = false;
  let active: { watcher: NodeWatcher; clusters: WatchedClusters } | undefined;
  let retry: NodeJS.Timeout | undefined;
  let attempts = 0;

  const start = async () => {
    if (!leading || active) return;
    const watcher = createNodeWatcher({
      handler,
      nodes,
      // The cluster's first event: its facts continue its lifecycle trace (one event read, not its history).
      originOf: async (id) => (await store.load({ type: "cluster", id }, { toVersion: 1 })).events[0],
      ...(o.logger ? { logger: o.logger } : {}),
      ...(opts.backoff ? { backoff: opts.backoff } : {}),
      ...(opts.silenceMs !== undefined ? { silenceMs: opts.silenceMs } : {}),
    });
    let clusters: WatchedClusters;
    try {
      clusters = await startWatchedClusters({
        nats: o.nats,
        watcher,
        ...(o.logger ? { logger: o.logger } : {}),
      });
    } catch (err) {
      await watcher.stop();
      // NATS could not be read: try again while still leader (a leader that does nothing is no leader).
      const delay = exponentialDelay(++attempts, { baseMs: 1_000, capMs: 30_000 });
      o.logger?.error(
        { err: String(err), retryInMs: delay },
        "node facts: could not read which clusters to watch",
      );
      if (leading) retry = setTimeout(() => void start(), delay);
      return;
    }
    attempts = 0;
    if (!leading || active) {
      // Deposed (or started twice) meanwhile: undo.
      await clusters.stop();
      await watcher.stop();
      return;
    }
    active = { watcher, clusters };
  };
  const end = async () => {
    leading = false;
    clearTimeout(retry);
    const a = active;
    active = undefined;
    await a?.clusters.stop();
    await a?.watcher.stop();
  };
  const lease: LeaderLease = await acquireLeadership({
    nc: o.nats.nc,
    name: NODE_WATCH_LEASE,
    holder: `${hostname()}-${process.pid}-${newId()}`,
    ...(opts.leaseTtlMs !== undefined ? { ttlMs: opts.leaseTtlMs } : {}),
    ...leaseLogging(o.logger),
    onElected: () => {
      leading = true;
      return start();
    },
    onDeposed: end,
  });
  return {
    handler,
    watching: () => lease.isLeader() && active !== undefined,
    clusters: () => active?.watcher.clusters() ?? [],
    stop: async () => {
      // Released, not left to expire: a successor takes over at once. Releasing deposes us
      // (`end`) before the key is deleted, so two processes never watch at once.
      await lease.release();
      await end();
    },
  };
}
