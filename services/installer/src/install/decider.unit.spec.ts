import type { InstallCommand, InstallEvent } from "@cairn/events";
import { deciderSpec } from "@cairn/events/testing";
import { describe, expect, it } from "vitest";
import { createInstallDecider, DEFAULT_INSTALL_POLICY } from "./decider.ts";

const clusterId = "demo-1";
const decider = createInstallDecider({ ...DEFAULT_INSTALL_POLICY, maxParallelJoins: 2 });
const spec = deciderSpec(decider, { type: "install", id: clusterId });
// deciderSpec decides at this instant.
const NOW = Date.parse("2026-01-01T00:00:00.000Z");
const at = (ms: number) => new Date(NOW + ms).toISOString();
const deadline = at(DEFAULT_INSTALL_POLICY.joinTimeoutMs);

const cmd = (type: InstallCommand["type"], data: object = {}) =>
  ({ type, data: { clusterId, ...data } }) as InstallCommand;

const plan = {
  region: "eu-west-1",
  k3sVersion: "v1.31.4+k3s1",
  prebuiltAmi: true,
  servers: 1,
  pools: [{ name: "workers", capacityType: "spot" as const, labels: { tier: "web" }, taints: [] }],
};
const planned: InstallEvent = { type: "install.planned", data: plan };
const stored: InstallEvent = {
  type: "install.secrets-stored",
  data: { parameters: ["/cairn/demo-1/token"] },
};
const server = (slot: number) => ({
  slot,
  instanceId: `i-s${slot}`,
  node: `i-s${slot}`,
  role: "server" as const,
  pool: "servers",
  capacityType: "on-demand" as const,
});
const agent = (ordinal: number) => ({
  slot: 1000 + ordinal,
  instanceId: `i-a${ordinal}`,
  node: `i-a${ordinal}`,
  role: "agent" as const,
  pool: "workers",
  capacityType: "spot" as const,
});
type N = ReturnType<typeof server> | ReturnType<typeof agent>;
const added = (n: N): InstallEvent => ({
  type: "install.node-added",
  data: { ...n, joinDeadline: deadline },
});
const online = (n: N): InstallEvent => ({
  type: "install.node-online",
  data: { slot: n.slot, instanceId: n.instanceId },
});
const requested = (n: N, step: string, attempt: number, number: number, of: number): InstallEvent =>
  ({
    type: "install.step-requested",
    data: { step, slot: n.slot, instanceId: n.instanceId, node: n.node, attempt, number, of },
  }) as InstallEvent;
const sent = (n: N, step: string, attempt = 1): InstallEvent =>
  ({
    type: "install.step-sent",
    data: {
      step,
      slot: n.slot,
      instanceId: n.instanceId,
      attempt,
      commandId: `cmd-${n.slot}-${attempt}`,
      sentAt: at(0),
      deadline: at(DEFAULT_INSTALL_POLICY.stepTimeoutMs[step as "k3s-agent-join"]),
    },
  }) as InstallEvent;
const succeeded = (n: N, step: string, attempt = 1): InstallEvent =>
  ({
    type: "install.step-succeeded",
    data: {
      step,
      slot: n.slot,
      instanceId: n.instanceId,
      attempt,
      commandId: `cmd-${n.slot}-${attempt}`,
      durationMs: 1000,
      outputTail: "ok",
    },
  }) as InstallEvent;
const result = (n: N, step: string, status: string, attempt = 1, extra: object = {}) =>
  cmd("install.record-step-result", {
    slot: n.slot,
    step,
    attempt,
    commandId: `cmd-${n.slot}-${attempt}`,
    status,
    durationMs: 1000,
    outputTail: status === "Success" ? "ok" : "boom",
    ...extra,
  });

