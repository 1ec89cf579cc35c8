/**
 * Batches, given-when-then: agent joins requested in one decision go out as one SSM
 * command per pool and capacity type (≤ 50 nodes), each node's step still its own —
 * sent, polled, failed, retried and removed one node at a time.
 */
import type { InstallCommand, InstallEvent } from "@cairn/events";
import { deciderSpec } from "@cairn/events/testing";
import { describe, expect, it } from "vitest";
import { batchSteps } from "./batch.ts";
import { createInstallDecider, DEFAULT_INSTALL_POLICY } from "./decider.ts";
import { after, initialInstallState } from "./state.ts";

const clusterId = "demo-1";
const policy = { ...DEFAULT_INSTALL_POLICY, maxParallelJoins: 200 };
const spec = deciderSpec(createInstallDecider(policy), { type: "install", id: clusterId });
const NOW = Date.parse("2026-01-01T00:00:00.000Z");
const at = (ms: number) => new Date(NOW + ms).toISOString();
const JOIN = "k3s-agent-join" as const;
const joinDeadline = at(policy.stepTimeoutMs[JOIN]);

const cmd = (type: InstallCommand["type"], data: object = {}) =>
  ({ type, data: { clusterId, ...data } }) as InstallCommand;

const plan = {
  region: "eu-west-1",
  k3sVersion: "v1.31.4+k3s1",
  prebuiltAmi: true,
  servers: 1,
  pools: [
    { name: "web", capacityType: "spot" as const, labels: { tier: "web" }, taints: [] },
    { name: "gpu", capacityType: "on-demand" as const, labels: {} as Record<string, string>, taints: [] },
  ],
};
interface N {
  slot: number;
  instanceId: string;
  node: string;
  role: "server" | "agent";
  pool: string;
  capacityType: "spot" | "on-demand";
}
const s0: N = {
  slot: 0,
  instanceId: "i-s0",
  node: "i-s0",
  role: "server",
  pool: "servers",
  capacityType: "on-demand",
};
const agent = (pool: "web" | "gpu", i: number, capacityType: N["capacityType"] = "spot"): N => ({
  slot: (pool === "web" ? 1000 : 2000) + i,
  instanceId: `i-${pool}${i}`,
  node: `i-${pool}${i}`,
  role: "agent",
  pool,
  capacityType,
});
const added = (n: N): InstallEvent => ({
  type: "install.node-added",
  data: { ...n, joinDeadline: at(600_000) },
});
const online = (n: N): InstallEvent => ({
  type: "install.node-online",
  data: { slot: n.slot, instanceId: n.instanceId },
});
const requested = (n: N, attempt: number, number: number, of: number, batch?: string): InstallEvent => ({
  type: "install.step-requested",
  data: {
    step: JOIN,
    slot: n.slot,
    instanceId: n.instanceId,
    node: n.node,
    attempt,
    number,
    of,
    ...(batch ? { batch } : {}),
  },
});
const batchRequested = (batch: string, nodes: N[]): InstallEvent => ({
  type: "install.batch-requested",
  data: { batch, step: JOIN, slots: nodes.map((n) => n.slot), instanceIds: nodes.map((n) => n.instanceId) },
});
const stepSent = (n: N, batch: string, commandId = "cmd-b", attempt = 1): InstallEvent => ({
  type: "install.step-sent",
  data: {
    step: JOIN,
    slot: n.slot,
    instanceId: n.instanceId,
    attempt,
    commandId,
    sentAt: at(0),
    deadline: joinDeadline,
    batch,
  },
});
const batchSent = (batch: string, nodes: N[], commandId = "cmd-b"): InstallEvent => ({
  type: "install.batch-sent",
  data: {
    batch,
    step: JOIN,
    commandId,
    slots: nodes.map((n) => n.slot),
    sentAt: at(0),
    deadline: joinDeadline,
  },
});
const result = (n: N, status: string, commandId = "cmd-b", attempt = 1) =>
  cmd("install.record-step-result", {
    slot: n.slot,
    step: JOIN,
    attempt,
    commandId,
    status,
    durationMs: 1000,
    outputTail: status === "Success" ? "ok" : "boom",
  });

