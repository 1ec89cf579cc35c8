/**
 * The nodeop handler's `observe` port: what node-ops knows of a cluster's nodes, read
 * just before a command naming a node is decided (./known-nodes.ts holds the rule).
 *
 * 1. The cluster's node facts (`kube` aggregate, node-ops' own): read through a
 *    read-only handler, so a read is the cached fold checked against the log (one direct
 *    get) — fresh as the log, whoever wrote it (the watcher's leader is another process).
 * 2. Only when the facts know no node: the cluster's status in the provisioner's log,
 *    folded from its subject (a cluster never created or already deleted is refused
 *    outright). Node commands are rare, and a cluster with facts never gets here.
 */
import {
  type AggregateRef,
  type ClusterStatus,
  CommandHandler,
  catalogue,
  clusterTransition,
  createLook,
  type EventStore,
  type NodeopCommand,
  type NodeopEvent,
} from "@cairn/events";
import { kubeDecider } from "../kube/decider.ts";
import type { NodeopState } from "./decider.ts";
import { type ClusterNodesSeen, namesANode } from "./known-nodes.ts";

/** The nodeop aggregate's command handler: its decisions see the cluster's nodes. */
export type NodeopHandler = CommandHandler<NodeopCommand, NodeopEvent, NodeopState, ClusterNodesSeen>;

/** The `observe` port for `serveAggregate`: undefined for commands that name no node. */
export function clusterNodesProbe(store: EventStore) {
  const facts = new CommandHandler({ decider: kubeDecider, store, catalogue });

  // The shared lifecycle: only `cluster.requested` brings a cluster into being. Folded
  // incrementally: a look reads only the commits since the last one.
  const statuses = createLook<ClusterStatus | undefined>({
    store,
    empty: () => undefined,
    evolve: (status, e) => clusterTransition(status, e) ?? status,
  });
  const clusterStatus = async (clusterId: string): Promise<ClusterStatus | "absent"> =>
    (await statuses.of({ type: "cluster", id: clusterId })).view ?? "absent";

  return async (
    command: Parameters<typeof namesANode>[0],
    _target: AggregateRef,
  ): Promise<ClusterNodesSeen | undefined> => {
    if (!namesANode(command)) return undefined;
    const { clusterId } = command.data;
    const { state } = await facts.read({ type: "kube", id: clusterId });
    const nodes = Object.keys(state.nodes);
    if (nodes.length > 0 || state.removed.length > 0) return { nodes, removed: state.removed };
    return { nodes, removed: state.removed, cluster: await clusterStatus(clusterId) };
  };
}
