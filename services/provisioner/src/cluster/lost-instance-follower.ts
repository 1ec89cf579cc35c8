/**
 * An instance lost behind Cairn's back (terminated in the console, by another tool, by
 * AWS): its kubelet stops, node-ops records `kube.node-not-ready` (Ready=Unknown after
 * the node-monitor grace period) or `kube.node-removed`. This follower asks EC2 about the
 * instance behind that node (Cairn names nodes after their instance):
 *  - terminated, shutting down, or unknown to EC2, while the slot still holds it →
 *    `cluster.replace-node {slot, instanceId, reason}`: the decider relaunches the slot
 *    (and the cluster is Recovering until it is back), the reactor terminates what is left
 *    of the old one (a no-op), node-ops deletes its Node;
 *  - stopped or stopping behind Cairn's back → reported (a warning), not replaced: its
 *    disk is still there and whoever stopped it may start it again;
 *  - running → nothing: a NotReady node on a live instance is the installer's and
 *    node-ops' business, not a lost instance.
 * A report about an instance no slot holds any more (a replacement already under way, a
 * scale-down) is stale: nothing. Commands are named after the kube event that caused
 * them, so a redelivery decides nothing twice.
 */
import {
  commandCausedBy,
  type Nats,
  type ReactingEvent,
  type RunnerLogger,
  type RunningConsumer,
  startReactor,
} from "@cairn/events";
import type { Compute } from "../ports.ts";
import type { ClusterHandler } from "../provisioner.ts";
import { slotOfInstance } from "./interruption-follower.ts";

export interface LostInstanceFollowerOptions {
  nats: Nats;
  handler: ClusterHandler;
  compute: Compute;
  logger?: RunnerLogger;
}

/** What a lost instance's EC2 state means for its slot. Pure. */
export function lostInstanceVerdict(ec2State: string | undefined): "replace" | "report" | "alive" {
  if (ec2State === undefined || ec2State === "terminated" || ec2State === "shutting-down") return "replace";
  if (ec2State === "stopped" || ec2State === "stopping") return "report";
  return "alive";
}

export async function startLostInstanceFollower(o: LostInstanceFollowerOptions): Promise<RunningConsumer> {
  const react = async (e: ReactingEvent<"kube">) => {
    if (e.type !== "kube.node-not-ready" && e.type !== "kube.node-removed") return;
    const clusterId = e.aggregate.id;
    const instanceId = e.data.node;
    if (!/^i-[0-9a-f]+$/.test(instanceId)) return; // not a node Cairn named after its instance
    const ref = { type: "cluster" as const, id: clusterId };
    const { state } = await o.handler.read(ref);
    if (state.status === "Absent" || state.status === "Deleting" || state.status === "Deleted") return;
    const slot = slotOfInstance(state, instanceId);
    if (slot === undefined) return; // stale: the slot moved on
    const s = state.slots[slot];
    if (!s || (s.status !== "running" && s.status !== "launched")) return;
    const [info] = await o.compute.describe(state.spec.region, [instanceId]);
    const verdict = lostInstanceVerdict(info?.state);
    if (verdict === "alive") return;
    if (verdict === "report") {
      o.logger?.warn(
        { cluster: clusterId, slot, instanceId, state: info?.state },
        "an instance of the cluster was stopped outside Cairn; start it again, or replace the node",
      );
      return;
    }
    o.logger?.warn(
      { cluster: clusterId, slot, instanceId, state: info?.state ?? "unknown to EC2" },
      "an instance of the cluster was terminated outside Cairn; relaunching its slot",
    );
    await o.handler.handle(
      commandCausedBy(
        e,
        "cluster.replace-node",
        {
          clusterId,
          slot,
          instanceId,
          reason: `instance ${instanceId} was ${info ? info.state : "gone from EC2"} outside Cairn (its node went ${e.type === "kube.node-removed" ? "away" : "NotReady"})`,
        },
        { actor: "provisioner" },
      ),
    );
  };

  return await startReactor({
    nats: o.nats,
    name: "provisioner-lost-instances",
    aggregate: "kube",
    types: ["kube.node-not-ready", "kube.node-removed"],
    concurrency: 16,
    ...(o.logger ? { logger: o.logger } : {}),
    react,
  });
}
