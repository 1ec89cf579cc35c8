/**
 * Sessions end with their cluster: on `cluster.deletion-requested`, every live session
 * of that cluster is ended (`session.end`, cause `cluster-deleted`; its workload deleted
 * and its places given back by the session reactor), each command named after the
 * cluster event and the session (a redelivery ends nothing twice). The provisioner
 * waits for them to be Terminated before it terminates the cluster's instances.
 *
 * Which sessions live on the cluster is read, after the deletion, from the log: the
 * cluster's session ledger (`clusterSessionsId`), where admission takes a place before
 * its last look at the cluster. So a session admitted in the instant before a delete
 * that did not see it is ended here, and one whose last look came after the delete was
 * refused by its admission (docs/sessions.md, "Deleting a cluster with sessions").
 * Sessions of this process's index on that cluster are ended too: those admitted before
 * cluster ledgers existed hold no place on one.
 *
 * Refusing a delete while sessions live, or forcing it, is the provisioner's decision.
 */
import {
  type CommandHandler,
  clusterSessionsId,
  commandCausedBy,
  isLiveSession,
  type Nats,
  type RunnerLogger,
  type RunningConsumer,
  type SessionCommand,
  type SessionEvent,
  startReactor,
} from "@cairn/events";
import type { SessionState } from "./decider.ts";
import type { SessionIndex } from "./session-index.ts";

export async function startClusterFollower(o: {
  nats: Nats;
  handler: CommandHandler<SessionCommand, SessionEvent, SessionState>;
  index: SessionIndex;
  logger?: RunnerLogger;
}): Promise<RunningConsumer> {
  return await startReactor({
    nats: o.nats,
    name: "idle-detector-clusters",
    aggregate: "cluster",
    types: ["cluster.deletion-requested"],
    ...(o.logger ? { logger: o.logger } : {}),
    react: async (e) => {
      if (e.type !== "cluster.deletion-requested") return;
      const clusterId = e.aggregate.id;
      // 1. The ledger as the log has it now (after the deletion: read fresh).
      const { state: ledger } = await o.handler.read({ type: "session", id: clusterSessionsId(clusterId) });
      const sessions = new Set(Object.keys(ledger.ledger.holders));
      // 2. Sessions older than cluster ledgers, from the index.
      await o.index.caughtUp;
      for (const [sessionId, { state }] of o.index.live())
        if (state.clusterId === clusterId) sessions.add(sessionId);
      const reason = e.data.force
        ? `its cluster ${clusterId} is being deleted (forced)`
        : `its cluster ${clusterId} is being deleted`;
      for (const sessionId of [...sessions].sort()) {
        // The decider changes nothing on a session already ending or over; this only
        // spares it the decision.
        const status = o.index.get(sessionId)?.state.status;
        if (status !== undefined && (!isLiveSession(status) || status === "Terminating")) continue;
        await o.handler.handle(
          commandCausedBy(
            e,
            "session.end",
            { sessionId, cause: "cluster-deleted", reason },
            { actor: "idle-detector", key: sessionId },
          ),
        );
      }
    },
  });
}
