/**
 * node-ops' node watcher: per cluster, list the nodes, then watch them from the list's
 * resourceVersion, and report everything it sees to the kube aggregate as internal
 * `kube.observe-*` commands. The decider records only what changed, so the watcher may
 * report the same thing again (a resumed watch, a relist) without spamming the log.
 *
 * One list-and-watch loop per cluster (watch/list-watch.ts: list, watch from the list's
 * resourceVersion, resume when the watch closes, relist on 410 Gone or a silent watch,
 * back off after a failure). A list is recorded as `observe-api {reachable: true}` and
 * `observe-node-list` (a full resync); each change as `observe-node` or
 * `observe-node-removed`; a list or watch that fails as `observe-api {reachable: false,
 * reason}`. Recording that fails (NATS unavailable) is logged and retried with backoff
 * from a relist, never reported as the API's fault.
 */
import {
  type CommandDataInput,
  type CommandHandler,
  commandCausedBy,
  continueTrace,
  derivedId,
  type KubeCommand,
  type KubeEvent,
  newId,
  type RawEventEnvelope,
  type RunnerLogger,
  SpanAttributes,
} from "@cairn/events";
import type { KubeNodes, NodeList, NodeWatchEvent } from "../ports.ts";
import { startListWatch } from "../watch/list-watch.ts";
import type { KubeState } from "./decider.ts";

/**
 * Where a cluster's facts come from: the cluster's first event (its creating command's
 * decision). The watcher's commands are named after it, carry its correlation, and run
 * in its trace (`meta.traceparent`), so every `kube.*` event of the cluster continues
 * the cluster's lifecycle trace — however often node-ops restarts or the lease moves.
 */
export type ClusterOrigin = Pick<RawEventEnvelope, "id" | "meta">;

export interface NodeWatcherOptions {
  handler: CommandHandler<KubeCommand, KubeEvent, KubeState>;
  nodes: KubeNodes;
  logger?: RunnerLogger;
  /** Backoff after a failure: a random delay up to min(maxMs, baseMs·2^(n-1)). Default 500 ms → 30 s. */
  backoff?: { baseMs?: number; maxMs?: number };
  /**
   * A watch that brings neither an event nor a bookmark for this long is taken as blind
   * and relisted. Default 150 s: the API server bookmarks about once a minute a watch it
   * has news for, so more than two periods of silence is suspect.
   */
  silenceMs?: number;
  random?: () => number;
  /**
   * The cluster's origin (its first event; `store.load(cluster, { toVersion: 1 })`), looked
   * up when a watch (re)lists until found. Absent or not found: the observations start
   * a trace of their own, correlated by the cluster's id.
   */
  originOf?: (clusterId: string) => Promise<ClusterOrigin | undefined>;
}

/** The clusters being watched; each watch runs until `unwatch` or `stop`. */
export interface NodeWatcher {
  /**
   * Starts watching the cluster. Idempotent: a cluster already watched with the same
   * kubeconfig version is left alone; a newer version (re-published) restarts its watch
   * with the kubeconfig read again.
   */
  watch(clusterId: string, kubeconfig?: { parameter: string; version: number }): void;
  /** Stops watching the cluster and waits until its loop has ended. */
  unwatch(clusterId: string): Promise<void>;
  /** The clusters watched now. */
  clusters(): string[];
  /** Stops every watch. */
  stop(): Promise<void>;
}

/** Recording an observation failed (the log, not the cluster, is at fault). */
class RecordFailure extends Error {
  override readonly name = "RecordFailure";
}

