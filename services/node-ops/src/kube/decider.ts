/**
 * The kube aggregate's pure core: one aggregate per cluster (id = the cluster id),
 * node-ops' facts about the cluster's nodes and API server. No I/O, no clock, no ids.
 *
 * The watcher reports what it sees (`kube.observe-*`); the decider compares it with the
 * facts already recorded and turns only the differences into events, so observing the
 * same thing twice, a resumed watch replaying what it showed before, or a relist of an
 * unchanged cluster, records nothing.
 */
import {
  assertNever,
  type Decider,
  type KubeCommand,
  type KubeEvent,
  type ObservedNode,
  type PressureCondition,
  type Taint,
} from "@cairn/events";

/** The node labels a pool and its capacity type are read from (set by the installer at join). */
export const POOL_LABEL = "cairn.dev/pool";
export const CAPACITY_TYPE_LABEL = "cairn.dev/capacity-type";

/** What the log says about one node. */
export interface NodeFacts {
  readonly role: "server" | "agent";
  readonly instanceId?: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly taints: readonly Taint[];
  readonly unschedulable: boolean;
  /** Undefined only between `node-registered` and its ready/not-ready (never in a settled state). */
  readonly ready?: boolean;
  readonly notReadyReason?: string;
  readonly pressure: readonly PressureCondition[];
}

export type ApiReachability = "unknown" | "reachable" | "unreachable";

export interface KubeState {
  readonly nodes: Readonly<Record<string, NodeFacts>>;
  /**
   * The nodes that left the API and did not register again, sorted: a node Cairn holds a
   * place for under the disruption limit is gone when it is here (nodeop/admission.ts).
   */
  readonly removed: readonly string[];
  readonly api: ApiReachability;
}

type Fact = KubeEvent;

const initialState = (): KubeState => ({ nodes: {}, removed: [], api: "unknown" });

/** `removed` after `event`: a node leaving joins it, a node registering (again) leaves it. */
function evolveRemoved(removed: readonly string[], event: Fact): readonly string[] {
  if (event.type === "kube.node-removed")
    return removed.includes(event.data.node) ? removed : [...removed, event.data.node].sort();
  if (event.type === "kube.node-registered" && removed.includes(event.data.node))
    return removed.filter((n) => n !== event.data.node);
  return removed;
}

/** Taints compare as a set: the API does not promise an order. */
const taintKey = (t: Taint) => `${t.key}\u0000${t.value ?? ""}\u0000${t.effect}`;
const sameTaints = (a: readonly Taint[], b: readonly Taint[]) => {
  if (a.length !== b.length) return false;
  const x = a.map(taintKey).sort();
  const y = b.map(taintKey).sort();
  return x.every((k, i) => k === y[i]);
};
const sameLabels = (a: Readonly<Record<string, string>>, b: Readonly<Record<string, string>>) => {
  const ka = Object.keys(a);
  return ka.length === Object.keys(b).length && ka.every((k) => Object.hasOwn(b, k) && a[k] === b[k]);
};
const sortedPressure = (p: readonly PressureCondition[]) => [...new Set(p)].sort();
const samePressure = (a: readonly PressureCondition[], b: readonly PressureCondition[]) =>
  a.length === b.length && a.every((c, i) => c === b[i]);

const capacityTypeOf = (labels: Readonly<Record<string, string>>): "spot" | "on-demand" | undefined => {
  const v = labels[CAPACITY_TYPE_LABEL];
  return v === "spot" || v === "on-demand" ? v : undefined;
};

const notReadyReasonOf = (o: ObservedNode) => o.notReadyReason ?? "the node's Ready condition is not True";

/**
 * The facts that observing `o` adds to what is known of it (`known`, undefined when the
 * node is new). Pure; the heart of "events only on change".
 */
