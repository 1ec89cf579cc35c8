/**
 * The nodeop aggregate's pure core: one aggregate per node (`nodeAggregateId`), so the
 * operations on one node are serialised. No I/O, no clock, no ids.
 *
 * Cordon and uncordon are requested here, carried out on the Kubernetes API by the
 * reactor, and recorded back through internal commands. While an operation is in flight
 * (requested, not yet recorded) the node accepts no other one. Cairn only uncordons
 * what it cordoned itself, unless the command says `force: true`.
 */
import {
  assertNever,
  type ClassificationOperation,
  type Decider,
  type Decision,
  reject,
} from "@cairn/events";
import { decideClassification, evolveClassification } from "./classification.ts";
import {
  type InterruptionState,
  type OperationCommand as NodeopCommand,
  type OperationEvent as NodeopEvent,
  withInterruptions,
} from "./interruption.ts";
import { withKnownNodes } from "./known-nodes.ts";
import { decideLimit, evolveLimit } from "./limit.ts";

export type NodeOperation = "cordon" | "uncordon" | "drain" | ClassificationOperation;

/** How long a drain may take when the command does not say. */
export const DEFAULT_DRAIN_TIMEOUT_SECONDS = 600;

export interface DrainProgress {
  readonly evicted: number;
  readonly remaining: number;
  readonly blockedBy?: readonly string[];
}

export interface NodeopState {
  /** Set while Cairn holds the node cordoned: who asked and why. */
  readonly cordoned?: { readonly by: string; readonly reason: string };
  /** The operation requested and not yet recorded. */
  readonly inFlight?: {
    readonly operation: NodeOperation;
    readonly by: string;
    readonly reason: string;
    /** A drain's last recorded progress. */
    readonly progress?: DrainProgress;
    /** What it last waited for under the cluster's disruption limit (./limit.ts). */
    readonly waiting?: { readonly limit: number; readonly waitingFor: readonly string[] };
  };
  /** On a cluster's disruption ledger only (./limit.ts): the nodes Cairn holds cordoned or draining. */
  readonly holders?: readonly string[];
  /** The node's spot instance got its interruption notice (see interruption.ts). */
  readonly interruption?: InterruptionState;
  /** The Node object was deleted (its instance is gone: interrupted, or retired by the provisioner). */
  readonly deleted?: boolean;
}

const sameProgress = (a: DrainProgress | undefined, b: DrainProgress) =>
  a !== undefined &&
  a.evicted === b.evicted &&
  a.remaining === b.remaining &&
  (a.blockedBy ?? []).join("\u0000") === (b.blockedBy ?? []).join("\u0000");

const initialState = (): NodeopState => ({});

const busy = (node: string, s: NodeopState) =>
  reject(
    "conflict",
    `an operation is in progress on node ${node} (${s.inFlight?.operation} requested by ${s.inFlight?.by}); try again when it is recorded`,
  );

