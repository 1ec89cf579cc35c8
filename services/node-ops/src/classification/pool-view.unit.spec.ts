import { type ClusterEvent, clusterSpec, exampleClusterCreate } from "@cairn/events";
import { describe, expect, it } from "vitest";
import { classificationDrift, foldPoolView } from "./pool-view.ts";

const spec = clusterSpec.parse({
  ...exampleClusterCreate("c-1").data,
  pools: [
    {
      name: "workers",
      capacityType: "spot",
      instanceTypes: ["t3.large"],
      count: 2,
      labels: { tier: "batch" },
      taints: [{ key: "dedicated", value: "batch", effect: "NoSchedule" }],
    },
  ],
});
const history: ClusterEvent[] = [
  { type: "cluster.requested", data: { spec } },
  { type: "cluster.instance-running", data: { slot: 0, instanceId: "i-server", role: "server" } },
  {
    type: "cluster.instance-running",
    data: { slot: 1000, instanceId: "i-1", pool: "workers", capacityType: "on-demand" },
  },
];
const complete = {
  labels: { "cairn.dev/pool": "workers", "cairn.dev/capacity-type": "on-demand", tier: "batch", team: "x" },
  taints: [{ key: "dedicated", value: "batch", effect: "NoSchedule" as const }],
};
const none = { setLabels: {}, removeLabels: [], addTaints: [], removeTaints: [] };

describe("classificationDrift", () => {
  it("a node with its pool's classification has none (labels Cairn did not set are ignored)", () => {
    expect(classificationDrift(foldPoolView(history), "i-1", complete)).toBeUndefined();
  });

  it("puts back what was removed; the capacity type is the instance's, not the pool's", () => {
    expect(classificationDrift(foldPoolView(history), "i-1", { labels: { team: "x" }, taints: [] })).toEqual({
      ...none,
      setLabels: { "cairn.dev/pool": "workers", "cairn.dev/capacity-type": "on-demand", tier: "batch" },
      addTaints: [{ key: "dedicated", value: "batch", effect: "NoSchedule" }],
    });
  });

  it("after a pool update: the new labels and taints, the pool's old ones removed, the others kept", () => {
    const view = foldPoolView([
      ...history,
      {
        type: "cluster.pool-updated",
        data: { pool: "workers", labels: { tier: "gold" }, taints: [{ key: "gpu", effect: "NoExecute" }] },
      },
    ]);
    expect(classificationDrift(view, "i-1", complete)).toEqual({
      ...none,
      setLabels: { tier: "gold" },
      addTaints: [{ key: "gpu", effect: "NoExecute" }],
      removeTaints: [{ key: "dedicated", effect: "NoSchedule" }],
    });
    // A label the pool once had, but with a value someone else gave: not the pool's to remove.
    const view2 = foldPoolView([
      ...history,
      { type: "cluster.pool-updated", data: { pool: "workers", labels: {}, taints: [] } },
    ]);
    expect(
      classificationDrift(view2, "i-1", { ...complete, labels: { ...complete.labels, tier: "mine" } })
        ?.removeLabels,
    ).toEqual([]);
    expect(classificationDrift(view2, "i-1", complete)?.removeLabels).toEqual(["tier"]);
  });

  it("servers carry the servers pool; a node of unknown pool, or a deleted cluster, is left alone", () => {
    expect(classificationDrift(foldPoolView(history), "i-server", { labels: {}, taints: [] })).toEqual({
      ...none,
      setLabels: { "cairn.dev/pool": "servers" },
    });
    expect(
      classificationDrift(foldPoolView(history), "i-unknown", { labels: {}, taints: [] }),
    ).toBeUndefined();
    expect(
      classificationDrift(
        foldPoolView([...history, { type: "cluster.deletion-requested", data: {} }]),
        "i-1",
        { labels: {}, taints: [] },
      ),
    ).toBeUndefined();
  });
});