export function factsOfObservation(known: NodeFacts | undefined, o: ObservedNode): Fact[] {
  const node = o.node;
  const pressure = sortedPressure(o.pressure);
  const out: Fact[] = [];
  if (!known) {
    const pool = o.labels[POOL_LABEL];
    const capacityType = capacityTypeOf(o.labels);
    out.push({
      type: "kube.node-registered",
      data: {
        node,
        ...(o.instanceId !== undefined ? { instanceId: o.instanceId } : {}),
        role: o.role,
        ...(pool !== undefined ? { pool } : {}),
        ...(capacityType !== undefined ? { capacityType } : {}),
        labels: { ...o.labels },
        taints: o.taints.map((t) => ({ ...t })),
        unschedulable: o.unschedulable,
      },
    });
  } else if (
    !sameLabels(known.labels, o.labels) ||
    !sameTaints(known.taints, o.taints) ||
    known.unschedulable !== o.unschedulable
  ) {
    out.push({
      type: "kube.node-classification-changed",
      data: {
        node,
        labels: { ...o.labels },
        taints: o.taints.map((t) => ({ ...t })),
        unschedulable: o.unschedulable,
      },
    });
  }
  // A reason that changes while the node stays NotReady is not a new fact (no spam).
  if (known?.ready !== o.ready)
    out.push(
      o.ready
        ? { type: "kube.node-ready", data: { node } }
        : { type: "kube.node-not-ready", data: { node, reason: notReadyReasonOf(o) } },
    );
  if (!samePressure(known?.pressure ?? [], pressure))
    out.push({ type: "kube.node-pressure-changed", data: { node, pressure } });
  return out;
}

/**
 * Folds one node fact into the node table. Copies the table: for one event alone. Many
 * events (a commit of 50 nodes' facts, a history of thousands) fold through
 * {@link applyNodeFact} on one copy instead: a node name is a string key, so a spread copies
 * the table key by key, and copying 500 nodes per event was most of node-ops' CPU while a
 * 500-node cluster turned Ready (bench/install, docs/installer.md).
 */
function evolveNodes(
  nodes: Readonly<Record<string, NodeFacts>>,
  event: Fact,
): Readonly<Record<string, NodeFacts>> {
  if (!isNodeFact(event)) return nodes;
  // A fact about a node the log never registered changes nothing: no copy.
  if (event.type !== "kube.node-registered" && !nodes[event.data.node]) return nodes;
  const copy = { ...nodes };
  applyNodeFact(copy, event);
  return copy;
}

type NodeFact = Extract<
  Fact,
  {
    type:
      | "kube.node-registered"
      | "kube.node-ready"
      | "kube.node-not-ready"
      | "kube.node-pressure-changed"
      | "kube.node-classification-changed"
      | "kube.node-removed";
  }
>;

function isNodeFact(event: Fact): event is NodeFact {
  switch (event.type) {
    case "kube.node-registered":
    case "kube.node-ready":
    case "kube.node-not-ready":
    case "kube.node-pressure-changed":
    case "kube.node-classification-changed":
    case "kube.node-removed":
      return true;
    default:
      return false;
  }
}

/**
 * Folds one node fact into `nodes` in place: a table the caller owns (a copy it made for
 * this fold, never a table some state holds). The node's own record is still replaced,
 * never changed, so states sharing it are not touched.
 */
function applyNodeFact(nodes: Record<string, NodeFacts>, event: NodeFact): void {
  switch (event.type) {
    case "kube.node-registered": {
      const d = event.data;
      nodes[d.node] = {
        role: d.role,
        ...(d.instanceId !== undefined ? { instanceId: d.instanceId } : {}),
        labels: d.labels,
        taints: d.taints,
        unschedulable: d.unschedulable ?? false,
        pressure: [],
      };
      return;
    }
    case "kube.node-removed":
      delete nodes[event.data.node];
      return;
    default: {
      const known = nodes[event.data.node];
      if (!known) return; // a fact about a node the log never registered: nothing to update
      let next: NodeFacts;
      if (event.type === "kube.node-ready") {
        const { notReadyReason: _gone, ...rest } = known;
        next = { ...rest, ready: true };
      } else if (event.type === "kube.node-not-ready")
        next = { ...known, ready: false, notReadyReason: event.data.reason };
      else if (event.type === "kube.node-pressure-changed")
        next = { ...known, pressure: event.data.pressure };
      else {
        const { labels, taints, unschedulable } = event.data;
        next = { ...known, labels, taints, unschedulable };
      }
      nodes[event.data.node] = next;
    }
  }
}

