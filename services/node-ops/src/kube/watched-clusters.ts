/**
 * Which clusters node-ops watches: those whose kubeconfig was published
 * (`install.kubeconfig-published`) and whose deletion was not requested
 * (`cluster.deletion-requested`, `cluster.deleted`). The set is derived from the log, so a
 * restarted node-ops (or a new leader) watches again every live cluster:
 *  1. Read the history: every `evt.cluster.*` commit up to now (headers only: the
 *     `Cairn-Event-Types` header says whether it holds a deletion), then every
 *     `evt.install.*` commit; each through an ordered consumer.
 *  2. Watch the published clusters that are not deleted.
 *  3. Follow what comes next through two durable consumers, one subject filter each
 *     (nats-server 2.9: no multi-filter consumers): `node-ops-watch-clusters` on
 *     `evt.cluster.*` and `node-ops-watch-installs` on `evt.install.*`.
 * What the durables deliver again (history that step 1 read too) changes nothing: a
 * watched cluster is not watched twice, and a deleted cluster is never watched again
 * (cluster ids are not reused), whichever consumer speaks first.
 */
import {
  catalogue,
  eventFilter,
  Headers,
  type MessageHandler,
  type Nats,
  parseEventSubject,
  type RunnerLogger,
  type RunningConsumer,
  Streams,
  startConsumer,
} from "@cairn/events";
import type { NodeWatcher } from "./watcher.ts";

const PUBLISHED = "install.kubeconfig-published";
const ENDED = new Set(["cluster.deletion-requested", "cluster.deleted"]);

export const WATCH_DURABLES = {
  clusters: "node-ops-watch-clusters",
  installs: "node-ops-watch-installs",
} as const;

export interface WatchedClustersOptions {
  nats: Nats;
  watcher: NodeWatcher;
  logger?: RunnerLogger;
}

export interface WatchedClusters {
  stop(): Promise<void>;
}

type JsMsg = Parameters<MessageHandler>[0];

const typesOf = (m: JsMsg) => (m.headers?.get(Headers.eventTypes) ?? "").split(",").filter(Boolean);

export async function startWatchedClusters(o: WatchedClustersOptions): Promise<WatchedClusters> {
  const ended = new Set<string>();

  const onCluster = async (m: JsMsg) => {
    const ref = parseEventSubject(m.subject);
    if (!ref || !typesOf(m).some((t) => ENDED.has(t)) || ended.has(ref.id)) return;
    ended.add(ref.id);
    await o.watcher.unwatch(ref.id);
  };
  const onInstall = (m: JsMsg) => {
    if (!typesOf(m).includes(PUBLISHED)) return;
    let commit: ReturnType<typeof catalogue.parseCommit>;
    try {
      commit = catalogue.parseCommit(m.json());
    } catch (err) {
      // One unreadable commit must not keep every other cluster unwatched.
      o.logger?.warn(
        { subject: m.subject, sequence: m.seq, err: String(err) },
        "unreadable install commit skipped",
      );
      return;
    }
    for (const e of commit.events) {
      if (e.type !== PUBLISHED || ended.has(commit.aggregate.id)) continue;
      o.watcher.watch(commit.aggregate.id, e.data as { parameter: string; version: number });
    }
  };

  // 1 + 2. The history up to now.
  await readHistory(o.nats, eventFilter("cluster"), true, onCluster);
  await readHistory(o.nats, eventFilter("install"), false, async (m) => onInstall(m));
  o.logger?.info({ clusters: o.watcher.clusters() }, "watching the clusters the log says are live");

  // 3. What comes next.
  const consumers: RunningConsumer[] = [];
  const common = {
    js: o.nats.js,
    jsm: o.nats.jsm,
    stream: Streams.events,
    ...(o.logger ? { logger: o.logger } : {}),
  };
  try {
    consumers.push(
      await startConsumer({
        ...common,
        durable: WATCH_DURABLES.clusters,
        filterSubject: eventFilter("cluster"),
        handle: onCluster,
      }),
    );
    consumers.push(
      await startConsumer({
        ...common,
        durable: WATCH_DURABLES.installs,
        filterSubject: eventFilter("install"),
        handle: async (m) => onInstall(m),
      }),
    );
  } catch (err) {
    await Promise.all(consumers.map((c) => c.stop()));
    throw err;
  }
  return {
    stop: async () => {
      await Promise.all(consumers.map((c) => c.stop()));
    },
  };
}

/** Every commit on `filter` up to now, in order, through an ordered consumer. */
async function readHistory(
  nats: Nats,
  filter: string,
  headersOnly: boolean,
  each: (m: JsMsg) => Promise<void>,
): Promise<void> {
  // An ordered consumer starts at sequence 1 unless told otherwise: the whole history.
  const consumer = await nats.js.consumers.get(Streams.events, {
    filter_subjects: filter,
    ...(headersOnly ? { headers_only: true } : {}),
  });
  try {
    const info = await consumer.info(true);
    if (info.num_pending === 0) return;
    const messages = await consumer.consume({ max_messages: 256 });
    try {
      for await (const m of messages) {
        await each(m);
        if (m.info.pending === 0) break;
      }
    } finally {
      messages.stop();
    }
  } finally {
    await consumer.delete().catch(() => {});
  }
}
