/**
 * node-ops' eye on the session pods, so a session is Running as soon as its pod is Ready
 * (and Hibernated as soon as its pod is gone), not at the reactor's next poll.
 *
 * A waiter is left by the session reactor when a look found the work not done yet (a
 * pod not Ready, a pod still there). Per cluster with waiters, one list-and-watch loop
 * (watch/list-watch.ts: list, watch from its resourceVersion, resume when the server
 * ends the watch, relist on 410 Gone or silence, back off on failure) keeps what the
 * cluster's session pods look like. When a change may have reached what a waiter waits
 * for (`reached`), the waiter acts: it looks for itself (a fresh read, never the watch's
 * copy, which may lag) and records what it finds, exactly as the reactor would; it says
 * whether it is done.
 *
 * The watch only makes things sooner; it is never needed for correctness. The reactor's
 * event stays in JetStream as a delayed redelivery (the poll), so a waiter lost with its
 * process (SIGKILL), a watch that cannot be opened, or one that lags still ends in the same
 * records, a poll later. A waiter goes when it acts and is done, is cancelled, or after
 * its time to live (the redelivery leaves a new one, in whichever replica gets it). A
 * cluster with no waiter left keeps its watch `lingerMs` (wakes come in bursts), then it
 * ends. Two replicas may both watch a cluster: every record is named after its cause, so
 * what both record is recorded once.
 */
import type { RunnerLogger } from "@cairn/events";
import { type ListWatch, startListWatch } from "../watch/list-watch.ts";
import type { SessionPod, SessionPodChange, SessionPodList, SessionWorkloads } from "./session-port.ts";

export interface PodWaiter {
  /** The session's label value (`names(sessionId).label`). */
  readonly session: string;
  /** Whether the session's pods, as the watch sees them, may have reached what is awaited. Pure. */
  reached(pods: readonly SessionPod[]): boolean;
  /** Looks (fresh) and records what it finds; true when done (the waiter goes), false to wait on. */
  act(): Promise<boolean>;
}

export interface SessionPodWatch {
  /**
   * Waits on the cluster's session pods under `key` (a waiter of the same key is
   * replaced) until it acts and is done, is cancelled, or `ttlMs` has passed. Starts the
   * cluster's watch if it is not running; a waiter whose pods already look reached acts at once.
   */
  wait(clusterId: string, key: string, waiter: PodWaiter, ttlMs: number): void;
  cancel(key: string): void;
  /**
   * Keeps the cluster's watch while followed, waiter or none (the session moves' look: a
   * standing watch instead of a list of the cluster's pods every look). Idempotent.
   */
  follow(clusterId: string): void;
  /** No longer followed: the watch ends `lingerMs` after its last waiter, as a waiter's does. */
  unfollow(clusterId: string): void;
  /** The followed clusters. */
  followed(): string[];
  /**
   * The cluster's Ready session pods as the watch last saw them, by session label: one
   * each (the name and node of a Ready one). Undefined when the cluster is not watched or
   * its watch has not listed yet. A copy that may lag: act on it only after a fresh read.
   */
  readyPods(clusterId: string): ReadonlyMap<string, { name: string; node: string }> | undefined;
  /** The clusters whose session pods are watched now. */
  clusters(): string[];
  /** The waiters left now. */
  waiting(): number;
  stop(): Promise<void>;
}

export interface SessionPodWatchOptions {
  workloads: Pick<SessionWorkloads, "listSessionPods" | "watchSessionPods">;
  logger?: RunnerLogger;
  /** How long a cluster's watch outlives its last waiter (default 60 s). */
  lingerMs?: number;
  /** The loop's backoff after a failure (default 500 ms doubling to 30 s, full jitter). */
  backoff?: { baseMs?: number; maxMs?: number };
  /** A watch silent this long is relisted (default 150 s). */
  silenceMs?: number;
}