/** A cluster whose first server is installing and whose agents are online and waiting. */
const waitingFor = (agents: N[]): InstallEvent[] => [
  { type: "install.planned", data: plan },
  { type: "install.secrets-stored", data: { parameters: ["/cairn/demo-1/token"] } },
  added(s0),
  ...agents.map(added),
  online(s0),
  ...agents.map(online),
  {
    type: "install.step-requested",
    data: {
      step: "k3s-server-init",
      slot: 0,
      instanceId: "i-s0",
      node: "i-s0",
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
      instanceId: "i-s0",
      attempt: 1,
      commandId: "cmd-0",
      sentAt: at(0),
      deadline: at(600_000),
    },
  },
];
const initDone = cmd("install.record-step-result", {
  slot: 0,
  step: "k3s-server-init",
  attempt: 1,
  commandId: "cmd-0",
  status: "Success",
  durationMs: 60_000,
  outputTail: "ok",
});
const ofType = (events: unknown, type: string) =>
  (events as InstallEvent[]).filter((e) => e.type === type) as Extract<
    InstallEvent,
    { type: "install.batch-requested" }
  >[];

describe("batching the agent joins a decision requests", () => {
  it("given agents of one pool online, when the first server is installed, then their joins are one batch", () => {
    const web = [agent("web", 0), agent("web", 1), agent("web", 2)];
    const given = waitingFor(web);
    spec
      .given(given)
      .when(initDone)
      .then([
        {
          type: "install.step-succeeded",
          data: {
            step: "k3s-server-init",
            slot: 0,
            instanceId: "i-s0",
            attempt: 1,
            commandId: "cmd-0",
            durationMs: 60_000,
            outputTail: "ok",
          },
        },
        requested(web[0]!, 1, 2, 4, `${given.length}.0`),
        requested(web[1]!, 1, 3, 4, `${given.length}.0`),
        requested(web[2]!, 1, 4, 4, `${given.length}.0`),
        batchRequested(`${given.length}.0`, web),
      ]);
  });

  it("given pools and capacity types that differ, then one batch each; a group of one goes on its own", () => {
    const web = [agent("web", 0), agent("web", 1)];
    const webOnDemand = agent("web", 2, "on-demand");
    const gpu = [agent("gpu", 0), agent("gpu", 1)];
    const decision = spec.given(waitingFor([...web, webOnDemand, ...gpu])).when(initDone).decision;
    const batches = ofType(decision, "install.batch-requested");
    expect(batches.map((b) => b.data.instanceIds)).toEqual([
      ["i-web0", "i-web1"],
      ["i-gpu0", "i-gpu1"],
    ]);
    const alone = (decision as InstallEvent[]).find(
      (e) => e.type === "install.step-requested" && e.data.instanceId === "i-web2",
    );
    expect(alone?.data).not.toHaveProperty("batch");
  });

  it("given 120 agents of one pool, then batches of 50, 50 and 20 (SSM names at most 50 instances per command)", () => {
    const web = Array.from({ length: 120 }, (_, i) => agent("web", i));
    const decision = spec.given(waitingFor(web)).when(initDone).decision;
    const batches = ofType(decision, "install.batch-requested");
    expect(batches.map((b) => b.data.slots.length)).toEqual([50, 50, 20]);
    expect(new Set(batches.flatMap((b) => b.data.slots)).size).toBe(120);
    expect(new Set(batches.map((b) => b.data.batch)).size).toBe(3);
  });

  it("given a group commit whose records bring several agents online one by one, then their joins are still one batch", () => {
    const web = [agent("web", 0), agent("web", 1), agent("web", 2)];
    const installed = [
      { type: "install.planned", data: plan },
      { type: "install.secrets-stored", data: { parameters: ["/cairn/demo-1/token"] } },
      added(s0),
      ...web.map(added),
      online(s0),
      {
        type: "install.step-requested",
        data: {
          step: "k3s-server-init",
          slot: 0,
          instanceId: "i-s0",
          node: "i-s0",
          attempt: 1,
          number: 1,
          of: 4,
        },
      },
      {
        type: "install.step-sent",
        data: {
          step: "k3s-server-init",
          slot: 0,
          instanceId: "i-s0",
          attempt: 1,
          commandId: "cmd-0",
          sentAt: at(0),
          deadline: at(600_000),
        },
      },
      {
        type: "install.step-succeeded",
        data: {
          step: "k3s-server-init",
          slot: 0,
          instanceId: "i-s0",
          attempt: 1,
          commandId: "cmd-0",
          durationMs: 1,
          outputTail: "",
        },
      },
    ] as InstallEvent[];
    const decision = spec.given(installed).when(
      cmd("install.record-many", {
        records: web.map((n) => ({
          type: "install.record-online",
          data: { clusterId, slot: n.slot, instanceId: n.instanceId },
        })),
      }),
    ).decision;
    expect(ofType(decision, "install.batch-requested").map((b) => b.data.slots)).toEqual([
      [1000, 1001, 1002],
    ]);
  });

  it("a request of a node replaced within the same decision is left out of the batch", () => {
    const web = [agent("web", 0), agent("web", 1)];
    const state = after(initialInstallState(), waitingFor(web));
    const events: InstallEvent[] = [requested(web[0]!, 1, 2, 3), requested(web[1]!, 1, 3, 3)];
    // web1's instance went away after its request, in the same decision.
    const gone: InstallEvent = {
      type: "install.node-removed",
      data: { slot: 1001, instanceId: "i-web1", node: "i-web1" },
    };
    expect(batchSteps(state, [...events, gone], 9)).toEqual([...events, gone]);
  });
});

