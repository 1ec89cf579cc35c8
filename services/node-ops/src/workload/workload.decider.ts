/**
 * The `workload` aggregate (one per session): what node-ops has been asked to do with a
 * session's Deployment and volume claim, and what the cluster did. Pure.
 *
 * A public command opens an attempt (`workload.starting` / `stopping` / `deleting`, each
 * with the next `attempt` number); the reactor carries it out and records the outcome with
 * an internal command naming that attempt. A record of an attempt that was superseded (a
 * stop while a start waited for its pod) changes nothing, so a late look can never undo
 * a newer decision.
 *
 * ```
 *  (none) ─start─▶ Starting ─record-started─▶ Started ─record-running─▶ Running ─record-moved─▶ Running
 *     Running/Starting/Started ─stop─▶ Stopping ─record-stopped─▶ Stopped ─start─▶ Starting (a wake)
 *     any ─delete─▶ Deleting ─record-deleted─▶ Deleted (final)
 *     Starting/Started/Stopping/Deleting ─record-failure─▶ Failed ─start / stop / delete─▶ …
 * ```
 */
import {
  assertNever,
  type Decider,
  reject,
  type SessionTemplate,
  sharedTemplate,
  type WorkloadCommand,
  type WorkloadEvent,
} from "@cairn/events";

export type WorkloadPhase =
  | "Starting"
  | "Started"
  | "Running"
  | "Stopping"
  | "Stopped"
  | "Deleting"
  | "Deleted"
  | "Failed";

export interface WorkloadState {
  /** Undefined: node-ops was never asked about this session. */
  readonly phase: WorkloadPhase | undefined;
  /** The attempt in force (0 before the first). */
  readonly attempt: number;
  readonly clusterId?: string;
  readonly user?: string;
  readonly template?: SessionTemplate;
  /** Where its pod is Ready (Running). */
  readonly node?: string;
  readonly pod?: string;
  /** The delete in force releases the volume. */
  readonly releaseVolume?: boolean;
  /** The operation of the attempt in force. */
  readonly operation?: "start" | "stop" | "delete";
}

const initial: WorkloadState = { phase: undefined, attempt: 0 };

/** The phases a record of each kind may follow (for the attempt in force). */
const RECORDED_FROM: Record<string, readonly WorkloadPhase[]> = {
  "workload.record-started": ["Starting"],
  "workload.record-running": ["Started"],
  "workload.record-stopped": ["Stopping"],
  "workload.record-deleted": ["Deleting"],
  "workload.record-failure": ["Starting", "Started", "Stopping", "Deleting"],
  "workload.record-moved": ["Running"],
};

export const workloadDecider: Decider<WorkloadCommand, WorkloadEvent, WorkloadState> = {
  aggregate: "workload",
  initialState: () => initial,

  decide(command, s) {
    const c = command as WorkloadCommand;
    const id = c.data.sessionId;
    const next = s.attempt + 1;
    if (s.clusterId !== undefined && c.data.clusterId !== s.clusterId)
      return reject(
        "conflict",
        `the workload of session ${id} is in cluster ${s.clusterId}, not ${c.data.clusterId}`,
      );
    switch (c.type) {
      case "workload.start": {
        if (s.phase === "Deleting" || s.phase === "Deleted")
          return reject(
            "conflict",
            `the workload of session ${id} is ${s.phase === "Deleted" ? "deleted" : "being deleted"}: it cannot start again`,
          );
        // Asked already, and not stopped since: the start in force stands (a resend).
        if (s.phase === "Starting" || s.phase === "Started" || s.phase === "Running") return [];
        return [{ type: "workload.starting", data: { ...c.data, attempt: next } }];
      }
      case "workload.stop": {
        if (s.phase === undefined) return reject("not-found", `no workload for session ${id}`);
        if (s.phase === "Deleting" || s.phase === "Deleted")
          return reject("conflict", `the workload of session ${id} is deleted or being deleted`);
        if (s.phase === "Stopping" || s.phase === "Stopped") return [];
        return [
          { type: "workload.stopping", data: { sessionId: id, clusterId: c.data.clusterId, attempt: next } },
        ];
      }
      case "workload.delete":
        // Also with nothing there: the caller waits for `workload.deleted` whatever it finds.
        if (s.phase === "Deleting" || s.phase === "Deleted") return [];
        return [{ type: "workload.deleting", data: { ...c.data, attempt: next } }];
      case "workload.record-started":
      case "workload.record-running":
      case "workload.record-stopped":
      case "workload.record-deleted":
      case "workload.record-failure":
      case "workload.record-moved": {
        if (c.data.attempt !== s.attempt || s.phase === undefined) return [];
        if (!RECORDED_FROM[c.type]!.includes(s.phase)) return [];
        const key = { sessionId: id, clusterId: c.data.clusterId };
        switch (c.type) {
          case "workload.record-started":
            return [
              {
                type: "workload.started",
                data: { ...key, deployment: c.data.deployment, volumeClaim: c.data.volumeClaim },
              },
            ];
          case "workload.record-running":
            return [{ type: "workload.running", data: { ...key, node: c.data.node, pod: c.data.pod } }];
          case "workload.record-stopped":
            return [{ type: "workload.stopped", data: key }];
          case "workload.record-deleted":
            return [{ type: "workload.deleted", data: { ...key, volumeReleased: c.data.volumeReleased } }];
          case "workload.record-failure": {
            if (c.data.operation !== s.operation) return [];
            const { attempt: _a, ...data } = c.data;
            return [{ type: "workload.failed", data }];
          }
          case "workload.record-moved": {
            // Seen from a look that saw it where it is already: nothing moved.
            if (c.data.toNode === s.node) return [];
            const { attempt: _a, ...data } = c.data;
            return [{ type: "workload.moved", data }];
          }
        }
        return assertNever(c);
      }
      default:
        return assertNever(c);
    }
  },

  evolve(s, event) {
    const e = event as WorkloadEvent;
    switch (e.type) {
      case "workload.starting":
        return {
          phase: "Starting",
          attempt: e.data.attempt,
          clusterId: e.data.clusterId,
          user: e.data.user,
          template: sharedTemplate(e.data.template),
          operation: "start",
        };
      case "workload.stopping":
        return {
          ...base(s, e.data.clusterId),
          phase: "Stopping",
          attempt: e.data.attempt,
          operation: "stop",
        };
      case "workload.deleting":
        return {
          ...base(s, e.data.clusterId),
          phase: "Deleting",
          attempt: e.data.attempt,
          operation: "delete",
          releaseVolume: e.data.releaseVolume,
        };
      case "workload.started":
        return { ...s, phase: "Started" };
      case "workload.running":
      case "workload.moved":
        return {
          ...s,
          phase: "Running",
          node: e.type === "workload.running" ? e.data.node : e.data.toNode,
          pod: e.data.pod,
        };
      case "workload.stopped":
        return { ...base(s, e.data.clusterId), phase: "Stopped" };
      case "workload.deleted":
        return { ...base(s, e.data.clusterId), phase: "Deleted" };
      case "workload.failed":
        return { ...base(s, e.data.clusterId), phase: "Failed" };
      case "workload.rejected":
        return s;
      default:
        return assertNever(e);
    }
  },
};

/** What outlives a phase: the attempt, where it is, whose it is and what it runs; no pod. */
function base(s: WorkloadState, clusterId: string): WorkloadState {
  const { node: _n, pod: _p, ...rest } = s;
  return { ...rest, clusterId };
}
