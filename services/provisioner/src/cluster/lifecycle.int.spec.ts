/**
 * The cluster lifecycle on the simulated cloud, through the public command bus and the
 * real EC2 adapter (AWS SDK): create → Configuring, capacity fallback, scale up and down,
 * rollback after a scale, delete, a crash between RunInstances and its record, region
 * isolation, and garbage on a cluster's subject.
 */
import { EC2Client, TerminateInstancesCommand } from "@aws-sdk/client-ec2";
import {
  CommandBus,
  catalogue,
  DLQ_STREAM,
  dlqSubject,
  EventStore,
  eventSubject,
  exampleClusterCreate,
  Headers,
  Streams,
  startReactor,
} from "@cairn/events";
import { appendAsOwner, startJetStream, type TestJetStream } from "@cairn/events/testing";
import { SIM_CREDENTIALS, type Sim, startSim } from "@cairn/sim";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createEc2Compute } from "../adapters/ec2.ts";
import { type Provisioner, startProvisioner } from "../provisioner.ts";
import { computeOver } from "../testing/compute.ts";
import type { ClusterState } from "./decider.ts";

let js: TestJetStream;
let sim: Sim;
let provisioner: Provisioner;
let bus: CommandBus;
let launches = 0;
let crashAfterLaunch = new Set<string>();
const logged: string[] = [];
const logger = {
  info() {},
  warn: (o: object, m?: string) => void logged.push(`${m} ${JSON.stringify(o)}`),
  error: (o: object, m?: string) => void logged.push(`${m} ${JSON.stringify(o)}`),
};

beforeAll(async () => {
  js = await startJetStream();
  sim = await startSim({ seed: 5, timeScale: 100 });
  const ec2 = createEc2Compute({ endpoint: sim.url, credentials: SIM_CREDENTIALS });
  // The real adapter, with a switch to "crash" right after a launch reached EC2.
  const compute = computeOver(ec2, {
    launchBatch: async (req) => {
      const instances = await ec2.launchBatch(req);
      launches++;
      if (crashAfterLaunch.delete(`${req.clusterId}/${req.slot}`))
        throw new Error("provisioner crashed before recording the launch");
      return instances;
    },
  });
  provisioner = await startProvisioner({ nats: js.nats, compute, logger, pollMs: 20, maxPollMs: 100 });
  bus = new CommandBus({ js: js.nats.js, catalogue });
});
afterAll(async () => {
  await provisioner?.stop();
  await sim?.stop();
  await js?.dispose();
});

async function until<T>(what: string, f: () => Promise<T | undefined>, ms = 30_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v !== undefined) return v;
    if (Date.now() > end) {
      const s = await stateOf(what.split(" ")[0] ?? "");
      throw new Error(
        `timed out waiting for ${what}: ${logged.slice(-3).join(" | ")} ${JSON.stringify(s.status !== "Absent" ? { status: s.status, slots: Object.values(s.slots).map((x) => [x.slot, x.status, x.attempt]) } : s)}`,
      );
    }
    await new Promise((r) => setTimeout(r, 25));
  }
}
const stateOf = async (id: string): Promise<ClusterState> =>
  (await provisioner.handler.read({ type: "cluster", id }, { atLeastSequence: Number.MAX_SAFE_INTEGER }))
    .state;
const reaches = (id: string, status: string) =>
  until(`${id} ${status}`, async () => {
    const s = await stateOf(id);
    return s.status === status ? s : undefined;
  });
const liveInstances = (id: string, region = "eu-west-1") =>
  sim.world.ec2
    .instances(region)
    .filter((i) => i.tags["cairn:cluster"] === id && i.state !== "terminated" && i.state !== "shutting-down");
const create = (id: string, patch: Record<string, unknown> = {}) => {
  const c = exampleClusterCreate(id);
  return bus.send({ ...c, data: { ...c.data, ...patch } });
};

