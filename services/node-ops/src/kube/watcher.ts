/**
 * node-ops' node watcher: per cluster, list the nodes, then watch them from the list's
 * resourceVersion, and report everything it sees to the kube aggregate as internal
 * `kube.observe-*` commands. The decider records only what changed, so the watcher may
 * report the same thing again (a resumed watch, a relist) without spamming the log.
 *
 * One loop per cluster, as numbered steps:
 *  1. No resourceVersion to resume from: list → `observe-api {reachable: true}` and
 *     `observe-node-list` (a full resync); the list's resourceVersion is where the watch starts.
 *  2. Watch from the resourceVersion. Each change is recorded in order; the
 *     resourceVersion moves on only once its observation is recorded, so resuming never
 *     skips one.
 *  3. The watch ended:
 *     - closed (server timeout, dropped stream): resume from the last resourceVersion (2);
 *     - silent (no event and no bookmark for `silenceMs`): relist (1). A watch resumed
 *       from a resourceVersion the server has not reached (its datastore was replaced)
 *       stays open and says nothing, for ever, on the real API server: only a relist
 *       finds where the server is now. A quiet but healthy cluster costs one list per
 *       `silenceMs`, and the decider records nothing new;
 *     - expired (410 Gone): relist (1);
 *     - failed (could not connect, 5xx, refused): `observe-api {reachable: false, reason}`,
 *       wait (capped exponential backoff, full jitter) and relist (1).
 *  A list that fails is reported and retried the same way. Recording that fails (NATS
 *  unavailable) is logged and retried with backoff from a relist, never reported as the
 *  API's fault.
 */
import {
  type CommandDataInput,
  type CommandHandler,
  commandCausedBy,
  continueTrace,
  derivedId,
  fullJitterBackoff,
  type KubeCommand,
  type KubeEvent,
  newId,
  type RawEventEnvelope,
  type RunnerLogger,
  SpanAttributes,
} from "@cairn/events";
import type { KubeNodes, NodeWatch, NodeWatchEnd, NodeWatchEvent } from "../ports.ts";
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

/** A watch that lived less than this and ended is counted as a failure for the backoff (no hot loop). */
const SHORT_WATCH_MS = 1_000;

