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
 * Commands are named after the nodeop event that caused them. The cluster is read as the
 * log has it (another replica may have written it since this one cached it).
 */
import {
  commandCausedBy,
  type Nats,
  type RunnerLogger,
  type RunningConsumer,
  startReactor,
} from "@cairn/events";
import type { Compute } from "../ports.ts";
import type { ClusterHandler } from "../provisioner.ts";
import type { ClusterState } from "./decider.ts";

export interface InterruptionFollowerOptions {
  nats: Nats;
  handler: ClusterHandler;
  compute: Compute;
  logger?: RunnerLogger;
}

/** The slot whose current instance is `instanceId`, if any. */
export function slotOfInstance(state: ClusterState, instanceId: string): number | undefined {
  if (state.status === "Absent") return undefined;
  return Object.values(state.slots).find((s) => s.instanceId === instanceId)?.slot;
}

export async function startInterruptionFollower(o: InterruptionFollowerOptions): Promise<RunningConsumer> {
  return await startReactor({
    nats: o.nats,
    // The durable consumer's name since the first release: a deployment resumes where it was.
    name: "provisioner-interruptions",
    aggregate: "nodeop",
    types: ["nodeop.interruption-noticed", "nodeop.drained", "nodeop.drain-failed"],
    ...(o.logger ? { logger: o.logger } : {}),
    react: async (e) => {
      switch (e.type) {
        case "nodeop.interruption-noticed": {
          const { clusterId, instanceId, terminationTime } = e.data;
          // Fresh: the nodeop event says nothing of how recent the cached cluster is.
          const { state } = await o.handler.read({ type: "cluster", id: clusterId });
          const slot = slotOfInstance(state, instanceId);
          if (slot === undefined) {
            o.logger?.info(
              { cluster: clusterId, instanceId },
              "spot interruption of an instance no slot holds",
            );
            return;
          }
          const replace = commandCausedBy(
            e,
            "cluster.replace-node",
            {
              clusterId,
              slot,
              instanceId,
              reason: `spot interruption: ${instanceId} is reclaimed at ${terminationTime}`,
              drainFirst: true,
            },
            { actor: "provisioner" },
          );
          await o.handler.handle(replace);
          return;
        }
        case "nodeop.drained":
        case "nodeop.drain-failed": {
          const { clusterId, node } = e.data;
          const { state } = await o.handler.read({ type: "cluster", id: clusterId });
          if (state.status === "Absent" || state.draining?.[node] === undefined) return;
          await o.compute.terminate(state.spec.region, [node]);
          o.logger?.info(
            { cluster: clusterId, instanceId: node },
            "interrupted instance terminated after its drain",
          );
          return;
        }
        default:
          return;
      }
    },
  });
}
