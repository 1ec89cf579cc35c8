/**
 * The nodeop decider's rules for the cluster-wide disruption limit. Pure. Two kinds of
 * instance take part:
 *  - the cluster's disruption ledger (`nodeopLimitId`): which nodes Cairn holds
 *    cordoned or draining; it admits a node while fewer than `limit` are held (or when
 *    forced) and releases it when Cairn lets go of the node, or when the node is gone
 *    (a `reason` says why: its Node deleted, its instance retired);
 *  - the node itself: `nodeop.waiting` while its cordon or drain is queued.
 * The limit is an input (the reactor computes it from the cluster's size), never read here.
 */
import { type Decision, type LimitCommand, type LimitEvent, type NodeopEvent, reject } from "@cairn/events";
import type { NodeopState } from "./decider.ts";

export function decideLimit(command: LimitCommand, state: NodeopState): Decision<NodeopEvent> {
  const holders = state.holders ?? [];
  switch (command.type) {
    case "node.admit-disruption": {
      const { clusterId, node, limit, force } = command.data;
      if (holders.includes(node)) return [];
      if (holders.length >= limit && !force)
        return reject(
          "conflict",
          `cluster ${clusterId} already has ${holders.length} node(s) cordoned or draining by Cairn (limit ${limit}): ${holders.join(", ")}`,
        );
      return [
        {
          type: "nodeop.disruption-admitted",
          data: {
            clusterId,
            node,
            limit,
            forced: holders.length >= limit,
            holders: [...holders, node].sort(),
          },
        },
      ];
    }
    case "node.release-disruption": {
      const { clusterId, node, reason } = command.data;
      // Released already (by Cairn letting go, or by another cause that found it gone): nothing.
      if (!holders.includes(node)) return [];
      return [
        { type: "nodeop.disruption-released", data: { clusterId, node, ...(reason ? { reason } : {}) } },
      ];
    }
    case "node.record-waiting": {
      const { clusterId, node, limit, waitingFor } = command.data;
      const operation = state.inFlight?.operation;
      if (operation !== "cordon" && operation !== "drain") return [];
      // Recorded once per limit and holder set: another look that finds the same says nothing.
      const last = state.inFlight?.waiting;
      if (last && last.limit === limit && last.waitingFor.join("\u0000") === waitingFor.join("\u0000"))
        return [];
      return [{ type: "nodeop.waiting", data: { clusterId, node, operation, limit, waitingFor } }];
    }
  }
}

export function evolveLimit(state: NodeopState, event: LimitEvent): NodeopState {
  switch (event.type) {
    case "nodeop.disruption-admitted":
      return { ...state, holders: event.data.holders };
    case "nodeop.disruption-released":
      return { ...state, holders: (state.holders ?? []).filter((n) => n !== event.data.node) };
    case "nodeop.waiting": {
      if (!state.inFlight) return state;
      const { limit, waitingFor } = event.data;
      return { ...state, inFlight: { ...state.inFlight, waiting: { limit, waitingFor } } };
    }
  }
}
