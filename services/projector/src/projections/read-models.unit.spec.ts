/**
 * Given-when-then over recorded event sequences: the installs, nodes, nodeops and
 * step-duration reducers, folded through `foldMore` exactly as the live projection and
 * the replay fold them.
 */
import { type AggregateRef, catalogue, nodeAggregateId, type RawEventEnvelope } from "@cairn/events";
import { describe, expect, it } from "vitest";
import { emptyMoreRows, foldMore, type MoreRows, type SequencedEvent } from "../apply-events.ts";
import { everyClusterEventCommits, everyNodeEventCommits } from "../testing/every-event.ts";
import { anEnvelope } from "../testing/fixtures.ts";
import { applyClusterEvent, type ClusterRow } from "./clusters.ts";
import { applyInstallEvent, installProgress, MAX_STEPS } from "./installs.ts";
import { applyNodeOpEvent } from "./nodeops.ts";
import { applyNodeEvent } from "./nodes.ts";
import {
  addSample,
  DEFAULT_DURATIONS_MS,
  etaView,
  meansOf,
  remainingMs,
  sampleOf,
} from "./step-durations.ts";

type E = { type: string; data: unknown };

/** Envelopes with positions per aggregate and times one second apart (from `start`). */
function recorded(commits: { aggregate: AggregateRef; events: E[] }[], start = 0): SequencedEvent[] {
  const positions = new Map<string, number>();
  const out: SequencedEvent[] = [];
  let t = start;
  commits.forEach((c, i) => {
    for (const e of c.events) {
      const key = `${c.aggregate.type}/${c.aggregate.id}`;
      const p = (positions.get(key) ?? 0) + 1;
      positions.set(key, p);
      const time = new Date(Date.UTC(2026, 10, 22, 8, 0, 0) + t++ * 1000).toISOString();
      out.push({ event: anEnvelope(c.aggregate, p, e, { time }), sequence: i + 1 });
    }
  });
  return out;
}

const given = (commits: { aggregate: AggregateRef; events: E[] }[]) => {
  const rows = emptyMoreRows();
  foldMore(recorded(commits), rows);
  return rows;
};

const inst = (id: string, ...events: E[]) => ({ aggregate: { type: "install", id } as AggregateRef, events });
const planned = (servers = 1): E => ({
  type: "install.planned",
  data: { region: "eu-west-1", k3sVersion: "v1.31.4+k3s1", prebuiltAmi: false, servers, pools: [] },
});
const added = (slot: number, instanceId: string, role: "server" | "agent" = "agent"): E => ({
  type: "install.node-added",
  data: {
    slot,
    instanceId,
    node: instanceId,
    role,
    pool: "workers",
    capacityType: "spot",
    joinDeadline: "2026-11-22T09:00:00.000Z",
  },
});

describe("the recorded fixtures", () => {
  it("are valid events of the catalogue, and hold every install, kube and nodeop event type but the rejections", () => {
    const events = recorded([...everyClusterEventCommits("c1"), ...everyNodeEventCommits("c1")]);
    for (const { event } of events) expect(() => catalogue.parseEvent(event), event.type).not.toThrow();
    const seen = new Set<string>(events.map((e) => e.event.type));
    const wanted = [...catalogue.events.keys()].filter(
      (t) => /^(install|kube|nodeop)\./.test(t) && !t.endsWith(".rejected"),
    );
    expect(wanted.filter((t) => !seen.has(t))).toEqual([]);
  });
});

