import { describe, expect, it } from "vitest";
import { classificationPatch } from "./classification-patch.ts";

const none = { setLabels: {}, removeLabels: [], addTaints: [], removeTaints: [] };
const unschedulable = {
  key: "node.kubernetes.io/unschedulable",
  effect: "NoSchedule",
  timeAdded: "2026-01-01T00:00:00Z",
};

describe("classificationPatch", () => {
  it("sets and removes labels with the resourceVersion it was computed from", () => {
    expect(
      classificationPatch(
        { resourceVersion: "7", labels: { a: "1", b: "2" }, taints: [] },
        { ...none, setLabels: { c: "3", a: "1" }, removeLabels: ["b", "absent"] },
      ),
    ).toEqual({ metadata: { resourceVersion: "7", labels: { c: "3", b: null } } });
  });

  it("replaces the whole taint list, keeping the taints it does not touch as they are", () => {
    const old = { key: "gpu", value: "a", effect: "NoSchedule" };
    const patch = classificationPatch(
      { resourceVersion: "9", labels: {}, taints: [unschedulable, old, { key: "x", effect: "NoExecute" }] },
      {
        ...none,
        addTaints: [{ key: "gpu", value: "b", effect: "NoSchedule" }],
        removeTaints: [{ key: "x", effect: "NoExecute" }],
      },
    );
    expect(patch).toEqual({
      metadata: { resourceVersion: "9" },
      spec: { taints: [unschedulable, { key: "gpu", value: "b", effect: "NoSchedule" }] },
    });
  });

  it("returns nothing when the node already shows the change", () => {
    const gpu = { key: "gpu", value: "a", effect: "NoSchedule" as const };
    expect(
      classificationPatch(
        { resourceVersion: "3", labels: { a: "1" }, taints: [gpu] },
        {
          setLabels: { a: "1" },
          removeLabels: ["gone"],
          addTaints: [{ ...gpu }],
          removeTaints: [{ key: "gone", effect: "NoExecute" }],
        },
      ),
    ).toBeUndefined();
  });
});
