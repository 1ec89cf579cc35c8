/**
 * K3s installs on the simulated cloud, end to end through the real parts: the
 * provisioner launches instances through the EC2 SDK, the installer sends its steps
 * through the SSM SDK, node-ops watches the nodes through client-node, all on a
 * disposable JetStream. What SSM was asked is read back from the sim.
 */
import type { CommandBus } from "@cairn/events";
import { catalogue, EventStore, exampleClusterCreate, Streams } from "@cairn/events";
import type { TestJetStream } from "@cairn/events/testing";
import type { Provisioner } from "@cairn/provisioner";
import type { Sim } from "@cairn/sim";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RemoteExec, StepCommand } from "../ports.ts";
import { type ControlPlane, startControlPlane } from "../testing/control-plane.ts";
import type { InstallState } from "./decider.ts";

let plane: ControlPlane;
let js: TestJetStream;
let sim: Sim;
let provisioner: Provisioner;
let bus: CommandBus;
/** Every script the installer sent, as SSM received it (for the secrets scan). */
const sentScripts: StepCommand[] = [];
/** Every log line the services wrote. */
const logLines: string[] = [];
/** Set to crash the installer right after SSM took a step whose comment matches (a regular expression). */
const crashAfterSend = new Set<string>();

const logger = {
  info: (o: object, m?: string) => void logLines.push(`${m} ${JSON.stringify(o)}`),
  warn: (o: object, m?: string) => void logLines.push(`${m} ${JSON.stringify(o)}`),
  error: (o: object, m?: string) => void logLines.push(`${m} ${JSON.stringify(o)}`),
};

/** The real SSM adapter, recording what it sends, with a switch to "crash" right after a send. */
const recording = (real: RemoteExec): RemoteExec => ({
  onlineInstances: (r, ids) => real.onlineInstances(r, ids),
  findSent: (r, i, c, since) => real.findSent(r, i, c, since),
  invocation: (r, c, i) => real.invocation(r, c, i),
  invocations: (r, c) => real.invocations(r, c),
  commandTargets: (r, c) => real.commandTargets(r, c),
  cancel: (r, c, i) => real.cancel(r, c, i),
  putSecretIfAbsent: (r, n, v) => real.putSecretIfAbsent(r, n, v),
  parameterVersion: (r, n) => real.parameterVersion(r, n),
  deleteParameters: (r, n) => real.deleteParameters(r, n),
  sendBatch: async (region, batch) => {
    const id = await real.sendBatch(region, batch);
    sentScripts.push({ ...batch, instanceId: batch.instanceIds.join(",") });
    for (const k of crashAfterSend)
      if (new RegExp(k).test(batch.comment)) {
        crashAfterSend.delete(k);
        throw new Error(`installer crashed after SSM took ${batch.comment}`);
      }
    return id;
  },
  send: async (region, step) => {
    const id = await real.send(region, step);
    sentScripts.push(step);
    const key = step.comment.split(" ").slice(1, 3).join(" ");
    for (const k of crashAfterSend)
      if (new RegExp(k).test(step.comment)) {
        crashAfterSend.delete(k);
        throw new Error(`installer crashed after SSM took ${key}`);
      }
    return id;
  },
});

beforeAll(async () => {
  plane = await startControlPlane({
    seed: 11,
    logger,
    installer: {
      remote: recording,
      policy: { stepTimeoutMs: { "k3s-agent-join": 3_000 } as never, remediationGraceMs: 300 },
      // Probe rounds only when a test asks (installer.probe()).
      health: { intervalMs: 3_600_000, probeTimeoutMs: 10_000, pollMs: 20 },
    },
  });
  ({ js, sim, provisioner, bus } = plane);
}, 60_000);
afterAll(async () => {
  await plane?.stop();
});

