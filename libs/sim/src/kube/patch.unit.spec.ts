import { describe, expect, it } from "vitest";
import { jsonPatch, mergePatch, PatchError, strategicMergePatch } from "./patch.ts";
import { NODES, PODS } from "./resources.ts";

const node = () => ({
  metadata: { name: "n1", labels: { a: "1", "kubernetes.io/os": "linux" } },
  spec: {
    taints: [
      { key: "x", value: "1", effect: "NoSchedule" },
      { key: "y", effect: "NoExecute" },
    ],
  },
  status: {
    conditions: [
      { type: "Ready", status: "True" },
      { type: "DiskPressure", status: "False" },
    ],
  },
});

describe("merge patch (RFC 7386)", () => {
  it("merges maps, deletes with null, replaces lists", () => {
    const out = mergePatch(node(), {
      metadata: { labels: { a: null, b: "2" } },
      spec: { unschedulable: true, taints: [{ key: "z", effect: "NoSchedule" }] },
    });
    expect(out).toEqual({
      metadata: { name: "n1", labels: { "kubernetes.io/os": "linux", b: "2" } },
      spec: { unschedulable: true, taints: [{ key: "z", effect: "NoSchedule" }] },
      status: node().status,
    });
  });
  it("replaces the document with a non-object patch", () => {
    expect(mergePatch({ a: 1 }, [1, 2])).toEqual([1, 2]);
  });
});

describe("strategic merge patch", () => {
  it("replaces the atomic taints list when no directive is given (kubectl taint)", () => {
    const out = strategicMergePatch(
      node(),
      { spec: { taints: [{ key: "z", effect: "NoSchedule" }] } },
      NODES.smp,
    ) as ReturnType<typeof node>;
    expect(out.spec.taints).toEqual([{ key: "z", effect: "NoSchedule" }]);
  });
  it("merges taints by key and effect when the list carries $patch directives", () => {
    const out = strategicMergePatch(
      node(),
      {
        spec: {
          taints: [
            { key: "x", $patch: "delete" },
            { key: "y", effect: "NoExecute", value: "v" },
            { key: "z", effect: "NoSchedule", $patch: "merge" },
          ],
        },
      },
      NODES.smp,
    ) as ReturnType<typeof node>;
    expect(out.spec.taints).toEqual([
      { key: "y", effect: "NoExecute", value: "v" },
      { key: "z", effect: "NoSchedule" },
    ]);
  });
  it("merges conditions by type and honours $patch: replace on a map", () => {
    const out = strategicMergePatch(
      node(),
      {
        metadata: { labels: { $patch: "replace", only: "this" } },
        status: { conditions: [{ type: "Ready", status: "False" }] },
      },
      NODES.smp,
    ) as ReturnType<typeof node>;
    expect(out.metadata.labels).toEqual({ only: "this" });
    expect(out.status.conditions).toEqual([
      { type: "Ready", status: "False" },
      { type: "DiskPressure", status: "False" },
    ]);
  });
  it("merges containers by name, env by name, and deletes from primitive lists", () => {
    const pod = {
      metadata: { finalizers: ["a", "b"] },
      spec: {
        containers: [
          { name: "app", image: "v1", env: [{ name: "A", value: "1" }] },
          { name: "side", image: "s" },
        ],
      },
    };
    const out = strategicMergePatch(
      pod,
      {
        metadata: { finalizers: ["c"], "$deleteFromPrimitiveList/finalizers": ["a"] },
        spec: {
          containers: [
            { name: "app", image: "v2", env: [{ name: "B", value: "2" }] },
            { name: "side", $patch: "delete" },
          ],
        },
      },
      PODS.smp,
    );
    expect(out).toEqual({
      metadata: { finalizers: ["b", "c"] },
      spec: {
        containers: [
          {
            name: "app",
            image: "v2",
            env: [
              { name: "A", value: "1" },
              { name: "B", value: "2" },
            ],
          },
        ],
      },
    });
  });
  it("rejects a non-object patch", () => {
    expect(() => strategicMergePatch({}, [], NODES.smp)).toThrow(PatchError);
  });
});

describe("JSON patch (RFC 6902)", () => {
  it("adds, replaces, removes with ~1 and ~0 escapes and the - index", () => {
    const out = jsonPatch(node(), [
      { op: "add", path: "/metadata/labels/cairn.dev~1pool", value: "w" },
      { op: "add", path: "/metadata/labels/t~0ilde", value: "t" },
      { op: "replace", path: "/metadata/labels/a", value: "9" },
      { op: "add", path: "/spec/taints/-", value: { key: "z", effect: "NoSchedule" } },
      { op: "remove", path: "/spec/taints/0" },
      { op: "add", path: "/spec/taints/0", value: { key: "first", effect: "NoSchedule" } },
    ]) as ReturnType<typeof node>;
    expect(out.metadata.labels).toEqual({
      a: "9",
      "kubernetes.io/os": "linux",
      "cairn.dev/pool": "w",
      "t~ilde": "t",
    });
    expect(out.spec.taints.map((t) => t.key)).toEqual(["first", "y", "z"]);
  });
  it("tests, moves and copies", () => {
    const out = jsonPatch({ a: { b: 1 }, c: [1] }, [
      { op: "test", path: "/a/b", value: 1 },
      { op: "copy", from: "/a", path: "/d" },
      { op: "move", from: "/c/0", path: "/a/e" },
    ]);
    expect(out).toEqual({ a: { b: 1, e: 1 }, c: [], d: { b: 1 } });
  });
  it("fails (422) on a failed test, a missing path or an unknown op; 400 on a non-list", () => {
    const code = (f: () => unknown) => {
      try {
        f();
      } catch (e) {
        return (e as PatchError).code;
      }
      return 0;
    };
    expect(code(() => jsonPatch({ a: 1 }, [{ op: "test", path: "/a", value: 2 }]))).toBe(422);
    expect(code(() => jsonPatch({ a: 1 }, [{ op: "remove", path: "/b" }]))).toBe(422);
    expect(code(() => jsonPatch({ a: 1 }, [{ op: "replace", path: "/b", value: 1 }]))).toBe(422);
    expect(code(() => jsonPatch({ a: 1 }, [{ op: "add", path: "/x/y", value: 1 }]))).toBe(422);
    expect(code(() => jsonPatch({ a: [] }, [{ op: "add", path: "/a/3", value: 1 }]))).toBe(422);
    expect(code(() => jsonPatch({ a: 1 }, [{ op: "frobnicate", path: "/a" }]))).toBe(422);
    expect(code(() => jsonPatch({ a: 1 }, { op: "add" }))).toBe(400);
  });
});