export function createNodeWatcher(o: NodeWatcherOptions): NodeWatcher {
  const backoff = fullJitterBackoff(o.backoff?.baseMs ?? 500, o.backoff?.maxMs ?? 30_000, o.random);
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
        [SpanAttributes.commandType]: type,
      });
    } catch (err) {
      throw new RecordFailure(`could not record ${type}`, { cause: err });
    }
  };

  const run = (clusterId: string, parameter: string | undefined) => {
    let stopped = false;
    let onStop: () => void = () => {};
    /** Settles when stop() is called: a list in hand is not waited for (it may hang on a dead API). */
    const stopping = new Promise<undefined>((resolve) => {
      onStop = () => resolve(undefined);
    });
    let current: NodeWatch | undefined;
    /** When the cluster last said anything (a list, an event, a bookmark): the silence bound counts from it. */
    let heardAt = Date.now();
    let wakeUp: (() => void) | undefined;
    /** Ends the watch in hand at once (on stop): its end callback will not come. */
    let abandon: (() => void) | undefined;
    const sleep = (ms: number) =>
      new Promise<void>((resolve) => {
        if (stopped) return resolve();
        const t = setTimeout(resolve, ms);
        wakeUp = () => {
          clearTimeout(t);
          resolve();
        };
      }).finally(() => {
        wakeUp = undefined;
      });
    const log = (level: "info" | "warn", obj: object, msg: string) =>
      o.logger?.[level]({ cluster: clusterId, ...obj }, msg);
    /** The cluster's origin once read (looked up again at each relist until it is). */
    let origin: ClusterOrigin | undefined;
    const lookUpOrigin = async () => {
      if (origin || !o.originOf) return;
      try {
        origin = await o.originOf(clusterId);
      } catch (err) {
        log(
          "warn",
          { err: String(err) },
          "could not read the cluster's origin; its facts are traced on their own",
        );
      }
    };
    const report = <T extends KubeCommand["type"]>(type: T, data: CommandDataInput<T>) =>
      record(clusterId, origin ?? unknownOrigin(clusterId), type, data);

    const unreachable = async (err: unknown) => {
      const reason = err instanceof Error ? err.message : String(err);
      log("warn", { reason }, "Kubernetes API unreachable");
      try {
        await report("kube.observe-api", { clusterId, reachable: false, reason });
      } catch (e) {
        log("warn", { err: String(e) }, "could not record the API as unreachable");
      }
    };

    /** Step 2: one watch, recording in order; resolves with how it ended and the last recorded resourceVersion. */
    const watchOnce = (from: string) =>
      new Promise<{
        end: NodeWatchEnd | { reason: "record-failed"; error: Error } | { reason: "silent" };
        rv: string;
      }>((resolve) => {
        let rv = from;
        let chain: Promise<void> = Promise.resolve();
        let failed: Error | undefined;
        let quiet: ReturnType<typeof setTimeout> | undefined;
        const settle = (r: Parameters<typeof resolve>[0]) => {
          clearTimeout(quiet);
          resolve(r);
        };
        /**
         * (Re)arms the silence bound: it fires when nothing at all (event or bookmark) has
         * come for `silenceMs` since the last list, across resumed watches (a blind watch
         * ends at its server timeout and is resumed just as blind).
         */
        const heard = (now?: number) => {
          if (now !== undefined) heardAt = now;
          clearTimeout(quiet);
          quiet = setTimeout(
            () => {
              current?.stop();
              void chain.then(() => settle({ end: { reason: "silent" }, rv }));
            },
            Math.max(0, heardAt + silenceMs - Date.now()),
          );
          quiet.unref?.();
        };
        heard();
        // On stop: no end callback will come; what is being recorded finishes first.
        abandon = () => void chain.then(() => settle({ end: { reason: "closed" }, rv }));
        const observe = (e: NodeWatchEvent) => {
          heard(Date.now());
          chain = chain.then(async () => {
            if (failed || stopped) return;
            try {
              if (e.kind === "upsert") await report("kube.observe-node", { clusterId, ...e.node });
              else if (e.kind === "removed")
                await report("kube.observe-node-removed", { clusterId, node: e.node });
              rv = e.resourceVersion;
            } catch (err) {
              failed = err instanceof Error ? err : new Error(String(err));
              current?.stop();
              settle({ end: { reason: "record-failed", error: failed }, rv });
            }
          });
        };
        const ended = (end: NodeWatchEnd) => {
          // Everything seen before the end is recorded before the next step.
          clearTimeout(quiet);
          void chain.then(() => settle({ end, rv }));
        };
        void o.nodes.watchNodes(clusterId, from, observe, ended, parameter).then((w) => {
          current = w;
          if (stopped || failed) w.stop();
        });
      });

    const loop = (async () => {
      let rv: string | undefined;
      let failures = 0;
      while (!stopped) {
        // 1. (re)list
        if (rv === undefined) {
          await lookUpOrigin();
          let list: Awaited<ReturnType<KubeNodes["listNodes"]>> | undefined;
          try {
            list = await Promise.race([o.nodes.listNodes(clusterId, parameter), stopping]);
          } catch (err) {
            if (stopped) break;
            await unreachable(err);
            await sleep(backoff(++failures));
            continue;
          }
          if (stopped || !list) break;
          try {
            await report("kube.observe-api", { clusterId, reachable: true });
            await report("kube.observe-node-list", { clusterId, nodes: [...list.nodes] });
          } catch (err) {
            log("warn", { err: String(err) }, "could not record the node list; relisting later");
            await sleep(backoff(++failures));
            continue;
          }
          rv = list.resourceVersion;
          heardAt = Date.now();
          failures = 0;
          log("info", { resourceVersion: rv, nodes: list.nodes.length }, "nodes listed; watching");
        }
        // 2. watch
        const started = Date.now();
        const { end, rv: last } = await watchOnce(rv);
        current = undefined;
        abandon = undefined;
        if (stopped) break;
        rv = last;
        // 3. how it ended
        switch (end.reason) {
          case "closed":
            // Resume from where it was; only a watch that keeps ending at once backs off.
            if (Date.now() - started < SHORT_WATCH_MS) await sleep(backoff(++failures));
            else failures = 0;
            break;
          case "expired":
            log("info", { resourceVersion: rv }, "resourceVersion expired (410); relisting");
            rv = undefined;
            break;
          case "silent":
            log(
              "info",
              { resourceVersion: rv, silenceMs },
              "watch silent (no event, no bookmark); relisting",
            );
            rv = undefined;
            break;
          case "failed":
            await unreachable(end.error);
            rv = undefined;
            await sleep(backoff(++failures));
            break;
          case "record-failed":
            log("warn", { err: String(end.error.cause ?? end.error) }, "could not record; relisting later");
            rv = undefined;
            await sleep(backoff(++failures));
            break;
        }
      }
    })();

    return {
      stop: async () => {
        stopped = true;
        onStop();
        current?.stop();
        abandon?.();
        wakeUp?.();
        await loop;
      },
    };
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
