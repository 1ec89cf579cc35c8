/**
 * The session's process manager, on the shared reactor runtime. For each of the
 * idle-detector's own session events it reads the session (at least as fresh as the
 * event) and carries the step out:
 *  - `session.requested` → admission (cluster Ready, quota taken) → `session.admit`, or
 *    `session.refuse` (the create is rejected, the session Failed, saying why);
 *  - `session.admitted`, `session.waking` → `workload.start` to node-ops;
 *  - `session.hibernating` → `workload.stop`; `session.terminating` → `workload.delete`
 *    (volume released); `session.failed` after it started → `workload.delete` (the
 *    volume released only if no pod of it ever ran);
 *  - `session.terminated`, `session.failed` → its places given back (its cluster's session
 *    ledger, its user's and groups' quota).
 * Every command is named after the event that caused it, so a redelivery (or another
 * replica) sends or decides nothing twice; a step the session has moved past is skipped.
 * A quota ledger's own events are not steps: they are skipped.
 */
import {
  type CommandBus,
  type CommandDataInput,
  type CommandHandler,
  type CommandType,
  commandCausedBy,
  derivedId,
  isQuotaLedgerId,
  type Nats,
  type ReactingEvent,
  type RunnerLogger,
  type RunningConsumer,
  type SessionCommand,
  type SessionEvent,
  startReactor,
} from "@cairn/events";
import type { Admission } from "./admission.ts";
import type { SessionState } from "./decider.ts";

export interface SessionReactorOptions {
  nats: Nats;
  handler: CommandHandler<SessionCommand, SessionEvent, SessionState>;
  bus: CommandBus;
  admission: Admission;
  logger?: RunnerLogger;
}

const ACTOR = "idle-detector";
/** The cluster whose session ledger the session holds a place on (every session requested names one). */
const clusterOf = (s: SessionState) => (s.clusterId ? { clusterId: s.clusterId } : {});

export async function startSessionReactor(o: SessionReactorOptions): Promise<RunningConsumer> {
  const record = async <T extends CommandType>(
    e: ReactingEvent<"session">,
    type: T,
    data: CommandDataInput<T>,
  ) =>
    await o.handler.handle(commandCausedBy(e, type, data, { actor: ACTOR }), {
      atLeastSequence: e.sequence,
    });
  const send = async (
    e: ReactingEvent<"session">,
    type: "workload.start" | "workload.stop" | "workload.delete",
    data: object,
  ) =>
    await o.bus.send({
      id: derivedId(e.id, type),
      type,
      data,
      meta: { actor: ACTOR, causationId: e.id, correlationId: e.meta.correlationId },
    });

  return await startReactor({
    nats: o.nats,
    name: "idle-detector-reactor",
    aggregate: "session",
    types: [
      "session.requested",
      "session.admitted",
      "session.waking",
      "session.hibernating",
      "session.terminating",
      "session.terminated",
      "session.failed",
    ],
    ...(o.logger ? { logger: o.logger } : {}),
    react: async (e) => {
      if (isQuotaLedgerId(e.aggregate.id)) return;
      const { state: s } = await o.handler.read(e.aggregate, { atLeastSequence: e.sequence });
      const sessionId = e.aggregate.id;
      const workload = { sessionId, clusterId: s.clusterId ?? "" };
      switch (e.type) {
        case "session.requested": {
          if (s.status !== "Pending") return;
          const outcome = await o.admission.admit(e, e.data);
          if (outcome.admitted) {
            await record(e, "session.admit", { sessionId, groups: outcome.groups });
            return;
          }
          const { admitted: _a, ...refusal } = outcome;
          o.logger?.info({ session: sessionId, reason: refusal.reason }, "session refused");
          await record(e, "session.refuse", { sessionId, ...refusal });
          return;
        }
        case "session.admitted":
        case "session.waking":
          if (s.status !== "Starting" && s.status !== "Waking") return;
          await send(e, "workload.start", { ...workload, user: s.user, template: s.template });
          return;
        case "session.hibernating":
          if (s.status !== "Hibernating") return;
          await send(e, "workload.stop", workload);
          return;
        case "session.terminating":
          await send(e, "workload.delete", { ...workload, releaseVolume: true });
          return;
        case "session.failed":
          if (e.data.from !== "Pending")
            await send(e, "workload.delete", { ...workload, releaseVolume: !s.everRan });
          await o.admission.release(
            e,
            { sessionId, user: s.user ?? "", groups: s.groups, ...clusterOf(s) },
            `failed: ${e.data.reason}`,
          );
          return;
        case "session.terminated":
          await o.admission.release(
            e,
            { sessionId, user: s.user ?? "", groups: s.groups, ...clusterOf(s) },
            `terminated (${e.data.cause})`,
          );
          return;
      }
    },
  });
}