describe("a batch's command", () => {
  const web = [agent("web", 0), agent("web", 1), agent("web", 2)];
  const requestedAll: InstallEvent[] = [
    ...waitingFor(web),
    {
      type: "install.step-succeeded",
      data: {
        step: "k3s-server-init",
        slot: 0,
        instanceId: "i-s0",
        attempt: 1,
        commandId: "cmd-0",
        durationMs: 1,
        outputTail: "",
      },
    },
    requested(web[0]!, 1, 2, 4, "9.0"),
    requested(web[1]!, 1, 3, 4, "9.0"),
    requested(web[2]!, 1, 4, 4, "9.0"),
    batchRequested("9.0", web),
  ];
  const recordSent = (instanceIds: string[], commandId = "cmd-b") =>
    cmd("install.record-batch-sent", { batch: "9.0", commandId, sentAt: at(0), instanceIds });

  it("given a batch requested, when SSM took its command, then each node is sent with it, and the batch polled", () => {
    spec
      .given(requestedAll)
      .when(recordSent(web.map((n) => n.instanceId)))
      .then([...web.map((n) => stepSent(n, "9.0")), batchSent("9.0", web)]);
  });

  it("given the command recorded, when it is recorded again (a redelivery), then nothing", () => {
    spec
      .given([...requestedAll, ...web.map((n) => stepSent(n, "9.0")), batchSent("9.0", web)])
      .when(recordSent(web.map((n) => n.instanceId)))
      .then([]);
  });

  it("given a command that names only some of the batch (the rest not managed yet), then only those are sent", () => {
    spec
      .given(requestedAll)
      .when(recordSent(["i-web0", "i-web2"]))
      .then([stepSent(web[0]!, "9.0"), stepSent(web[2]!, "9.0"), batchSent("9.0", [web[0]!, web[2]!])]);
  });

  const sentAll = [...requestedAll, ...web.map((n) => stepSent(n, "9.0")), batchSent("9.0", web)];

  it("given a batch sent, when one node fails, then only it is retried; the others stay with the command", () => {
    const decision = spec.given(sentAll).when(result(web[1]!, "Failed")).decision as InstallEvent[];
    expect(decision.map((e) => e.type)).toEqual(["install.step-failed", "install.step-requested"]);
    expect(decision[1]?.data).toMatchObject({ slot: 1001, attempt: 2 });
    const state = spec.given([...sentAll, ...decision]).state as {
      nodes: Record<number, { step?: { status: string; commandId?: string } }>;
    };
    expect(state.nodes[1000]?.step).toMatchObject({ status: "sent", commandId: "cmd-b" });
    expect(state.nodes[1002]?.step).toMatchObject({ status: "sent", commandId: "cmd-b" });
  });

  it("given a batch sent, when two nodes fail in one group commit, then their retries are one batch of their own", () => {
    const decision = spec.given(sentAll).when(
      cmd("install.record-many", {
        records: [web[0]!, web[2]!].map((n) => ({
          type: "install.record-step-result",
          data: {
            clusterId,
            slot: n.slot,
            step: JOIN,
            attempt: 1,
            commandId: "cmd-b",
            status: "Failed",
            outputTail: "boom",
          },
        })),
      }),
    ).decision;
    const batches = ofType(decision, "install.batch-requested");
    expect(batches.map((b) => b.data.instanceIds)).toEqual([["i-web0", "i-web2"]]);
    expect(batches[0]?.data.batch).toBe(`${sentAll.length}.0`);
  });

  it("given a batch sent, when one node succeeds, then only its step ends", () => {
    const decision = spec.given(sentAll).when(result(web[0]!, "Success")).decision as InstallEvent[];
    expect(decision.map((e) => e.type)).toEqual(["install.step-succeeded"]);
  });

  it("a result of another command than the node's is ignored (an old attempt's)", () => {
    spec
      .given(sentAll)
      .when(result(web[0]!, "Failed", "cmd-old"))
      .then([]);
  });

  it("given a batch sent, when one node's instance goes away, then its step is forgotten and its invocation cancelled", () => {
    const decision = spec
      .given(sentAll)
      .when(cmd("install.remove-node", { slot: 1001, instanceId: "i-web1" })).decision as InstallEvent[];
    expect(decision[0]).toMatchObject({
      type: "install.step-failed",
      data: { slot: 1001, commandId: "cmd-b", status: "Cancelled", willRetry: false },
    });
  });

  it("old events without batches still fold (replay of an install recorded before batches)", () => {
    const old = [...waitingFor(web), requested(web[0]!, 1, 2, 4)];
    const s = spec.given(old).state as {
      nodes: Record<number, { step?: { batch?: string; status: string } }>;
    };
    expect(s.nodes[1000]?.step).toEqual({ name: JOIN, attempt: 1, status: "requested" });
  });
});