describe("installs", () => {
  it("given planned, when nodes are added, a step sent and succeeded, then the step record carries the SSM command id, attempt and duration", () => {
    const rows = given([
      inst("c1", planned(), added(0, "i-s", "server")),
      inst(
        "c1",
        {
          type: "install.step-requested",
          data: {
            step: "k3s-server-init",
            slot: 0,
            instanceId: "i-s",
            node: "i-s",
            attempt: 1,
            number: 1,
            of: 1,
          },
        },
        {
          type: "install.step-sent",
          data: {
            step: "k3s-server-init",
            slot: 0,
            instanceId: "i-s",
            attempt: 1,
            commandId: "ssm-1",
            sentAt: "2026-11-22T08:00:03.000Z",
            deadline: "2026-11-22T08:10:00.000Z",
          },
        },
      ),
    ]);
    expect(rows.installs.get("c1")?.nodes["0"]).toMatchObject({
      state: "waiting",
      step: { name: "k3s-server-init", attempt: 1, number: 1, of: 1, status: "sent" },
    });
    const after = applyInstallEvent(
      rows.installs.get("c1"),
      anEnvelope({ type: "install", id: "c1" }, 5, {
        type: "install.step-succeeded",
        data: {
          step: "k3s-server-init",
          slot: 0,
          instanceId: "i-s",
          attempt: 1,
          commandId: "ssm-1",
          durationMs: 4200,
          outputTail: "ok",
        },
      }),
      9,
    );
    expect(after?.steps).toEqual([
      expect.objectContaining({
        step: "k3s-server-init",
        slot: 0,
        node: "i-s",
        attempt: 1,
        commandId: "ssm-1",
        status: "Success",
        sentAt: "2026-11-22T08:00:03.000Z",
        durationMs: 4200,
        outputTail: "ok",
      }),
    ]);
    expect(after?.nodes["0"]).toMatchObject({ state: "joined", step: null });
    expect(after?.lastSequence).toBe(9);
  });

  it("given the whole recorded life, then it ends Removed, with the steps, the upgrade and the failure kept", () => {
    const row = given(everyNodeEventCommits("c1")).installs.get("c1");
    expect(row).toMatchObject({
      clusterId: "c1",
      state: "Removed",
      k3sVersion: "v1.32.0+k3s1",
      upgrade: { state: "done", done: 3, to: "v1.32.0+k3s1" },
      failure: { reason: "no server left", remediation: "retry the cluster" },
      failing: [],
    });
    // Slot 1001 was removed; slot 1000 failed.
    expect(Object.keys(row?.nodes ?? {}).sort()).toEqual(["0", "1000"]);
    expect(row?.nodes["1000"]).toMatchObject({ state: "failed", reason: "deadline passed" });
    // Both attempts of the agent join are there: the timed-out one and the retry.
    expect(row?.steps.filter((s) => s.slot === 1000 && s.step === "k3s-agent-join")).toEqual([
      expect.objectContaining({ attempt: 1, status: "TimedOut", commandId: "cmd-c1-2", willRetry: true }),
      expect.objectContaining({ attempt: 2, status: "Success", commandId: "cmd-c1-3", durationMs: 20_000 }),
    ]);
  });

  it("given Ready, when a check fails and the cluster is degraded, then Recovering, then Ready with nothing failing", () => {
    const life = everyNodeEventCommits("c1");
    const upTo = (type: string) =>
      life.slice(0, life.findIndex((c) => c.events.some((e) => e.type === type)) + 1);
    expect(given(upTo("install.completed")).installs.get("c1")).toMatchObject({
      state: "Ready",
      awaiting: null,
    });
    const degraded = given(upTo("install.degraded")).installs.get("c1");
    expect(degraded).toMatchObject({
      state: "Degraded",
      failing: [{ check: "node-ready", node: "i-c1-a", evidence: "NotReady for 2m" }],
    });
    expect(given(upTo("install.remediation-requested")).installs.get("c1")?.state).toBe("Recovering");
    expect(given(upTo("install.recovered")).installs.get("c1")).toMatchObject({
      state: "Ready",
      failing: [],
    });
  });

  it("events before install.planned make no row; an event at or below the version changes nothing", () => {
    expect(given([inst("c1", added(0, "i-s"))]).installs.size).toBe(0);
    const row = given([inst("c1", planned())]).installs.get("c1");
    const again = applyInstallEvent(row, anEnvelope({ type: "install", id: "c1" }, 1, planned(3)), 2);
    expect(again).toBe(row);
  });

  it("a rejection keeps the install's trace (a refused install.upgrade did nothing)", () => {
    const tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    const row = applyInstallEvent(
      undefined,
      anEnvelope({ type: "install", id: "c1" }, 1, planned(), { traceparent: tp }),
      1,
    );
    const refused = anEnvelope(
      { type: "install", id: "c1" },
      2,
      {
        type: "install.rejected",
        data: { commandId: "u1", commandType: "install.upgrade", code: "invalid", reason: "no" },
      },
      { traceparent: "00-11111111111111111111111111111111-b7ad6b7169203331-01" },
    );
    expect(applyInstallEvent(row, refused, 2)?.traceId).toBe("0af7651916cd43dd8448eb211c80319c");
  });

  it("keeps the last MAX_STEPS step records", () => {
    let row = applyInstallEvent(undefined, anEnvelope({ type: "install", id: "c1" }, 1, planned()), 1);
    for (let n = 1; n <= MAX_STEPS + 5; n++) {
      row = applyInstallEvent(
        row,
        anEnvelope({ type: "install", id: "c1" }, n + 1, {
          type: "install.step-requested",
          data: { step: "k3s-check", slot: 0, instanceId: "i-s", node: "i-s", attempt: n, number: 1, of: 1 },
        }),
        n + 1,
      );
    }
    expect(row?.steps).toHaveLength(MAX_STEPS);
    expect(row?.steps[0]?.attempt).toBe(6);
  });

  it("progress: nodes Ready of nodes added (or of the instances the provisioner has, when more)", () => {
    const rows = given(everyNodeEventCommits("c1").slice(0, 20));
    const row = rows.installs.get("c1")!;
    expect(installProgress(row)).toEqual({
      done: 3,
      joined: 3,
      total: 3,
      percent: 100,
      step: "3 of 3 nodes ready, 3 joined",
    });
  });
});

