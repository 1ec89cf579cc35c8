/**
 * A stand-in for node-ops' workload side, for the idle-detector's tests until node-ops
 * serves `cmd.workload.>` itself: it consumes the workload commands from the real CMD
 * stream and records the workload events node-ops would, on the real EVT stream
 * (`appendAsOwner`), after `podReadyMs`. It talks to no Kubernetes: it plays the contract
 * of docs/sessions.md, no more. `failStart` makes a start fail as a scheduling failure.
 */
import {
  type AggregateRef,
  catalogue,
  EventStore,
  type Nats,
  type RunningConsumer,
  Streams,
  startConsumer,
} from "@cairn/events";
import { appendAsOwner } from "@cairn/events/testing";

export interface WorkloadStandIn {
  /** The workload commands seen, in order (type and data). */
  readonly commands: { type: string; data: Record<string, unknown> }[];
  /** Moves a running session's pod to another node (an eviction), as node-ops records it. */
  move(sessionId: string, clusterId: string, toNode: string): Promise<void>;
  stop(): Promise<void>;
}

export async function startWorkloadStandIn(
  nats: Nats,
  o: { podReadyMs?: number; failStart?: (sessionId: string) => boolean; node?: string } = {},
): Promise<WorkloadStandIn> {
  const store = new EventStore({ js: nats.js, jsm: nats.jsm, catalogue });
  const commands: WorkloadStandIn["commands"] = [];
  const nodes = new Map<string, string>();
  const record = (ref: AggregateRef, type: string, data: object) => appendAsOwner(store, ref, type, data);
  const consumer: RunningConsumer = await startConsumer({
    js: nats.js,
    jsm: nats.jsm,
    stream: Streams.commands,
    durable: "workload-stand-in",
    filterSubject: "cmd.workload.>",
    handle: async (msg) => {
      const c = msg.json<{ type: string; data: Record<string, unknown> }>();
      commands.push({ type: c.type, data: c.data });
      const sessionId = String(c.data.sessionId);
      const clusterId = String(c.data.clusterId);
      const ref: AggregateRef = { type: "workload", id: sessionId };
      const key = { sessionId, clusterId };
      switch (c.type) {
        case "workload.start": {
          if (o.failStart?.(sessionId)) {
            await record(ref, "workload.failed", {
              ...key,
              operation: "start",
              kind: "no-capacity",
              reason: "0/3 nodes are available: 3 Insufficient cpu",
              remediation: "add nodes to the cluster or ask for less CPU",
            });
            return;
          }
          await record(ref, "workload.started", {
            ...key,
            deployment: `session-${sessionId}`,
            volumeClaim: `session-${sessionId}`,
          });
          await new Promise((r) => setTimeout(r, o.podReadyMs ?? 50));
          const node = o.node ?? "node-a";
          nodes.set(sessionId, node);
          await record(ref, "workload.running", { ...key, node, pod: `session-${sessionId}-0` });
          return;
        }
        case "workload.stop":
          await record(ref, "workload.stopped", key);
          return;
        case "workload.delete":
          await record(ref, "workload.deleted", { ...key, volumeReleased: c.data.releaseVolume === true });
          return;
      }
    },
  });
  return {
    commands,
    async move(sessionId, clusterId, toNode) {
      const fromNode = nodes.get(sessionId) ?? "node-a";
      nodes.set(sessionId, toNode);
      await record({ type: "workload", id: sessionId }, "workload.moved", {
        sessionId,
        clusterId,
        fromNode,
        toNode,
        pod: `session-${sessionId}-1`,
        reason: `node ${fromNode} was drained`,
      });
    },
    stop: () => consumer.stop(),
  };
}