const s0 = server(0);
const s1 = server(1);
const s2 = server(2);
const a0 = agent(0);
const a1 = agent(1);
const a2 = agent(2);
/** A cluster whose first server is initialised and whose kubeconfig is published. */
const initialised = (...more: InstallEvent[]): InstallEvent[] => [
  planned,
  stored,
  added(s0),
  online(s0),
  requested(s0, "k3s-server-init", 1, 1, 1),
  sent(s0, "k3s-server-init"),
  succeeded(s0, "k3s-server-init"),
  { type: "install.kubeconfig-published", data: { parameter: "/cairn/demo-1/kubeconfig", version: 1 } },
  ...more,
];

describe("plan and secrets", () => {
  it("plans once; the same plan again changes nothing; a new version is a new plan", () => {
    spec.given([]).when(cmd("install.plan", plan)).then([planned]);
    spec.given([planned]).when(cmd("install.plan", plan)).then([]);
    const v2 = { ...plan, k3sVersion: "v1.32.0+k3s1" };
    spec
      .given([planned])
      .when(cmd("install.plan", v2))
      .then([{ type: "install.planned", data: v2 }]);
  });
  it("records the secrets' parameters once", () => {
    spec
      .given([planned])
      .when(cmd("install.record-secrets", { parameters: ["/cairn/demo-1/token"] }))
      .then([stored]);
    spec
      .given([planned, stored])
      .when(cmd("install.record-secrets", { parameters: ["/x"] }))
      .then([]);
  });
  it("ignores nodes before the plan", () => {
    spec.given([]).when(cmd("install.add-node", s0)).then([]);
  });
});

describe("nodes and the first server", () => {
  it("adds a node with a join deadline; nothing is sent before its SSM Agent registers", () => {
    spec
      .given([planned, stored])
      .when(cmd("install.add-node", s0))
      .then([added(s0)]);
  });
  it("a node already known by that instance is not added twice; a new instance replaces the old", () => {
    spec
      .given([planned, stored, added(s0)])
      .when(cmd("install.add-node", s0))
      .then([]);
    const replacement = { ...s0, instanceId: "i-new", node: "i-new" };
    spec
      .given([planned, stored, added(s0)])
      .when(cmd("install.add-node", replacement))
      .then([
        { type: "install.node-removed", data: { slot: 0, instanceId: "i-s0", node: "i-s0" } },
        added(replacement),
      ]);
  });
  it("the first server online → its init is requested (step 1 of the nodes known)", () => {
    spec
      .given([planned, stored, added(s0), added(a0)])
      .when(cmd("install.record-online", { slot: 0, instanceId: "i-s0" }))
      .then([online(s0), requested(s0, "k3s-server-init", 1, 1, 2)]);
  });
  it("waits for the secrets before the init", () => {
    spec
      .given([planned, added(s0)])
      .when(cmd("install.record-online", { slot: 0, instanceId: "i-s0" }))
      .then([online(s0)]);
    spec
      .given([planned, added(s0), online(s0)])
      .when(cmd("install.record-secrets", { parameters: ["/cairn/demo-1/token"] }))
      .then([stored, requested(s0, "k3s-server-init", 1, 1, 1)]);
  });
  it("agents online before the init wait for it", () => {
    spec
      .given([planned, stored, added(s0), added(a0), online(s0), requested(s0, "k3s-server-init", 1, 1, 2)])
      .when(cmd("install.record-online", { slot: 1000, instanceId: "i-a0" }))
      .then([online(a0)]);
  });
  it("records a sent step with its deadline; a second record of it changes nothing", () => {
    const given = [planned, stored, added(s0), online(s0), requested(s0, "k3s-server-init", 1, 1, 1)];
    const record = cmd("install.record-step-sent", {
      slot: 0,
      step: "k3s-server-init",
      attempt: 1,
      commandId: "cmd-0-1",
      sentAt: at(0),
    });
    spec
      .given(given)
      .when(record)
      .then([sent(s0, "k3s-server-init")]);
    spec
      .given([...given, sent(s0, "k3s-server-init")])
      .when(record)
      .then([]);
  });
});

