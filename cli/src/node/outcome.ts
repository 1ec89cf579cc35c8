/**
 * A node's operations as the API shows them (`GET /nodeops/:id`), and what `--wait` makes
 * of them after a node command: done, failed (refused, or the operation failed), or on
 * its way (a drain with its counts and what blocks it). The row shows the node's latest
 * operation, so a look counts once the command is answered and the row has folded its
 * commit (its `sequence` at or past the command's) (or has gone unanswered long
 * enough to have been a no-op: a cordon of a cordoned node).
 */
import type { NodeOpRow } from "@cairn/projector";
import { type CommandView, lookCounts } from "../command-status.ts";
import type { Verdict } from "../wait.ts";

/** The API's node operation row (`GET /nodeops/:id`), as far as the CLI reads it. */
export type NodeOpView = Pick<
  NodeOpRow,
  | "id"
  | "clusterId"
  | "node"
  | "operation"
  | "state"
  | "by"
  | "reason"
  | "drain"
  | "blocking"
  | "waiting"
  | "failure"
  | "cordoned"
> & { readonly sequence?: number };

/** What a node operation under way is doing, for the progress line. */
export function nodeOpDetail(op: NodeOpView): string {
  if (op.state === "waiting" && op.waiting)
    return `held by the cluster's disruption limit (${op.waiting.limit}): waiting for ${op.waiting.waitingFor.join(", ")}`;
  if (op.drain) {
    const blocked =
      op.drain.blockedBy.length > 0
        ? `, blocked by PodDisruptionBudget ${op.drain.blockedBy.join(", ")}`
        : "";
    return `${op.drain.evicted} evicted, ${op.drain.remaining} to go${blocked}`;
  }
  return "";
}

/**
 * The verdict on one look at node operation `kind` (cordon, drain, label…).
 * @example nodeOpVerdict("cordon", { ...op, operation: "cordon", state: "done" }, accepted, false) // { kind: "done", … }
 */
export function nodeOpVerdict(
  kind: string,
  op: NodeOpView | undefined,
  command: CommandView | undefined,
  unanswered: boolean,
): Verdict<NodeOpView> {
  const subject = op ? `node/${op.node}` : "node";
  if (command?.status === "rejected")
    return {
      kind: "failed",
      message: `${subject}: refused: ${command.reason ?? "no reason given"}`,
      hint:
        command.code === "not-found"
          ? "`cairn node list --cluster <id>` shows its nodes"
          : "`cairn node list` shows where its nodes stand",
    };
  const answered = lookCounts(op, command, unanswered);
  if (!op || !answered || op.operation !== kind)
    return {
      kind: "waiting",
      state: "requested",
      hint: "node-ops has not taken the command: is it running?",
    };
  if (op.state === "done") return { kind: "done", view: op, state: `${kind} done` };
  if (op.state === "failed")
    return {
      kind: "failed",
      message: `${subject}: ${kind} failed: ${op.failure?.reason ?? "no reason recorded"}`,
      hint: op.failure?.remediation ?? "see the node's operations: `cairn node list -o wide`",
    };
  return {
    kind: "waiting",
    state: `${kind} ${op.state}`,
    detail: nodeOpDetail(op),
    hint:
      op.drain && op.drain.blockedBy.length > 0
        ? "a PodDisruptionBudget holds the drain: scale the workload up or relax the budget"
        : "node-ops is at it: is it running?",
  };
}