describe("cluster lifecycle on the sim", () => {
  it("create: every slot launched and running → Configuring, one instance per slot, tagged", async () => {
    await create("life-1");
    const s = await reaches("life-1", "Configuring");
    expect(s.status !== "Absent" && Object.keys(s.slots).length).toBe(3);
    const live = liveInstances("life-1");
    expect(live).toHaveLength(3);
    expect(live.every((i) => i.state === "running")).toBe(true);
    expect(live.map((i) => i.tags["cairn:pool"]).sort()).toEqual(["servers", "workers", "workers"]);
    expect(live.filter((i) => i.spot)).toHaveLength(2);
  });

  it("boot polls ask DescribeInstanceStatus, and each running record carries the address its launch answered", async () => {
    const statusCalls = () => sim.requests.list({ service: "ec2", action: "DescribeInstanceStatus" }).length;
    const before = statusCalls();
    await create("life-13");
    await reaches("life-13", "Configuring");
    // The looks at booting instances are DescribeInstanceStatus (an id and a state each),
    // not DescribeInstances (the whole instance).
    expect(statusCalls()).toBeGreaterThan(before);
    const history = await new EventStore({ js: js.nats.js, jsm: js.nats.jsm, catalogue }).load({
      type: "cluster",
      id: "life-13",
    });
    const launchedIp = new Map<number, string | undefined>();
    const runningIp = new Map<number, string | undefined>();
    for (const e of history.events) {
      if (e.type === "cluster.instance-launched") launchedIp.set(e.data.slot, e.data.privateIp);
      if (e.type === "cluster.instance-running") runningIp.set(e.data.slot, e.data.privateIp);
    }
    const simIps = liveInstances("life-13").map((i) => i.privateIpAddress);
    expect(runningIp.size).toBe(3);
    for (const [slot, ip] of runningIp) {
      expect(ip).toMatch(/^\d+\.\d+\.\d+\.\d+$/);
      expect(ip).toBe(launchedIp.get(slot));
    }
    expect([...runningIp.values()].sort()).toEqual(simIps.sort());
  });

  it("one RunInstances answer is recorded in one commit: every member's launch together, not the first alone", async () => {
    // Three servers and no pool: one batch, one call, and nothing else in flight, so the
    // first member's record used to go out alone and the other two in a second commit.
    await create("life-15", { servers: { count: 3, instanceType: "t3.medium" }, pools: [] });
    await reaches("life-15", "Configuring");
    const history = await new EventStore({ js: js.nats.js, jsm: js.nats.jsm, catalogue }).load({
      type: "cluster",
      id: "life-15",
    });
    const launched = history.events.filter((e) => e.type === "cluster.instance-launched");
    const slots = launched.map((e) => (e.type === "cluster.instance-launched" ? e.data.slot : -1));
    expect(slots.sort()).toEqual([0, 1, 2]);
    expect(new Set(launched.map((e) => e.sequence)).size).toBe(1);
    expect(liveInstances("life-15")).toHaveLength(3);
  });

  it("an instance that goes down before it runs is a lost launch, with EC2's reason; the slot launches again", async () => {
    await create("life-14");
    // Caught while it boots (300 ms at this time scale), then terminated straight on EC2.
    // Sim time stands still from the moment it is seen pending until the termination landed:
    // on a loaded machine the call could otherwise arrive after the boot (a running instance
    // terminated is another story, not this one).
    const victim = await until("life-14 a booting worker", async () => {
      const booting = liveInstances("life-14").find(
        (i) => i.tags["cairn:pool"] === "workers" && i.state === "pending",
      );
      if (booting) sim.clock.freezeAt(sim.clock.now());
      return booting;
    });
    const ec2 = new EC2Client({ region: "eu-west-1", endpoint: sim.url, credentials: SIM_CREDENTIALS });
    try {
      await ec2.send(new TerminateInstancesCommand({ InstanceIds: [victim.instanceId] }));
    } finally {
      sim.clock.resumeFrom(sim.clock.now());
    }
    await reaches("life-14", "Configuring");
    const events = (
      await new EventStore({ js: js.nats.js, jsm: js.nats.jsm, catalogue }).load({
        type: "cluster",
        id: "life-14",
      })
    ).events;
    const lost = events.find((e) => e.type === "cluster.instance-launch-failed");
    // The boot poll saw its state (DescribeInstanceStatus), then asked the whole instance
    // for why: the reason names EC2's state reason.
    expect(lost?.data).toMatchObject({
      code: "instance-lost",
      reason: expect.stringMatching(
        new RegExp(`^${victim.instanceId} went (shutting-down|terminated) before it ran \\(.+\\)$`),
      ),
    });
    expect(liveInstances("life-14")).toHaveLength(3);
  });

  it("3 HA servers and 5 nodes over two pools (spot and on-demand)", async () => {
    const c = exampleClusterCreate("life-8");
    await bus.send({
      ...c,
      data: {
        ...c.data,
        servers: { count: 3, instanceType: "t3.medium" },
        pools: [
          { name: "spot", capacityType: "spot", instanceTypes: ["t3.large"], count: 2 },
          { name: "steady", capacityType: "on-demand", instanceTypes: ["m5.large"], count: 3 },
        ],
      },
    });
    await reaches("life-8", "Configuring");
    const live = liveInstances("life-8");
    expect(live).toHaveLength(8);
    const byPool = (pool: string) => live.filter((i) => i.tags["cairn:pool"] === pool);
    expect(byPool("servers")).toHaveLength(3);
    expect(byPool("spot").every((i) => i.spot)).toBe(true);
    expect(byPool("steady").map((i) => [i.instanceType, i.spot])).toEqual([
      ["m5.large", false],
      ["m5.large", false],
      ["m5.large", false],
    ]);
  });

  it("a crash between RunInstances and its record makes no second instance", async () => {
    // The server alone (slot 0), the two workers in one call (slots 1000–1001); the
    // workers' call "crashes" after EC2 launched them.
    crashAfterLaunch = new Set(["life-2/1000"]);
    const before = launches;
    const runsBefore = sim.requests.list({ service: "ec2", action: "RunInstances" }).length;
    await create("life-2");
    await reaches("life-2", "Configuring");
    expect(liveInstances("life-2")).toHaveLength(3);
    // The batch's call was repeated after the "crash" (once for both of its slots) and
    // found the same instances by its token.
    expect(launches - before).toBe(3);
    const runs = sim.requests.list({ service: "ec2", action: "RunInstances" }).slice(runsBefore);
    const workers = liveInstances("life-2").filter((i) => i.tags["cairn:pool"] === "workers");
    expect(runs.map((r) => r.ids.length).sort()).toEqual([1, 2, 2]);
    const repeated = runs.filter((r) => r.ids.length === 2);
    expect(repeated[0]?.ids).toEqual(repeated[1]?.ids);
    expect([...(repeated[0]?.ids ?? [])].sort()).toEqual(workers.map((i) => i.instanceId).sort());
  });

  it("one RunInstances per batch of consecutive slots; AmiLaunchIndex says which slot each instance is", async () => {
    const runsBefore = sim.requests.list({ service: "ec2", action: "RunInstances" }).length;
    await create("life-20", {
      servers: { count: 3, instanceType: "t3.medium" },
      pools: [{ name: "workers", capacityType: "on-demand", instanceTypes: ["m5.large"], count: 20 }],
    });
    const s = await reaches("life-20", "Configuring");
    const runs = sim.requests.list({ service: "ec2", action: "RunInstances" }).slice(runsBefore);
    // 3 servers in one call, 20 workers in another: 2 calls where there were 23.
    expect(runs.map((r) => r.ids.length).sort((a, b) => a - b)).toEqual([3, 20]);
    const live = liveInstances("life-20");
    expect(live).toHaveLength(23);
    // Every slot's recorded instance is the one at its position in its call.
    for (const i of live) {
      const first = Number(i.tags["cairn:slot"]);
      const slot = first + i.amiLaunchIndex;
      expect(s.status !== "Absent" && s.slots[slot]?.instanceId).toBe(i.instanceId);
    }
    expect(new Set(live.map((i) => i.clientToken)).size).toBe(2);
  });

  it("a batch short of capacity launches what EC2 can; the rest fall back to the next type, together", async () => {
    sim.faults.add({
      kind: "insufficient-capacity",
      service: "ec2",
      match: { instanceType: "t3.large" },
      available: 1,
      count: 1,
    });
    const c = exampleClusterCreate("life-21");
    const pool = c.data.pools[0]!;
    await create("life-21", { pools: [{ ...pool, count: 4 }] });
    await reaches("life-21", "Configuring");
    const workers = liveInstances("life-21")
      .filter((i) => i.tags["cairn:pool"] === "workers")
      .map((i) => [Number(i.tags["cairn:slot"]) + i.amiLaunchIndex, i.instanceType])
      .sort();
    expect(workers).toEqual([
      [1000, "t3.large"],
      [1001, "t3a.large"],
      [1002, "t3a.large"],
      [1003, "t3a.large"],
    ]);
    const history = await new EventStore({ js: js.nats.js, jsm: js.nats.jsm, catalogue }).load({
      type: "cluster",
      id: "life-21",
    });
    const failed = history.events.filter((e) => e.type === "cluster.instance-launch-failed");
    expect(failed.map((e) => (e.data as { slot: number }).slot).sort()).toEqual([1001, 1002, 1003]);
    // The three failures are one commit, and their next placement one batch.
    const relaunch = history.events.filter(
      (e) => e.type === "cluster.instance-launch-requested" && (e.data as { attempt: number }).attempt === 2,
    );
    expect(relaunch.map((e) => (e.data as { batch?: unknown }).batch)).toEqual([
      { firstSlot: 1001, count: 3 },
      { firstSlot: 1001, count: 3 },
      { firstSlot: 1001, count: 3 },
    ]);
  });

  it("insufficient capacity for the first instance type falls back to the next", async () => {
    sim.faults.add({
      kind: "insufficient-capacity",
      service: "ec2",
      match: { instanceType: "t3.large" },
      count: 2,
    });
    await create("life-3");
    await reaches("life-3", "Configuring");
    const workers = liveInstances("life-3").filter((i) => i.tags["cairn:pool"] === "workers");
    expect(workers.map((i) => i.instanceType)).toEqual(["t3a.large", "t3a.large"]);
    // Each failed attempt is in the log with the adapter's code and the hint that names the fix.
    const history = await new EventStore({ js: js.nats.js, jsm: js.nats.jsm, catalogue }).load({
      type: "cluster",
      id: "life-3",
    });
    const failures = history.events.filter((e) => e.type === "cluster.instance-launch-failed");
    expect(failures).toHaveLength(2);
    for (const f of failures)
      expect(f.data).toMatchObject({
        code: "InsufficientInstanceCapacity",
        capacity: true,
        remediation: expect.stringMatching(/\S/),
      });
  });

  it("scale up and down, then roll back to the first version", async () => {
    await create("life-4");
    await reaches("life-4", "Configuring");
    await bus.send({ type: "cluster.scale", data: { clusterId: "life-4", pool: "workers", count: 4 } });
    await until("life-4 with 4 workers", async () =>
      liveInstances("life-4").length === 5 ? true : undefined,
    );
    await reaches("life-4", "Configuring");
    await bus.send({ type: "cluster.scale", data: { clusterId: "life-4", pool: "workers", count: 1 } });
    await until("life-4 with 1 worker", async () =>
      liveInstances("life-4").length === 2 ? true : undefined,
    );
    const s = await reaches("life-4", "Configuring");
    expect(
      s.status !== "Absent" &&
        Object.keys(s.slots)
          .map(Number)
          .sort((a, b) => a - b),
    ).toEqual([0, 1000]);
    await bus.send({ type: "cluster.rollback", data: { clusterId: "life-4", toVersion: 1 } });
    await until("life-4 with 2 workers again", async () =>
      liveInstances("life-4").length === 3 ? true : undefined,
    );
    const back = await reaches("life-4", "Configuring");
    expect(back.status !== "Absent" && back.spec.pools[0]?.count).toBe(2);
  });

  it("a scale-up that runs out of capacity is undone: what it launched is terminated, the spec is back", async () => {
    await create("life-9");
    await reaches("life-9", "Configuring");
    for (const instanceType of ["t3.large", "t3a.large"]) {
      sim.faults.add({ kind: "insufficient-capacity", service: "ec2", match: { instanceType }, count: 100 });
    }
    try {
      await bus.send({ type: "cluster.scale", data: { clusterId: "life-9", pool: "workers", count: 4 } });
      await until("the undo", async () => {
        const s = await stateOf("life-9");
        return s.status === "Configuring" && s.spec.pools[0]?.count === 2 ? s : undefined;
      });
    } finally {
      sim.faults.clear();
    }
    expect(liveInstances("life-9")).toHaveLength(3);
  });

  it("a Failed cluster comes back with cluster.retry once capacity returns", async () => {
    sim.faults.add({
      kind: "insufficient-capacity",
      service: "ec2",
      match: { instanceType: "t3.large" },
      count: 100,
    });
    sim.faults.add({
      kind: "insufficient-capacity",
      service: "ec2",
      match: { instanceType: "t3a.large" },
      count: 100,
    });
    try {
      await create("life-10");
      await reaches("life-10", "Failed");
    } finally {
      sim.faults.clear();
    }
    await bus.send({ type: "cluster.retry", data: { clusterId: "life-10" } });
    await reaches("life-10", "Configuring");
    expect(liveInstances("life-10")).toHaveLength(3);
  });

  it("at rest, an instance tagged for the cluster that no slot owns is terminated (reconcile after a crash)", async () => {
    await create("life-11");
    // A stray: tagged as slot 1000's earlier attempt, as a crash mid-relaunch would leave it.
    const stray = await createEc2Compute({ endpoint: sim.url, credentials: SIM_CREDENTIALS }).launch({
      region: "eu-west-1",
      clusterId: "life-11",
      pool: "workers",
      slot: 1000,
      attempt: 99,
      role: "agent",
      instanceType: "t3.large",
      capacityType: "on-demand",
      imageId: "ami-0ca1a00000000c0de",
      clientToken: "stray-life-11",
    });
    await reaches("life-11", "Configuring");
    await until("the stray terminated", async () =>
      liveInstances("life-11").some((i) => i.instanceId === stray.instanceId) ? undefined : true,
    );
    expect(liveInstances("life-11")).toHaveLength(3);
  });

  it("an instance terminated behind Cairn's back: once its node goes NotReady, the slot is relaunched", async () => {
    await create("life-12");
    const configured = await reaches("life-12", "Configuring");
    const victim = Object.values(configured.status !== "Absent" ? configured.slots : {}).find(
      (s) => s.pool === "workers",
    )!;
    // Straight to EC2, as someone with the console would.
    const ec2 = new EC2Client({ region: "eu-west-1", endpoint: sim.url, credentials: SIM_CREDENTIALS });
    await ec2.send(new TerminateInstancesCommand({ InstanceIds: [victim.instanceId!] }));
    // What node-ops records once the node's kubelet has been silent for the grace period.
    const store = new EventStore({ js: js.nats.js, jsm: js.nats.jsm, catalogue });
    await appendAsOwner(store, { type: "kube", id: "life-12" }, "kube.node-not-ready", {
      node: victim.instanceId!,
      reason: "NodeStatusUnknown: Kubelet stopped posting node status.",
    });
    const relaunched = await until("life-12 slot relaunched", async () => {
      const s = await stateOf("life-12");
      const slot = s.status !== "Absent" ? s.slots[victim.slot] : undefined;
      return slot?.status === "running" && slot.instanceId !== victim.instanceId ? slot : undefined;
    });
    expect(relaunched.attempt).toBeGreaterThan(victim.attempt);
    const events = (await store.load({ type: "cluster", id: "life-12" })).events;
    const replaced = events.find((e) => e.type === "cluster.node-replacement-requested");
    expect(replaced?.data).toMatchObject({
      slot: victim.slot,
      instanceId: victim.instanceId,
      reason: expect.stringContaining("outside Cairn"),
    });
    expect(liveInstances("life-12")).toHaveLength(3);
    // A NotReady node on a live instance is not a lost instance: nothing is replaced.
    const alive = liveInstances("life-12").find((i) => i.instanceId !== relaunched.instanceId)!;
    await appendAsOwner(store, { type: "kube", id: "life-12" }, "kube.node-not-ready", {
      node: alive.instanceId,
      reason: "KubeletNotReady: PLEG is not healthy",
    });
    await new Promise((r) => setTimeout(r, 500));
    const after = (await store.load({ type: "cluster", id: "life-12" })).events;
    expect(after.filter((e) => e.type === "cluster.node-replacement-requested")).toHaveLength(1);
  });

  it("delete terminates every instance and ends Deleted; deleting twice is one delete", async () => {
    await create("life-5");
    await reaches("life-5", "Configuring");
    await bus.send({ type: "cluster.delete", data: { clusterId: "life-5" } });
    await bus.send({ type: "cluster.delete", data: { clusterId: "life-5" } });
    await reaches("life-5", "Deleted");
    expect(liveInstances("life-5")).toHaveLength(0);
    expect(
      sim.world.ec2.instances("eu-west-1").filter((i) => i.tags["cairn:cluster"] === "life-5"),
    ).toHaveLength(3);
  });

  it("an invalid AMI fails the cluster with the hint that names the fix", async () => {
    await create("life-6", { ami: "ami-00000000" });
    await reaches("life-6", "Failed");
    const history = await new EventStore({ js: js.nats.js, jsm: js.nats.jsm, catalogue }).load({
      type: "cluster",
      id: "life-6",
    });
    const failed = history.events.find((e) => e.type === "cluster.failed");
    expect(failed?.data).toMatchObject({
      reason: expect.stringContaining("ami-00000000"),
      remediation: expect.stringMatching(/AMI/),
    });
  });

  it("a cluster in us-east-1 sends every EC2 request to us-east-1", async () => {
    sim.requests.clear();
    await create("life-7", { region: "us-east-1" });
    await reaches("life-7", "Configuring");
    expect(liveInstances("life-7", "us-east-1")).toHaveLength(3);
    const regions = new Set(sim.requests.list({ service: "ec2" }).map((r) => r.region));
    expect(regions).toEqual(new Set(["us-east-1"]));
  });
});