/** The node operations (cordon, uncordon, drain and their records); spot interruptions are joined below. */
const operationsDecider: Decider<NodeopCommand, NodeopEvent, NodeopState> = {
  aggregate: "nodeop",
  initialState,

  decide(command, state, ctx) {
    const by = command.meta.actor;
    switch (command.type) {
      case "node.cordon": {
        const { clusterId, node, reason, force } = command.data;
        if (state.inFlight) return busy(node, state);
        if (state.cordoned) return [];
        return [
          {
            type: "nodeop.cordon-requested",
            data: { clusterId, node, reason, by, ...(force ? { force } : {}) },
          },
        ];
      }
      case "node.uncordon": {
        const { clusterId, node, reason, force } = command.data;
        if (state.inFlight) return busy(node, state);
        if (!state.cordoned && !force)
          return reject(
            "conflict",
            `node ${node} in cluster ${clusterId} was not cordoned by Cairn: whoever cordoned it did so outside Cairn (kubectl, another controller), and Cairn does not undo what it did not do; pass force: true to uncordon it anyway`,
          );
        return [
          {
            type: "nodeop.uncordon-requested",
            data: { clusterId, node, reason, by, forced: !state.cordoned },
          },
        ];
      }
      case "node.drain": {
        const { clusterId, node, reason, timeoutSeconds, gracePeriodSeconds, force } = command.data;
        const { forceUnmanaged, deleteEmptyDirData, ignoreDaemonSets } = command.data;
        if (state.inFlight) return busy(node, state);
        const seconds = timeoutSeconds ?? DEFAULT_DRAIN_TIMEOUT_SECONDS;
        const deadline = new Date(ctx.now.getTime() + seconds * 1000).toISOString();
        return [
          {
            type: "nodeop.drain-requested",
            data: {
              clusterId,
              node,
              reason,
              by,
              deadline,
              ...(gracePeriodSeconds !== undefined ? { gracePeriodSeconds } : {}),
              ...(force ? { force } : {}),
              ...(forceUnmanaged ? { forceUnmanaged } : {}),
              ...(deleteEmptyDirData ? { deleteEmptyDirData } : {}),
              ...(ignoreDaemonSets === false ? { ignoreDaemonSets } : {}),
            },
          },
        ];
      }
      case "node.record-drain-progress": {
        const { clusterId, node, evicted, remaining, blockedBy } = command.data;
        if (state.inFlight?.operation !== "drain") return [];
        const progress = { evicted, remaining, ...(blockedBy?.length ? { blockedBy } : {}) };
        if (sameProgress(state.inFlight.progress, progress)) return [];
        return [{ type: "nodeop.drain-progress", data: { clusterId, node, ...progress } }];
      }
      case "node.record-drained": {
        const { clusterId, node, by: who, evicted } = command.data;
        if (state.inFlight?.operation !== "drain") return [];
        return [{ type: "nodeop.drained", data: { clusterId, node, by: who, evicted } }];
      }
      case "node.record-drain-failure": {
        const { clusterId, node, reason, blocking, remediation, leftCordoned } = command.data;
        if (state.inFlight?.operation !== "drain") return [];
        return [
          {
            type: "nodeop.drain-failed",
            data: { clusterId, node, reason, blocking, remediation, leftCordoned },
          },
        ];
      }

      case "node.record-cordoned": {
        const { clusterId, node, reason, by: who } = command.data;
        if (state.inFlight?.operation !== "cordon") return [];
        return [{ type: "nodeop.cordoned", data: { clusterId, node, reason, by: who } }];
      }
      case "node.record-uncordoned": {
        const { clusterId, node, by: who } = command.data;
        if (state.inFlight?.operation !== "uncordon") return [];
        return [{ type: "nodeop.uncordoned", data: { clusterId, node, by: who } }];
      }
      case "node.record-failure": {
        const { clusterId, node, operation, reason, remediation } = command.data;
        if (state.inFlight?.operation !== operation) return [];
        return [
          {
            type: "nodeop.failed",
            data: { clusterId, node, operation, reason, ...(remediation ? { remediation } : {}) },
          },
        ];
      }
      // Labels and taints: ./classification.ts.
      case "node.label":
      case "node.unlabel":
      case "node.taint":
      case "node.untaint":
      case "node.restore-classification":
      case "node.record-classified":
      case "node.record-classification-failure":
        return decideClassification(command, state, by) as Decision<NodeopEvent>;
      // The cluster-wide disruption limit: ./limit.ts.
      case "node.admit-disruption":
      case "node.release-disruption":
      case "node.record-waiting":
        return decideLimit(command, state) as Decision<NodeopEvent>;
      default:
        return assertNever(command);
    }
  },

  evolve(state, event) {
    switch (event.type) {
      case "nodeop.cordon-requested":
        return { ...state, inFlight: { operation: "cordon", by: event.data.by, reason: event.data.reason } };
      case "nodeop.uncordon-requested":
        return {
          ...state,
          inFlight: { operation: "uncordon", by: event.data.by, reason: event.data.reason },
        };
      case "nodeop.cordoned":
        return { cordoned: { by: event.data.by, reason: event.data.reason } };
      case "nodeop.uncordoned":
        return {};
      case "nodeop.failed":
        return state.cordoned ? { cordoned: state.cordoned } : {};
      case "nodeop.drain-requested": {
        const { by, reason } = event.data;
        // Drain implies cordon: Cairn holds the node cordoned from now on (kept if it already did).
        return { cordoned: state.cordoned ?? { by, reason }, inFlight: { operation: "drain", by, reason } };
      }
      case "nodeop.drain-progress": {
        if (state.inFlight?.operation !== "drain") return state;
        const { evicted, remaining, blockedBy } = event.data;
        return {
          ...state,
          inFlight: {
            ...state.inFlight,
            progress: { evicted, remaining, ...(blockedBy ? { blockedBy } : {}) },
          },
        };
      }
      case "nodeop.drained":
        return state.cordoned ? { cordoned: state.cordoned } : {};
      case "nodeop.drain-failed":
        return event.data.leftCordoned && state.cordoned ? { cordoned: state.cordoned } : {};
      case "nodeop.rejected":
        return state;
      case "nodeop.classification-requested":
      case "nodeop.classification-applied":
      case "nodeop.classification-failed":
        return evolveClassification(state, event);
      case "nodeop.disruption-admitted":
      case "nodeop.disruption-released":
      case "nodeop.waiting":
        return evolveLimit(state, event);
      default:
        return assertNever(event);
    }
  },
};

/**
 * The nodeop decider: the operations, spot interruptions joined in (./interruption.ts),
 * and in front of both the check that a command names a node its cluster has
 * (./known-nodes.ts; `observed` is what the handler's `observe` port read of the cluster).
 */
export const nodeopDecider = withKnownNodes(withInterruptions(operationsDecider));
