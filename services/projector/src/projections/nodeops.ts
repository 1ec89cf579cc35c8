/**
 * The `nodeops` read model as a pure fold: one row per node aggregate of node-ops
 * (`nodeAggregateId(clusterId, node)`), with its current or last operation, its state,
 * the drain's progress and what blocks it. The cluster-wide disruption limit's events
 * live on the cluster's ledger aggregate but name the node, so they land on the node's
 * row too (`nodeop.waiting`: the operation waits for the limit).
 */
import { type CairnEvent, type EventEnvelope, type NodeopEvent, nodeAggregateId } from "@cairn/events";

export const NODEOP_STATES = ["requested", "in progress", "waiting", "done", "failed"] as const;
export type NodeOpState = (typeof NODEOP_STATES)[number];

export const NODEOP_KINDS = [
  "cordon",
  "uncordon",
  "drain",
  "label",
  "unlabel",
  "taint",
  "untaint",
  "restore",
] as const;
export type NodeOpKind = (typeof NODEOP_KINDS)[number];

export interface NodeOpRow {
  readonly id: string;
  readonly clusterId: string;
  readonly node: string;
  /** The current (or last) operation; null before any. */
  readonly operation: NodeOpKind | null;
  readonly state: NodeOpState;
  readonly by: string | null;
  readonly reason: string | null;
  readonly requestedAt: string | null;
  readonly endedAt: string | null;
  /** The drain's counts and the PodDisruptionBudgets holding it up. */
  readonly drain: {
    readonly evicted: number;
    readonly remaining: number;
    readonly blockedBy: readonly string[];
    readonly deadline: string | null;
  } | null;
  /** What a failed drain left on the node. */
  readonly blocking: readonly { readonly pod: string; readonly pdb?: string }[];
  /** The cluster-wide disruption limit holds the operation back: these nodes must be released first. */
  readonly waiting: {
    readonly limit: number;
    readonly waitingFor: readonly string[];
    readonly since: string;
  } | null;
  readonly failure: { readonly reason: string; readonly remediation: string | null } | null;
  /** Cairn holds the node cordoned. */
  readonly cordoned: boolean;
  readonly interruption: { readonly noticeId: string; readonly terminationTime: string } | null;
  /** The Node object was deleted (its instance reclaimed). */
  readonly deleted: boolean;
  /** Operations requested on the node so far. */
  readonly operations: number;
  readonly createdAt: string;
  readonly updatedAt: string;
  readonly lastEventType: string;
  readonly lastSequence: number;
}

/** The nodeop row id an event is about (from its data: ledger events are on another aggregate). */
export function nodeOpIdOf(event: CairnEvent): string | undefined {
  if (!isAboutANode(event)) return undefined;
  return nodeAggregateId(event.data.clusterId, event.data.node);
}

/** Every `nodeop.*` event but a rejection names its cluster and node. */
type NodeopEventOfANode = Exclude<EventEnvelope<NodeopEvent>, { type: "nodeop.rejected" }>;
function isAboutANode(event: CairnEvent): event is NodeopEventOfANode {
  return (
    event.aggregate.type === "nodeop" && event.type.startsWith("nodeop.") && event.type !== "nodeop.rejected"
  );
}

/**
 * The node operation row after one more `nodeop.*` event. `*-requested` starts an
 * operation (requested), admission or drain progress moves it in progress, the limit
 * makes it wait, `cordoned`/`uncordoned`/`drained`/`classification-applied` end it done,
 * `failed`/`drain-failed`/`classification-failed` end it failed. Events that name no
 * node (`nodeop.rejected`) leave rows alone.
 */
