/**
 * A cluster as the API shows it (`GET /clusters/:id`, docs/projector.md#api): the fields
 * the CLI reads, and the columns of `cairn cluster list|get`. `failure`, `health` and
 * `conditions` are read when the API has them (issue "every failure says why").
 */
import { age, humanDuration } from "../durations.ts";
import type { Column } from "../output.ts";
import { bar } from "../progress.ts";

export interface ClusterPool {
  readonly name: string;
  readonly capacityType: string;
  readonly instanceTypes: readonly string[];
  readonly count: number;
}

export interface ClusterCondition {
  readonly type: string;
  readonly status: string;
  readonly reason?: string | null;
  readonly message?: string | null;
  readonly lastTransitionTime?: string | null;
}

export interface ClusterView {
  readonly id: string;
  readonly name: string;
  readonly region: string;
  readonly state: string;
  readonly spec: {
    readonly k3sVersion?: string;
    readonly servers?: { readonly count: number; readonly instanceType: string };
    readonly pools?: readonly ClusterPool[];
  };
  readonly version: number;
  /** The last stream sequence folded into this view (GET /clusters/:id). */
  readonly sequence?: number;
  readonly progress: {
    readonly operation: string | null;
    /** Steps of the build behind it, of `total`: instances running, K3s joined, nodes Ready. */
    readonly done: number;
    readonly total: number;
    readonly percent: number;
    readonly step: string;
    readonly eta: string | null;
    readonly etaSeconds: number | null;
    /** Nodes Ready of nodes wanted (absent from an API that predates it). */
    readonly nodes?: { readonly ready: number; readonly running: number; readonly wanted: number };
  };
  readonly traceId: string | null;
  readonly jaegerUrl?: string;
  readonly createdAt: string;
  readonly updatedAt: string;
  readonly sessions?: {
    readonly total: number;
    readonly live: number;
    readonly byState: Record<string, number>;
  };
  readonly health?: string | null;
  readonly conditions?: readonly ClusterCondition[];
  readonly failure?: { readonly reason: string; readonly remediation?: string | null } | null;
}

/** What a cluster is doing, for a progress line: bar, percent, step, ETA. @example "[###.....] 44%  4 of 9 steps: K3s: 0 of 2 agents joined  ETA 40s" */
export function progressText(c: ClusterView, width = 20): string {
  const p = c.progress;
  if (p.operation === null) return "";
  const eta = p.etaSeconds !== null ? `  ETA ${humanDuration(p.etaSeconds * 1000)}` : "";
  return `${bar(p.percent, width)} ${p.percent}%  ${p.step}${eta}`;
}

const nodes = (c: ClusterView) =>
  (c.spec.servers?.count ?? 0) + (c.spec.pools ?? []).reduce((n, p) => n + p.count, 0);

/** The columns of `cairn cluster list` (and `get`), kubectl-like. */
export const CLUSTER_COLUMNS: readonly Column<ClusterView>[] = [
  { header: "NAME", cell: (c) => c.id },
  { header: "STATE", cell: (c) => c.state },
  { header: "REGION", cell: (c) => c.region },
  {
    // Ready of wanted (an older API: running of wanted).
    header: "NODES",
    cell: (c) =>
      c.progress.nodes
        ? `${c.progress.nodes.ready}/${c.progress.nodes.wanted}`
        : `${c.progress.done}/${c.progress.operation === null ? nodes(c) : c.progress.total}`,
  },
  { header: "PROGRESS", cell: (c) => (c.progress.operation === null ? "-" : `${c.progress.percent}%`) },
  { header: "HEALTH", cell: (c) => c.health ?? "-", wide: true },
  { header: "K3S", cell: (c) => c.spec.k3sVersion ?? "<none>", wide: true },
  {
    header: "POOLS",
    cell: (c) => (c.spec.pools ?? []).map((p) => `${p.name}=${p.count}`).join(",") || "<none>",
    wide: true,
  },
  { header: "OPERATION", cell: (c) => c.progress.operation ?? "-", wide: true },
  {
    header: "ETA",
    cell: (c) => (c.progress.etaSeconds === null ? "-" : humanDuration(c.progress.etaSeconds * 1000)),
    wide: true,
  },
  { header: "SESSIONS", cell: (c) => (c.sessions ? String(c.sessions.live) : "-"), wide: true },
  { header: "AGE", cell: (c, now) => age(c.createdAt, now) },
];
