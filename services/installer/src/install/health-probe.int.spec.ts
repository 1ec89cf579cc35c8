/**
 * The K3s service probe's round at more than one cluster and more than 50 nodes, through the
 * real parts (the provisioner on the EC2 SDK, the installer on the SSM SDK, the sim): what
 * SSM is asked, read back from the sim's request log and its commands.
 */
import { exampleClusterCreate } from "@cairn/events";
import { until } from "@cairn/events/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ControlPlane, startControlPlane } from "../testing/control-plane.ts";
import type { InstallState } from "./decider.ts";
import { SSM_MAX_INSTANCE_IDS } from "./health-probe.ts";

let plane: ControlPlane;

beforeAll(async () => {
  plane = await startControlPlane({
    seed: 21,
    // Probe rounds only when the test asks (installer.probe()).
    installer: { health: { intervalMs: 3_600_000, probeTimeoutMs: 10_000, pollMs: 20 } },
  });
}, 60_000);
afterAll(async () => {
  await plane?.stop();
});

const installOf = async (id: string): Promise<InstallState> =>
  (await plane.installer.handler.read({ type: "install", id }, { atLeastSequence: Number.MAX_SAFE_INTEGER }))
    .state;
const create = (id: string, workers: number) => {
  const c = exampleClusterCreate(id);
  return plane.bus.send({
    ...c,
    data: {
      ...c.data,
      pools: [{ name: "workers", capacityType: "on-demand", instanceTypes: ["t3.large"], count: workers }],
    },
  });
};
/** The install completed once: the probe's rounds include it. */
const completed = (id: string) =>
  until(
    `${id} installed`,
    async () => {
      const s = await installOf(id);
      return s.status !== "Absent" && s.completedOnce ? s : undefined;
    },
    90_000,
    50,
  );

describe("the K3s service probe's round", () => {
  it("probes a 60-node cluster in commands of at most 50 nodes, and several clusters at once", async () => {
    await Promise.all([create("big", 59), create("left", 1), create("right", 1)]);
    const installs = await Promise.all(["big", "left", "right"].map(completed));
    const clusterOf = new Map<string, string>();
    for (const [k, s] of installs.entries())
      for (const n of Object.values(s.nodes)) clusterOf.set(n.instanceId, ["big", "left", "right"][k]!);
    expect([...clusterOf.values()].filter((c) => c === "big")).toHaveLength(60);

    plane.sim.requests.clear();
    const round = await plane.installer.probe?.();
    expect(round).toEqual({ clusters: 3, probes: 64 });

    const calls = plane.sim.requests.list({ service: "ssm" });
    // A SendCommand's logged ids: the command it made, then the instances it named.
    const sends = calls
      .filter((r) => r.action === "SendCommand")
      .map((r) => ({
        seq: r.seq,
        command: r.ids.find((x) => !x.startsWith("i-"))!,
        instances: r.ids.filter((x) => x.startsWith("i-")),
      }));
    const bigSends = sends.filter((r) => clusterOf.get(r.instances[0]!) === "big");
    // 60 nodes: two commands (50 + 10), each node in one, never a command a node.
    expect(bigSends.map((r) => r.instances.length).sort((a, b) => a - b)).toEqual([10, SSM_MAX_INSTANCE_IDS]);
    expect(new Set(bigSends.flatMap((r) => r.instances)).size).toBe(60);
    expect(sends).toHaveLength(4);
    expect(calls.filter((r) => r.action === "GetCommandInvocation")).toHaveLength(0);

    // Several clusters at once: each probe's span in the log (its send to its last look)
    // overlaps another cluster's. One after the other, they would follow each other.
    const spans = sends.map((send) => {
      const looks = calls.filter((r) => r.action === "ListCommandInvocations" && r.ids[0] === send.command);
      expect(looks.length).toBeGreaterThan(0);
      return {
        cluster: clusterOf.get(send.instances[0]!)!,
        from: send.seq,
        to: Math.max(...looks.map((l) => l.seq)),
      };
    });
    const overlapping = spans.some((a) =>
      spans.some((b) => a.cluster !== b.cluster && a.from < b.from && b.from < a.to),
    );
    expect(overlapping).toBe(true);
  }, 180_000);
});