describe("joins", () => {
  const waiting = [
    planned,
    stored,
    added(s0),
    added(s1),
    added(s2),
    added(a0),
    added(a1),
    added(a2),
    online(s0),
    online(s1),
    online(s2),
    online(a0),
    online(a1),
    online(a2),
    requested(s0, "k3s-server-init", 1, 1, 6),
    sent(s0, "k3s-server-init"),
  ];
  it("after the init: one server join at a time, agents side by side up to the limit", () => {
    spec
      .given(waiting)
      .when(result(s0, "k3s-server-init", "Success"))
      .then([
        succeeded(s0, "k3s-server-init"),
        requested(s1, "k3s-server-join", 1, 2, 6),
        requested(a0, "k3s-agent-join", 1, 3, 6),
        requested(a1, "k3s-agent-join", 1, 4, 6),
      ]);
  });
  it("the next server joins when the last one has", () => {
    const joining = [
      ...waiting,
      succeeded(s0, "k3s-server-init"),
      requested(s1, "k3s-server-join", 1, 2, 6),
      sent(s1, "k3s-server-join"),
      requested(a0, "k3s-agent-join", 1, 3, 6),
      requested(a1, "k3s-agent-join", 1, 4, 6),
    ];
    spec
      .given(joining)
      .when(result(s1, "k3s-server-join", "Success"))
      .then([succeeded(s1, "k3s-server-join"), requested(s2, "k3s-server-join", 1, 5, 6)]);
  });
  it("a stale result (another attempt, another command) changes nothing", () => {
    spec
      .given(waiting)
      .when(result(s0, "k3s-server-init", "Success", 2))
      .then([]);
    spec
      .given(waiting)
      .when(result(s0, "k3s-server-init", "Success", 1, { commandId: "someone-else" }))
      .then([]);
  });
});

describe("failures", () => {
  const agentSent = initialised(
    added(a0),
    online(a0),
    requested(a0, "k3s-agent-join", 1, 2, 2),
    sent(a0, "k3s-agent-join"),
  );
  it("a failed step is tried again as a new attempt, with the output and a remediation", () => {
    const d = spec.given(agentSent).when(result(a0, "k3s-agent-join", "Failed")).decision as InstallEvent[];
    expect(d.map((e) => e.type)).toEqual(["install.step-failed", "install.step-requested"]);
    expect(d[0]?.data).toMatchObject({ willRetry: true, outputTail: "boom", status: "Failed" });
    expect(d[1]?.data).toMatchObject({ slot: 1000, attempt: 2 });
  });
  it("an agent that fails its last attempt is given up on: the provisioner replaces it", () => {
    const third = initialised(
      added(a0),
      online(a0),
      requested(a0, "k3s-agent-join", 3, 2, 2),
      sent(a0, "k3s-agent-join", 3),
    );
    const d = spec.given(third).when(result(a0, "k3s-agent-join", "TimedOut", 3)).decision as InstallEvent[];
    expect(d.map((e) => e.type)).toEqual(["install.step-failed", "install.node-failed"]);
    expect(d[0]?.data).toMatchObject({ willRetry: false });
    expect(d[1]?.data).toMatchObject({ slot: 1000, instanceId: "i-a0" });
    expect((d[1]?.data as { reason: string } | undefined)?.reason).toContain("k3s-agent-join failed 3 times");
  });
  it("a first server that cannot be installed fails the install", () => {
    const given = [
      planned,
      stored,
      added(s0),
      online(s0),
      requested(s0, "k3s-server-init", 3, 1, 1),
      sent(s0, "k3s-server-init", 3),
    ];
    const d = spec.given(given).when(result(s0, "k3s-server-init", "Failed", 3)).decision as InstallEvent[];
    expect(d.map((e) => e.type)).toEqual(["install.step-failed", "install.failed"]);
  });
  it("a permanent send failure is not retried", () => {
    const d = spec.given(agentSent).when(result(a0, "k3s-agent-join", "Failed", 1, { permanent: true }))
      .decision as InstallEvent[];
    expect(d.map((e) => e.type)).toEqual(["install.step-failed", "install.node-failed"]);
  });
  it("nodes past their join deadline are given up on, saying where they stuck", () => {
    const given = initialised(
      { type: "install.node-ready", data: { slot: 0, node: "i-s0" } },
      added(a0),
      added(a1),
      online(a1),
    );
    const late = spec.given(given).when(cmd("install.check-deadlines"), {
      now: new Date(NOW + DEFAULT_INSTALL_POLICY.joinTimeoutMs + 1),
    }).decision as InstallEvent[];
    expect(late.map((e) => [e.type, (e.data as { slot: number }).slot])).toEqual([
      ["install.node-failed", 1000],
      ["install.node-failed", 1001],
    ]);
    expect((late[0]?.data as { reason: string } | undefined)?.reason).toContain(
      "its SSM Agent never registered",
    );
    spec.given(given).when(cmd("install.check-deadlines")).then([]);
  });
});

