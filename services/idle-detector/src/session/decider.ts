/**
 * The session decider, pure: time is `ctx.now`, the operator's bounds are the policy it
 * is made with, the cluster's status and the quota are decided elsewhere (the reactor
 * looks, the ledgers decide) and arrive as internal commands.
 *
 *     Pending → Starting → Running ⇄ (Hibernating → Hibernated → Waking → Running)
 *     any live state → Terminating → Terminated;  Failed
 *
 * Terminated and Failed are final: every public command on them is refused, saying so,
 * and every internal record changes nothing, so no sequence of commands gets a session
 * out (the property test holds it). Internal records that do not fit the state (a late
 * `workload.running` after a terminate) change nothing: they are facts about a past
 * step, not decisions. The quota ledgers are instances of the same aggregate type
 * (./quota.ts).
 */
import {
  bytesOf,
  type CommandEnvelope,
  cpuMillis,
  type Decider,
  type Decision,
  isLiveSession,
  quantityValue,
  reject,
  SESSION_FINAL_STATES,
  type SessionCause,
  type SessionCommand,
  type SessionEvent,
  type SessionStatus,
  type SessionTemplate,
  sessionStatusAfter,
  sharedTemplate,
} from "@cairn/events";
import { DEFAULT_SESSION_POLICY, type SessionPolicy } from "./policy.ts";
import { decideLedger, emptyLedger, evolveLedger, type LedgerState } from "./quota.ts";

export interface SessionState {
  /** Undefined until it is requested. */
  readonly status: SessionStatus | undefined;
  readonly user?: string;
  readonly clusterId?: string;
  readonly template?: SessionTemplate;
  readonly idleTimeoutSeconds?: number;
  readonly maxLifetimeSeconds?: number;
  /** The create's command id: an admission refused later rejects it by this id. */
  readonly createCommandId?: string;
  /** When it was requested: the lifetime runs from here. */
  readonly createdAt?: string;
  /** When it last became Running: without a heartbeat since, activity counts from here. */
  readonly runningSince?: string;
  readonly node?: string;
  readonly hibernatedAt?: string;
  /** The ledgers' groups it holds quota on (beside its user's). */
  readonly groups: readonly string[];
  /** Set while Hibernating, Waking: why it moved. */
  readonly cause?: SessionCause;
  /** Set while Waking (and while a wake waits for Hibernated): the wake latency runs from `requestedAt`. */
  readonly wake?: { readonly cause: SessionCause; readonly requestedAt: string };
  /** Whether a pod of it ever ran: a failed first start has nothing worth keeping. */
  readonly everRan: boolean;
  /** On a quota ledger's instance: its holders. */
  readonly ledger: LedgerState;
}

export const initialSessionState = (): SessionState => ({
  status: undefined,
  groups: [],
  everRan: false,
  ledger: emptyLedger,
});

const FINAL: ReadonlySet<SessionStatus | undefined> = new Set(SESSION_FINAL_STATES);
/** A live session: one that holds quota and may run (the shared lifecycle's rule). */
export const isLive = isLiveSession;

/** What is wrong with a template, or undefined. */
export function templateProblem(t: SessionTemplate): string | undefined {
  if (!(quantityValue(t.cpu)! > 0)) return `template.cpu ${t.cpu} must be more than zero`;
  if (!(quantityValue(t.memory)! > 0)) return `template.memory ${t.memory} must be more than zero`;
  if (!(quantityValue(t.storage)! > 0)) return `template.storage ${t.storage} must be more than zero`;
  if (/\s/.test(t.image)) return `template.image ${JSON.stringify(t.image)} is not an image reference`;
  return undefined;
}

/** A public command refused on a session that is over. */
function finalRefusal(id: string, s: SessionState, verb: string) {
  return reject(
    "conflict",
    s.status === "Terminated"
      ? `session ${id} is already terminated: it cannot ${verb}; create a new session`
      : `session ${id} has failed: it cannot ${verb}; create a new session`,
  );
}

const seconds = (ms: number) => Math.floor(ms / 1000);