describe("node-ops' facts in group commits", () => {
  const web = [agent("web", 0), agent("web", 1)];
  const joined: InstallEvent[] = [
    ...waitingFor(web),
    ...web.map(
      (n): InstallEvent => ({
        type: "install.step-succeeded",
        data: {
          step: JOIN,
          slot: n.slot,
          instanceId: n.instanceId,
          attempt: 1,
          commandId: "cmd-b",
          durationMs: 1,
          outputTail: "",
        },
      }),
    ),
  ];
  const fact = (n: N, state: "ready" | "not-ready", factSequence?: number) => ({
    type: "install.record-node-state" as const,
    data: { clusterId, node: n.node, state, ...(factSequence ? { factSequence } : {}) },
  });

  it("given two nodes joined, when both turn Ready in one group commit, then both are recorded with their facts' sequences", () => {
    spec
      .given(joined)
      .when(cmd("install.record-many", { records: [fact(web[0]!, "ready", 40), fact(web[1]!, "ready", 41)] }))
      .then([
        { type: "install.node-ready", data: { slot: 1000, node: "i-web0", factSequence: 40 } },
        { type: "install.node-ready", data: { slot: 1001, node: "i-web1", factSequence: 41 } },
      ]);
  });

  it("given a node NotReady from fact 42, when its older Ready fact 40 comes again (a redelivery), then nothing", () => {
    const history = [
      ...joined,
      { type: "install.node-ready", data: { slot: 1000, node: "i-web0", factSequence: 40 } },
      {
        type: "install.node-not-ready",
        data: { slot: 1000, node: "i-web0", reason: "kubelet", factSequence: 42 },
      },
    ] as InstallEvent[];
    spec
      .given(history)
      .when(cmd("install.record-node-state", fact(web[0]!, "ready", 40).data))
      .then([]);
    spec
      .given(history)
      .when(cmd("install.record-node-state", fact(web[0]!, "ready", 43).data))
      .then([{ type: "install.node-ready", data: { slot: 1000, node: "i-web0", factSequence: 43 } }]);
  });

  it("a fact without a sequence (recorded before they carried one) is decided as before", () => {
    spec
      .given(joined)
      .when(cmd("install.record-node-state", fact(web[0]!, "ready").data))
      .then([{ type: "install.node-ready", data: { slot: 1000, node: "i-web0" } }]);
  });
});
