/**
 * Moved sessions: a session's pod evicted by a drain, a spot interruption or a node gone
 * comes back on another node (its Deployment makes a new one); this records it, so the
 * session's history shows where it went.
 *
 * One process at a time (the lease `node-ops.session-moves`) looks every `intervalMs`: the
 * session pods of each cluster with Running workloads, compared with where each is
 * recorded Ready. Where they are seen is the session pods' standing watch of the cluster
 * (the leader follows it: a quiet cluster costs a watch, not a list every look); only a
 * cluster where the watch shows a pod on another node (or that it has not listed yet) is
 * listed, and what is recorded comes from that fresh list, never from the watch's copy. A Ready pod on another node → `workload.record-moved` (named
 * after the session, the attempt and the new pod, so a second look or a second process
 * records nothing twice; the decider ignores a stale one). The Running workloads come from
 * an in-memory index: an ordered consumer over `evt.workload.*` folded with the
 * decider's own `evolve`, rebuilt on start (as the idle-detector's session index).
 */
import { hostname } from "node:os";
import {
  type CommandHandler,
  catalogue,
  derivedId,
  type EventOfAggregate,
  type Nats,
  newId,
  openOrderedConsumer,
  type RunnerLogger,
  Streams,
  type WorkloadCommand,
  type WorkloadEvent,
} from "@cairn/events";
import { acquireLeadership, type LeaderLease } from "@cairn/service";
import type { ConsumerMessages } from "@nats-io/jetstream";
import type { Kube } from "../ports.ts";
import type { SessionPodWatch } from "./session-pod-watch.ts";
import type { SessionWorkloads } from "./session-port.ts";
import { type WorkloadState, workloadDecider } from "./workload.decider.ts";

export const SESSION_MOVES_LEASE = "node-ops.session-moves";

export interface SessionMoves {
  /** One look now (when this process holds the lease); how many moves it recorded. */
  look(): Promise<number>;
  stop(): Promise<void>;
}

/**
 * Folds one workload event into the index: every workload's state (to evolve the next
 * event from) and the Running ones. A deleted workload never runs again (the decider
 * refuses its start), so it leaves both: the index holds the sessions that exist, not
 * every session there ever was (20,000 sessions a day would be 20,000 states for good).
 */
export function indexWorkload(
  states: Map<string, WorkloadState>,
  running: Map<string, WorkloadState>,
  e: EventOfAggregate<"workload">,
): void {
  const id = e.aggregate.id;
  const next = workloadDecider.evolve(states.get(id) ?? workloadDecider.initialState(), e as never);
  if (next.phase === "Deleted") states.delete(id);
  else states.set(id, next);
  if (next.phase === "Running") running.set(id, next);
  else running.delete(id);
}

