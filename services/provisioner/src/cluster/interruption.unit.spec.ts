import { type ClusterEvent, clusterSpec, exampleClusterCreate } from "@cairn/events";
import { deciderSpec } from "@cairn/events/testing";
import { describe, expect, it } from "vitest";
import { clusterDecider } from "./decider.ts";
import { slotOfInstance } from "./interruption-follower.ts";

const ref = { type: "cluster" as const, id: "demo-1" };
const spec = clusterSpec.parse(exampleClusterCreate("demo-1").data);
const cluster = deciderSpec(clusterDecider, ref);
const pool = spec.pools[0]!;
const placement = { instanceType: pool.instanceTypes[0]!, capacityType: pool.capacityType };
const agent = { slot: 1000, pool: pool.name, ordinal: 0, role: "agent" as const };

/** A Ready cluster whose slot 1000 runs i-old (the only slot, to keep the history short). */
const history: ClusterEvent[] = [
  { type: "cluster.requested", data: { spec } },
  { type: "cluster.provisioning-started", data: { slots: [agent] } },
  { type: "cluster.instance-launch-requested", data: { ...agent, attempt: 1, placement } },
  { type: "cluster.instance-launched", data: { slot: 1000, attempt: 1, instanceId: "i-old" } },
  { type: "cluster.instance-running", data: { slot: 1000, instanceId: "i-old" } },
  { type: "cluster.ready", data: { nodes: 1, k3sVersion: spec.k3sVersion } },
];
const replace = (instanceId: string) => ({
  type: "cluster.replace-node" as const,
  data: { clusterId: "demo-1", slot: 1000, instanceId, reason: "spot interruption", drainFirst: true },
});
const replacementRequested: ClusterEvent = {
  type: "cluster.node-replacement-requested",
  data: { slot: 1000, instanceId: "i-old", reason: "spot interruption", drainFirst: true },
};
const relaunch: ClusterEvent = {
  type: "cluster.instance-launch-requested",
  // The decider spells an unpinned zone out as undefined.
  data: { ...agent, attempt: 2, placement: { ...placement, availabilityZone: undefined } },
};

describe("replacing a spot-interrupted node", () => {
  it("launches the slot again at once and marks the old instance to be terminated after its drain", () => {
    cluster.given(history).when(replace("i-old")).then([replacementRequested, relaunch]);
  });
  it("a notice about an instance the slot no longer has changes nothing", () => {
    cluster.given(history).when(replace("i-older")).then([]);
    cluster
      .given([...history, replacementRequested, relaunch])
      .when(replace("i-old"))
      .then([]);
  });
  it("the cluster is Recovering, remembers what to terminate, and no slot holds the old instance", () => {
    const s = [...history, replacementRequested, relaunch].reduce(
      (st, e, i) => clusterDecider.evolve(st, { ...e, position: i + 1 } as never),
      clusterDecider.initialState(),
    );
    expect(s.status).toBe("Recovering");
    if (s.status === "Absent") throw new Error("absent");
    expect(s.draining).toEqual({ "i-old": 1000 });
    expect(slotOfInstance(s, "i-old")).toBeUndefined();
    expect(s.slots[1000]?.status).toBe("launching");
  });
});