export function createNodeWatcher(o: NodeWatcherOptions): NodeWatcher {
  const silenceMs = o.silenceMs ?? 150_000;
  const loops = new Map<string, { stop(): Promise<void>; version: number }>();

  /** A stand-in origin for a cluster whose first event could not be read (yet). */
  const unknownOrigin = (clusterId: string): ClusterOrigin => {
    const id = derivedId("node-ops.watch", clusterId);
    return { id, meta: { causationId: id, correlationId: clusterId, actor: "node-ops" } };
  };

  /**
   * Decides one observation on the cluster's kube aggregate, inside the cluster's
   * lifecycle trace (a span of it per observation). Its id is fresh (an observation has
   * no cause to derive it from: the decider drops what did not change).
   */
  const record = async <T extends KubeCommand["type"]>(
    clusterId: string,
    origin: ClusterOrigin,
    type: T,
    data: CommandDataInput<T>,
  ) => {
    const command = commandCausedBy(origin, type, data, { actor: "node-ops", key: newId() });
    try {
      return await continueTrace(origin.meta.traceparent, `record ${type}`, () => o.handler.handle(command), {
        [SpanAttributes.aggregateType]: "kube",
        [SpanAttributes.aggregateId]: clusterId,
        [SpanAttributes.commandId]: command.command.id,
        [SpanAttributes.commandType]: type,
        [SpanAttributes.correlationId]: command.command.meta.correlationId,
      });
    } catch (err) {
      throw new RecordFailure(`could not record ${type}`, { cause: err });
    }
  };

  /** One cluster's list-and-watch loop (watch/list-watch.ts), its changes recorded as kube observations. */
  const run = (clusterId: string, parameter: string | undefined) => {
    const log = (obj: object, msg: string) => o.logger?.warn({ cluster: clusterId, ...obj }, msg);
    /** The cluster's origin once read (looked up again at each relist until it is). */
    let origin: ClusterOrigin | undefined;
    const report = <T extends KubeCommand["type"]>(type: T, data: CommandDataInput<T>) =>
      record(clusterId, origin ?? unknownOrigin(clusterId), type, data);
    const inClusterTrace = <R>(name: string, fn: () => Promise<R>) =>
      continueTrace(origin?.meta.traceparent, name, fn, {
        [SpanAttributes.aggregateType]: "cluster",
        [SpanAttributes.aggregateId]: clusterId,
        [SpanAttributes.correlationId]: origin?.meta.correlationId,
      });

    return startListWatch<NodeList, NodeWatchEvent>({
      what: "nodes",
      logFields: { cluster: clusterId },
      ...(o.logger ? { logger: o.logger } : {}),
      ...(o.backoff ? { backoff: o.backoff } : {}),
      silenceMs,
      ...(o.random ? { random: o.random } : {}),
      // The API calls too run in the cluster's lifecycle trace (its kubeconfig read from SSM,
      // the list, the watch's request), each under a span of its own.
      list: () => inClusterTrace("list nodes", () => o.nodes.listNodes(clusterId, parameter)),
      watch: (from, onEvent, onEnd) =>
        inClusterTrace("watch nodes", () => o.nodes.watchNodes(clusterId, from, onEvent, onEnd, parameter)),
      beforeList: async () => {
        if (origin || !o.originOf) return;
        try {
          origin = await o.originOf(clusterId);
        } catch (err) {
          log({ err: String(err) }, "could not read the cluster's origin; its facts are traced on their own");
        }
      },
      onList: async (list) => {
        await report("kube.observe-api", { clusterId, reachable: true });
        // A list of more nodes than a commit may hold facts for: their facts first, at most
        // OBSERVED_PER_RECORD a commit (as the watch's changes), then the list itself, which
        // then records only what the chunks could not: the known nodes it lacks (removed).
        // One commit of a whole list is ~1.5 KB a node: at 500 nodes ~740 KB, and every
        // look at the aggregate's last sequence (STREAM.MSG.GET answers with the whole last
        // commit) carried it, base64 — bench/install's 10–35 s stall, docs/installer.md.
        // A crash between two chunks leaves facts that are all true; the next list resyncs.
        if (list.nodes.length > OBSERVED_PER_RECORD)
          for (let i = 0; i < list.nodes.length; i += OBSERVED_PER_RECORD)
            await report("kube.observe-nodes", {
              clusterId,
              nodes: list.nodes.slice(i, i + OBSERVED_PER_RECORD),
            });
        await report("kube.observe-node-list", { clusterId, nodes: [...list.nodes] });
      },
      onEvent: async (e) => {
        if (e.kind === "upsert") await report("kube.observe-node", { clusterId, ...e.node });
        else if (e.kind === "removed") await report("kube.observe-node-removed", { clusterId, node: e.node });
      },
      // Changes that queued while one was recorded: each run of upserts is one record, in order.
      onEvents: async (es) => {
        let run: (typeof es)[number][] = [];
        const flush = async () => {
          const nodes = run.flatMap((x) => (x.kind === "upsert" ? [x.node] : []));
          run = [];
          if (nodes.length === 1) await report("kube.observe-node", { clusterId, ...nodes[0]! });
          // At most OBSERVED_PER_RECORD a commit: one commit holds every fact its nodes
          // make (registered, ready, pressure), and a few hundred nodes' would pass
          // NATS's message size (bench/install at 500 nodes stalled on it).
          else
            for (let i = 0; i < nodes.length; i += OBSERVED_PER_RECORD)
              await report("kube.observe-nodes", {
                clusterId,
                nodes: nodes.slice(i, i + OBSERVED_PER_RECORD),
              });
        };
        for (const e of es) {
          if (e.kind === "upsert") {
            run.push(e);
            continue;
          }
          await flush();
          if (e.kind === "removed") await report("kube.observe-node-removed", { clusterId, node: e.node });
        }
        await flush();
      },
      onUnreachable: async (err) => {
        const reason = err instanceof Error ? err.message : String(err);
        log({ reason }, "Kubernetes API unreachable");
        try {
          await report("kube.observe-api", { clusterId, reachable: false, reason });
        } catch (e) {
          log({ err: String(e) }, "could not record the API as unreachable");
        }
      },
    });
  };

  return {
    watch(clusterId, kubeconfig) {
      const version = kubeconfig?.version ?? 0;
      const running = loops.get(clusterId);
      if (running && running.version >= version) return;
      if (running) {
        // Re-published: the old loop ends, the new one reads the kubeconfig again (and
        // relists; the decider records only what changed meanwhile).
        o.logger?.info({ cluster: clusterId, version }, "kubeconfig re-published; watching anew");
        const previous = running.stop();
        const next = { version, stop: () => previous };
        loops.set(clusterId, next);
        void previous.then(() => {
          if (loops.get(clusterId) !== next) return; // unwatched or replaced meanwhile
          o.nodes.forgetKubeconfig(clusterId);
          const l = run(clusterId, kubeconfig?.parameter);
          next.stop = l.stop;
        });
        return;
      }
      o.logger?.info({ cluster: clusterId }, "watching the cluster's nodes");
      loops.set(clusterId, { ...run(clusterId, kubeconfig?.parameter), version });
    },
    async unwatch(clusterId) {
      const l = loops.get(clusterId);
      if (!l) return;
      loops.delete(clusterId);
      o.logger?.info({ cluster: clusterId }, "no longer watching the cluster's nodes");
      await l.stop();
    },
    clusters: () => [...loops.keys()].sort(),
    async stop() {
      const all = [...loops.values()];
      loops.clear();
      await Promise.all(all.map((l) => l.stop()));
    },
  };
}

/** Changed nodes recorded per `kube.observe-nodes`: a commit of their facts stays far below NATS's 1 MB. */
const OBSERVED_PER_RECORD = 50;
