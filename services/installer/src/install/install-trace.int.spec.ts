/**
 * One trace per install (DESIGN §4), end to end on the sim: the provisioner, node-ops
 * and the installer with a real tracer. An install is one lifecycle: its events carry
 * the trace of the command that created the cluster, though node-ops' facts about the
 * nodes are recorded on traces of their own. A later command starts its own trace, and
 * its events carry it and a link to the lifecycle's.
 */
import { catalogue, EventStore, exampleClusterCreate, type RawEventEnvelope, traceIdOf } from "@cairn/events";
import { until, useTestTracing } from "@cairn/events/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ControlPlane, startControlPlane } from "../testing/control-plane.ts";

// Before anything starts: every span is a real one, with real trace ids.
const tracing = useTestTracing();
let plane: ControlPlane;

beforeAll(async () => {
  plane = await startControlPlane({
    seed: 21,
    // Probe rounds only when a test asks.
    installer: { health: { intervalMs: 3_600_000, probeTimeoutMs: 10_000, pollMs: 20 } },
  });
}, 60_000);
afterAll(async () => {
  await plane?.stop();
});

const store = () => new EventStore({ js: plane.js.nats.js, jsm: plane.js.nats.jsm, catalogue });
const history = async (type: "install" | "kube" | "cluster", id: string) =>
  (await store().load({ type, id })).events as RawEventEnvelope[];
const clusterStatus = async (id: string) =>
  (await plane.provisioner.handler.read({ type: "cluster", id })).state.status;
const ready = (id: string) => until(`${id} Ready`, async () => (await clusterStatus(id)) === "Ready", 45_000);
const traceOf = (e: RawEventEnvelope) => traceIdOf(e.meta.traceparent);
const linkedTraces = (e: RawEventEnvelope) => (e.meta.links ?? []).map((l) => traceIdOf(l));

describe("the install's trace", () => {
  let lifecycle: string | undefined;

  it("a whole install continues the creating command's trace, node-ops' facts included", async () => {
    const c = exampleClusterCreate("traced");
    const sent = await plane.bus.send(c);
    lifecycle = sent.traceId;
    expect(lifecycle).toMatch(/^[0-9a-f]{32}$/);
    await ready("traced");

    const install = await history("install", "traced");
    expect(install.map((e) => e.type)).toContain("install.completed");
    // Every event of the install is in the cluster's creating trace: none in another.
    expect(install.filter((e) => traceOf(e) !== lifecycle).map((e) => `${e.type} ${traceOf(e)}`)).toEqual([]);
    // (And so none needs a link back to it.)
    expect(install.filter((e) => e.meta.links)).toEqual([]);

    expect(install.filter((e) => e.type === "install.node-ready")).toHaveLength(3);
  });

  it("a later command starts its own trace; its install events carry it and a link to the lifecycle", async () => {
    expect(lifecycle).toBeDefined();
    const before = (await history("install", "traced")).length;
    const scale = await plane.bus.send({
      type: "cluster.scale",
      data: { clusterId: "traced", pool: "workers", count: 3 },
      meta: { actor: "alice" },
    });
    expect(scale.traceId).not.toBe(lifecycle);
    await until("the new node Ready in the install", async () => {
      const events = (await history("install", "traced")).slice(before);
      return events.some((e) => e.type === "install.completed") ? true : undefined;
    });
    const later = (await history("install", "traced")).slice(before);
    // The new node's addition and steps came from the scale: its trace, linked to the lifecycle.
    const added = later.find((e) => e.type === "install.node-added");
    expect(added && traceOf(added)).toBe(scale.traceId);
    expect(added && linkedTraces(added)).toEqual([lifecycle]);
    // Every event is in the lifecycle trace, or in another that links to it.
    const astray = later.filter((e) => traceOf(e) !== lifecycle && !linkedTraces(e).includes(lifecycle));
    expect(astray.map((e) => `${e.type} ${traceOf(e)} ${linkedTraces(e)}`)).toEqual([]);
    // Its node's readiness is a fact of the lifecycle again.
    const nodeReady = later.filter((e) => e.type === "install.node-ready");
    expect(nodeReady).toHaveLength(1);
    expect(nodeReady.map(traceOf)).toEqual([lifecycle]);
  });

  it("node-ops restarted: its facts and the install's events all stay in the cluster's lifecycle trace", async () => {
    expect(lifecycle).toBeDefined();
    // A new node-ops watches from its election, outside any install's trace.
    const nodeOps = await plane.restartNodeOps();
    await until("the new node-ops watching traced", () => nodeOps.watchedClusters().includes("traced"));
    const kubeBefore = (await history("kube", "traced")).length;
    const installBefore = (await history("install", "traced")).length;
    tracing.reset();
    const { state } = await plane.installer.handler.read({ type: "install", id: "traced" });
    const agent = Object.values(state.status === "Absent" ? {} : state.nodes).find((n) => n.role === "agent");
    if (!agent) throw new Error("no agent");
    plane.sim.world.kube.setNodeReady("traced", agent.node, false);
    await until("traced Degraded or Recovering", async () =>
      ["Degraded", "Recovering"].includes(await clusterStatus("traced")),
    );
    // The ladder's first rung restarts K3s; the sim's restarted kubelet reports Ready again.
    await ready("traced");

    // node-ops recorded what it saw in the cluster's lifecycle trace, after its restart too
    // (its watcher continues the cluster's first event's trace).
    const facts = (await history("kube", "traced")).slice(kubeBefore);
    expect(facts.map((e) => e.type)).toEqual(
      expect.arrayContaining(["kube.node-not-ready", "kube.node-ready"]),
    );
    expect(facts.filter((e) => traceOf(e) !== lifecycle).map((e) => `${e.type} ${traceOf(e)}`)).toEqual([]);

    // The install followed them in its own trace: NotReady, Degraded, the restart, Ready, recovered.
    const install = (await history("install", "traced")).slice(installBefore);
    expect(install.map((e) => e.type)).toEqual(
      expect.arrayContaining([
        "install.node-not-ready",
        "install.remediation-requested",
        "install.recovered",
      ]),
    );
    expect(install.filter((e) => traceOf(e) !== lifecycle).map((e) => `${e.type} ${traceOf(e)}`)).toEqual([]);
  });
});