export async function startSessionMoves(o: {
  nats: Nats;
  handler: CommandHandler<WorkloadCommand, WorkloadEvent, WorkloadState>;
  workloads: SessionWorkloads;
  /** For the reason of a move: what became of the node it left. */
  kube: Pick<Kube, "getNode">;
  logger?: RunnerLogger;
  /** How often to look (default 10 s). */
  intervalMs?: number;
  /**
   * The session pods' watch (workload/session-pod-watch.ts): the leader follows every cluster
   * with a Running session and looks at the watch's copy of its pods, listing them only
   * where the copy shows a session's pod on another node (a fresh read before any record)
   * or has not listed yet. Without it, one list of the pods per cluster a look.
   */
  podWatch?: Pick<SessionPodWatch, "follow" | "unfollow" | "followed" | "readyPods">;
  leaseTtlMs?: number;
}): Promise<SessionMoves> {
  const running = new Map<string, WorkloadState>();
  const states = new Map<string, WorkloadState>();
  const consumer = await openOrderedConsumer(o.nats.js, Streams.events, {
    filter_subjects: "evt.workload.*",
  });
  const messages: ConsumerMessages = await consumer.consume({ max_messages: 512 });
  const apply = (e: EventOfAggregate<"workload">) => indexWorkload(states, running, e);
  const indexing = (async () => {
    for await (const m of messages) {
      try {
        const commit = catalogue.parseCommitTrusted(m.json());
        for (const e of commit.events) apply(e as EventOfAggregate<"workload">);
      } catch {
        // Not a commit: every load skips it too.
      }
    }
  })();

  const reasonOf = async (clusterId: string, node: string): Promise<string> => {
    try {
      const n = await o.kube.getNode(clusterId, node);
      if (!n) return `node ${node} is gone`;
      if (n.unschedulable) return `node ${node} was cordoned and drained`;
      if (n.ready === false) return `node ${node} is not Ready`;
      return `its pod on node ${node} was replaced`;
    } catch {
      return `its pod left node ${node}`;
    }
  };

  let lease: LeaderLease | undefined;
  let looking: Promise<number> | undefined;
  const lookOnce = async (): Promise<number> => {
    if (!lease?.isLeader()) {
      // Deposed: the standing watches are the leader's.
      for (const c of o.podWatch?.followed() ?? []) o.podWatch?.unfollow(c);
      return 0;
    }
    const byCluster = new Map<string, [string, WorkloadState][]>();
    for (const [id, s] of running) {
      if (!s.clusterId) continue;
      const list = byCluster.get(s.clusterId) ?? [];
      list.push([id, s]);
      byCluster.set(s.clusterId, list);
    }
    for (const c of o.podWatch?.followed() ?? []) if (!byCluster.has(c)) o.podWatch?.unfollow(c);
    let moved = 0;
    for (const [clusterId, sessions] of byCluster) {
      o.podWatch?.follow(clusterId);
      const seen = o.podWatch?.readyPods(clusterId);
      // The watch's copy shows every session on the node it was recorded on: nothing to list.
      if (
        seen &&
        sessions.every(([sessionId, s]) => {
          const pod = seen.get(o.workloads.names(sessionId).label);
          return !pod || !s.node || pod.node === s.node;
        })
      )
        continue;
      let ready: Awaited<ReturnType<SessionWorkloads["readyPods"]>>;
      try {
        ready = await o.workloads.readyPods(clusterId);
      } catch (err) {
        o.logger?.warn(
          { cluster: clusterId, err: String(err) },
          "session moves: the cluster's pods could not be listed",
        );
        continue;
      }
      for (const [sessionId, s] of sessions) {
        const pod = ready.get(o.workloads.names(sessionId).label);
        if (!pod || !s.node || pod.node === s.node) continue;
        const reason = await reasonOf(clusterId, s.node);
        const parsed = catalogue.parseCommand({
          id: derivedId(sessionId, "workload.record-moved", String(s.attempt), pod.name),
          type: "workload.record-moved",
          data: {
            sessionId,
            clusterId,
            attempt: s.attempt,
            fromNode: s.node,
            toNode: pod.node,
            pod: pod.name,
            reason,
          },
          meta: { actor: "node-ops" },
        });
        if (!parsed.ok) continue;
        const out = await o.handler.handle(parsed.value).catch((err: unknown) => {
          o.logger?.warn(
            { session: sessionId, err: String(err) },
            "session moves: the move could not be recorded",
          );
          return undefined;
        });
        if (out?.status === "accepted") {
          moved++;
          o.logger?.info(
            { session: sessionId, cluster: clusterId, from: s.node, to: pod.node, reason },
            "session moved",
          );
        }
      }
    }
    return moved;
  };
  const look = () => {
    looking ??= lookOnce().finally(() => {
      looking = undefined;
    });
    return looking;
  };

  const timer = setInterval(() => void look().catch(() => {}), o.intervalMs ?? 10_000);
  timer.unref();
  lease = await acquireLeadership({
    nc: o.nats.nc,
    name: SESSION_MOVES_LEASE,
    holder: `${hostname()}-${process.pid}-${newId()}`,
    ...(o.leaseTtlMs !== undefined ? { ttlMs: o.leaseTtlMs } : {}),
    onElected: () => {},
    onDeposed: () => {},
  });

  return {
    look,
    stop: async () => {
      clearInterval(timer);
      await looking?.catch(() => {});
      await lease?.release();
      messages.stop();
      await indexing.catch(() => {});
      await consumer.delete().catch(() => {});
    },
  };
}