export function applyNodeOpEvent(
  row: NodeOpRow | undefined,
  event: CairnEvent,
  sequence: number,
): NodeOpRow | undefined {
  if (!isAboutANode(event)) return row;
  const id = nodeAggregateId(event.data.clusterId, event.data.node);
  const e = event;
  const d = e.data;
  const at = event.time;
  const base: NodeOpRow = row ?? {
    id,
    clusterId: d.clusterId,
    node: d.node,
    operation: null,
    state: "done",
    by: null,
    reason: null,
    requestedAt: null,
    endedAt: null,
    drain: null,
    blocking: [],
    waiting: null,
    failure: null,
    cordoned: false,
    interruption: null,
    deleted: false,
    operations: 0,
    createdAt: at,
    updatedAt: at,
    lastEventType: event.type,
    lastSequence: sequence,
  };
  const touched = { updatedAt: at, lastEventType: event.type, lastSequence: sequence };
  const start = (operation: NodeOpKind, by: string, reason: string): NodeOpRow => ({
    ...base,
    ...touched,
    operation,
    state: "requested",
    by,
    reason,
    requestedAt: at,
    endedAt: null,
    drain: null,
    blocking: [],
    waiting: null,
    failure: null,
    operations: base.operations + 1,
  });
  const end = (state: "done" | "failed", change: Partial<NodeOpRow> = {}): NodeOpRow => ({
    ...base,
    ...touched,
    state,
    endedAt: at,
    waiting: null,
    ...change,
  });
  switch (e.type) {
    case "nodeop.cordon-requested":
      return start("cordon", e.data.by, e.data.reason);
    case "nodeop.uncordon-requested":
      return start("uncordon", e.data.by, e.data.reason);
    case "nodeop.drain-requested":
      return {
        ...start("drain", e.data.by, e.data.reason),
        drain: { evicted: 0, remaining: 0, blockedBy: [], deadline: e.data.deadline ?? null },
      };
    case "nodeop.classification-requested":
      return start(e.data.operation, e.data.by, e.data.reason);
    case "nodeop.disruption-admitted":
      return {
        ...base,
        ...touched,
        waiting: null,
        state: base.state === "requested" || base.state === "waiting" ? "in progress" : base.state,
      };
    case "nodeop.waiting":
      return {
        ...base,
        ...touched,
        state: base.state === "done" || base.state === "failed" ? base.state : "waiting",
        waiting: { limit: e.data.limit, waitingFor: e.data.waitingFor, since: at },
      };
    case "nodeop.disruption-released":
      return row;
    case "nodeop.drain-progress":
      return {
        ...base,
        ...touched,
        state: "in progress",
        waiting: null,
        drain: {
          deadline: base.drain?.deadline ?? null,
          evicted: e.data.evicted,
          remaining: e.data.remaining,
          blockedBy: e.data.blockedBy ?? [],
        },
      };
    case "nodeop.cordoned":
      // A drain cordons first: that is a step of the drain, not its end.
      return base.operation === "drain"
        ? { ...base, ...touched, cordoned: true, state: "in progress" }
        : end("done", { cordoned: true });
    case "nodeop.uncordoned":
      return end("done", { cordoned: false });
    case "nodeop.drained":
      return end("done", {
        cordoned: true,
        drain: {
          deadline: base.drain?.deadline ?? null,
          evicted: e.data.evicted,
          remaining: 0,
          blockedBy: [],
        },
      });
    case "nodeop.drain-failed":
      return end("failed", {
        cordoned: e.data.leftCordoned,
        blocking: e.data.blocking,
        failure: { reason: e.data.reason, remediation: e.data.remediation },
      });
    case "nodeop.failed":
      return end("failed", { failure: { reason: e.data.reason, remediation: e.data.remediation ?? null } });
    case "nodeop.classification-applied":
      return end("done");
    case "nodeop.classification-failed":
      return end("failed", { failure: { reason: e.data.reason, remediation: e.data.remediation ?? null } });
    case "nodeop.interruption-noticed":
      return {
        ...base,
        ...touched,
        interruption: { noticeId: e.data.noticeId, terminationTime: e.data.terminationTime },
      };
    case "nodeop.node-deleted":
      return { ...base, ...touched, deleted: true };
    default:
      return row ? { ...base, ...touched } : row;
  }
}
