/**
 * Spot interruptions on the nodeop aggregate, pure. A notice drains the node at once,
 * whatever else was asked of it: in two minutes the instance is gone, and a drain is
 * the only operation that still matters. Kept apart from the operations' decider so
 * that each reads on its own; `withInterruptions` joins them.
 *
 * Rules:
 *  - `node.record-interruption`, a notice not seen before →
 *    `nodeop.interruption-noticed` + `nodeop.drain-requested` (deadline: a margin before
 *    the termination, counted from the decision), unless a drain is already in flight
 *    (it goes on; only the notice is recorded). A cordon or uncordon in flight is
 *    superseded (its reactor finds it no longer in flight and stops).
 *  - the same notice again (a redelivered SQS message) → nothing.
 *  - `node.record-deleted`, an interrupted node not yet deleted → `nodeop.node-deleted`;
 *    otherwise nothing.
 */
import { assertNever, type Decider, type NodeopCommand, type NodeopEvent } from "@cairn/events";
import type { NodeopState } from "./decider.ts";

type InterruptionCommandType = "node.record-interruption" | "node.record-deleted";
type InterruptionEventType = "nodeop.interruption-noticed" | "nodeop.node-deleted";
export type InterruptionCommand = Extract<NodeopCommand, { type: InterruptionCommandType }>;
export type InterruptionEvent = Extract<NodeopEvent, { type: InterruptionEventType }>;
/** The commands and events of the node operations proper (cordon, uncordon, drain, …). */
export type OperationCommand = Exclude<NodeopCommand, { type: InterruptionCommandType }>;
export type OperationEvent = Exclude<NodeopEvent, { type: InterruptionEventType }>;

/** What the aggregate remembers of an interruption. */
export interface InterruptionState {
  readonly noticeId: string;
  readonly instanceId: string;
  readonly terminationTime: string;
  /** The Node object was deleted. */
  readonly deleted?: boolean;
}

/**
 * The drain must end this long before the instance goes, so that what it could not
 * evict is known (and recorded) while the node still exists.
 */
export const INTERRUPTION_DRAIN_MARGIN_SECONDS = 15;
/** A drain gets at least this long, however late the notice was read. */
const MIN_DRAIN_SECONDS = 10;

const INTERRUPTION_COMMANDS: ReadonlySet<string> = new Set<InterruptionCommandType>([
  "node.record-interruption",
  "node.record-deleted",
]);
const INTERRUPTION_EVENTS: ReadonlySet<string> = new Set<InterruptionEventType>([
  "nodeop.interruption-noticed",
  "nodeop.node-deleted",
]);

/** The drain's time budget: the notice's two minutes less the margin (AWS's clock gives the span only). */
export function interruptionDrainSeconds(noticeTime: string, terminationTime: string): number {
  const span = (Date.parse(terminationTime) - Date.parse(noticeTime)) / 1000;
  return Math.max(MIN_DRAIN_SECONDS, Math.floor(span) - INTERRUPTION_DRAIN_MARGIN_SECONDS);
}

export function withInterruptions(
  operations: Decider<OperationCommand, OperationEvent, NodeopState>,
): Decider<NodeopCommand, NodeopEvent, NodeopState> {
  return {
    aggregate: operations.aggregate,
    initialState: operations.initialState,

    decide(command, state, ctx) {
      if (!INTERRUPTION_COMMANDS.has(command.type))
        return operations.decide(command as typeof command & { type: OperationCommand["type"] }, state, ctx);
      const c = command as typeof command & InterruptionCommand;
      switch (c.type) {
        case "node.record-interruption": {
          const d = c.data;
          if (state.interruption?.noticeId === d.noticeId) return [];
          const noticed: NodeopEvent = { type: "nodeop.interruption-noticed", data: d };
          if (state.inFlight?.operation === "drain") return [noticed];
          const seconds = interruptionDrainSeconds(d.noticeTime, d.terminationTime);
          return [
            noticed,
            {
              type: "nodeop.drain-requested",
              data: {
                clusterId: d.clusterId,
                node: d.node,
                reason: `spot interruption: instance ${d.instanceId} is reclaimed at ${d.terminationTime}`,
                by: c.meta.actor,
                deadline: new Date(ctx.now.getTime() + seconds * 1000).toISOString(),
              },
            },
          ];
        }
        case "node.record-deleted": {
          const { clusterId, node, reason } = c.data;
          // Instance ids are never reused, so a node's deletion is recorded once, for good.
          if (state.deleted || state.interruption?.deleted) return [];
          return [{ type: "nodeop.node-deleted", data: { clusterId, node, reason } }];
        }
        default:
          return assertNever(c);
      }
    },

    evolve(state, event) {
      if (!INTERRUPTION_EVENTS.has(event.type)) {
        const next = operations.evolve(state, event as typeof event & { type: OperationEvent["type"] });
        // The operations rebuild their state from scratch; the interruption outlives them.
        return state.interruption && !next.interruption
          ? { ...next, interruption: state.interruption }
          : next;
      }
      const e = event as typeof event & InterruptionEvent;
      switch (e.type) {
        case "nodeop.interruption-noticed": {
          const { noticeId, instanceId, terminationTime } = e.data;
          return { ...state, interruption: { noticeId, instanceId, terminationTime } };
        }
        case "nodeop.node-deleted":
          return state.interruption
            ? { ...state, deleted: true, interruption: { ...state.interruption, deleted: true } }
            : { ...state, deleted: true };
        default:
          return assertNever(e);
      }
    },
  };
}
