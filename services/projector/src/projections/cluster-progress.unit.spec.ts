/**
 * Progress counts the whole build — instances, K3s on each node, each node Ready — so a
 * Configuring cluster is not "100 %" while K3s installs.
 */
import { describe, expect, it } from "vitest";
import { anEnvelope, aSpec, cluster, requested } from "../testing/fixtures.ts";
import { lifecycleProgress } from "./cluster-progress.ts";
import { type ClusterRow, foldCluster } from "./clusters.ts";
import { applyInstallEvent, type InstallRow } from "./installs.ts";

type E = { type: string; data: unknown };
const c1 = cluster("c1");
const install = { type: "install" as const, id: "c1" };
const placement = { instanceType: "t3.large", capacityType: "spot" };

const clusterAfter = (...events: E[]): ClusterRow =>
  foldCluster(events.map((e, i) => ({ event: anEnvelope(c1, i + 1, e), sequence: i + 1 })))!;
const installAfter = (...events: E[]): InstallRow | undefined => {
  let row: InstallRow | undefined;
  events.forEach((e, i) => {
    row = applyInstallEvent(row, anEnvelope(install, i + 1, e), 100 + i);
  });
  return row;
};

// aSpec: one server (slot 0) and two workers (slots 1000, 1001).
const slot = (n: number) => ({
  slot: n,
  pool: n === 0 ? "servers" : "workers",
  ordinal: n % 1000,
  role: n === 0 ? "server" : "agent",
});
const launched = (n: number): E[] => [
  { type: "cluster.instance-launch-requested", data: { ...slot(n), attempt: 1, placement } },
  { type: "cluster.instance-launched", data: { slot: n, attempt: 1, instanceId: `i-${n}` } },
];
const running = (n: number): E => ({
  type: "cluster.instance-running",
  data: { slot: n, instanceId: `i-${n}` },
});
const provisioning: E[] = [
  requested("c1", aSpec("c1")),
  { type: "cluster.provisioning-started", data: { slots: [slot(0), slot(1000), slot(1001)] } },
  ...launched(0),
  ...launched(1000),
  ...launched(1001),
];
const configuring = clusterAfter(...provisioning, running(0), running(1000), running(1001), {
  type: "cluster.instances-ready",
  data: { count: 3 },
});

const planned: E = {
  type: "install.planned",
  data: { region: "eu-west-1", k3sVersion: "v1.31.4+k3s1", prebuiltAmi: false, servers: 1, pools: [] },
};
const added = (n: number): E => ({
  type: "install.node-added",
  data: {
    slot: n,
    instanceId: `i-${n}`,
    node: `i-${n}`,
    role: n === 0 ? "server" : "agent",
    pool: n === 0 ? "servers" : "workers",
    capacityType: n === 0 ? "on-demand" : "spot",
    joinDeadline: "2026-11-22T09:00:00.000Z",
  },
});
const online = (n: number): E => ({ type: "install.node-online", data: { slot: n, instanceId: `i-${n}` } });
const succeeded = (n: number, step: string): E => ({
  type: "install.step-succeeded",
  data: {
    step,
    slot: n,
    instanceId: `i-${n}`,
    attempt: 1,
    commandId: `cmd-${n}`,
    durationMs: 1000,
    outputTail: "",
  },
});
const ready = (n: number): E => ({
  type: "install.node-ready",
  data: { slot: n, instanceId: `i-${n}`, node: `i-${n}` },
});
const installing = [planned, added(0), added(1000), added(1001), online(0), online(1000), online(1001)];

describe("lifecycle progress", () => {
  it("while provisioning: one step per instance running, of three per node", () => {
    expect(lifecycleProgress(clusterAfter(...provisioning, running(0)), undefined)).toEqual({
      operation: "provisioning",
      done: 1,
      total: 9,
      percent: 11,
      step: "1 of 9 steps: 1 of 3 instances running",
      phases: {
        instances: { done: 1, total: 3 },
        servers: { done: 0, total: 1 },
        agents: { done: 0, total: 2 },
        ready: { done: 0, total: 3 },
      },
      nodes: { ready: 0, running: 1, wanted: 3 },
    });
  });

  it("while Configuring: the install's steps, one by one, and never 100 % before the cluster is Ready", () => {
    const seen = [
      installAfter(...installing),
      installAfter(...installing, succeeded(0, "k3s-server-init")),
      installAfter(...installing, succeeded(0, "k3s-server-init"), succeeded(1000, "k3s-agent-join")),
      installAfter(
        ...installing,
        succeeded(0, "k3s-server-init"),
        succeeded(1000, "k3s-agent-join"),
        succeeded(1001, "k3s-agent-join"),
        ready(0),
      ),
      installAfter(
        ...installing,
        succeeded(0, "k3s-server-init"),
        succeeded(1000, "k3s-agent-join"),
        succeeded(1001, "k3s-agent-join"),
        ready(0),
        ready(1000),
        ready(1001),
      ),
    ].map((i) => {
      const p = lifecycleProgress(configuring, i);
      return [p.operation, p.percent, p.step];
    });
    expect(seen).toEqual([
      ["configuring", 33, "3 of 9 steps: K3s: initialising the first server"],
      ["configuring", 44, "4 of 9 steps: K3s: 0 of 2 agents joined"],
      ["configuring", 55, "5 of 9 steps: K3s: 1 of 2 agents joined"],
      ["configuring", 77, "7 of 9 steps: 1 of 3 nodes Ready"],
      ["configuring", 99, "9 of 9 steps: 3 nodes Ready; finishing"],
    ]);
  });

  it("a node whose instance is being replaced starts again at its first step", () => {
    const replacing = clusterAfter(
      ...provisioning,
      running(0),
      running(1000),
      running(1001),
      { type: "cluster.instances-ready", data: { count: 3 } },
      { type: "cluster.ready", data: { nodes: 3, k3sVersion: "v1.31.4+k3s1" } },
      {
        type: "cluster.node-replacement-requested",
        data: { slot: 1001, instanceId: "i-1001", reason: "gone" },
      },
      { type: "cluster.instance-launch-requested", data: { ...slot(1001), attempt: 2, placement } },
    );
    const all = installAfter(
      ...installing,
      succeeded(0, "k3s-server-init"),
      succeeded(1000, "k3s-agent-join"),
      succeeded(1001, "k3s-agent-join"),
      ready(0),
      ready(1000),
      ready(1001),
    );
    expect(lifecycleProgress(replacing, all)).toMatchObject({
      operation: "recovering",
      done: 6,
      total: 9,
      nodes: { ready: 2, running: 2, wanted: 3 },
      step: "6 of 9 steps: 2 of 3 instances running",
    });
  });

  it("a Ready cluster rests at 100 %", () => {
    const all = installAfter(
      ...installing,
      succeeded(0, "k3s-server-init"),
      succeeded(1000, "k3s-agent-join"),
      succeeded(1001, "k3s-agent-join"),
      ready(0),
      ready(1000),
      ready(1001),
    );
    const row = clusterAfter(
      ...provisioning,
      running(0),
      running(1000),
      running(1001),
      { type: "cluster.instances-ready", data: { count: 3 } },
      { type: "cluster.ready", data: { nodes: 3, k3sVersion: "v1.31.4+k3s1" } },
    );
    expect(lifecycleProgress(row, all)).toMatchObject({ operation: null, done: 9, total: 9, percent: 100 });
  });
});