describe("garbage on a cluster's subject", () => {
  /**
   * Whether the durable `name` has settled every message up to `seq` for good (a dead
   * letter's message is terminated: it never comes back).
   */
  const settledUpTo = async (name: string, seq: number) => {
    const info = await js.nats.jsm.consumers.info(Streams.events, name);
    return info.ack_floor.stream_seq >= seq && info.num_ack_pending === 0 ? true : undefined;
  };

  it("blocks nothing: later commands are decided, the reactor carries on, and each message is one dead letter with its reason", async () => {
    await create("life-12");
    await reaches("life-12", "Configuring");
    const subject = eventSubject({ type: "cluster", id: "life-12" });
    const text = await js.nats.js.publish(subject, "this is not a commit");
    const json = await js.nats.js.publish(subject, JSON.stringify({ commitId: "x", hello: "world" }));
    // A second reader of the cluster events meets the same two messages.
    const other = await startReactor({
      nats: js.nats,
      name: "test-another-cluster-reader",
      aggregate: "cluster",
      react: async () => {},
    });
    try {
      // The cluster is decided on and carried out as before: a scale up, then a delete.
      await bus.send({ type: "cluster.scale", data: { clusterId: "life-12", pool: "workers", count: 3 } });
      await until("life-12 with 3 workers", async () =>
        liveInstances("life-12").length === 4 ? true : undefined,
      );
      await reaches("life-12", "Configuring");
      await bus.send({ type: "cluster.delete", data: { clusterId: "life-12" } });
      await reaches("life-12", "Deleted");
      expect(liveInstances("life-12")).toHaveLength(0);
      await until("both readers past the garbage", async () =>
        (await settledUpTo("provisioner-reactor", json.seq)) &&
        (await settledUpTo("test-another-cluster-reader", json.seq))
          ? true
          : undefined,
      );
    } finally {
      await other.stop();
    }
    // Each message is in the DLQ once, with the reason, though two consumers met it.
    const dlq = await js.nats.jsm.streams.info(DLQ_STREAM);
    const letters = [];
    for (let seq = dlq.state.first_seq; seq <= dlq.state.last_seq && dlq.state.messages > 0; seq++) {
      const m = await js.nats.jsm.streams.getMessage(DLQ_STREAM, { seq });
      if (m?.subject === dlqSubject(Streams.events) && m.header.get(Headers.dlqSubject) === subject)
        letters.push({
          sequence: Number(m.header.get(Headers.dlqSequence)),
          reason: m.header.get(Headers.dlqReason),
          body: m.string(),
        });
    }
    expect(letters.map((l) => l.sequence).sort((a, b) => a - b)).toEqual([text.seq, json.seq]);
    expect(letters.find((l) => l.sequence === text.seq)).toMatchObject({
      reason: expect.stringMatching(/not JSON/),
      body: "this is not a commit",
    });
    expect(letters.find((l) => l.sequence === json.seq)?.reason).toMatch(/not a commit/);
  });
});