describe("nodes", () => {
  it("given the cluster's and the install's facts, then one row per node with its instance, K3s state and Kubernetes facts", () => {
    const rows = given([
      ...everyClusterEventCommits("c1").slice(0, 7),
      ...everyNodeEventCommits("c1").slice(0, 19),
    ]);
    const a = rows.nodes.get(nodeAggregateId("c1", "i-c1-a"));
    expect(a).toMatchObject({
      clusterId: "c1",
      node: "i-c1-a",
      slot: 1000,
      pool: "workers",
      role: "agent",
      capacityType: "spot",
      instanceId: "i-c1-a",
      instance: "running",
      k3s: "ready",
      kube: { registered: true, ready: true, labels: { "cairn.dev/pool": "workers" } },
      cordon: null,
    });
    expect(a?.times.launchedAt).not.toBeNull();
    expect(a?.times.readyAt).not.toBeNull();
  });

  it("given a cordon by alice, then the row says who cordoned it and why; after the uncordon, nobody", () => {
    const life = everyNodeEventCommits("c1");
    const cordoned = life.findIndex((c) => c.events.some((e) => e.type === "nodeop.cordoned"));
    const a = nodeAggregateId("c1", "i-c1-a");
    expect(given(life.slice(0, cordoned + 1)).nodes.get(a)?.cordon).toMatchObject({
      by: "alice",
      reason: "maintenance",
    });
    const uncordoned = life.findIndex((c) => c.events.some((e) => e.type === "nodeop.uncordoned"));
    expect(given(life.slice(0, uncordoned + 1)).nodes.get(a)?.cordon).toBeNull();
  });

  it("given the whole life, then b is removed from K3s and the API, and a failed", () => {
    const rows = given(everyNodeEventCommits("c1"));
    expect(rows.nodes.get(nodeAggregateId("c1", "i-c1-b"))).toMatchObject({
      k3s: "removed",
      kube: { registered: false },
      replacement: expect.stringMatching(/spot interruption/),
    });
    expect(rows.nodes.get(nodeAggregateId("c1", "i-c1-a"))).toMatchObject({
      k3s: "failed",
      reason: "deadline passed",
    });
  });

  it("given a running, ready node whose instance a scale-down terminates, when its Node goes, then it is gone with when and why, neither running nor ready", () => {
    const rows = given([
      ...everyClusterEventCommits("c1").slice(0, 7),
      ...everyNodeEventCommits("c1").slice(0, 19),
      {
        aggregate: { type: "cluster", id: "c1" },
        events: [
          { type: "cluster.instance-termination-requested", data: { slot: 1000, instanceId: "i-c1-a" } },
        ],
      },
      {
        aggregate: { type: "kube", id: "c1" },
        events: [{ type: "kube.node-removed", data: { node: "i-c1-a" } }],
      },
    ]);
    const a = rows.nodes.get(nodeAggregateId("c1", "i-c1-a"))!;
    expect(a).toMatchObject({
      instance: "terminated",
      gone: { reason: "its instance was terminated by the provisioner (scale down)" },
      kube: { registered: false, ready: null },
    });
    expect(a.gone?.at).toBe(a.updatedAt);
  });

  it("given a Deleted cluster, then its nodes are gone (the cluster was deleted): not running, not ready", () => {
    const rows = given([...everyNodeEventCommits("c1").slice(0, 19), ...everyClusterEventCommits("c1")]);
    expect(rows.nodes.get(nodeAggregateId("c1", "i-c1-a"))).toMatchObject({
      instance: "terminated",
      k3s: "removed",
      gone: { reason: "the cluster was deleted" },
      kube: { ready: null, registered: false },
    });
  });

  it("given a Deleted cluster's gone node, when late events say it is Ready (node-ops' last watch event, an install step), then it is still gone: not ready, not registered, not in K3s", () => {
    const rows = given([
      ...everyNodeEventCommits("c1").slice(0, 19),
      ...everyClusterEventCommits("c1"),
      {
        aggregate: { type: "kube", id: "c1" },
        events: [
          { type: "kube.node-registered", data: { node: "i-c1-a", role: "agent", labels: {}, taints: [] } },
          { type: "kube.node-ready", data: { node: "i-c1-a" } },
        ],
      },
      {
        aggregate: { type: "install", id: "c1" },
        events: [{ type: "install.node-ready", data: { node: "i-c1-a" } }],
      },
    ]);
    const a = rows.nodes.get(nodeAggregateId("c1", "i-c1-a"))!;
    expect(a).toMatchObject({
      instance: "terminated",
      k3s: "removed",
      gone: { reason: "the cluster was deleted" },
      kube: { ready: null, registered: false },
      lastEventType: "install.node-ready",
    });
  });

  it("a node not retired whose Node is removed is not gone (it may register again)", () => {
    const rows = given([
      ...everyClusterEventCommits("c1").slice(0, 7),
      ...everyNodeEventCommits("c1").slice(0, 19),
      {
        aggregate: { type: "kube", id: "c1" },
        events: [{ type: "kube.node-removed", data: { node: "i-c1-a" } }],
      },
    ]);
    expect(rows.nodes.get(nodeAggregateId("c1", "i-c1-a"))).toMatchObject({
      instance: "running",
      gone: null,
      kube: { registered: false },
    });
  });

  it("events about no node leave the rows alone", () => {
    const e = anEnvelope({ type: "kube", id: "c1" }, 1, { type: "kube.api-reachable", data: {} });
    expect(applyNodeEvent(undefined, e, 1)).toBeUndefined();
  });
});

