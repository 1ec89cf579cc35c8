/**
 * A session as the API shows it (`GET /sessions/:id`, docs/projector.md#sessions): the
 * fields the CLI reads, and the table columns `cairn session list|get` prints.
 */
import type { SessionStatus } from "@cairn/events";
import { age, humanDuration } from "../durations.ts";
import type { Column } from "../output.ts";

export interface SessionView {
  readonly id: string;
  readonly user: string;
  readonly clusterId: string;
  readonly state: SessionStatus;
  readonly template: {
    readonly image: string;
    readonly cpu: string;
    readonly memory: string;
    readonly storage: string;
  };
  readonly idleTimeoutSeconds: number;
  readonly node: string | null;
  readonly cause: string | null;
  readonly lastActivity: string | null;
  readonly idleInSeconds: number | null;
  readonly wakeLatencyMs: number | null;
  readonly failure: {
    readonly reason: string;
    readonly remediation: string | null;
    readonly cause: string;
  } | null;
  readonly rejection: {
    readonly commandId: string;
    readonly commandType: string;
    readonly code: string;
    readonly reason: string;
  } | null;
  /** The last stream sequence folded into this view (GET /sessions/:id). */
  readonly sequence?: number;
  readonly traceId: string | null;
  readonly createdAt: string;
  readonly updatedAt: string;
}

export type { CommandAccepted, CommandView } from "../command-status.ts";

const dash = (v: string | null | undefined) => (v === null || v === undefined || v === "" ? "<none>" : v);

/** The columns of `cairn session list` (and `get`), kubectl-like. */
export const SESSION_COLUMNS: readonly Column<SessionView>[] = [
  { header: "NAME", cell: (s) => s.id },
  { header: "STATE", cell: (s) => s.state },
  { header: "USER", cell: (s) => s.user },
  { header: "CLUSTER", cell: (s) => s.clusterId },
  { header: "CPU", cell: (s) => s.template.cpu, wide: true },
  { header: "MEMORY", cell: (s) => s.template.memory, wide: true },
  { header: "IMAGE", cell: (s) => s.template.image, wide: true },
  { header: "NODE", cell: (s) => dash(s.node), wide: true },
  {
    header: "LAST ACTIVITY",
    cell: (s, now) => (s.lastActivity ? `${age(s.lastActivity, now)} ago` : "<none>"),
  },
  {
    header: "IDLE IN",
    cell: (s) => (s.idleInSeconds === null ? "-" : humanDuration(Math.max(0, s.idleInSeconds) * 1000)),
    wide: true,
  },
  { header: "WAKE", cell: (s) => (s.wakeLatencyMs === null ? "-" : `${s.wakeLatencyMs}ms`), wide: true },
  { header: "CAUSE", cell: (s) => dash(s.cause), wide: true },
  { header: "AGE", cell: (s, now) => age(s.createdAt, now) },
];
