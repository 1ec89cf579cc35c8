/**
 * What `--wait` makes of a session's view and its command's outcome: done (the goal
 * state), failed (the command refused, the session Failed or ended), or still on its way.
 * Pure: the same look gives the same verdict.
 */
import type { SessionStatus } from "@cairn/events";
import { lookCounts } from "../command-status.ts";
import { QUOTA_HINT } from "../errors.ts";
import type { Verdict } from "../wait.ts";
import type { CommandView, SessionView } from "./view.ts";

/** What a refusal's code suggests doing next. */
export function rejectionHint(code: string | undefined, sessionId: string, commandType?: string): string {
  switch (code) {
    case "over-quota":
      return QUOTA_HINT;
    case "not-found":
      return commandType === "session.create"
        ? "check the cluster's id (`cairn cluster list`)"
        : "`cairn session list` shows the sessions you can see";
    case "conflict":
      return `see where it stands: \`cairn session get ${sessionId}\``;
    case "already-exists":
      return `pick another session id, or follow that one: \`cairn session get ${sessionId}\``;
    case "invalid":
      return "`cairn session create --help` shows what each flag takes";
    case "unsupported":
      return "the idle-detector does not take this command: is it the same version as the API?";
    default:
      return `see its history: \`cairn session history ${sessionId}\``;
  }
}

/** What to say while it waits in `state` (if the wait times out there). */
function waitingHint(state: SessionStatus, id: string): string {
  switch (state) {
    case "Pending":
      return "admission has not answered: is the idle-detector running?";
    case "Starting":
    case "Waking":
      return `its pod is not ready yet (image pull, scheduling): \`cairn session get ${id} -o yaml\`, and is node-ops running?`;
    case "Hibernating":
    case "Terminating":
      return "node-ops has not finished with its workload: is node-ops running?";
    default:
      return `see where it stands: \`cairn session get ${id}\``;
  }
}

const ENDED: ReadonlySet<SessionStatus> = new Set(["Terminating", "Terminated"]);

/**
 * The verdict on one look.
 * @param goal the state the command leads to (create, wake, connect: Running; hibernate: Hibernated; terminate: Terminated)
 * @param command what the API says of the command so far (undefined: not projected yet, or it changed nothing)
 * @param commandId the command followed; with it, a look counts only once the view has folded
 *   the command's commit (its `sequence` at or past the command's), or once the command has
 *   gone unanswered for `o.unanswered` (a connect to a Running session changes nothing)
 * @example sessionVerdict("Running", { ...view, state: "Running" }) // { kind: "done", view }
 */
export function sessionVerdict(
  goal: SessionStatus,
  view: SessionView,
  command?: CommandView | undefined,
  commandId?: string | undefined,
  o: { readonly unanswered?: boolean } = {},
): Verdict<SessionView> {
  const subject = `session/${view.id}`;
  const refused =
    command?.status === "rejected"
      ? { code: command.code, reason: command.reason ?? "refused", type: command.type ?? undefined }
      : commandId !== undefined && view.rejection?.commandId === commandId
        ? { code: view.rejection.code, reason: view.rejection.reason, type: view.rejection.commandType }
        : undefined;
  if (refused)
    return {
      kind: "failed",
      message: `${subject}: refused: ${refused.reason}`,
      hint: rejectionHint(refused.code, view.id, refused.type),
    };
  // A view read before the command took effect shows the old state, which may be the goal
  // already (a hibernate sent, then a wake at once: the view still says Running).
  if (commandId !== undefined && !lookCounts(view, command, o.unanswered ?? false))
    return {
      kind: "waiting",
      state: `${view.state} (command not ${command ? "shown by the read model" : "taken"} yet)`,
      hint: waitingHint(view.state, view.id),
    };
  if (view.state === goal) return { kind: "done", view };
  if (view.state === "Failed")
    return {
      kind: "failed",
      message: `${subject} Failed: ${view.failure?.reason ?? "no reason recorded"}`,
      hint: view.failure?.remediation ?? `see what happened: \`cairn session history ${view.id}\``,
    };
  if (ENDED.has(view.state) && goal !== "Terminated")
    return {
      kind: "failed",
      message: `${subject} is ${view.state}${view.cause ? ` (cause: ${view.cause})` : ""}: it will not be ${goal}`,
      hint: "a terminated session never runs again: create a new one (`cairn session create`)",
    };
  return { kind: "waiting", state: view.state, hint: waitingHint(view.state, view.id) };
}
