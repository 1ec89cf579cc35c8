/**
 * Which clusters node-ops watches: those whose kubeconfig was published
 * (`install.kubeconfig-published`) and whose deletion was not requested
 * (`cluster.deletion-requested`, `cluster.deleted`). The set is derived from the log, so a
 * restarted node-ops (or a new leader) watches again every live cluster:
 *  1. Read the history: every `evt.cluster.*` commit up to now (headers only: the
 *     `Cairn-Event-Types` header says whether it holds a deletion), then every
 *     `evt.install.*` commit; each through an ordered consumer.
 *  2. Watch the published clusters that are not deleted.
 *  3. Follow what comes next through two reactors (the runtime's durable consumers, one
 *     subject filter each for nats-server 2.9): `node-ops-watch-clusters` on
 *     `evt.cluster.*` (the deletions) and `node-ops-watch-installs` on `evt.install.*`
 *     (the publications); each is handed only the event types it acts on.
 * What the durables deliver again (history that step 1 read too) changes nothing: a
 * watched cluster is not watched twice, and a deleted cluster is never watched again
 * (cluster ids are not reused), whichever consumer speaks first.
 */
import {
  eventFilter,
  Headers,
  type MessageHandler,
  type Nats,
  openOrderedConsumer,
  parseEventSubject,
  type RunnerLogger,
  type RunningConsumer,
  readCommit,
  Streams,
  startReactor,
} from "@cairn/events";
import type { NodeWatcher } from "./watcher.ts";

const PUBLISHED = "install.kubeconfig-published";
const ENDED = ["cluster.deletion-requested", "cluster.deleted"] as const;

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

  const end = async (clusterId: string) => {
    if (ended.has(clusterId)) return;
    ended.add(clusterId);
    await o.watcher.unwatch(clusterId);
  };
  const publish = (clusterId: string, kubeconfig: { parameter: string; version: number }) => {
    if (!ended.has(clusterId)) o.watcher.watch(clusterId, kubeconfig);
  };

  // 1 + 2. The history up to now: the cluster commits by their header alone, the install
  // commits read as the reactor would (one unreadable commit never keeps the others unwatched).
  await readHistory(o.nats, eventFilter("cluster"), true, async (m) => {
    const ref = parseEventSubject(m.subject);
    if (ref && typesOf(m).some((t) => (ENDED as readonly string[]).includes(t))) await end(ref.id);
  });
  await readHistory(o.nats, eventFilter("install"), false, async (m) => {
    if (!typesOf(m).includes(PUBLISHED)) return;
    let commit: ReturnType<typeof readCommit<"install">>;
    try {
      commit = readCommit(m, "install");
    } catch (err) {
      o.logger?.warn(
        { subject: m.subject, sequence: m.seq, err: String(err) },
        "unreadable install commit skipped",
      );
      return;
    }
    for (const e of commit.events) if (e.type === PUBLISHED) publish(e.aggregate.id, e.data);
  });
  o.logger?.info({ clusters: o.watcher.clusters() }, "watching the clusters the log says are live");

  // 3. What comes next. Unwatching waits for the cluster's loop to end: clusters side by side.
  const consumers: RunningConsumer[] = [];
  try {
    consumers.push(
      await startReactor({
        nats: o.nats,
        name: WATCH_DURABLES.clusters,
        aggregate: "cluster",
        types: ENDED,
        concurrency: 8,
        ...(o.logger ? { logger: o.logger } : {}),
        react: async (e) => end(e.aggregate.id),
      }),
    );
    consumers.push(
      await startReactor({
        nats: o.nats,
        name: WATCH_DURABLES.installs,
        aggregate: "install",
        types: [PUBLISHED],
        concurrency: 8,
        ...(o.logger ? { logger: o.logger } : {}),
        react: async (e) => {
          if (e.type === PUBLISHED) publish(e.aggregate.id, e.data);
        },
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
  const consumer = await openOrderedConsumer(nats.js, Streams.events, {
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
