import type { AnyEvent, CairnEvent } from "./catalogue/index.ts";
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
  store: EventStore<AnyEvent>,
  clusterId: string,
  node: string,
  commandId: string,
): Promise<DrainOutcome> {
  const history = (await store.load({ type: "nodeop", id: nodeAggregateId(clusterId, node) })).events;
  return (
    foldDrain({ asked: false }, history, commandId).outcome ?? {
      status: "pending",
    }
  );
}

/** What the drain of one command has shown so far on the node's subject. */
export interface DrainSeen {
  readonly asked: boolean;
  readonly outcome?: DrainOutcome;
}

/**
 * Folds `events` (the node's, in log order) into what the drain `commandId` has shown: a
 * refusal of the command, or the first drained / drain-failed / failed event from the
 * request on. Folding a history in slices gives what one fold of the whole gives, so a
 * caller that looks again and again reads only what is new. Pure.
 *
 * @example foldDrain({ asked: false }, history, commandId).outcome // { status: "drained" }
 */
export function foldDrain(seen: DrainSeen, events: readonly CairnEvent[], commandId: string): DrainSeen {
  let { asked, outcome } = seen;
  for (const e of events) {
    if (outcome) break;
    if (e.type === "nodeop.rejected") {
      if (e.data.commandId === commandId) outcome = { status: "failed", reason: e.data.reason };
      continue;
    }
    if (e.meta.commandId === commandId) asked = true;
    if (!asked) continue;
    if (e.type === "nodeop.drained") outcome = { status: "drained" };
    else if (e.type === "nodeop.drain-failed" || e.type === "nodeop.failed")
      outcome = { status: "failed", reason: e.data.reason };
  }
  return outcome ? { asked, outcome } : { asked };
}
