/**
 * What `--wait` makes of a cluster's view after a command: done (it rests in the goal
 * state), failed (the command refused, the cluster Failed), or on its way (with its
 * progress). A cluster rests in its old state until the command is taken, so a look
 * counts only once the command is answered and the view has folded the command's commit
 * (its `sequence` at or past the command's), or — a command that changed nothing answers
 * nothing — once it has gone unanswered for a while.
 */
import { type CommandView, lookCounts } from "../command-status.ts";
import type { Verdict } from "../wait.ts";
import { type ClusterView, progressText } from "./view.ts";

export interface ClusterLook {
  readonly view: ClusterView | undefined;
  readonly command: CommandView | undefined;
  /** The command has gone unanswered long enough to be a no-op. */
  readonly unanswered: boolean;
}

/** What a refusal's code suggests doing next. */
export function clusterRejectionHint(code: string | undefined, id: string): string {
  switch (code) {
    case "not-found":
      return "`cairn cluster list` shows the clusters";
    case "conflict":
      return `see where it stands: \`cairn cluster describe ${id}\``;
    case "already-exists":
      return `pick another cluster id, or follow that one: \`cairn cluster watch ${id}\``;
    case "invalid":
      return "fix the input (`--help` shows what each flag takes)";
    default:
      return `see its history: \`cairn cluster history ${id}\``;
  }
}

/**
 * The verdict on one look.
 * @param goal Ready (create, scale, rollback, retry) or Deleted (delete)
 * @example clusterVerdict("Ready", "demo-1", { view: ready, command: accepted, unanswered: false }) // { kind: "done", view: ready }
 */
export function clusterVerdict(goal: string, id: string, look: ClusterLook): Verdict<ClusterView> {
  const { view, command } = look;
  if (command?.status === "rejected")
    return {
      kind: "failed",
      message: `cluster/${id}: refused: ${command.reason ?? "no reason given"}`,
      hint: clusterRejectionHint(command.code, id),
    };
  if (!view)
    return { kind: "waiting", state: "Pending", hint: "the provisioner has not answered: is it running?" };
  const answered = lookCounts(view, command, look.unanswered);
  if (answered && view.state === goal) return { kind: "done", view };
  if (answered && view.state === "Failed")
    return {
      kind: "failed",
      message: `cluster/${id} Failed${view.failure ? `: ${view.failure.reason}` : ""}`,
      hint:
        view.failure?.remediation ??
        `see what happened: \`cairn cluster describe ${id}\`, then \`cairn cluster retry ${id}\``,
    };
  if (answered && goal !== "Deleted" && (view.state === "Deleting" || view.state === "Deleted"))
    return {
      kind: "failed",
      message: `cluster/${id} is ${view.state}: it will not be ${goal}`,
      hint: "a deleted cluster is gone: create a new one",
    };
  return {
    kind: "waiting",
    state: answered
      ? view.state
      : `${view.state} (command not ${command ? "shown by the read model" : "taken"} yet)`,
    detail: progressText(view),
    hint: answered
      ? view.state === "Configuring"
        ? "K3s is being installed over SSM: `cairn install <id>` shows its steps; is the installer running?"
        : "is the provisioner running? `cairn cluster describe` shows where it is"
      : "the command has not been taken: is the provisioner running?",
  };
}
