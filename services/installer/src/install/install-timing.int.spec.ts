/**
 * Installs against time: an SSM Agent that registers late is waited for (never blocking
 * a handler), and a node that is not Ready by its join deadline is given up on and
 * replaced by the provisioner. Each case runs its own stack (JetStream, sim, services),
 * since the sim's latencies and the installer's policy differ.
 */
import { catalogue, EventStore, exampleClusterCreate } from "@cairn/events";
import { until } from "@cairn/events/testing";
import type { Latencies } from "@cairn/sim";
import { afterEach, describe, expect, it } from "vitest";
import type { InstallerOptions } from "../installer.ts";
import { type ControlPlane, startControlPlane } from "../testing/control-plane.ts";

type Stack = ControlPlane;
let stack: Stack | undefined;
afterEach(async () => {
  await stack?.stop();
  stack = undefined;
});

const startStack = (latencies: Partial<Latencies>, policy: InstallerOptions["policy"]) =>
  startControlPlane({ seed: 3, latencies, installer: { ...(policy ? { policy } : {}), health: false } });

const create = (s: Stack, id: string, agents: number) => {
  const c = exampleClusterCreate(id);
  return s.bus.send({
    ...c,
    data: {
      ...c.data,
      pools: [
        { name: "workers", capacityType: "on-demand" as const, instanceTypes: ["t3.large"], count: agents },
      ],
    },
  });
};
const ready = (s: Stack, id: string) =>
  until(`${id} Ready`, async () => {
    const c = (
      await s.provisioner.handler.read({ type: "cluster", id }, { atLeastSequence: Number.MAX_SAFE_INTEGER })
    ).state;
    return c.status === "Ready" ? c : undefined;
  });
const events = async (s: Stack, type: "install" | "cluster", id: string) =>
  (await new EventStore({ js: s.js.nats.js, jsm: s.js.nats.jsm, catalogue }).load({ type, id })).events;

describe("an SSM Agent that registers late", () => {
  it("is waited for: the steps go out once it is online, and the cluster is Ready", async () => {
    // Five simulated minutes before the agents register (3 s at this time scale).
    stack = await startStack({ ssmRegistration: 300 }, {});
    const s = stack;
    await create(s, "late", 2);
    await ready(s, "late");
    const ssm = s.sim.requests.list().filter((r) => r.service === "ssm");
    const firstSend = ssm.findIndex((r) => r.action === "SendCommand" && r.status === 200);
    // The installer asked SSM whether the agents were online, again and again, before sending.
    const asked = ssm.slice(0, firstSend).filter((r) => r.action === "DescribeInstanceInformation");
    expect(asked.length).toBeGreaterThan(3);
    // Never a send to an instance that was not managed yet.
    expect(ssm.filter((r) => r.action === "SendCommand" && r.error === "InvalidInstanceId")).toEqual([]);
    const online = (await events(s, "install", "late")).filter((e) => e.type === "install.node-online");
    expect(online).toHaveLength(3);
  });
});

describe("a node that is not Ready by its join deadline", () => {
  it("is given up on and its instance replaced; the cluster is Ready with the new one", async () => {
    stack = await startStack(
      {},
      { joinTimeoutMs: 3_000, stepTimeoutMs: { "k3s-agent-join": 60_000 } as never },
    );
    const s = stack;
    // One agent's join hangs (the script never comes back): its deadline passes.
    s.sim.faults.add({
      kind: "command-hang",
      service: "ssm",
      count: 1,
      match: { clusterId: "slow", step: "k3s-agent-join" },
    });
    await create(s, "slow", 2);
    await ready(s, "slow");
    const install = await events(s, "install", "slow");
    const failed = install.filter((e) => e.type === "install.node-failed");
    expect(failed).toHaveLength(1);
    const gone = failed[0]?.data as { slot: number; instanceId: string; reason: string };
    expect(gone.reason).toContain("k3s-agent-join attempt 1 had not finished");
    const cluster = await events(s, "cluster", "slow");
    expect(cluster.map((e) => e.type)).toContain("cluster.node-replacement-requested");
    // The old instance is terminated; the slot runs a new one, joined and Ready.
    await until("old instance terminated", async () =>
      s.sim.world.ec2.instances("eu-west-1").find((i) => i.instanceId === gone.instanceId)?.state ===
      "terminated"
        ? true
        : undefined,
    );
    const relaunch = cluster.filter(
      (e) =>
        e.type === "cluster.instance-launch-requested" && (e.data as { slot: number }).slot === gone.slot,
    );
    expect(relaunch.map((e) => (e.data as { attempt: number }).attempt)).toEqual([1, 2]);
  });
});
