/**
 * A spot interruption end to end on the simulated cloud, through the real parts: the
 * provisioner (EC2 SDK), the installer (SSM SDK), node-ops (client-node, and the SQS SDK
 * for the intake), on a disposable JetStream. The sim gives a spot instance its
 * two-minute notice and puts EventBridge's warning on the region's SQS queue; Cairn
 * must drain the node, launch and join a replacement, have the cluster Ready again and
 * delete the old Node, all before the instance's termination time (sim clock).
 */
import {
  type CommandBus,
  catalogue,
  EventStore,
  exampleClusterCreate,
  type NodeopEvent,
  nodeAggregateId,
} from "@cairn/events";
import type { TestJetStream } from "@cairn/events/testing";
import { type ControlPlane, startControlPlane } from "@cairn/installer/testing";
import type { NodeOps } from "@cairn/node-ops";
import type { Provisioner } from "@cairn/provisioner";
import type { Sim } from "@cairn/sim";
import { AppsV1Api, CoreV1Api, KubeConfig } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const REGION = "eu-west-1";
let plane: ControlPlane;
let js: TestJetStream;
let sim: Sim;
let provisioner: Provisioner;
let nodeOps: NodeOps;
let bus: CommandBus;
const logLines: string[] = [];
const logger = {
  info: (o: object, m?: string) => void logLines.push(`${m} ${JSON.stringify(o)}`),
  warn: (o: object, m?: string) => void logLines.push(`${m} ${JSON.stringify(o)}`),
  error: (o: object, m?: string) => void logLines.push(`${m} ${JSON.stringify(o)}`),
};

beforeAll(async () => {
  // 20× rather than the usual 100×: the race is against the sim's clock, and at 100× every
  // wall millisecond of control-plane work (and of this test's polling) is 0.1 sim s.
  plane = await startControlPlane({
    seed: 21,
    timeScale: 20,
    logger,
    nodeOps: { drain: { pollMs: 20, maxPollMs: 100 }, spot: {} },
    installer: { reactor: { maxPollMs: 100 } },
  });
  ({ js, sim, provisioner, nodeOps, bus } = plane);
}, 60_000);
afterAll(async () => {
  if (process.env.SPOT_TEST_LOG)
    (await import("node:fs")).writeFileSync(process.env.SPOT_TEST_LOG, logLines.join("\n"));
  await plane?.stop();
});

