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

const inBatch = (e: InstallEvent, batch: string): InstallEvent =>
  ({ ...e, data: { ...e.data, batch } }) as InstallEvent;
const batchRequested = (batch: string, nodes: N[], step = "k3s-agent-join"): InstallEvent =>
  ({
    type: "install.batch-requested",
    data: { batch, step, slots: nodes.map((n) => n.slot), instanceIds: nodes.map((n) => n.instanceId) },
  }) as InstallEvent;

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
  it("record-many decides its records in order, each on what the ones before left, in one commit", () => {
    const rec = (type: string, data: object) => ({ type, data: { clusterId, ...data } });
    spec
      .given([planned, stored])
      .when(
        cmd("install.record-many", {
          records: [
            rec("install.add-node", s0),
            rec("install.add-node", a0),
            rec("install.add-node", s0),
            rec("install.record-online", { slot: 0, instanceId: "i-s0" }),
            rec("install.record-online", { slot: 0, instanceId: "i-s0" }),
            // Another cluster's record is not this install's.
            { type: "install.add-node", data: { ...agent(5), clusterId: "other" } },
          ],
        }),
      )
      .then([added(s0), added(a0), online(s0), requested(s0, "k3s-server-init", 1, 1, 2)]);
    // Decided again (a redelivered cause in another batch): nothing twice.
    spec
      .given([planned, stored, added(s0), added(a0), online(s0), requested(s0, "k3s-server-init", 1, 1, 2)])
      .when(
        cmd("install.record-many", {
          records: [
            rec("install.add-node", a0),
            rec("install.record-online", { slot: 0, instanceId: "i-s0" }),
          ],
        }),
      )
      .then([]);
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
        // The two agents of one pool go out as one command (docs/installer.md, Batches).
        inBatch(requested(a0, "k3s-agent-join", 1, 3, 6), "16.0"),
        inBatch(requested(a1, "k3s-agent-join", 1, 4, 6), "16.0"),
        batchRequested("16.0", [a0, a1]),
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
    expect(String((d[1]?.data as { reason?: string } | undefined)?.reason)).toContain(
      "k3s-agent-join failed 3 times",
    );
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
    expect(String((late[0]?.data as { reason?: string } | undefined)?.reason)).toContain(
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
  it("a node that goes away with a step under way: the step is recorded forgotten (Cancelled), then the node removed", () => {
    const joining = [
      planned,
      stored,
      added(s0),
      added(a0),
      online(s0),
      online(a0),
      requested(s0, "k3s-server-init", 1, 1, 2),
      sent(s0, "k3s-server-init"),
      succeeded(s0, "k3s-server-init"),
      requested(a0, "k3s-agent-join", 1, 2, 2),
    ];
    const forgotten = (status: "requested" | "sent", commandId?: string): InstallEvent => ({
      type: "install.step-failed",
      data: {
        step: "k3s-agent-join",
        slot: a0.slot,
        instanceId: a0.instanceId,
        attempt: 1,
        ...(commandId ? { commandId } : {}),
        status: "Cancelled",
        reason: `i-a0 went away (instance i-a0) while k3s-agent-join was ${status}: the step is forgotten${commandId ? " and its command cancelled" : ""}`,
        outputTail: "",
        willRetry: false,
      },
    });
    const removed: InstallEvent = {
      type: "install.node-removed",
      data: { slot: a0.slot, instanceId: "i-a0", node: "i-a0" },
    };
    // Sent: its command id goes with it, for the reactor to cancel.
    spec
      .given([...joining, sent(a0, "k3s-agent-join")])
      .when(cmd("install.remove-node", { slot: a0.slot }))
      .then([forgotten("sent", `cmd-${a0.slot}-1`), removed]);
    // Requested, not sent yet: forgotten all the same (a send racing it is cancelled by the reactor).
    spec
      .given(joining)
      .when(cmd("install.remove-node", { slot: a0.slot }))
      .then([forgotten("requested"), removed]);
    // A replacement instance in the slot forgets the old one's step the same way.
    const replacement = { ...a0, instanceId: "i-new", node: "i-new" };
    spec
      .given([...joining, sent(a0, "k3s-agent-join")])
      .when(cmd("install.add-node", replacement))
      .then([forgotten("sent", `cmd-${a0.slot}-1`), removed, added(replacement)]);
  });
  // The cluster's events reach the installer's two replicas (and a redelivery after a
  // crash) out of order: a slot's removal may be decided after its next instance was added,
  // and an instance's add after its removal. Seed 15's chaos run: the install lost a running
  // instance this way and waited for ever for one Ready node too few (docs/chaos.md).
  describe("out of order", () => {
    const ready = (n: N): InstallEvent => ({
      type: "install.node-ready",
      data: { slot: n.slot, node: n.node },
    });
    const joinedAgent = [
      added(a0),
      online(a0),
      requested(a0, "k3s-agent-join", 1, 2, 2),
      sent(a0, "k3s-agent-join"),
      succeeded(a0, "k3s-agent-join"),
      ready(a0),
    ];
    const base = initialised(ready(s0), ...joinedAgent, {
      type: "install.completed",
      data: { nodes: 2, k3sVersion: plan.k3sVersion },
    });
    const next = { ...a0, instanceId: "i-next", node: "i-next" };
    const removedA0: InstallEvent = {
      type: "install.node-removed",
      data: { slot: a0.slot, instanceId: "i-a0", node: "i-a0" },
    };
    it("a removal of the slot's last instance leaves its successor, added first, alone", () => {
      // The replacement's add came first (it removes i-a0 itself) …
      const replaced = [...base, removedA0, added(next)];
      // … then the removal of i-a0: nothing more (before: i-next went with it, and the
      // install waited for a Ready node that it no longer knew).
      spec
        .given(replaced)
        .when(cmd("install.remove-node", { slot: a0.slot, instanceId: "i-a0" }))
        .then([]);
      // A removal that does not name its instance is the slot's, as before.
      spec
        .given(replaced)
        .when(cmd("install.remove-node", { slot: a0.slot }))
        .then([
          { type: "install.node-removed", data: { slot: a0.slot, instanceId: "i-next", node: "i-next" } },
        ]);
    });
    it("the successor then joins and the install completes", () => {
      // (The late removal of i-a0 decided nothing: the log goes on from the replacement.)
      const replaced = [...base, removedA0, added(next)];
      spec
        .given([
          ...replaced,
          { type: "install.instances-ready", data: { count: 2 } },
          online(next),
          requested(next, "k3s-agent-join", 1, 2, 2),
          sent(next, "k3s-agent-join"),
          succeeded(next, "k3s-agent-join"),
        ])
        .when(cmd("install.record-node-state", { node: "i-next", state: "ready" }))
        .then([
          { type: "install.node-ready", data: { slot: a0.slot, node: "i-next" } },
          { type: "install.completed", data: { nodes: 2, k3sVersion: plan.k3sVersion } },
        ]);
    });
    it("an add that comes after its instance's removal is stale: no node waits for it", () => {
      // A scale-up's slot scaled away again: its termination reached the installer first.
      const extra = agent(1);
      const gone: InstallEvent = {
        type: "install.node-removed",
        data: { slot: extra.slot, instanceId: extra.instanceId, node: extra.instanceId },
      };
      spec
        .given(base)
        .when(cmd("install.remove-node", { slot: extra.slot, instanceId: extra.instanceId }))
        .then([gone]);
      // Before, the add made a node no instance would ever join: the next completion
      // waited for it (and its failure asked the provisioner to refill a slot it no longer has).
      spec
        .given([...base, gone])
        .when(cmd("install.add-node", extra))
        .then([]);
      // A replacement's removal of the slot's older instance is as stale once it was replaced.
      spec
        .given([...base, removedA0, added(next)])
        .when(cmd("install.add-node", a0))
        .then([]);
    });
    it("progress counts the joins of the nodes the install has now", () => {
      // Two joins done (i-s0, i-a0), i-a0 replaced, a third node on its way: the
      // replacement's join is step 2 of 3 (i-s0's is the one done), not 3 of 3.
      spec
        .given([...base, removedA0, added(next), added(a1)])
        .when(cmd("install.record-online", { slot: next.slot, instanceId: "i-next" }))
        .then([online(next), requested(next, "k3s-agent-join", 1, 2, 3)]);
    });
  });

  it("nothing more is installed once removal started", () => {
    spec
      .given([planned, stored, added(s0), { type: "install.removal-requested", data: {} }])
      .when(cmd("install.record-online", { slot: 0, instanceId: "i-s0" }))
      .then([]);
  });
});

describe("health and self-healing", () => {
  const ready = (n: N): InstallEvent => ({
    type: "install.node-ready",
    data: { slot: n.slot, node: n.node },
  });
  const join = (n: N): InstallEvent[] => [
    added(n),
    online(n),
    requested(n, "k3s-agent-join", 1, 2, 2),
    sent(n, "k3s-agent-join"),
    succeeded(n, "k3s-agent-join"),
    ready(n),
  ];
  /** A Ready cluster of one server and `agents` agents. */
  const healthy = (...agents: N[]): InstallEvent[] => [
    ...initialised(ready(s0)),
    ...agents.flatMap(join),
    { type: "install.instances-ready", data: { count: agents.length + 1 } },
    { type: "install.completed", data: { nodes: agents.length + 1, k3sVersion: plan.k3sVersion } },
  ];
  const cluster = healthy(a0, a1, a2);
  const notActive = cmd("install.record-check", {
    check: "k3s-active",
    node: "i-a0",
    ok: false,
    evidence: "inactive",
  });
  const types = (d: unknown) => (d as InstallEvent[]).map((e) => e.type);

  it("a failing check degrades the cluster and starts the ladder: restart K3s first", () => {
    const d = spec.given(cluster).when(notActive).decision as InstallEvent[];
    expect(types(d)).toEqual([
      "install.check-failed",
      "install.degraded",
      "install.remediation-requested",
      "install.step-requested",
    ]);
    expect(d[2]?.data).toMatchObject({ node: "i-a0", action: "restart-k3s", attempt: 1 });
    expect(d[3]?.data).toMatchObject({ step: "k3s-restart", slot: 1000, attempt: 1 });
  });
  it("the same result again is no event (no spam)", () => {
    const d = spec.given(cluster).when(notActive).decision as InstallEvent[];
    spec
      .given([...cluster, ...d])
      .when(notActive)
      .then([]);
  });
  it("checks do not count before the install completed", () => {
    spec
      .given(initialised(...join(a0)))
      .when(notActive)
      .then([]);
  });
  it("passing again: the cluster is Ready", () => {
    const d = spec.given(cluster).when(notActive).decision as InstallEvent[];
    spec
      .given([...cluster, ...d])
      .when(cmd("install.record-check", { check: "k3s-active", node: "i-a0", ok: true }))
      .then([
        { type: "install.check-passed", data: { check: "k3s-active", node: "i-a0" } },
        { type: "install.recovered", data: {} },
      ]);
  });
  it("climbs the ladder while the node stays unhealthy: restart, restart, rejoin, replace", () => {
    let history = [...cluster, ...(spec.given(cluster).when(notActive).decision as InstallEvent[])];
    const actions: string[] = ["restart-k3s"];
    for (let i = 0; i < 3; i++) {
      const s = spec.given(history).state as {
        status: string;
        nodes: Record<
          number,
          { remedy?: { action: string; attempt: number }; step?: { name: string; attempt: number } }
        >;
      };
      const node = s.nodes[1000];
      // The rung's step ran (and failed to help): record its end, then the grace is over.
      const step = node?.step;
      const ended: InstallEvent[] = step
        ? [
            {
              type: "install.step-succeeded",
              data: {
                step: step.name,
                slot: 1000,
                instanceId: "i-a0",
                attempt: step.attempt,
                commandId: "c",
                durationMs: 1,
                outputTail: "",
              },
            } as InstallEvent,
          ]
        : [];
      history = [...history, ...ended];
      const d = spec.given(history).when(
        cmd("install.check-remediation", {
          node: "i-a0",
          action: node?.remedy?.action,
          attempt: node?.remedy?.attempt,
        }),
      ).decision as InstallEvent[];
      const req = d.find((e) => e.type === "install.remediation-requested");
      actions.push(String((req?.data as { action?: string } | undefined)?.action));
      history = [...history, ...d];
    }
    expect(actions).toEqual(["restart-k3s", "restart-k3s", "rejoin", "replace"]);
    expect(history.at(-1)?.type).toBe("install.node-failed");
  });
  it("touches no node when more than 40% are unhealthy at once", () => {
    const small = healthy(a0, a1);
    let history = small;
    for (const node of ["i-a0", "i-a1"]) {
      const d = spec
        .given(history)
        .when(cmd("install.record-check", { check: "node-ready", node, ok: false, evidence: "NotReady" }))
        .decision as InstallEvent[];
      history = [...history, ...d];
    }
    // 2 of 3 nodes unhealthy: the first got a restart, the second is held back.
    const withheld = history.filter((e) => e.type === "install.remediation-withheld");
    expect(withheld).toHaveLength(1);
    expect(withheld[0]?.data).toMatchObject({ unhealthy: 2, of: 3 });
    expect(history.filter((e) => e.type === "install.remediation-requested")).toHaveLength(1);
  });
  it("a NotReady fact is the node-ready check once installed", () => {
    const d = spec
      .given(cluster)
      .when(cmd("install.record-node-state", { node: "i-a1", state: "not-ready", reason: "KubeletNotReady" }))
      .decision as InstallEvent[];
    expect(types(d)).toEqual([
      "install.node-not-ready",
      "install.check-failed",
      "install.degraded",
      "install.remediation-requested",
      "install.step-requested",
    ]);
    expect(d[1]?.data).toMatchObject({ check: "node-ready", node: "i-a1", evidence: "KubeletNotReady" });
  });
  it("a cluster-wide check degrades without touching nodes", () => {
    const d = spec
      .given(cluster)
      .when(
        cmd("install.record-check", { check: "api-reachable", ok: false, evidence: "connect ECONNREFUSED" }),
      ).decision as InstallEvent[];
    expect(types(d)).toEqual(["install.check-failed", "install.degraded"]);
  });
});

describe("rolling upgrades", () => {
  const ready = (n: N): InstallEvent => ({
    type: "install.node-ready",
    data: { slot: n.slot, node: n.node },
  });
  const join = (n: N, step = "k3s-agent-join"): InstallEvent[] => [
    added(n),
    online(n),
    requested(n, step, 1, 2, 2),
    sent(n, step),
    succeeded(n, step),
    ready(n),
  ];
  const cluster: InstallEvent[] = [
    ...initialised(ready(s0)),
    ...join(s1, "k3s-server-join"),
    ...join(a0),
    ...join(a1),
    ...join(a2),
    { type: "install.instances-ready", data: { count: 5 } },
    { type: "install.completed", data: { nodes: 5, k3sVersion: plan.k3sVersion } },
  ];
  const to = "v1.32.0+k3s1";
  const started = (n: N, number: number): InstallEvent => ({
    type: "install.node-upgrade-started",
    data: { slot: n.slot, node: n.node, to, number, of: 5 },
  });
  const progress = (n: N, phase: string) => cmd("install.record-upgrade-progress", { node: n.node, phase });

  it("refuses a cluster that is not Ready, and a second upgrade while one runs", () => {
    spec
      .given(initialised())
      .when(cmd("install.upgrade", { k3sVersion: to, batch: 1 }))
      .thenRejected("conflict", "only a Ready cluster");
    const d = spec.given(cluster).when(cmd("install.upgrade", { k3sVersion: to, batch: 1 }))
      .decision as InstallEvent[];
    spec
      .given([...cluster, ...d])
      .when(cmd("install.upgrade", { k3sVersion: "v1.33.0+k3s1", batch: 1 }))
      .thenRejected("conflict", "being upgraded");
  });
  it("the same version is nothing to do", () => {
    spec
      .given(cluster)
      .when(cmd("install.upgrade", { k3sVersion: plan.k3sVersion, batch: 1 }))
      .then([]);
  });
  it("servers first, one at a time; each drained, upgraded, verified; then agents `batch` at a time", () => {
    let history = cluster;
    const step = (c: InstallCommand) => {
      const d = spec.given(history).when(c).decision as InstallEvent[];
      history = [...history, ...d];
      return d;
    };
    expect(step(cmd("install.upgrade", { k3sVersion: to, batch: 2 }))).toEqual([
      { type: "install.upgrade-requested", data: { from: plan.k3sVersion, to, nodes: 5, batch: 2 } },
      started(s0, 1),
    ]);
    const upgradeOne = (n: N) => {
      expect(types(step(progress(n, "drained")))).toEqual(["install.node-drained", "install.step-requested"]);
      const attempt = Number((history.at(-1)?.data as { attempt?: number } | undefined)?.attempt);
      history = [...history, sent(n, "k3s-upgrade", attempt), succeeded(n, "k3s-upgrade", attempt)];
      return step(progress(n, "verified"));
    };
    expect(upgradeOne(s0)).toEqual([
      { type: "install.node-upgraded", data: { slot: 0, node: "i-s0", k3sVersion: to } },
      started(s1, 2),
    ]);
    expect(types(upgradeOne(s1))).toEqual([
      "install.node-upgraded",
      "install.node-upgrade-started",
      "install.node-upgrade-started",
    ]);
    expect(history.slice(-2)).toEqual([started(a0, 3), started(a1, 4)]);
    // The batch's next turn comes when both are done.
    expect(types(upgradeOne(a0))).toEqual(["install.node-upgraded"]);
    expect(types(upgradeOne(a1))).toEqual(["install.node-upgraded", "install.node-upgrade-started"]);
    expect(upgradeOne(a2)).toEqual([
      { type: "install.node-upgraded", data: { slot: 1002, node: "i-a2", k3sVersion: to } },
      { type: "install.upgraded", data: { from: plan.k3sVersion, to, nodes: 5 } },
    ]);
    const s = spec.given(history).state as { plan: { k3sVersion: string }; upgrade?: unknown };
    expect(s.plan.k3sVersion).toBe(to);
    expect(s.upgrade).toBeUndefined();
  });
  it("a drain that fails stops the rollout, saying why", () => {
    const d = spec.given(cluster).when(cmd("install.upgrade", { k3sVersion: to, batch: 1 }))
      .decision as InstallEvent[];
    const failed = spec.given([...cluster, ...d]).when(
      cmd("install.record-upgrade-progress", {
        node: "i-s0",
        phase: "drain-failed",
        reason: "pdb web allows no disruption",
      }),
    ).decision as InstallEvent[];
    expect(types(failed)).toEqual(["install.upgrade-failed"]);
    expect(String((failed[0]?.data as { reason?: string } | undefined)?.reason)).toContain("pdb web");
  });
  const types = (d: unknown) => (d as InstallEvent[]).map((e) => e.type);
});
