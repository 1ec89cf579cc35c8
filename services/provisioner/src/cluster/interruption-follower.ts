/**
 * The provisioner's ear on node-ops for spot interruptions. While node-ops drains an
 * interrupted node, the replacement is launched in parallel:
 *  - `nodeop.interruption-noticed` → `cluster.replace-node {slot, instanceId, drainFirst}`
 *    for the slot that instance fills now (none: the notice is stale, nothing to do).
 *    The decider launches the slot again; the old instance is not terminated yet: its
 *    pods are still being evicted.
 *  - `nodeop.drained` / `nodeop.drain-failed` of a node whose instance the cluster is
 *    replacing after its drain (Cairn names nodes after their instance) → terminate the
 *    instance now rather than wait for AWS to reclaim it; the node goes NotReady and
 *    node-ops deletes it. Terminating twice is harmless, so a redelivery is too.
 * Commands are named after the nodeop event that caused them.
 */
import {
  type ClusterCommand,
  type ClusterEvent,
  type CommandHandler,
  catalogue,
  commandCausedBy,
  eventFilter,
  type Nats,
  type RawEventEnvelope,
  type RunnerLogger,
  type RunningConsumer,
  Streams,
  startConsumer,
} from "@cairn/events";
import type { Compute } from "../ports.ts";
import type { ClusterState } from "./decider.ts";

export interface InterruptionFollowerOptions {
  nats: Nats;
  handler: CommandHandler<ClusterCommand, ClusterEvent, ClusterState>;
  compute: Compute;
  logger?: RunnerLogger;
}

/** The slot whose current instance is `instanceId`, if any. */
export function slotOfInstance(state: ClusterState, instanceId: string): number | undefined {
  if (state.status === "Absent") return undefined;
  return Object.values(state.slots).find((s) => s.instanceId === instanceId)?.slot;
}

export async function startInterruptionFollower(o: InterruptionFollowerOptions): Promise<RunningConsumer> {
  const react = async (e: RawEventEnvelope) => {
    const d = e.data as { clusterId: string; node: string; instanceId?: string; terminationTime?: string };
    const ref = { type: "cluster" as const, id: d.clusterId };
    switch (e.type) {
      case "nodeop.interruption-noticed": {
        const instanceId = d.instanceId ?? d.node;
        // This process is the cluster's only writer: its cached state is current.
        const { state } = await o.handler.read(ref);
        const slot = slotOfInstance(state, instanceId);
        if (slot === undefined) {
          o.logger?.info(
            { cluster: d.clusterId, instanceId },
            "spot interruption of an instance no slot holds",
          );
          return;
        }
        const replace = commandCausedBy(
          e,
          "cluster.replace-node",
          {
            clusterId: d.clusterId,
            slot,
            instanceId,
            reason: `spot interruption: ${instanceId} is reclaimed at ${d.terminationTime}`,
            drainFirst: true,
          },
          { actor: "provisioner" },
        );
        await o.handler.handle(replace);
        return;
      }
      case "nodeop.drained":
      case "nodeop.drain-failed": {
        const { state } = await o.handler.read(ref);
        if (state.status === "Absent" || state.draining?.[d.node] === undefined) return;
        await o.compute.terminate(state.spec.region, [d.node]);
        o.logger?.info(
          { cluster: d.clusterId, instanceId: d.node },
          "interrupted instance terminated after its drain",
        );
        return;
      }
      default:
        return;
    }
  };

  return await startConsumer({
    js: o.nats.js,
    jsm: o.nats.jsm,
    stream: Streams.events,
    durable: "provisioner-interruptions",
    filterSubject: eventFilter("nodeop"),
    concurrency: 16,
    ...(o.logger ? { logger: o.logger } : {}),
    handle: async (msg) => {
      const commit = catalogue.parseCommit(msg.json());
      for (const e of commit.events) await react(e as RawEventEnvelope);
    },
  });
}