describe("node operations", () => {
  it("given a drain held by the cluster's limit, then waiting (with the nodes it waits for), then in progress, then failed with what blocks it", () => {
    const life = everyNodeEventCommits("c1");
    const b = nodeAggregateId("c1", "i-c1-b");
    const at = (type: string) =>
      given(life.slice(0, life.findIndex((c) => c.events.some((e) => e.type === type)) + 1)).nodeops.get(b);
    expect(at("nodeop.waiting")).toMatchObject({
      operation: "drain",
      state: "waiting",
      by: "bob",
      reason: "rebalance",
      waiting: { limit: 1, waitingFor: ["i-c1-a"] },
    });
    expect(at("nodeop.drain-progress")).toMatchObject({
      state: "in progress",
      waiting: null,
      cordoned: true,
      drain: { evicted: 3, remaining: 2, blockedBy: ["web-pdb"] },
    });
    expect(at("nodeop.drain-failed")).toMatchObject({
      state: "failed",
      blocking: [{ pod: "web-1", pdb: "web-pdb" }],
      failure: { reason: "timed out", remediation: "raise the PDB's budget" },
      cordoned: true,
    });
    expect(at("nodeop.drained")).toMatchObject({ operation: "drain", state: "done", drain: { evicted: 5 } });
  });

  it("given the whole life, then each node's last operation", () => {
    const rows = given(everyNodeEventCommits("c1"));
    expect(rows.nodeops.get(nodeAggregateId("c1", "i-c1-a"))).toMatchObject({
      operation: "taint",
      state: "failed",
      failure: { reason: "conflict" },
      operations: 4,
    });
    expect(rows.nodeops.get(nodeAggregateId("c1", "i-c1-s"))).toMatchObject({
      operation: "cordon",
      state: "failed",
      by: "carol",
    });
    expect(rows.nodeops.get(nodeAggregateId("c1", "i-c1-b"))).toMatchObject({
      deleted: true,
      interruption: { noticeId: "notice-c1" },
    });
  });

  it("a rejection names no node: no row", () => {
    const e = anEnvelope({ type: "nodeop", id: "c1=x" }, 1, {
      type: "nodeop.rejected",
      data: { commandId: "x", commandType: "node.cordon", code: "conflict", reason: "busy" },
    });
    expect(applyNodeOpEvent(undefined, e, 1)).toBeUndefined();
  });
});

