import { type ClusterEvent, clusterSpec, exampleClusterCreate } from "@cairn/events";
import { describe, expect, it } from "vitest";
import {
  classificationDrift,
  emptyPoolView,
  evolvePoolView,
  evolvePoolViewAll,
  foldPoolView,
} from "./pool-view.ts";

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

describe("evolvePoolViewAll", () => {
  const running = (n: number, from = 0): ClusterEvent[] =>
    Array.from({ length: n }, (_, i) => ({
      type: "cluster.instance-running" as const,
      data: {
        slot: 1000 + from + i,
        instanceId: `i-${from + i}`,
        pool: "workers",
        capacityType: "spot" as const,
      },
    }));

  it("gives what one event at a time gives, and leaves the view it started from as it was", () => {
    const start = foldPoolView(history);
    const before = structuredClone(start);
    const events: ClusterEvent[] = [
      ...running(3),
      { type: "cluster.pool-updated", data: { pool: "workers", labels: { tier: "web" }, taints: [] } },
      ...running(2, 3),
      { type: "cluster.deletion-requested", data: {} },
    ];
    expect(evolvePoolViewAll(start, events)).toEqual(events.reduce(evolvePoolView, start));
    expect(start).toEqual(before);
    expect(evolvePoolViewAll(start, [])).toBe(start);
  });

  it("folds a commit of thousands of running instances with one copy of the map, not one per event", () => {
    // One at a time this is O(n²): 3,000 events copy ~4.5 million entries (seconds); at once, milliseconds.
    const events = running(3000);
    const t = performance.now();
    const view = evolvePoolViewAll(emptyPoolView(), events);
    expect(performance.now() - t).toBeLessThan(250);
    expect(Object.keys(view.instances)).toHaveLength(3000);
  });
});