export function createSessionDecider(
  policy: SessionPolicy = DEFAULT_SESSION_POLICY,
): Decider<SessionCommand, SessionEvent, SessionState> {
  const decide = (
    command: CommandEnvelope<SessionCommand>,
    s: SessionState,
    now: Date,
  ): Decision<SessionEvent> => {
    switch (command.type) {
      case "session.take-quota":
      case "session.release-quota":
        return decideLedger(command, s.ledger);
      case "session.create": {
        const d = command.data;
        if (d.sessionId.includes("="))
          return reject("invalid", `session id ${d.sessionId} may not hold '=' (reserved for quota ledgers)`);
        if (s.status !== undefined)
          return reject(
            "already-exists",
            `session ${d.sessionId} already exists (${s.status}); choose another id`,
          );
        const problem = templateProblem(d.template);
        if (problem) return reject("invalid", `bad template: ${problem}`);
        if (d.idleTimeoutSeconds !== undefined && d.idleTimeoutSeconds > policy.maxIdleTimeoutSeconds)
          return reject(
            "invalid",
            `idleTimeoutSeconds ${d.idleTimeoutSeconds} is above the operator's maximum of ${policy.maxIdleTimeoutSeconds}; ask for at most that`,
          );
        if (d.maxLifetimeSeconds !== undefined && d.maxLifetimeSeconds > policy.maxLifetimeSeconds)
          return reject(
            "invalid",
            `maxLifetimeSeconds ${d.maxLifetimeSeconds} is above the operator's maximum of ${policy.maxLifetimeSeconds}; ask for at most that`,
          );
        return [
          {
            type: "session.requested",
            data: {
              sessionId: d.sessionId,
              user: d.user,
              clusterId: d.clusterId,
              template: d.template,
              idleTimeoutSeconds:
                d.idleTimeoutSeconds ??
                Math.min(policy.defaultIdleTimeoutSeconds, policy.maxIdleTimeoutSeconds),
              maxLifetimeSeconds: d.maxLifetimeSeconds ?? policy.maxLifetimeSeconds,
              cause: "user",
            },
          },
        ];
      }
      case "session.hibernate": {
        const id = command.data.sessionId;
        if (s.status === undefined) return reject("not-found", `no session ${id}`);
        if (FINAL.has(s.status)) return finalRefusal(id, s, "hibernate");
        if (s.status === "Running")
          return [{ type: "session.hibernating", data: { sessionId: id, cause: "user" } }];
        if (s.status === "Hibernating" || s.status === "Hibernated") return [];
        return reject("conflict", `session ${id} is ${s.status}: only a Running session can hibernate`);
      }
      case "session.wake":
      case "session.connect": {
        const id = command.data.sessionId;
        const cause: SessionCause = command.type === "session.wake" ? "user" : "connection";
        const verb = command.type === "session.wake" ? "wake" : "take connections";
        if (s.status === undefined) return reject("not-found", `no session ${id}`);
        if (FINAL.has(s.status)) return finalRefusal(id, s, verb);
        if (s.status === "Terminating")
          return reject("conflict", `session ${id} is terminating: it cannot ${verb}`);
        if (s.status === "Hibernated")
          return [{ type: "session.waking", data: { sessionId: id, cause, requestedAt: now.toISOString() } }];
        // Still stopping: it wakes as soon as it is Hibernated (once, however often asked).
        if (s.status === "Hibernating")
          return s.wake ? [] : [{ type: "session.wake-requested", data: { sessionId: id, cause } }];
        // Pending, Starting, Waking, Running: on its way up or up already.
        return [];
      }
      case "session.terminate": {
        const id = command.data.sessionId;
        if (s.status === undefined) return reject("not-found", `no session ${id}`);
        if (FINAL.has(s.status)) return finalRefusal(id, s, "be terminated again");
        if (s.status === "Terminating") return [];
        return [{ type: "session.terminating", data: { sessionId: id, cause: "user" } }];
      }
      case "session.admit": {
        if (s.status !== "Pending") return [];
        return [
          {
            type: "session.admitted",
            data: { sessionId: command.data.sessionId, groups: command.data.groups, cause: "user" },
          },
        ];
      }
      case "session.refuse": {
        if (s.status !== "Pending") return [];
        const { sessionId, cause, code, reason, remediation, quota } = command.data;
        return [
          {
            type: "session.rejected",
            data: {
              commandId: s.createCommandId ?? command.id,
              commandType: "session.create",
              code,
              reason,
              ...(quota ? { quota } : {}),
            },
          },
          {
            type: "session.failed",
            data: { sessionId, cause, reason, ...(remediation ? { remediation } : {}), from: "Pending" },
          },
        ];
      }
      case "session.record-running": {
        const { sessionId, node, pod } = command.data;
        const at = { sessionId, node, ...(pod ? { pod } : {}) };
        if (s.status === "Starting") return [{ type: "session.running", data: { ...at, cause: "user" } }];
        if (s.status === "Waking" && s.wake) {
          const wakeLatencyMs = Math.max(0, now.getTime() - Date.parse(s.wake.requestedAt));
          return [{ type: "session.running", data: { ...at, wakeLatencyMs, cause: s.wake.cause } }];
        }
        return [];
      }
      case "session.record-hibernated": {
        if (s.status !== "Hibernating") return [];
        const sessionId = command.data.sessionId;
        const hibernated: SessionEvent = {
          type: "session.hibernated",
          data: { sessionId, cause: s.cause ?? "user" },
        };
        // A wake asked for while it was stopping starts now; its latency runs from the ask.
        if (!s.wake) return [hibernated];
        return [hibernated, { type: "session.waking", data: { sessionId, ...s.wake } }];
      }
      case "session.record-terminated": {
        if (s.status !== "Terminating") return [];
        const { sessionId, volumeReleased } = command.data;
        return [
          { type: "session.terminated", data: { sessionId, cause: s.cause ?? "user", volumeReleased } },
        ];
      }
      case "session.record-failure": {
        // Nothing runs when Hibernated; a failed delete leaves it Terminating (node-ops
        // records `workload.deleted` once there is nothing left, the cluster gone included).
        if (
          s.status === undefined ||
          !isLive(s.status) ||
          s.status === "Hibernated" ||
          s.status === "Terminating"
        )
          return [];
        const { sessionId, reason, remediation } = command.data;
        return [
          {
            type: "session.failed",
            data: {
              sessionId,
              cause: "failure",
              reason,
              ...(remediation ? { remediation } : {}),
              from: s.status,
            },
          },
        ];
      }
      case "session.record-moved": {
        if (s.status !== "Running") return [];
        return [{ type: "session.moved", data: command.data }];
      }
      case "session.idle": {
        if (s.status !== "Running" || !s.runningSince) return [];
        const { sessionId, lastActivityAt } = command.data;
        // Seen in an earlier Running period (a late sweep): not about this one.
        if (Date.parse(lastActivityAt) < Date.parse(s.runningSince)) return [];
        const timeout = s.idleTimeoutSeconds ?? policy.defaultIdleTimeoutSeconds;
        const idleFor = seconds(now.getTime() - Date.parse(lastActivityAt));
        if (idleFor < timeout + policy.idleGraceSeconds) return [];
        return [
          {
            type: "session.idled",
            data: {
              sessionId,
              lastActivityAt,
              idleTimeoutSeconds: timeout,
              graceSeconds: policy.idleGraceSeconds,
            },
          },
          { type: "session.hibernating", data: { sessionId, cause: "idle" } },
        ];
      }
      case "session.end": {
        if (!isLive(s.status) || s.status === "Terminating") return [];
        const { sessionId, cause, reason } = command.data;
        // The policy's clocks are checked here too: a sweep's late or wrong call ends nothing early.
        if (cause === "lifetime") {
          const end =
            Date.parse(s.createdAt ?? "") + (s.maxLifetimeSeconds ?? policy.maxLifetimeSeconds) * 1000;
          if (!(now.getTime() >= end)) return [];
        }
        if (cause === "dormancy") {
          if (s.status !== "Hibernated" || !s.hibernatedAt) return [];
          if (now.getTime() < Date.parse(s.hibernatedAt) + policy.dormancySeconds * 1000) return [];
        }
        return [{ type: "session.terminating", data: { sessionId, cause, reason } }];
      }
    }
  };

  return {
    aggregate: "session",
    initialState: initialSessionState,
    decide: (command, state, ctx) => decide(command, state, ctx.now),
    evolve(s, e) {
      // The status from the shared lifecycle (libs/events), as the projector folds it.
      const status = sessionStatusAfter(s.status, e);
      switch (e.type) {
        case "session.quota-taken":
        case "session.quota-released":
          return { ...s, ledger: evolveLedger(s.ledger, e) };
        case "session.rejected":
          return s;
        case "session.requested": {
          const d = e.data;
          return {
            ...s,
            status,
            user: d.user,
            clusterId: d.clusterId,
            template: sharedTemplate(d.template),
            idleTimeoutSeconds: d.idleTimeoutSeconds,
            maxLifetimeSeconds: d.maxLifetimeSeconds,
            createdAt: e.time,
            ...(e.meta.commandId ? { createCommandId: e.meta.commandId } : {}),
          };
        }
        case "session.admitted":
          return { ...s, status, groups: e.data.groups };
        case "session.running": {
          const { wake: _w, cause: _c, ...rest } = s;
          return { ...rest, status, node: e.data.node, runningSince: e.time, everRan: true };
        }
        case "session.idled":
          return s;
        case "session.hibernating":
          return { ...s, status, cause: e.data.cause };
        case "session.hibernated": {
          const { cause: _c, ...rest } = s;
          return { ...rest, status, hibernatedAt: e.time };
        }
        case "session.wake-requested":
          return { ...s, wake: { cause: e.data.cause, requestedAt: e.time } };
        case "session.waking":
          return {
            ...s,
            status,
            cause: e.data.cause,
            wake: { cause: e.data.cause, requestedAt: e.data.requestedAt },
          };
        case "session.moved":
          return { ...s, node: e.data.toNode };
        case "session.terminating": {
          const { wake: _w, ...rest } = s;
          return { ...rest, status, cause: e.data.cause };
        }
        case "session.terminated":
          return { ...s, status, cause: e.data.cause };
        case "session.failed":
          return { ...s, status, cause: e.data.cause };
      }
    },
  };
}

export const sessionDecider = createSessionDecider();

/** The session's resources as the quota counts them. */
export function requestOf(t: SessionTemplate): { cpuMillis: number; memoryBytes: number } {
  return { cpuMillis: cpuMillis(t.cpu), memoryBytes: bytesOf(t.memory) };
}
