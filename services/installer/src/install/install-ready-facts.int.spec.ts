/**
 * node-ops' Ready facts of one kube commit are recorded in one install commit. The
 * installer-kube reaction runs each fact in the install's lifecycle trace; without
 * telemetry (the bench, a deployment with tracing off) the install has no lifecycle
 * traceparent, and a look at the install's last commit per fact to find one split every
 * kube commit's facts into two install commits, the first fact alone and the rest after a
 * second look (`×1`, `×49` at 500 nodes: docs/installer.md). On the sim through the real parts.
 */
import { catalogue, EventStore, exampleClusterCreate } from "@cairn/events";
import { until } from "@cairn/events/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ControlPlane, startControlPlane } from "../testing/control-plane.ts";

let plane: ControlPlane;

beforeAll(async () => {
  plane = await startControlPlane({ seed: 31 });
}, 60_000);
afterAll(async () => {
  await plane?.stop();
});

const history = async (type: "install" | "kube", id: string) =>
  (await new EventStore({ js: plane.js.nats.js, jsm: plane.js.nats.jsm, catalogue }).load({ type, id }))
    .events;

describe("node-ops' Ready facts", () => {
  it("of one kube commit go into one install commit", async () => {
    const c = exampleClusterCreate("facts");
    await plane.bus.send({
      ...c,
      data: {
        ...c.data,
        pools: [{ name: "web", capacityType: "on-demand" as const, instanceTypes: ["t3.large"], count: 8 }],
      },
    });
    await until(
      "facts Ready",
      async () =>
        (await plane.provisioner.handler.read({ type: "cluster", id: "facts" })).state.status === "Ready",
      45_000,
    );
    const kube = await history("kube", "facts");
    const install = await history("install", "facts");
    // Each Ready fact's install commit, by the fact's position in the kube history.
    const recordedIn = new Map<number, number>();
    for (const e of install)
      if (e.type === "install.node-ready")
        recordedIn.set((e.data as { factSequence: number }).factSequence, e.sequence);
    const byKubeCommit = new Map<number, { facts: number; commits: Set<number | undefined> }>();
    for (const e of kube) {
      if (e.type !== "kube.node-ready") continue;
      const k = byKubeCommit.get(e.sequence) ?? { facts: 0, commits: new Set() };
      k.facts++;
      k.commits.add(recordedIn.get(e.position));
      byKubeCommit.set(e.sequence, k);
    }
    const commits = [...byKubeCommit.values()];
    // The sim's agents join from one command and turn Ready together: node-ops records
    // several in one kube commit (else this test would say nothing).
    expect(Math.max(...commits.map((k) => k.facts))).toBeGreaterThan(1);
    // Every fact recorded, and each kube commit's facts in one install commit.
    expect(commits.filter((k) => k.commits.has(undefined))).toEqual([]);
    expect(commits.map((k) => k.commits.size)).toEqual(commits.map(() => 1));
  });
});