describe("completion", () => {
  const joined = initialised(
    added(a0),
    online(a0),
    requested(a0, "k3s-agent-join", 1, 2, 2),
    sent(a0, "k3s-agent-join"),
    succeeded(a0, "k3s-agent-join"),
    { type: "install.node-ready", data: { slot: 0, node: "i-s0" } },
  );
  const completed: InstallEvent = {
    type: "install.completed",
    data: { nodes: 2, k3sVersion: plan.k3sVersion },
  };
  it("completes when the provisioner's instances are all Ready nodes", () => {
    spec
      .given([...joined, { type: "install.node-ready", data: { slot: 1000, node: "i-a0" } }])
      .when(cmd("install.record-instances-ready", { count: 2 }))
      .then([{ type: "install.instances-ready", data: { count: 2 } }, completed]);
  });
  it("or when the last node turns Ready after the instances were", () => {
    spec
      .given([...joined, { type: "install.instances-ready", data: { count: 2 } }])
      .when(cmd("install.record-node-state", { node: "i-a0", state: "ready" }))
      .then([{ type: "install.node-ready", data: { slot: 1000, node: "i-a0" } }, completed]);
  });
  it("not while the provisioner runs more instances than are Ready nodes", () => {
    spec
      .given([...joined, { type: "install.instances-ready", data: { count: 3 } }])
      .when(cmd("install.record-node-state", { node: "i-a0", state: "ready" }))
      .then([{ type: "install.node-ready", data: { slot: 1000, node: "i-a0" } }]);
  });
  it("a node that goes NotReady is recorded once", () => {
    const ready = [
      ...joined,
      { type: "install.node-ready", data: { slot: 1000, node: "i-a0" } } as InstallEvent,
    ];
    spec
      .given(ready)
      .when(cmd("install.record-node-state", { node: "i-a0", state: "not-ready", reason: "KubeletNotReady" }))
      .then([
        { type: "install.node-not-ready", data: { slot: 1000, node: "i-a0", reason: "KubeletNotReady" } },
      ]);
    spec
      .given(joined)
      .when(cmd("install.record-node-state", { node: "i-a0", state: "not-ready" }))
      .then([]);
  });
});

describe("removal", () => {
  it("a deleted cluster's install stops and its secrets go", () => {
    spec
      .given(initialised())
      .when(cmd("install.remove"))
      .then([{ type: "install.removal-requested", data: {} }]);
    spec
      .given([...initialised(), { type: "install.removal-requested", data: {} }])
      .when(cmd("install.record-secrets-removed", { parameters: ["/cairn/demo-1/token"] }))
      .then([{ type: "install.secrets-removed", data: { parameters: ["/cairn/demo-1/token"] } }]);
  });
  it("nothing more is installed once removal started", () => {
    spec
      .given([planned, stored, added(s0), { type: "install.removal-requested", data: {} }])
      .when(cmd("install.record-online", { slot: 0, instanceId: "i-s0" }))
      .then([]);
  });
});
