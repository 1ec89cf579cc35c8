/**
 * The session's lifecycle, the one definition: which event moves a session from which
 * status to which. The idle-detector's `evolve` (the owner) and the projector's
 * `sessions` fold (the read model) both apply it, so the two cannot drift apart (as
 * ./cluster-lifecycle.ts does for clusters).
 *
 * These are facts of the log: a transition applies whatever `decide` checked before it
 * emitted the event. The guards on commands (only a Running session can hibernate, a
 * Terminated one never runs again) live in the idle-detector's `decide`.
 */
import type { SessionEvent, SessionStatus } from "./session.ts";

/** Terminated and Failed: over for good, nothing gets a session out of them. */
export const SESSION_FINAL_STATES: readonly SessionStatus[] = ["Terminated", "Failed"];

/** A live session: one that exists, holds quota and may run (neither Terminated nor Failed). */
export const isLiveSession = (s: SessionStatus | undefined): s is SessionStatus =>
  s !== undefined && !SESSION_FINAL_STATES.includes(s);

/**
 * Every session event and the status it moves the session to (null: none). Typed over
 * every event type, so a new event must say here what it does to the status. The quota
 * ledgers' events (`quota-taken`, `quota-released`) belong to the ledger instances and
 * move no session.
 */
export const SESSION_TRANSITIONS = {
  "session.rejected": null,
  "session.requested": "Pending",
  "session.admitted": "Starting",
  "session.running": "Running",
  // The sweep's decision; `session.hibernating` (cause idle) in the same commit moves it.
  "session.idled": null,
  "session.hibernating": "Hibernating",
  "session.hibernated": "Hibernated",
  // A wake asked for while stopping: it stays Hibernating until Hibernated, then wakes.
  "session.wake-requested": null,
  "session.waking": "Waking",
  // A pod evicted and back on another node: still Running.
  "session.moved": null,
  "session.terminating": "Terminating",
  "session.terminated": "Terminated",
  "session.failed": "Failed",
  "session.quota-taken": null,
  "session.quota-released": null,
} as const satisfies Record<SessionEvent["type"], SessionStatus | null>;

/**
 * The status `event` moves a session in `status` to, or undefined when it moves it
 * nowhere. A session that does not exist yet (`status` undefined) comes into being only
 * by `session.requested`. Event types this code does not know yet move nothing.
 * @example sessionTransition("Hibernated", { type: "session.waking" }) // "Waking"
 * @example sessionTransition(undefined, { type: "session.running" }) // undefined
 */
export function sessionTransition(
  status: SessionStatus | undefined,
  event: { readonly type: string },
): SessionStatus | undefined {
  const to: SessionStatus | null | undefined = Object.hasOwn(SESSION_TRANSITIONS, event.type)
    ? SESSION_TRANSITIONS[event.type as keyof typeof SESSION_TRANSITIONS]
    : undefined;
  if (!to) return undefined;
  if (status === undefined) return event.type === "session.requested" ? to : undefined;
  return to;
}

/** The session's status after `event` (unchanged when the event moves it nowhere). */
export function sessionStatusAfter(
  status: SessionStatus | undefined,
  event: { readonly type: string },
): SessionStatus | undefined {
  return sessionTransition(status, event) ?? status;
}
