/**
 * One Kubernetes watch through client-node's `Watch`, its end told the way node-ops'
 * list-and-watch loop (watch/list-watch.ts) reads it: `closed` (the stream ended after it
 * was open: the server's `timeoutSeconds`, client-node's inactivity limit
 * ({@link WATCH_INACTIVITY_MS}), a dropped connection) → resume; `expired` (410 Gone, as an ERROR event or as the answer) →
 * relist; `failed` (no kubeconfig, refused, 5xx, no connection) → the API is unreachable.
 * Used for the nodes (kube.ts) and the session pods (session-workloads.ts).
 */
import type { KubeConfig } from "@kubernetes/client-node";
import { Watch } from "@kubernetes/client-node";
import type { WatchEnd, WatchHandle } from "../ports.ts";
import { kubeRequestSpan, statusOfKubeError, type WatchConnection, watchConnection } from "./kube-trace.ts";

/**
 * A watch ends quietly after this long (sim seconds on the sim): the server's own
 * timeout, as client-go's reflector asks for one (5–10 minutes), so no watch is held for
 * ever through a proxy that dropped it silently.
 */
export const WATCH_TIMEOUT_SECONDS = 300;

/**
 * How long an open watch may bring nothing before client-node aborts it (its `Watch`'s
 * `requestTimeoutMs`; its own default is 30 s). A quiet cluster's watch brings nothing for
 * minutes: the API server sends bookmarks about once a minute, and only when its
 * resourceVersion moved. At client-node's 30 s every quiet watch was aborted and reopened
 * twice a minute (a new connection, a request, a span each: most of node-ops' standing CPU
 * per cluster after the lists). Past the server's own timeout, so the server ends a watch;
 * a connection that died silently is the list-and-watch loop's silence bound's to find
 * (watch/list-watch.ts: relisted after `silenceMs`, 150 s by default).
 */
export const WATCH_INACTIVITY_MS = (WATCH_TIMEOUT_SECONDS + 30) * 1000;

export type WatchPhase = "ADDED" | "MODIFIED" | "DELETED" | "BOOKMARK";

export interface OpenWatchOptions {
  /** The cluster whose API is watched (its client span's `k8s.cluster.name`). */
  clusterId: string;
  /** The cluster's KubeConfig; a failure to get it ends the watch as `failed`. */
  kubeConfig(): Promise<KubeConfig>;
  /** The collection's path (`/api/v1/nodes`, `/api/v1/namespaces/<ns>/pods`). */
  path: string;
  resourceVersion: string;
  labelSelector?: string;
  /** Each object in order; `BOOKMARK` carries only kind and resourceVersion. */
  onObject(phase: WatchPhase, obj: unknown): void;
  /** Exactly once, unless stopped first. */
  onEnd(end: WatchEnd): void;
  /** A failure to open it, classified, its message safe to record (no bodies, no credentials). */
  classify(err: unknown): Error;
}

/** Opens the watch. Never rejects: one that cannot start ends with `failed`. */
export async function openWatch(o: OpenWatchOptions): Promise<WatchHandle> {
  let stopped = false;
  let ended = false;
  let established = false;
  let controller: AbortController | undefined;
  // The watch's own connection (watchConnection), gone with the watch.
  let connection: WatchConnection | undefined;
  const end = (e: WatchEnd) => {
    if (ended || stopped) return;
    ended = true;
    controller?.abort();
    connection?.close();
    o.onEnd(e);
  };
  const handle: WatchHandle = {
    stop: () => {
      stopped = true;
      controller?.abort();
      connection?.close();
    },
  };
  let kc: KubeConfig;
  try {
    kc = await o.kubeConfig();
  } catch (err) {
    end({ reason: "failed", error: o.classify(err) });
    return handle;
  }
  if (stopped) return handle;
  const query = {
    resourceVersion: o.resourceVersion,
    allowWatchBookmarks: true,
    timeoutSeconds: WATCH_TIMEOUT_SECONDS,
    ...(o.labelSelector ? { labelSelector: o.labelSelector } : {}),
  };
  // Why the watch did not open (its done callback came before the answer was taken in).
  let openFailure: unknown;
  try {
    // The request in a client span, from the request to the answer's head: the stream that
    // follows is the watch's life, not the call.
    controller = await kubeRequestSpan(
      o.clusterId,
      "GET",
      watchUrl(kc, o.path, query),
      async () => {
        connection = watchConnection(kc);
        const watcher = new Watch(connection.config);
        // A private field of client-node's (its constructor sets 30 s); no option sets it.
        (watcher as unknown as { requestTimeoutMs: number }).requestTimeoutMs = WATCH_INACTIVITY_MS;
        const c = await watcher.watch(
          o.path,
          query,
          (phase: string, obj: unknown) => {
            if (ended || stopped) return;
            switch (phase) {
              case "ADDED":
              case "MODIFIED":
              case "DELETED":
              case "BOOKMARK":
                o.onObject(phase, obj);
                return;
              case "ERROR":
                // 410 Expired: the resourceVersion left the watch cache; anything else ends the watch.
                end((obj as { code?: number })?.code === 410 ? { reason: "expired" } : { reason: "closed" });
                return;
              default:
                return;
            }
          },
          (err: unknown) => {
            if (err && !established) openFailure = err;
            if (!err || established) {
              // A stream that ended after it was open (server timeout, inactivity, a dropped
              // connection): resume; if the API is really gone, the next watch fails to start.
              end({ reason: "closed" });
              return;
            }
            const status = (err as { statusCode?: number }).statusCode;
            if (status === 410) end({ reason: "expired" });
            else end({ reason: "failed", error: o.classify(err) });
          },
        );
        if (openFailure !== undefined) throw openFailure;
        return c;
      },
      (r) => (r.ok ? 200 : statusOfKubeError(r.error)),
    );
    established = true;
    if (stopped) controller.abort();
  } catch (err) {
    // Already ended by the done callback when the answer was a refusal; otherwise (no
    // kubeconfig user, no cluster) here.
    end({ reason: "failed", error: o.classify(err) });
  }
  return handle;
}

/** The URL client-node's `Watch` requests (for the span: the same server, path and query). */
function watchUrl(kc: KubeConfig, path: string, query: Record<string, string | number | boolean>): string {
  const server = kc.getCurrentCluster()?.server ?? "";
  try {
    const u = new URL(server + path);
    u.searchParams.set("watch", "true");
    for (const [k, v] of Object.entries(query)) u.searchParams.set(k, String(v));
    return u.toString();
  } catch {
    return server + path;
  }
}
