/**
 * Sessions end with their cluster: on `cluster.deletion-requested`, every live session
 * of that cluster is ended (`session.end`, cause `cluster-deleted`; its workload deleted
 * and its quota given back by the session reactor), each command named after the
 * cluster event and the session (a redelivery ends nothing twice). Which sessions live on
 * the cluster comes from this process's session index, caught up first; a session
 * created in the moment before the delete and not yet indexed is ended by its own
 * admission instead (a Deleting cluster is not Ready). Refusing a delete while sessions
 * live, or forcing it, is the provisioner's decision (docs/sessions.md).
 */
import {
  type CommandHandler,
  commandCausedBy,
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
      await o.index.caughtUp;
      const clusterId = e.aggregate.id;
      for (const [sessionId, { state }] of [...o.index.live()]) {
        if (state.clusterId !== clusterId || state.status === "Terminating") continue;
        await o.handler.handle(
          commandCausedBy(
            e,
            "session.end",
            { sessionId, cause: "cluster-deleted", reason: `its cluster ${clusterId} is being deleted` },
            { actor: "idle-detector", key: sessionId },
          ),
        );
      }
    },
  });
}
