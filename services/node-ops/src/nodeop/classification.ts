/**
 * The nodeop decider's rules for a node's classification (labels and taints). Pure: the
 * nodeop decider delegates these commands and events here, so they follow the same
 * one-operation-at-a-time rule as cordon and drain.
 *
 * The decider does not know the node's labels (the kube facts do): it records what is
 * asked, the reactor computes the patch from the node as the API shows it.
 */
import {
  CLASSIFICATION_LABELS,
  type ClassificationChange,
  type ClassificationCommand,
  type ClassificationEvent,
  type Decision,
  type NodeopEvent,
  reject,
} from "@cairn/events";
import type { NodeopState } from "./decider.ts";

const NO_CHANGE: ClassificationChange = { setLabels: {}, removeLabels: [], addTaints: [], removeTaints: [] };

const isClassificationLabel = (key: string) => (CLASSIFICATION_LABELS as readonly string[]).includes(key);

/** A public command may not touch the labels Cairn classifies nodes by. */
const refuseClassificationLabels = (node: string, keys: readonly string[]) => {
  const touched = keys.filter(isClassificationLabel);
  if (touched.length === 0) return undefined;
  return reject(
    "invalid",
    `node ${node}: ${touched.join(", ")} ${touched.length > 1 ? "are" : "is"} Cairn's own classification (the node's pool and capacity type) and cannot be changed by label or unlabel; change the pool instead (cluster.update-pool), or move the workload with other labels`,
  );
};

export function decideClassification(
  command: ClassificationCommand,
  state: NodeopState,
  by: string,
): Decision<NodeopEvent> {
  const { clusterId, node } = command.data;
  const request = (operation: ClassificationEvent["data"]["operation"], reason: string, change: object) => {
    if (state.inFlight)
      return reject(
        "conflict",
        `an operation is in progress on node ${node} (${state.inFlight.operation} requested by ${state.inFlight.by}); try again when it is recorded`,
      );
    return [
      {
        type: "nodeop.classification-requested" as const,
        data: { clusterId, node, operation, by, reason, change: { ...NO_CHANGE, ...change } },
      },
    ];
  };
  switch (command.type) {
    case "node.label": {
      const { labels, reason } = command.data;
      return (
        refuseClassificationLabels(node, Object.keys(labels)) ??
        request("label", reason, { setLabels: labels })
      );
    }
    case "node.unlabel": {
      const { keys, reason } = command.data;
      return refuseClassificationLabels(node, keys) ?? request("unlabel", reason, { removeLabels: keys });
    }
    case "node.taint": {
      const { taints, reason } = command.data;
      return request("taint", reason, { addTaints: taints });
    }
    case "node.untaint": {
      const { taints, reason } = command.data;
      return request("untaint", reason, { removeTaints: taints });
    }
    case "node.restore-classification": {
      const { change, reason } = command.data;
      // Cairn's own correction waits behind whatever is in flight (the restore reactor
      // tries again when it is recorded): nothing to refuse, nothing for the log.
      if (state.inFlight) return [];
      return request("restore", reason, change);
    }
    case "node.record-classified": {
      const { operation, by: who } = command.data;
      if (state.inFlight?.operation !== operation) return [];
      return [{ type: "nodeop.classification-applied", data: { clusterId, node, operation, by: who } }];
    }
    case "node.record-classification-failure": {
      const { operation, reason, remediation } = command.data;
      if (state.inFlight?.operation !== operation) return [];
      return [
        {
          type: "nodeop.classification-failed",
          data: { clusterId, node, operation, reason, ...(remediation ? { remediation } : {}) },
        },
      ];
    }
  }
}

export function evolveClassification(state: NodeopState, event: ClassificationEvent): NodeopState {
  switch (event.type) {
    case "nodeop.classification-requested":
      return {
        ...state,
        inFlight: { operation: event.data.operation, by: event.data.by, reason: event.data.reason },
      };
    case "nodeop.classification-applied":
    case "nodeop.classification-failed":
      // A classification never touches the cordon: whatever Cairn held, it still holds.
      return state.cordoned ? { cordoned: state.cordoned } : {};
  }
}