async function until<T>(
  what: string,
  f: () => Promise<T | undefined> | T | undefined,
  ms = 45_000,
): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v !== undefined) return v;
    if (Date.now() > end)
      throw new Error(`timed out waiting for ${what}; last log: ${logLines.slice(-4).join(" | ")}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
const installOf = async (id: string): Promise<InstallState> =>
  (await plane.installer.handler.read({ type: "install", id }, { atLeastSequence: Number.MAX_SAFE_INTEGER }))
    .state;
const clusterStatus = async (id: string) =>
  (await provisioner.handler.read({ type: "cluster", id }, { atLeastSequence: Number.MAX_SAFE_INTEGER }))
    .state.status;
/** Every node joined and the kubeconfig checked. */
const installed = (id: string, nodes: number) =>
  until(`${id} installed`, async () => {
    const s = await installOf(id);
    if (s.status === "Absent" || !s.kubeconfig) return undefined;
    const all = Object.values(s.nodes);
    return all.length === nodes && all.every((n) => n.joined) ? s : undefined;
  });
const create = (id: string, patch: Record<string, unknown> = {}) => {
  const c = exampleClusterCreate(id);
  return bus.send({ ...c, data: { ...c.data, ...patch } });
};
const pools = (count: number) => [
  {
    name: "workers",
    capacityType: "spot" as const,
    instanceTypes: ["t3.large"],
    count,
    labels: { tier: "web" },
    taints: [{ key: "dedicated", value: "web", effect: "NoSchedule" as const }],
  },
];
/** SSM's invocations for the cluster's instances: [instance, step, status]. */
const invocations = (id: string) => {
  const mine = new Set(
    sim.world.ec2
      .instances("eu-west-1")
      .filter((i) => i.tags["cairn:cluster"] === id)
      .map((i) => i.instanceId),
  );
  const st = sim.state() as {
    ssm: {
      regions: Record<string, { commands: { id: string; instance: string; step: string; status: string }[] }>;
    };
  };
  return (st.ssm.regions["eu-west-1"]?.commands ?? []).filter((c) => mine.has(c.instance));
};
const historyOf = async (id: string) =>
  (await new EventStore({ js: js.nats.js, jsm: js.nats.jsm, catalogue }).load({ type: "install", id }))
    .events;

describe("installing K3s over SSM", () => {
  it("1 server + 3 agents: one step per node, agents with their pool's labels and taints, secrets in SecureStrings", async () => {
    await create("one", { pools: pools(3) });
    const s = await installed("one", 4);
    const calls = invocations("one");
    expect(calls.map((c) => c.step).sort()).toEqual([
      "k3s-agent-join",
      "k3s-agent-join",
      "k3s-agent-join",
      "k3s-server-init",
    ]);
    // Never sent twice: one command per instance.
    expect(new Set(calls.map((c) => c.instance)).size).toBe(4);
    expect(calls.every((c) => c.status === "Success")).toBe(true);
    expect(s.secrets).toEqual(["/cairn/one/token"]);
    expect(sim.world.ssm.parameter("eu-west-1", "/cairn/one/token")).toMatch(/^[0-9a-f]{64}$/);
    expect(s.kubeconfig?.parameter).toBe("/cairn/one/kubeconfig");
    // The nodes as K3s registered them (the sim read the header the installer wrote).
    const agents = Object.values(s.nodes).filter((n) => n.role === "agent");
    // The three agents' joins are one command (a batch), each node named after its instance.
    const agentScripts = sentScripts.filter((x) =>
      agents.some((a) => x.instanceId.split(",").includes(a.instanceId)),
    );
    expect(agentScripts).toHaveLength(1);
    expect(agentScripts[0]!.instanceId.split(",").sort()).toEqual(agents.map((a) => a.instanceId).sort());
    for (const script of agentScripts) {
      const header = script.commands.find((c) => c.startsWith("# cairn-step:")) ?? "";
      expect(header).toContain("node-name=instance-id");
      expect(header).toContain("labels=cairn.dev/capacity-type=spot,cairn.dev/pool=workers,tier=web");
      expect(header).toContain("taints=dedicated=web:NoSchedule");
    }
    expect(new Set(calls.filter((c) => c.step === "k3s-agent-join").map((c) => c.id)).size).toBe(1);
    expect(s.nodes[1000]?.node).toBe(s.nodes[1000]?.instanceId);
    // node-ops reports every node Ready: the install completes and the cluster is Ready.
    await until("one Ready", async () => ((await clusterStatus("one")) === "Ready" ? true : undefined));
    const history = await historyOf("one");
    expect(history.filter((e) => e.type === "install.node-ready")).toHaveLength(4);
    expect(history.filter((e) => e.type === "install.completed").map((e) => e.data)).toEqual([
      { nodes: 4, k3sVersion: "v1.31.4+k3s1" },
    ]);
    const steps = history.filter((e) => e.type === "install.step-succeeded");
    expect(steps).toHaveLength(4);
    // Each step's event carries its duration and output's tail.
    for (const e of steps) {
      const d = e.data as { durationMs: number; outputTail: string };
      expect(d.durationMs).toBeGreaterThan(0);
      expect(d.outputTail).toContain("[cairn] step");
    }
  });

  it("3 servers (embedded etcd): one init, then the other servers join one at a time", async () => {
    await create("ha", { servers: { count: 3, instanceType: "t3.medium" }, pools: pools(2) });
    await installed("ha", 5);
    await until("ha Ready", async () => ((await clusterStatus("ha")) === "Ready" ? true : undefined));
    const steps = invocations("ha")
      .map((c) => c.step)
      .sort();
    expect(steps).toEqual([
      "k3s-agent-join",
      "k3s-agent-join",
      "k3s-server-init",
      "k3s-server-join",
      "k3s-server-join",
    ]);
    const history = (await historyOf("ha")).filter(
      (e) =>
        (e.type === "install.step-sent" || e.type === "install.step-succeeded") &&
        (e.data as { step: string }).step === "k3s-server-join",
    );
    // sent, succeeded, sent, succeeded: never two server joins at once.
    expect(history.map((e) => e.type)).toEqual([
      "install.step-sent",
      "install.step-succeeded",
      "install.step-sent",
      "install.step-succeeded",
    ]);
  });

  it("a crash between SendCommand and its record: the command is found again, not sent twice", async () => {
    crashAfterSend.add("k3s-server-init slot=0 attempt=1 cluster=crash$");
    await create("crash", { pools: pools(2) });
    await installed("crash", 3);
    expect(crashAfterSend.size).toBe(0);
    const calls = invocations("crash");
    expect(calls).toHaveLength(3);
    expect(new Set(calls.map((c) => c.instance)).size).toBe(3);
    expect(logLines.some((l) => l.includes('"adopted":true') && l.includes("crash"))).toBe(true);
  });

  it("a crash between a batch's SendCommand and its record: the batch's command is found again, not sent twice", async () => {
    crashAfterSend.add("k3s-agent-join batch=\\S+ cluster=crashb$");
    await create("crashb", { pools: pools(3) });
    await installed("crashb", 4);
    expect(crashAfterSend.size).toBe(0);
    const calls = invocations("crashb");
    expect(calls).toHaveLength(4);
    expect(new Set(calls.map((c) => c.instance)).size).toBe(4);
    expect(new Set(calls.filter((c) => c.step === "k3s-agent-join").map((c) => c.id)).size).toBe(1);
    expect(logLines.some((l) => l.includes('"adopted":true') && l.includes("crashb"))).toBe(true);
  });

  it("one node of a batch failing: only it is tried again; the others join from the same command", async () => {
    sim.faults.add({
      kind: "command-fail",
      service: "ssm",
      count: 1,
      match: { clusterId: "bfail", step: "k3s-agent-join" },
    });
    await create("bfail", { pools: pools(3) });
    await installed("bfail", 4);
    const joins = invocations("bfail").filter((c) => c.step === "k3s-agent-join");
    // One command for the three, then the failed node's second attempt on its own.
    expect(joins.map((c) => c.status).sort()).toEqual(["Failed", "Success", "Success", "Success"]);
    const failed = joins.find((c) => c.status === "Failed")!;
    const retried = joins.filter((c) => c.instance === failed.instance);
    expect(retried.map((c) => c.status)).toEqual(["Failed", "Success"]);
    expect(new Set(joins.map((c) => c.id)).size).toBe(2);
    const history = await historyOf("bfail");
    const failures = history.filter((e) => e.type === "install.step-failed");
    expect(failures.map((e) => (e.data as { willRetry: boolean; instanceId: string }).instanceId)).toEqual([
      failed.instance,
    ]);
    expect(history.filter((e) => e.type === "install.batch-sent")).toHaveLength(1);
  });

  it("the installer killed mid-install and restarted: no step is sent twice", async () => {
    await create("restart", { pools: pools(3) });
    await until("the first step sent", async () => {
      const s = await installOf("restart");
      return s.status !== "Absent" && Object.values(s.nodes).some((n) => n.step?.status === "sent")
        ? true
        : undefined;
    });
    await plane.restartInstaller();
    await installed("restart", 4);
    const calls = invocations("restart");
    expect(calls).toHaveLength(4);
    expect(new Set(calls.map((c) => c.instance)).size).toBe(4);
  });

  it("SSM throttling is ridden out with backoff", async () => {
    sim.faults.add({ kind: "throttle", service: "ssm", count: 6 });
    await create("throttled", { pools: pools(1) });
    await installed("throttled", 2);
    expect(sim.requests.list().some((r) => r.service === "ssm" && r.error === "ThrottlingException")).toBe(
      true,
    );
    expect(invocations("throttled")).toHaveLength(2);
  });

  it("a step that hangs past its deadline is cancelled and tried again as a new attempt", async () => {
    sim.faults.add({
      kind: "command-hang",
      service: "ssm",
      count: 1,
      match: { clusterId: "hang", step: "k3s-agent-join" },
    });
    await create("hang", { pools: pools(1) });
    await installed("hang", 2);
    const calls = invocations("hang").filter((c) => c.step === "k3s-agent-join");
    expect(calls.map((c) => c.status).sort()).toEqual(["Cancelled", "Success"]);
    const failed = (await historyOf("hang")).find((e) => e.type === "install.step-failed");
    expect(failed?.data).toMatchObject({
      step: "k3s-agent-join",
      attempt: 1,
      status: "TimedOut",
      willRetry: true,
    });
    const cancelled = sim.requests.list().filter((r) => r.service === "ssm" && r.action === "CancelCommand");
    expect(
      cancelled.some((r) => r.ids.includes(calls.find((c) => c.status === "Cancelled")?.id ?? "?")),
    ).toBe(true);
  });

  it("one node of a batch hanging past the deadline: only its invocation is cancelled and tried again", async () => {
    sim.faults.add({
      kind: "command-hang",
      service: "ssm",
      count: 1,
      match: { clusterId: "hangb", step: "k3s-agent-join" },
    });
    await create("hangb", { pools: pools(2) });
    await installed("hangb", 3);
    const calls = invocations("hangb").filter((c) => c.step === "k3s-agent-join");
    expect(calls.map((c) => c.status).sort()).toEqual(["Cancelled", "Success", "Success"]);
    const hung = calls.find((c) => c.status === "Cancelled")!;
    // The other node's invocation of the same command ran to Success, untouched.
    expect(
      calls
        .filter((c) => c.id === hung.id)
        .map((c) => c.status)
        .sort(),
    ).toEqual(["Cancelled", "Success"]);
    const failed = (await historyOf("hangb")).filter((e) => e.type === "install.step-failed");
    expect(failed.map((e) => e.data)).toMatchObject([
      { instanceId: hung.instance, status: "TimedOut", willRetry: true },
    ]);
    const cancels = sim.requests
      .list()
      .filter((r) => r.action === "CancelCommand" && r.ids.includes(hung.id));
    expect(cancels.map((r) => r.ids.filter((i) => i.startsWith("i-")))).toEqual([[hung.instance]]);
  });

  it("a node that goes NotReady: Degraded, K3s restarted on it, Ready again", async () => {
    const s = await installOf("one");
    const agent = Object.values(s.status === "Absent" ? {} : s.nodes).find((n) => n.role === "agent");
    if (!agent) throw new Error("no agent");
    sim.world.kube.setNodeReady("one", agent.node, false);
    await until("one Degraded or Recovering", async () =>
      ["Degraded", "Recovering"].includes(await clusterStatus("one")) ? true : undefined,
    );
    // The ladder's first rung restarts K3s; the sim's restarted kubelet reports Ready again.
    await until("one Ready again", async () => ((await clusterStatus("one")) === "Ready" ? true : undefined));
    const install = await historyOf("one");
    const remedies = install.filter((e) => e.type === "install.remediation-requested").map((e) => e.data);
    expect(remedies).toEqual([
      expect.objectContaining({ node: agent.node, action: "restart-k3s", attempt: 1 }),
    ]);
    expect(install.map((e) => e.type)).toContain("install.recovered");
    const cluster = (
      await new EventStore({ js: js.nats.js, jsm: js.nats.jsm, catalogue }).load({
        type: "cluster",
        id: "one",
      })
    ).events.map((e) => e.type);
    expect(cluster.slice(cluster.indexOf("cluster.degraded"))).toEqual([
      "cluster.degraded",
      "cluster.recovering",
      "cluster.ready",
    ]);
  });

  it("the K3s service probe: a failing probe degrades the cluster until a restart makes it pass", async () => {
    const s = await installOf("ha");
    const server = Object.values(s.status === "Absent" ? {} : s.nodes).find((n) => n.slot === 1);
    if (!server) throw new Error("no second server");
    sim.faults.add({
      kind: "command-fail",
      service: "ssm",
      count: 1,
      match: { instanceId: server.instanceId, step: "k3s-check" },
      output: "inactive",
    });
    const first = await plane.installer.probe?.();
    expect(first?.clusters).toBeGreaterThanOrEqual(2);
    await until("ha Recovering", async () =>
      (await clusterStatus("ha")) === "Recovering" ? true : undefined,
    );
    // The restart ran; the next round's probe passes.
    await until("restart done", async () => {
      const st = await installOf("ha");
      return st.status !== "Absent" && !st.nodes[1]?.step ? true : undefined;
    });
    await plane.installer.probe?.();
    await until("ha Ready again", async () => ((await clusterStatus("ha")) === "Ready" ? true : undefined));
    const failed = (await historyOf("ha")).filter((e) => e.type === "install.check-failed");
    expect(failed.map((e) => e.data)).toEqual([
      expect.objectContaining({
        check: "k3s-active",
        node: server.node,
        evidence: expect.stringContaining("inactive"),
      }),
    ]);
    // Healthy nodes cost no events: one more round records nothing. And few SSM calls: the
    // cluster's nodes in one command, its answers read together (ListCommandInvocations),
    // never one command and one GetCommandInvocation a node.
    const before = (await historyOf("ha")).length;
    const ha = await installOf("ha");
    const instances = new Set(Object.values(ha.status === "Absent" ? {} : ha.nodes).map((n) => n.instanceId));
    expect(instances.size).toBeGreaterThanOrEqual(3);
    sim.requests.clear();
    await plane.installer.probe?.();
    expect((await historyOf("ha")).length).toBe(before);
    const haCalls = (action: string) =>
      sim.requests.list({ service: "ssm", action }).filter((r) => r.ids.some((id) => instances.has(id)));
    expect(haCalls("SendCommand")).toHaveLength(1);
    expect(haCalls("GetCommandInvocation")).toHaveLength(0);
  });

  it("a rolling K3s upgrade: servers first, each node drained through node-ops, upgraded, verified, uncordoned", async () => {
    const to = "v1.32.0+k3s1";
    await bus.send({
      type: "install.upgrade",
      data: { clusterId: "one", k3sVersion: to },
      meta: { actor: "alice" },
    });
    await until("one upgraded", async () =>
      (await historyOf("one")).some((e) => e.type === "install.upgraded") ? true : undefined,
    );
    const history = await historyOf("one");
    const turns = history
      .filter((e) => e.type === "install.node-upgrade-started")
      .map((e) => e.data as { slot: number; node: string });
    expect(turns.map((t) => t.slot)).toEqual([0, 1000, 1001, 1002]);
    const steps = history.filter(
      (e) => e.type === "install.step-succeeded" && (e.data as { step: string }).step === "k3s-upgrade",
    );
    expect(steps).toHaveLength(4);
    const store = new EventStore({ js: js.nats.js, jsm: js.nats.jsm, catalogue });
    for (const t of turns) {
      const ops = (await store.load({ type: "nodeop", id: `one=${t.node}` })).events.map((e) => e.type);
      // Drained through node-ops for the upgrade, then uncordoned after it.
      expect(ops).toContain("nodeop.drained");
      await until(`${t.node} uncordoned`, async () =>
        (await store.load({ type: "nodeop", id: `one=${t.node}` })).events.at(-1)?.type ===
        "nodeop.uncordoned"
          ? true
          : undefined,
      );
    }
    await until("the cluster's spec names the new version", async () => {
      const c = (
        await provisioner.handler.read(
          { type: "cluster", id: "one" },
          { atLeastSequence: Number.MAX_SAFE_INTEGER },
        )
      ).state;
      return c.status !== "Absent" && c.spec.k3sVersion === to ? true : undefined;
    });
    expect(await clusterStatus("one")).toBe("Ready");
  });

  it("a scale down drains the surplus node through node-ops before its instance is terminated", async () => {
    const before = await installOf("ha");
    const surplus = Object.values(before.status === "Absent" ? {} : before.nodes).find(
      (n) => n.slot === 1001,
    );
    if (!surplus) throw new Error("no second agent");
    await bus.send({
      type: "cluster.scale",
      data: { clusterId: "ha", pool: "workers", count: 1 },
      meta: { actor: "alice" },
    });
    const store = new EventStore({ js: js.nats.js, jsm: js.nats.jsm, catalogue });
    const terminated = await until("the surplus slot terminated", async () =>
      (await store.load({ type: "cluster", id: "ha" })).events.find(
        (e) => e.type === "cluster.instance-terminated" && (e.data as { slot: number }).slot === 1001,
      ),
    );
    const ops = (await store.load({ type: "nodeop", id: `ha=${surplus.node}` })).events;
    // The provisioner asked, and node-ops drained the node before the instance went.
    expect(ops.find((e) => e.type === "nodeop.drain-requested")?.data).toMatchObject({ by: "provisioner" });
    const drained = ops.find((e) => e.type === "nodeop.drained");
    expect(Date.parse(drained?.time ?? "")).toBeLessThanOrEqual(Date.parse(terminated.time));
    await until("ha Ready after the scale down", async () =>
      (await clusterStatus("ha")) === "Ready" ? true : undefined,
    );
    // The terminated instance leaves no NotReady ghost behind: node-ops deletes its Node.
    await until("the surplus Node deleted", async () =>
      (await store.load({ type: "nodeop", id: `ha=${surplus.node}` })).events.some(
        (e) => e.type === "nodeop.node-deleted",
      )
        ? true
        : undefined,
    );
    await until("node-ops sees the Node gone", async () =>
      (await store.load({ type: "kube", id: "ha" })).events.some(
        (e) => e.type === "kube.node-removed" && (e.data as { node: string }).node === surplus.node,
      )
        ? true
        : undefined,
    );
    const after = await installOf("ha");
    expect(Object.keys(after.status === "Absent" ? {} : after.nodes)).toHaveLength(4);
  });

  it("deleting the cluster removes its secrets, once its instances are terminated", async () => {
    const store = new EventStore({ js: js.nats.js, jsm: js.nats.jsm, catalogue });
    await bus.send({ type: "cluster.delete", data: { clusterId: "throttled" }, meta: { actor: "alice" } });
    await until("secrets removed", async () =>
      (await installOf("throttled")).status === "Removed" ? true : undefined,
    );
    expect(sim.world.ssm.parameter("eu-west-1", "/cairn/throttled/token")).toBeUndefined();
    expect(sim.world.ssm.parameter("eu-west-1", "/cairn/throttled/kubeconfig")).toBeUndefined();
    expect(await clusterStatus("throttled")).toBe("Deleted");
    // Not before: while the delete ends the cluster's sessions, node-ops needs the kubeconfig.
    const deleted = (await store.load({ type: "cluster", id: "throttled" })).events.find(
      (e) => e.type === "cluster.deleted",
    );
    const removed = (await store.load({ type: "install", id: "throttled" })).events.find(
      (e) => e.type === "install.secrets-removed",
    );
    expect(removed?.sequence).toBeGreaterThan(deleted?.sequence ?? Number.POSITIVE_INFINITY);
  });

  it("no secret ever appears in an event, a log line or an SSM command's text", async () => {
    const secrets: string[] = [];
    for (const id of ["one", "ha", "crash", "restart", "hang"]) {
      const token = sim.world.ssm.parameter("eu-west-1", `/cairn/${id}/token`);
      const kubeconfig = sim.world.ssm.parameter("eu-west-1", `/cairn/${id}/kubeconfig`);
      if (token) secrets.push(token);
      // The kubeconfig's credential: its bearer token line.
      const bearer = kubeconfig?.match(/token:\s*(\S+)/)?.[1];
      if (bearer) secrets.push(bearer);
    }
    expect(secrets.length).toBeGreaterThanOrEqual(8);
    const info = await js.nats.jsm.streams.info(Streams.events);
    const everything: string[] = [];
    for (let seq = 1; seq <= info.state.last_seq; seq++) {
      const m = await js.nats.jsm.streams.getMessage(Streams.events, { seq });
      everything.push(new TextDecoder().decode(m?.data));
    }
    everything.push(...logLines, ...sentScripts.map((s) => JSON.stringify(s)));
    for (const secret of secrets) expect(everything.filter((t) => t.includes(secret))).toEqual([]);
  });
});
