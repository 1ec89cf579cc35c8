/**
 * What the spot intake needs to know from the provisioner's log: the regions with live
 * clusters (`cluster.requested` → `spec.region`, until `cluster.deletion-requested` /
 * `cluster.deleted`) and which cluster an EC2 instance belongs to
 * (`cluster.instance-running`). node-ops does not call EC2 (the provisioner owns it), so
 * the log is the only place to learn this, and it is enough: Cairn names a node after
 * its instance.
 *
 * One ordered consumer on `evt.cluster.*` from the first commit, kept open: the history,
 * then whatever comes next. It lives in memory for as long as the process does (the
 * intake builds it at its first election and keeps it across lease changes, so a lease
 * regained reads nothing again). Only the commits whose `Cairn-Event-Types` header
 * names an event it uses are parsed.
 */
import {
  eventFilter,
  Headers,
  type MessageHandler,
  type Nats,
  openOrderedConsumer,
  type RunnerLogger,
  readCommit,
  Streams,
} from "@cairn/events";

type JsMsg = Parameters<MessageHandler>[0];

const USED = new Set([
  "cluster.requested",
  "cluster.instance-running",
  "cluster.deletion-requested",
  "cluster.deleted",
]);

export interface ClusterDirectory {
  /** The regions that have at least one live cluster, sorted. */
  regions(): string[];
  /** The live clusters, sorted. */
  clusters(): string[];
  /**
   * The live cluster an instance was launched for, or undefined; with the cluster's lifecycle
   * trace (its `cluster.requested`'s), which a notice from outside (SQS) links its work to.
   */
  clusterOf(instanceId: string): { clusterId: string; region: string; traceparent?: string } | undefined;
  /** Resolves once the history up to the start has been read. */
  readonly caughtUp: Promise<void>;
  stop(): Promise<void>;
}

export async function startClusterDirectory(o: {
  nats: Nats;
  logger?: RunnerLogger;
  /** Called when the set of regions changed. */
  onRegions?: (regions: string[]) => void;
}): Promise<ClusterDirectory> {
  const regionOf = new Map<string, string>();
  const traceOf = new Map<string, string>();
  const ended = new Set<string>();
  const instances = new Map<string, string>();
  let regionsKey = "";

  const regions = () => [...new Set([...regionOf].filter(([id]) => !ended.has(id)).map(([, r]) => r))].sort();
  const changed = () => {
    const now = regions();
    if (now.join(",") === regionsKey) return;
    regionsKey = now.join(",");
    o.onRegions?.(now);
  };

  const apply = (m: JsMsg) => {
    const types = (m.headers?.get(Headers.eventTypes) ?? "").split(",");
    if (!types.some((t) => USED.has(t))) return;
    let commit: ReturnType<typeof readCommit<"cluster">>;
    try {
      commit = readCommit(m, "cluster");
    } catch (err) {
      o.logger?.warn(
        { subject: m.subject, sequence: m.seq, err: String(err) },
        "unreadable cluster commit skipped",
      );
      return;
    }
    for (const e of commit.events) {
      const id = e.aggregate.id;
      switch (e.type) {
        case "cluster.requested":
          regionOf.set(id, e.data.spec.region);
          if (e.meta.traceparent) traceOf.set(id, e.meta.traceparent);
          break;
        case "cluster.instance-running":
          instances.set(e.data.instanceId, id);
          break;
        case "cluster.deletion-requested":
        case "cluster.deleted":
          ended.add(id);
          for (const [i, c] of instances) if (c === id) instances.delete(i);
          break;
      }
    }
  };

  // An ordered consumer starts at sequence 1: the whole history, then what comes next.
  const consumer = await openOrderedConsumer(o.nats.js, Streams.events, {
    filter_subjects: eventFilter("cluster"),
  });
  const pending = (await consumer.info(true)).num_pending;
  let markCaughtUp!: () => void;
  const caughtUp = new Promise<void>((r) => {
    markCaughtUp = r;
  });
  if (pending === 0) markCaughtUp();
  const messages = await consumer.consume({ max_messages: 256 });
  const loop = (async () => {
    for await (const m of messages) {
      apply(m);
      if (m.info.pending === 0) {
        markCaughtUp();
        changed();
      }
    }
  })().catch((err) =>
    o.logger?.error({ err: String(err) }, "spot intake: the cluster log could not be read"),
  );
  if (pending === 0) changed();

  return {
    regions,
    clusters: () => [...regionOf.keys()].filter((id) => !ended.has(id)).sort(),
    clusterOf: (instanceId) => {
      const clusterId = instances.get(instanceId);
      const region = clusterId ? regionOf.get(clusterId) : undefined;
      const traceparent = clusterId ? traceOf.get(clusterId) : undefined;
      return clusterId && region && !ended.has(clusterId)
        ? { clusterId, region, ...(traceparent ? { traceparent } : {}) }
        : undefined;
    },
    caughtUp,
    stop: async () => {
      messages.stop();
      await loop;
      await consumer.delete().catch(() => {});
    },
  };
}