interface Waiting {
  readonly clusterId: string;
  readonly waiter: PodWaiter;
  readonly expiry: ReturnType<typeof setTimeout>;
  acting: boolean;
  /** A change came while it acted: look at the pods again once it is done. */
  again: boolean;
}

interface Watched {
  readonly loop: ListWatch;
  /** Session label → pod name → pod, as the watch last saw them. */
  readonly pods: Map<string, Map<string, SessionPod>>;
  synced: boolean;
  linger?: ReturnType<typeof setTimeout>;
}

export function createSessionPodWatch(o: SessionPodWatchOptions): SessionPodWatch {
  const lingerMs = o.lingerMs ?? 60_000;
  const waiters = new Map<string, Waiting>();
  /** The waiters' keys by cluster: a change looks at its cluster's waiters, never at every cluster's. */
  const keysByCluster = new Map<string, Set<string>>();
  const watched = new Map<string, Watched>();
  const following = new Set<string>();
  /** Whether the cluster's watch must stay: followed, or a waiter on it. */
  const wanted = (clusterId: string) =>
    following.has(clusterId) || (keysByCluster.get(clusterId)?.size ?? 0) > 0;
  let stopped = false;

  const podsOf = (clusterId: string, session: string): SessionPod[] => [
    ...(watched.get(clusterId)?.pods.get(session)?.values() ?? []),
  ];

  /** Lets the waiter act if the watch shows its pods may have reached what it awaits. */
  const check = (key: string) => {
    const w = waiters.get(key);
    const c = w && watched.get(w.clusterId);
    if (!w || !c?.synced) return;
    if (w.acting) {
      w.again = true;
      return;
    }
    if (w.waiter.reached(podsOf(w.clusterId, w.waiter.session))) void act(key, w);
  };

  const act = async (key: string, w: Waiting) => {
    w.acting = true;
    let done = false;
    try {
      done = await w.waiter.act();
    } catch (err) {
      // Not done: the reactor's redelivery (or the next change) tries again.
      o.logger?.warn(
        { cluster: w.clusterId, session: w.waiter.session, err: String(err) },
        "session pod watch: acting on a change failed; the reactor's next look will",
      );
    }
    w.acting = false;
    if (waiters.get(key) !== w) return; // replaced or cancelled meanwhile
    if (done) {
      remove(key);
      return;
    }
    if (w.again) {
      w.again = false;
      check(key);
    }
  };

  const remove = (key: string) => {
    const w = waiters.get(key);
    if (!w) return;
    clearTimeout(w.expiry);
    waiters.delete(key);
    const keys = keysByCluster.get(w.clusterId);
    keys?.delete(key);
    if (keys?.size === 0) keysByCluster.delete(w.clusterId);
    linger(w.clusterId);
  };

  /** The cluster's watch ends `lingerMs` from now unless wanted again meanwhile. */
  const linger = (clusterId: string) => {
    const c = watched.get(clusterId);
    if (!c || wanted(clusterId)) return;
    clearTimeout(c.linger);
    c.linger = setTimeout(() => void unwatch(clusterId), lingerMs);
    c.linger.unref?.();
  };

  const unwatch = async (clusterId: string) => {
    const c = watched.get(clusterId);
    if (!c || wanted(clusterId)) return;
    watched.delete(clusterId);
    clearTimeout(c.linger);
    o.logger?.info({ cluster: clusterId }, "no session waits on its pods: watch ended");
    await c.loop.stop();
  };

  const keysOf = (clusterId: string, session?: string) =>
    [...(keysByCluster.get(clusterId) ?? [])].filter(
      (k) => session === undefined || waiters.get(k)?.waiter.session === session,
    );

  /** Starts the cluster's watch unless it runs; a lingering one stays. */
  const ensureWatched = (clusterId: string) => {
    let c = watched.get(clusterId);
    if (!c) {
      o.logger?.info({ cluster: clusterId }, "watching the cluster's session pods");
      c = watch(clusterId);
      watched.set(clusterId, c);
    }
    clearTimeout(c.linger);
    c.linger = undefined;
  };

  const watch = (clusterId: string): Watched => {
    const pods = new Map<string, Map<string, SessionPod>>();
    const sessionPods = (session: string) => {
      let m = pods.get(session);
      if (!m) {
        m = new Map();
        pods.set(session, m);
      }
      return m;
    };
    const c: Watched = {
      pods,
      synced: false,
      loop: startListWatch<SessionPodList, SessionPodChange>({
        what: "session pods",
        logFields: { cluster: clusterId },
        ...(o.logger ? { logger: o.logger } : {}),
        ...(o.backoff ? { backoff: o.backoff } : {}),
        ...(o.silenceMs !== undefined ? { silenceMs: o.silenceMs } : {}),
        list: () => o.workloads.listSessionPods(clusterId),
        watch: (from, onEvent, onEnd) => o.workloads.watchSessionPods(clusterId, from, onEvent, onEnd),
        onList: async (list) => {
          pods.clear();
          for (const { session, pod } of list.pods) sessionPods(session).set(pod.name, pod);
          c.synced = true;
          // A relist may hold what a lost watch never told: every waiter looks at it.
          for (const k of keysOf(clusterId)) check(k);
        },
        onEvent: async (e) => {
          if (e.kind === "bookmark") return;
          if (e.kind === "upsert") sessionPods(e.session).set(e.pod.name, e.pod);
          else {
            const m = pods.get(e.session);
            m?.delete(e.name);
            if (m?.size === 0) pods.delete(e.session);
          }
          for (const k of keysOf(clusterId, e.session)) check(k);
        },
        onUnreachable: async (err) => {
          o.logger?.warn(
            { cluster: clusterId, reason: err instanceof Error ? err.message : String(err) },
            "session pod watch: Kubernetes API unreachable; the reactor's polls go on",
          );
        },
      }),
    };
    return c;
  };

  return {
    wait(clusterId, key, waiter, ttlMs) {
      if (stopped) return;
      const old = waiters.get(key);
      if (old) {
        clearTimeout(old.expiry);
        if (old.clusterId !== clusterId) {
          keysByCluster.get(old.clusterId)?.delete(key);
          if (keysByCluster.get(old.clusterId)?.size === 0) keysByCluster.delete(old.clusterId);
          linger(old.clusterId);
        }
      }
      const expiry = setTimeout(() => {
        if (waiters.get(key)?.expiry === expiry) remove(key);
      }, ttlMs);
      expiry.unref?.();
      waiters.set(key, { clusterId, waiter, expiry, acting: false, again: false });
      let keys = keysByCluster.get(clusterId);
      if (!keys) {
        keys = new Set();
        keysByCluster.set(clusterId, keys);
      }
      keys.add(key);
      ensureWatched(clusterId);
      // What the watch already saw (a change between the reactor's look and now) counts.
      check(key);
    },
    cancel: remove,
    follow(clusterId) {
      if (stopped || following.has(clusterId)) return;
      following.add(clusterId);
      ensureWatched(clusterId);
    },
    unfollow(clusterId) {
      if (!following.delete(clusterId)) return;
      linger(clusterId);
    },
    followed: () => [...following].sort(),
    readyPods(clusterId) {
      const c = watched.get(clusterId);
      if (!c?.synced) return undefined;
      const out = new Map<string, { name: string; node: string }>();
      for (const [session, pods] of c.pods)
        for (const p of pods.values())
          if (p.state === "ready" && p.node) out.set(session, { name: p.name, node: p.node });
      return out;
    },
    clusters: () => [...watched.keys()].sort(),
    waiting: () => waiters.size,
    async stop() {
      stopped = true;
      for (const w of waiters.values()) clearTimeout(w.expiry);
      waiters.clear();
      keysByCluster.clear();
      following.clear();
      const all = [...watched.values()];
      watched.clear();
      for (const c of all) clearTimeout(c.linger);
      await Promise.all(all.map((c) => c.loop.stop()));
    },
  };
}