async function until<T>(
  what: string,
  f: () => Promise<T | undefined> | T | undefined,
  ms = 50_000,
): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v !== undefined) return v;
    if (Date.now() > end)
      throw new Error(`timed out waiting for ${what}; last log: ${logLines.slice(-5).join(" | ")}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
const store = () => new EventStore({ js: js.nats.js, jsm: js.nats.jsm, catalogue });
const clusterState = async (id: string) =>
  (await provisioner.handler.read({ type: "cluster", id }, { atLeastSequence: Number.MAX_SAFE_INTEGER }))
    .state;
const nodeopEvents = async (clusterId: string, node: string) =>
  (await store().load({ type: "nodeop", id: nodeAggregateId(clusterId, node) }))
    .events as unknown as NodeopEvent[];
const clusterEvents = async (id: string) => (await store().load({ type: "cluster", id })).events;
const kubeOf = (clusterId: string) => {
  const kc = new KubeConfig();
  kc.loadFromString(sim.world.kube.kubeconfig(clusterId));
  return { core: kc.makeApiClient(CoreV1Api), apps: kc.makeApiClient(AppsV1Api) };
};

describe("spot interruption", () => {
  it("drains the node, replaces and joins its instance, and deletes the old Node before the reclaim", async () => {
    const id = "spot-1";
    const c = exampleClusterCreate(id);
    await bus.send({
      ...c,
      data: {
        ...c.data,
        region: REGION,
        pools: [{ name: "workers", capacityType: "spot", instanceTypes: ["t3.large"], count: 2 }],
      },
    });
    await until("the cluster Ready", async () =>
      (await clusterState(id)).status === "Ready" ? true : undefined,
    );
    await until("node-ops polling the region's queue", () =>
      nodeOps.spotRegions().includes(REGION) ? true : undefined,
    );

    // A workload on the nodes: the drain must move its pods.
    const { core, apps } = kubeOf(id);
    await apps.createNamespacedDeployment({
      namespace: "default",
      body: {
        metadata: { name: "web" },
        spec: {
          replicas: 6,
          selector: { matchLabels: { app: "web" } },
          template: {
            metadata: { labels: { app: "web" } },
            spec: { containers: [{ name: "app", image: "nginx:1.27" }] },
          },
        },
      },
    });
    await until("web ready", async () => {
      const d = await apps.readNamespacedDeployment({ name: "web", namespace: "default" });
      return d.status?.readyReplicas === 6 ? true : undefined;
    });
    const before = await clusterState(id);
    if (before.status === "Absent") throw new Error("no cluster");
    const spotSlot = Object.values(before.slots).find(
      (s) => s.placement.capacityType === "spot" && s.instanceId,
    );
    const victim = spotSlot?.instanceId ?? "";
    const podsOn = async (node: string) =>
      (await core.listPodForAllNamespaces({ fieldSelector: `spec.nodeName=${node}` })).items.filter(
        (p) => !p.metadata?.deletionTimestamp,
      );
    expect((await podsOn(victim)).length).toBeGreaterThan(0);

    // The notice, as AWS gives it: the sim puts EventBridge's warning on the region's queue.
    const wallStart = performance.now();
    const res = await fetch(`${sim.adminUrl}/ec2/interrupt-spot`, {
      method: "POST",
      body: JSON.stringify({ region: REGION, instanceId: victim }),
    });
    expect(res.status).toBe(200);
    const notice = (await res.json()) as { noticeTime: string; terminationTime: string };
    const terminationAt = Date.parse(notice.terminationTime);
    // Every milestone is watched side by side; each is stamped with the sim time it was first seen.
    const simAt: Record<string, number> = {};
    let replacement: string | undefined;
    const milestones: Record<string, () => Promise<boolean>> = {
      noticed: async () =>
        (await nodeopEvents(id, victim)).some((e) => e.type === "nodeop.interruption-noticed"),
      "replacement launched": async () => {
        const s = await clusterState(id);
        const slot = s.status === "Absent" ? undefined : s.slots[spotSlot?.slot ?? -1];
        replacement = slot?.instanceId && slot.instanceId !== victim ? slot.instanceId : undefined;
        return replacement !== undefined;
      },
      drained: async () => (await nodeopEvents(id, victim)).some((e) => e.type === "nodeop.drained"),
      "ready again": async () => {
        const events = await clusterEvents(id);
        const i = events.findIndex((e) => e.type === "cluster.node-replacement-requested");
        return i >= 0 && events.slice(i).some((e) => e.type === "cluster.ready");
      },
      "old node deleted": async () =>
        (await nodeopEvents(id, victim)).some((e) => e.type === "nodeop.node-deleted"),
    };
    let wallReadyMs = 0;
    await until("every milestone", async () => {
      for (const [what, check] of Object.entries(milestones)) {
        if (simAt[what] !== undefined) continue;
        const t = sim.clock.now();
        if (await check()) {
          simAt[what] = t;
          if (what === "ready again") wallReadyMs = performance.now() - wallStart;
        }
      }
      return Object.keys(simAt).length === Object.keys(milestones).length ? true : undefined;
    });
    // Drained: its pods evicted (the Deployment put them elsewhere).
    expect(await podsOn(victim)).toEqual([]);
    const drained = (await nodeopEvents(id, victim)).find((e) => e.type === "nodeop.drained");
    expect((drained?.data as { evicted: number } | undefined)?.evicted).toBeGreaterThan(0);
    const names = (await core.listNode()).items.map((n) => n.metadata?.name);
    expect(names).not.toContain(victim);
    expect(names).toContain(replacement ?? "the replacement");
    await until("web ready again", async () => {
      const d = await apps.readNamespacedDeployment({ name: "web", namespace: "default" });
      return d.status?.readyReplicas === 6 ? true : undefined;
    });

    const noticeAt = Date.parse(notice.noticeTime);
    const report = Object.entries(simAt).map(([k, t]) => `${k} +${((t - noticeAt) / 1000).toFixed(1)} s`);
    console.log(
      `spot interruption (sim seconds after the notice, reclaim at +${(terminationAt - noticeAt) / 1000} s): ${report.join(", ")}; notice → replacement Ready: ${(((simAt["ready again"] ?? 0) - noticeAt) / 1000).toFixed(1)} sim s (${wallReadyMs.toFixed(0)} ms wall at time scale 20)`,
    );
    // Everything happened before the instance would have been reclaimed (the sim's clock).
    for (const [what, t] of Object.entries(simAt))
      expect({ what, beforeReclaim: t < terminationAt }).toEqual({ what, beforeReclaim: true });
    // The old instance was terminated by Cairn after the drain, not reclaimed by AWS.
    const old = sim.world.ec2.instance(REGION, victim);
    expect(old?.state === "shutting-down" || old?.state === "terminated").toBe(true);
    expect(sim.world.sqs.messages(REGION, "cairn-spot-interruptions")).toEqual([]);
  });
});
