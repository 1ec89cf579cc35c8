/**
 * Label, unlabel, taint and untaint on the simulated cloud, through the public command
 * bus, the real adapter and the sim's Kubernetes API (read back with client-node).
 */
import { CommandBus, catalogue, EventStore, nodeAggregateId, type RecordedEvent } from "@cairn/events";
import { startJetStream, type TestJetStream, until } from "@cairn/events/testing";
import { SIM_CREDENTIALS, type Sim, startSim } from "@cairn/sim";
import type { CoreV1Api } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type NodeOps, startNodeOps } from "../node-ops.ts";
import { simCluster } from "../testing/sim-cluster.ts";

const CLUSTER = "labels-1";
let js: TestJetStream;
let sim: Sim;
let nodeOps: NodeOps;
let bus: CommandBus;
let store: EventStore;
let core: CoreV1Api;

beforeAll(async () => {
  js = await startJetStream();
  sim = await startSim({ seed: 12, timeScale: 100 });
  store = new EventStore({ js: js.nats.js, jsm: js.nats.jsm, catalogue });
  ({ core } = await simCluster(
    sim,
    store,
    CLUSTER,
    ["node-a", "node-b", "node-c"].map((name) => ({
      name,
      role: "agent",
      labels: { "cairn.dev/pool": "workers", "cairn.dev/capacity-type": "spot" },
      taints: [],
    })),
  ));
  nodeOps = await startNodeOps({
    nats: js.nats,
    ssm: { endpoint: sim.url, credentials: SIM_CREDENTIALS },
    facts: false,
  });
  bus = new CommandBus({ js: js.nats.js, catalogue });
}, 30_000);
afterAll(async () => {
  await nodeOps?.stop();
  await sim?.stop();
  await js?.dispose();
});

/** The first event of one of `types` on the node caused by the command `commandId` (or after it). */
const outcome = (node: string, commandId: string, types: string[]) =>
  until<RecordedEvent>(`${types.join("/")} on ${node}`, async () => {
    const events = (await store.load({ type: "nodeop", id: nodeAggregateId(CLUSTER, node) })).events;
    const from = events.findIndex((e) => e.meta.commandId === commandId || e.meta.causationId === commandId);
    return from < 0 ? undefined : events.slice(from).find((e) => types.includes(e.type));
  });
const send = async (type: string, node: string, data: object, actor = "alice") => {
  const { commandId } = await bus.send({
    type,
    data: { clusterId: CLUSTER, node, reason: "gpu rollout", ...data },
    meta: { actor },
  });
  return outcome(node, commandId, [
    "nodeop.classification-applied",
    "nodeop.classification-failed",
    "nodeop.rejected",
  ]);
};
const readNode = (name: string) => core.readNode({ name });
const taintsOf = async (name: string) =>
  ((await readNode(name)).spec?.taints ?? []).map((t) => `${t.key}=${t.value ?? ""}:${t.effect}`).sort();

describe("labels and taints on the sim", () => {
  it("label sets labels, unlabel removes them; the others stay", async () => {
    const labelled = await send("node.label", "node-a", { labels: { tier: "gold", zone: "blue" } });
    expect(labelled.type).toBe("nodeop.classification-applied");
    expect(labelled.data).toMatchObject({ operation: "label", by: "alice" });
    expect((await readNode("node-a")).metadata?.labels).toMatchObject({
      tier: "gold",
      zone: "blue",
      "cairn.dev/pool": "workers",
    });

    const unlabelled = await send("node.unlabel", "node-a", { keys: ["tier", "absent"] }, "bob");
    expect(unlabelled.data).toMatchObject({ operation: "unlabel", by: "bob" });
    const labels = (await readNode("node-a")).metadata?.labels ?? {};
    expect(labels.tier).toBeUndefined();
    expect(labels).toMatchObject({ zone: "blue", "cairn.dev/pool": "workers" });
  });

  it("taint adds to the node's taints (a cordon's taint kept), untaint removes by key and effect", async () => {
    // A taint someone else set (the node controller's, from a cordon) must survive the whole-list patch.
    const cordon = await bus.send({
      type: "node.cordon",
      data: { clusterId: CLUSTER, node: "node-b", reason: "maintenance" },
      meta: { actor: "alice" },
    });
    await outcome("node-b", cordon.commandId, ["nodeop.cordoned"]);
    const before = await taintsOf("node-b");

    const tainted = await send("node.taint", "node-b", {
      taints: [
        { key: "gpu", value: "a100", effect: "NoSchedule" },
        { key: "dedicated", effect: "NoExecute" },
      ],
    });
    expect(tainted.type).toBe("nodeop.classification-applied");
    expect(await taintsOf("node-b")).toEqual(
      [...before, "gpu=a100:NoSchedule", "dedicated=:NoExecute"].sort(),
    );

    // Same key and effect: replaced, not doubled.
    await send("node.taint", "node-b", { taints: [{ key: "gpu", value: "h100", effect: "NoSchedule" }] });
    expect(await taintsOf("node-b")).toEqual(
      [...before, "gpu=h100:NoSchedule", "dedicated=:NoExecute"].sort(),
    );

    const untainted = await send("node.untaint", "node-b", {
      taints: [
        { key: "dedicated", effect: "NoExecute" },
        { key: "gpu", effect: "NoExecute" }, // not there: ignored
      ],
    });
    expect(untainted.data).toMatchObject({ operation: "untaint" });
    expect(await taintsOf("node-b")).toEqual([...before, "gpu=h100:NoSchedule"].sort());
    expect((await readNode("node-b")).spec?.unschedulable).toBe(true);
  });

  it("Cairn's classification labels are refused with the reason, and the node keeps them", async () => {
    const refused = await send("node.label", "node-c", { labels: { "cairn.dev/pool": "gpu" } });
    expect(refused.type).toBe("nodeop.rejected");
    expect(refused.data).toMatchObject({ code: "invalid", commandType: "node.label" });
    expect((refused.data as { reason: string }).reason).toContain(
      "cairn.dev/pool is Cairn's own classification",
    );
    const unlabel = await send("node.unlabel", "node-c", { keys: ["cairn.dev/capacity-type"] });
    expect(unlabel.type).toBe("nodeop.rejected");
    expect((await readNode("node-c")).metadata?.labels).toMatchObject({
      "cairn.dev/pool": "workers",
      "cairn.dev/capacity-type": "spot",
    });
  });

  it("an invalid label key or taint is refused at the boundary (the catalogue's schema)", async () => {
    await expect(send("node.label", "node-c", { labels: { "bad key!": "x" } })).rejects.toThrow(
      /node\.label is invalid: labels\.bad key!/,
    );
    await expect(
      send("node.taint", "node-c", { taints: [{ key: "gpu", effect: "Sometimes" }] }),
    ).rejects.toThrow(/node\.taint is invalid: taints\.0\.effect/);
  });

  it("a node the cluster does not have: classification-failed with the reason", async () => {
    const failed = await send("node.label", "ghost", { labels: { a: "b" } });
    expect(failed.type).toBe("nodeop.classification-failed");
    expect(failed.data).toMatchObject({
      operation: "label",
      reason: `node ghost not found in cluster ${CLUSTER}`,
      remediation: "check the node name (kubectl get nodes)",
    });
  });
});
