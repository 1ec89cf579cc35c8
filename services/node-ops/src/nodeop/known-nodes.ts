/**
 * A node command must name a node of its cluster: checked when the command is decided,
 * so a typo is refused at once with the nodes there are (`nodeop.rejected`, code
 * `not-found`), not accepted and failed minutes later by the Kubernetes API's 404.
 *
 * What node-ops knows of a cluster's nodes is its own `kube` aggregate: the facts its
 * watcher recorded from the cluster's API (every registered Node, and the ones that left).
 * The handler's `observe` port reads them, fresh as the log, just before the decision
 * (`nodeop/cluster-nodes-probe.ts`); this file is the pure rule:
 *
 * 1. the facts hold the node → go on;
 * 2. the facts know the cluster (they hold any node, or any that left) and not this one →
 *    refused: it left (its Node was deleted), or the cluster has no such node (naming the
 *    nodes it has);
 * 3. the facts know nothing of the cluster (not watched yet, node facts off in this
 *    process): only a cluster the provisioner never created, or deleted, is refused;
 *    anything else goes on, as before — node-ops cannot tell yet.
 *
 * Only the commands a person (or another service) names a node in are checked: cordon,
 * uncordon, drain, label, unlabel, taint, untaint. node-ops' own records are about nodes
 * it already acted on.
 */
import type {
  ClusterStatus,
  CommandEnvelope,
  Decider,
  NodeopCommand,
  NodeopEvent,
  Rejection,
} from "@cairn/events";
import { reject } from "@cairn/events";
import type { NodeopState } from "./decider.ts";

/** The commands that name a node from outside node-ops. */
export const NODE_NAMING_COMMANDS = [
  "node.cordon",
  "node.uncordon",
  "node.drain",
  "node.label",
  "node.unlabel",
  "node.taint",
  "node.untaint",
] as const satisfies readonly NodeopCommand["type"][];
const NAMING: ReadonlySet<string> = new Set(NODE_NAMING_COMMANDS);

type NamingCommand = Extract<NodeopCommand, { type: (typeof NODE_NAMING_COMMANDS)[number] }>;

/** Whether a command names a node whose existence is checked (its data names the cluster and the node). */
export const namesANode = (c: CommandEnvelope<NodeopCommand>): c is CommandEnvelope<NamingCommand> =>
  NAMING.has(c.type);

/** What node-ops knew of the command's cluster just before deciding (the handler's `observe`). */
export interface ClusterNodesSeen {
  /** The nodes node-ops' facts hold for the cluster (`kube` aggregate), registered now. */
  readonly nodes: readonly string[];
  /** Nodes that left the cluster's API and did not register again. */
  readonly removed: readonly string[];
  /**
   * The cluster's status in the provisioner's log, read only when the facts know no node:
   * `absent` when it was never created.
   */
  readonly cluster?: ClusterStatus | "absent";
}

/** How many nodes a refusal names before it counts the rest. */
const NAMED_NODES = 10;

/**
 * The refusal of a command naming `node` of `clusterId`, or undefined when it may go on.
 * @example unknownNodeRefusal("demo-1", "ip-typo", { nodes: ["ip-1", "ip-2"], removed: [] })
 *   // reject("not-found", "cluster demo-1 has no node ip-typo; its nodes: ip-1, ip-2")
 */
export function unknownNodeRefusal(
  clusterId: string,
  node: string,
  seen: ClusterNodesSeen,
): Rejection | undefined {
  if (seen.nodes.includes(node)) return undefined;
  if (seen.removed.includes(node))
    return reject(
      "not-found",
      `node ${node} left cluster ${clusterId}: its Node was deleted from the cluster's API (its instance is gone or was replaced); \`cairn node list --cluster ${clusterId}\` shows the nodes it has`,
    );
  if (seen.nodes.length > 0 || seen.removed.length > 0) {
    const nodes = [...seen.nodes].sort();
    const named = nodes.slice(0, NAMED_NODES).join(", ");
    const more = nodes.length > NAMED_NODES ? ` and ${nodes.length - NAMED_NODES} more` : "";
    return reject(
      "not-found",
      nodes.length === 0
        ? `cluster ${clusterId} has no node ${node}; it has no nodes now`
        : `cluster ${clusterId} has no node ${node}; its nodes: ${named}${more}`,
    );
  }
  if (seen.cluster === "absent") return reject("not-found", `cluster ${clusterId} does not exist`);
  if (seen.cluster === "Deleted" || seen.cluster === "Deleting")
    return reject("not-found", `cluster ${clusterId} is ${seen.cluster}: its nodes are going or gone`);
  return undefined;
}

/**
 * The nodeop decider with the check in front: a command naming a node is refused when
 * `observed` shows the node is not there. Without an observation (a handler with no
 * `observe` port, an internal command) it decides as the inner decider does.
 */
export function withKnownNodes(
  inner: Decider<NodeopCommand, NodeopEvent, NodeopState>,
): Decider<NodeopCommand, NodeopEvent, NodeopState, ClusterNodesSeen> {
  return {
    aggregate: inner.aggregate,
    initialState: inner.initialState,
    decide(command, state, ctx) {
      const seen = ctx.observed;
      if (seen && namesANode(command)) {
        const refused = unknownNodeRefusal(command.data.clusterId, command.data.node, seen);
        if (refused) return refused;
      }
      const { observed: _, ...rest } = ctx;
      return inner.decide(command, state, rest);
    },
    evolve: inner.evolve,
  };
}