describe("two replicas", () => {
  it("share the consumers and decide on fresh state: create, scale up and down, delete, one instance per slot", async () => {
    // A second provisioner process: its own command handler (and cache), the same durables.
    const second = await startProvisioner({
      nats: js.nats,
      compute: createEc2Compute({ endpoint: sim.url, credentials: SIM_CREDENTIALS }),
      logger,
      pollMs: 20,
      maxPollMs: 100,
    });
    try {
      await create("life-21");
      await reaches("life-21", "Configuring");
      await bus.send({ type: "cluster.scale", data: { clusterId: "life-21", pool: "workers", count: 4 } });
      await until("life-13 with 4 workers", async () =>
        liveInstances("life-21").length === 5 ? true : undefined,
      );
      await reaches("life-21", "Configuring");
      await bus.send({ type: "cluster.scale", data: { clusterId: "life-21", pool: "workers", count: 1 } });
      await until("life-13 with 1 worker", async () =>
        liveInstances("life-21").length === 2 ? true : undefined,
      );
      await reaches("life-21", "Configuring");
      await bus.send({ type: "cluster.delete", data: { clusterId: "life-21" } });
      await reaches("life-21", "Deleted");
      expect(liveInstances("life-21")).toHaveLength(0);
      // Five slots were ever wanted: five instances were ever launched, none twice.
      const ever = sim.world.ec2.instances("eu-west-1").filter((i) => i.tags["cairn:cluster"] === "life-21");
      expect(ever).toHaveLength(5);
      // Both processes did part of the work.
      expect(second.handler.stats.handled).toBeGreaterThan(0);
      expect(provisioner.handler.stats.handled).toBeGreaterThan(0);
    } finally {
      await second.stop();
    }
  });
});
