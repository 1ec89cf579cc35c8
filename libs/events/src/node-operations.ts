import type { EventStore } from "./event-store.ts";
import { nodeAggregateId } from "./ids.ts";

/** Where a `node.drain` another service sent stands, read from the node's own subject. */
export type DrainOutcome =
  | { readonly status: "pending" }
  | { readonly status: "drained" }
  /** Refused (`nodeop.rejected`), or failed (`nodeop.drain-failed`, `nodeop.failed`), with node-ops' reason. */
  | { readonly status: "failed"; readonly reason: string };

/**
 * The outcome of the drain command `commandId` on a node: node-ops records the drain on
 * the node's `nodeop` aggregate, and its first outcome after the request is the answer.
 * How the provisioner (scale down) and the installer (rolling upgrades) wait for the
 * drains they ask for, without blocking: they look again while it is pending.
 */
export async function drainOutcome(
  store: EventStore,
  clusterId: string,
  node: string,
  commandId: string,
): Promise<DrainOutcome> {
  const history = (await store.load({ type: "nodeop", id: nodeAggregateId(clusterId, node) })).events;
  const reasonOf = (e: { data: unknown }) => String((e.data as { reason?: unknown }).reason ?? "");
  const refused = history.find(
    (x) => x.type === "nodeop.rejected" && (x.data as { commandId?: string }).commandId === commandId,
  );
  if (refused) return { status: "failed", reason: reasonOf(refused) };
  const asked = history.findIndex((x) => x.meta.commandId === commandId);
  if (asked < 0) return { status: "pending" };
  const outcome = history
    .slice(asked)
    .find(
      (x) => x.type === "nodeop.drained" || x.type === "nodeop.drain-failed" || x.type === "nodeop.failed",
    );
  if (!outcome) return { status: "pending" };
  return outcome.type === "nodeop.drained"
    ? { status: "drained" }
    : { status: "failed", reason: reasonOf(outcome) };
}
