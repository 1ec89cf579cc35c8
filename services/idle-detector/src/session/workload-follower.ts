/**
 * The idle-detector's ear on node-ops: each `workload` event becomes the session's
 * record of it (`workload.running` → `session.record-running`, …), decided by the
 * session, named after the workload event (a redelivery records nothing twice). A wake
 * that ends in Running is observed in the wake-latency histogram, once: only the
 * process whose decision appended it observes it.
 */
import {
  type CommandHandler,
  type CommandType,
  commandCausedBy,
  type Nats,
  type RunnerLogger,
  type RunningConsumer,
  type SessionCommand,
  type SessionEvent,
  startReactor,
} from "@cairn/events";
import { histogram } from "@cairn/service";
import type { SessionState } from "./decider.ts";

export const wakeLatency = () =>
  histogram(
    "cairn_session_wake_seconds",
    "Wake latency of sessions: connect (or wake) to Running",
    [],
    [0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300],
  );

export async function startWorkloadFollower(o: {
  nats: Nats;
  handler: CommandHandler<SessionCommand, SessionEvent, SessionState>;
  logger?: RunnerLogger;
}): Promise<RunningConsumer> {
  const metric = wakeLatency();
  return await startReactor({
    nats: o.nats,
    name: "idle-detector-workloads",
    aggregate: "workload",
    types: ["workload.running", "workload.stopped", "workload.deleted", "workload.failed", "workload.moved"],
    ...(o.logger ? { logger: o.logger } : {}),
    react: async (e) => {
      const sessionId = e.aggregate.id;
      let type: CommandType;
      let data: object;
      switch (e.type) {
        case "workload.running":
          [type, data] = ["session.record-running", { sessionId, node: e.data.node, pod: e.data.pod }];
          break;
        case "workload.stopped":
          [type, data] = ["session.record-hibernated", { sessionId }];
          break;
        case "workload.deleted":
          [type, data] = ["session.record-terminated", { sessionId, volumeReleased: e.data.volumeReleased }];
          break;
        case "workload.failed": {
          const { reason, remediation } = e.data;
          [type, data] = [
            "session.record-failure",
            {
              sessionId,
              reason: `${e.data.operation} failed (${e.data.kind}): ${reason}`,
              ...(remediation ? { remediation } : {}),
            },
          ];
          break;
        }
        case "workload.moved": {
          const { fromNode, toNode, reason } = e.data;
          [type, data] = [
            "session.record-moved",
            { sessionId, fromNode, toNode, ...(reason ? { reason } : {}) },
          ];
          break;
        }
        default:
          return;
      }
      const outcome = await o.handler.handle(
        commandCausedBy(e, type, data as never, { actor: "idle-detector" }),
      );
      if (outcome.status !== "accepted") return;
      for (const ev of outcome.events)
        if (ev.type === "session.running") {
          const ms = (ev.data as { wakeLatencyMs?: number }).wakeLatencyMs;
          if (ms !== undefined) metric.observe(ms / 1000);
        }
    },
  });
}