/** Many events folded at once: the node table copied once, not once per event. */
function evolveKubeAll(state: KubeState, events: readonly { type: string; data: unknown }[]): KubeState {
  let nodes: Record<string, NodeFacts> | undefined;
  let removed = state.removed;
  let api = state.api;
  for (const raw of events) {
    const event = raw as Fact;
    if (isNodeFact(event)) {
      nodes ??= { ...state.nodes };
      applyNodeFact(nodes, event);
      removed = evolveRemoved(removed, event);
    } else if (event.type === "kube.api-unreachable") api = "unreachable";
    else if (event.type === "kube.api-reachable") api = "reachable";
  }
  if (!nodes && removed === state.removed && api === state.api) return state;
  return { ...state, nodes: nodes ?? state.nodes, removed, api };
}

/** The facts of several observations in a row, each judged against what the ones before it recorded. */
function factsOfObservations(
  start: Readonly<Record<string, NodeFacts>>,
  observed: readonly ObservedNode[],
): { facts: Fact[]; nodes: Readonly<Record<string, NodeFacts>> } {
  // One copy of the table for the whole decision (each observation is judged on what the
  // ones before it recorded), not one per fact.
  const nodes: Record<string, NodeFacts> = { ...start };
  const facts: Fact[] = [];
  for (const o of observed) {
    const f = factsOfObservation(nodes[o.node], o);
    for (const e of f) if (isNodeFact(e)) applyNodeFact(nodes, e);
    facts.push(...f);
  }
  return { facts, nodes };
}

export const kubeDecider: Decider<KubeCommand, KubeEvent, KubeState> = {
  aggregate: "kube",
  initialState,

  decide(command, state) {
    switch (command.type) {
      case "kube.observe-node": {
        const { clusterId: _c, ...observed } = command.data;
        return factsOfObservations(state.nodes, [observed]).facts;
      }
      case "kube.observe-nodes": {
        // The watch's changes in the order seen, each decided on what the ones before it left.
        const observed = command.data.nodes;
        return factsOfObservations(state.nodes, observed).facts;
      }
      case "kube.observe-node-removed": {
        const { node } = command.data;
        return state.nodes[node] ? [{ type: "kube.node-removed", data: { node } }] : [];
      }
      case "kube.observe-node-list": {
        // A full resync: every listed node as if observed, then the known ones the list lacks are gone.
        const { facts } = factsOfObservations(state.nodes, command.data.nodes);
        const listed = new Set(command.data.nodes.map((n) => n.node));
        const gone = Object.keys(state.nodes)
          .filter((n) => !listed.has(n))
          .sort();
        return [...facts, ...gone.map((node): Fact => ({ type: "kube.node-removed", data: { node } }))];
      }
      case "kube.observe-api": {
        const { reachable, reason } = command.data;
        if (reachable) return state.api === "reachable" ? [] : [{ type: "kube.api-reachable", data: {} }];
        // Once per outage: the reason of later failures of the same outage is not a new fact.
        if (state.api === "unreachable") return [];
        return [
          { type: "kube.api-unreachable", data: { reason: reason ?? "the API server did not answer" } },
        ];
      }
      default:
        return assertNever(command);
    }
  },

  evolveAll: evolveKubeAll,

  evolve(state, event) {
    if (isNodeFact(event))
      return {
        ...state,
        nodes: evolveNodes(state.nodes, event),
        removed: evolveRemoved(state.removed, event),
      };
    switch (event.type) {
      case "kube.api-unreachable":
        return { ...state, api: "unreachable" };
      case "kube.api-reachable":
        return { ...state, api: "reachable" };
      case "kube.rejected":
        return state;
      default:
        return assertNever(event);
    }
  },
};
