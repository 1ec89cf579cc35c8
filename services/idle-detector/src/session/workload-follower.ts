/**
 * The idle-detector's ear on node-ops: each `workload` event becomes the session's
 * record of it (`workload.running` → `session.record-running`, …), decided by the
 * session, named after the workload event (a redelivery records nothing twice). A wake
 * that ends in Running is observed in the wake-latency histogram, once: only the
 * process whose decision appended it observes it.
 */
import {
  type CommandDataInput,
  type CommandHandler,
  type CommandType,
  commandCausedBy,
  type Nats,
  type ParsedCommand,
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
      const caused = <T extends CommandType>(type: T, data: CommandDataInput<T>) =>
        commandCausedBy(e, type, data, { actor: "idle-detector" });
      let command: ParsedCommand;
      switch (e.type) {
        case "workload.running":
          command = caused("session.record-running", { sessionId, node: e.data.node, pod: e.data.pod });
          break;
        case "workload.stopped":
          command = caused("session.record-hibernated", { sessionId });
          break;
        case "workload.deleted":
          command = caused("session.record-terminated", {
            sessionId,
            volumeReleased: e.data.volumeReleased,
          });
          break;
        case "workload.failed": {
          const { reason, remediation } = e.data;
          command = caused("session.record-failure", {
            sessionId,
            reason: `${e.data.operation} failed (${e.data.kind}): ${reason}`,
            ...(remediation ? { remediation } : {}),
          });
          break;
        }
        case "workload.moved": {
          const { fromNode, toNode, reason } = e.data;
          command = caused("session.record-moved", {
            sessionId,
            fromNode,
            toNode,
            ...(reason ? { reason } : {}),
          });
          break;
        }
        default:
          return;
      }
      const outcome = await o.handler.handle(command);
      if (outcome.status !== "accepted") return;
      for (const ev of outcome.events)
        if (ev.type === "session.running") {
          // Read by shape: the appended envelopes are the catalogue's, but untyped here.
          const d: unknown = ev.data;
          const ms = typeof d === "object" && d !== null ? Reflect.get(d, "wakeLatencyMs") : undefined;
          if (typeof ms === "number") metric.observe(ms / 1000);
        }
    },
  });
}