describe("step durations and the ETA", () => {
  it("learns an exponentially weighted mean per kind: the first sample, then mean + 0.3 × (sample − mean)", () => {
    const r1 = addSample(undefined, { kind: "k3s-agent-join", ms: 10_000 }, "t1", 1);
    const r2 = addSample(r1, { kind: "k3s-agent-join", ms: 20_000 }, "t2", 2);
    expect(r1).toMatchObject({ samples: 1, meanMs: 10_000 });
    expect(r2).toMatchObject({ samples: 2, meanMs: 13_000, lastMs: 20_000, updatedAt: "t2" });
  });

  it("given a recorded life, then it learnt boot, SSM registration, each K3s step and node-ready from event times and durations", () => {
    const rows = given([...everyClusterEventCommits("c1"), ...everyNodeEventCommits("c1")]);
    const d = Object.fromEntries([...rows.durations.values()].map((r) => [r.kind, r]));
    expect(d["k3s-server-init"]).toMatchObject({ samples: 1, meanMs: 40_000 });
    // Two agents: 20 s, then 25 s → 20 + 0.3 × 5 = 21.5 s.
    expect(d["k3s-agent-join"]).toMatchObject({ samples: 2, meanMs: 21_500 });
    expect(d["k3s-upgrade"]).toMatchObject({ samples: 1, meanMs: 30_000 });
    // One second per recorded event: launched → running of slot 1000 is one event later.
    expect(d["instance-boot"]?.samples).toBe(2);
    expect(d["ssm-registration"]?.samples).toBe(3);
    expect(d["node-ready"]?.samples).toBe(3);
  });

  it("samples a milestone once: a second node-ready is no new sample", () => {
    const rows = given(everyNodeEventCommits("c1"));
    const node = rows.nodes.get(nodeAggregateId("c1", "i-c1-a"));
    const e = anEnvelope({ type: "install", id: "c1" }, 999, {
      type: "install.node-ready",
      data: { slot: 1000, node: "i-c1-a" },
    });
    expect(sampleOf(e, node)).toBeUndefined();
  });

  const building = (): ClusterRow => {
    let row: ClusterRow | undefined;
    for (const { event, sequence } of recorded(everyClusterEventCommits("c1").slice(0, 4)))
      row = applyClusterEvent(row, event, sequence);
    return row!;
  };

  it("ETA of a Provisioning cluster: the longest node path, joins after the server's init", () => {
    const cluster = building();
    expect(cluster.state).toBe("Provisioning");
    const m = meansOf([]);
    expect(m).toEqual(DEFAULT_DURATIONS_MS);
    // Nothing installed yet, a server slot not planned: init (boot + SSM + init), then a join and Ready.
    const init = m["instance-boot"] + m["ssm-registration"] + m["k3s-server-init"];
    expect(remainingMs(cluster, undefined, m)).toBe(init + m["k3s-agent-join"] + m["node-ready"]);
  });

  it("ETA with three servers: the first initialises, the other two join after it", () => {
    const base = building();
    const cluster: ClusterRow = {
      ...base,
      spec: { ...base.spec, servers: { ...base.spec.servers, count: 3 }, pools: [] },
      progress: { operation: "provisioning", nodes: { 0: "launching", 1: "launching", 2: "launching" } },
    };
    const m = meansOf([]);
    const init = m["instance-boot"] + m["ssm-registration"] + m["k3s-server-init"];
    expect(remainingMs(cluster, undefined, m)).toBe(init + m["k3s-server-join"] + m["node-ready"]);
  });

  it("ETA shrinks as phases complete, and is absent once the cluster rests", () => {
    const rows: MoreRows = emptyMoreRows();
    foldMore(recorded(everyNodeEventCommits("c1").slice(0, 8)), rows); // init succeeded
    const cluster = building();
    const m = meansOf([]);
    const before = remainingMs(cluster, undefined, m)!;
    const after = remainingMs(cluster, rows.installs.get("c1"), m)!;
    expect(after).toBeLessThan(before);
    // The server is joined; agents wait only for their own SSM registration and join.
    expect(after).toBe(m["ssm-registration"] + m["k3s-agent-join"] + m["node-ready"]);
    const ready = { ...cluster, state: "Ready" as const };
    expect(remainingMs(ready, undefined, m)).toBeUndefined();
    expect(etaView(ready, undefined, [], new Date())).toEqual({ eta: null, etaSeconds: null });
  });

  it("etaView: eta is the last event's time plus the remaining path; etaSeconds counts to it from now", () => {
    const cluster = building();
    const ms = remainingMs(cluster, undefined, meansOf([]))!;
    const eta = Date.parse(cluster.updatedAt) + ms;
    const now = new Date(eta - 90_500);
    expect(etaView(cluster, undefined, [], now)).toEqual({
      eta: new Date(eta).toISOString(),
      etaSeconds: 91,
    });
    expect(etaView(cluster, undefined, [], new Date(eta + 5_000)).etaSeconds).toBe(0);
  });
});

describe("foldMore is the same fold whatever the batch boundaries (live batches vs a replay)", () => {
  it("folding in one go or event by event gives equal rows", () => {
    const events = recorded([...everyClusterEventCommits("c1"), ...everyNodeEventCommits("c1")]);
    const whole = emptyMoreRows();
    foldMore(events, whole);
    const pieces = emptyMoreRows();
    for (const e of events) foldMore([e], pieces);
    const plain = (r: MoreRows) =>
      JSON.parse(
        JSON.stringify(Object.fromEntries(Object.entries(r).map(([k, m]) => [k, [...m.entries()]]))),
      );
    expect(plain(pieces)).toEqual(plain(whole));
  });
});

// Keeps the type of the recorded envelopes honest.
export type { RawEventEnvelope };
