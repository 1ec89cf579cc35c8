/**
 * A 500-node install through the decider as the reactor records it (group commits of 100
 * records): the agents' joins are requested in one decision and numbered as before, their
 * results and node-ops' facts recorded in a handful of decisions, one completion. Guards the
 * single-pass `nextSteps` and the one-spread fold against changing what is decided at scale.
 */
import type { InstallCommand, InstallEvent } from "@cairn/events";
import { describe, expect, it } from "vitest";
import { createInstallDecider, DEFAULT_INSTALL_POLICY } from "./decider.ts";
import type { InstallState } from "./state.ts";

const N = 500;
const clusterId = "big-1";
const NOW = new Date("2026-01-01T00:00:00.000Z");
const inst = (slot: number) => `i-${slot}`;

/** Decides each command on the state the ones before left, as the handler does; the events of each decision. */
function install(policy = { ...DEFAULT_INSTALL_POLICY, maxParallelJoins: N }) {
  const d = createInstallDecider(policy);
  let state: InstallState = d.initialState();
  let version = 0;
  const decisions: InstallEvent[][] = [];
  const run = (type: string, data: object) => {
    const command = { id: `c${version}`, type, data: { clusterId, ...data }, meta: { actor: "test" } };
    const out = d.decide(command as unknown as Parameters<typeof d.decide>[0], state, { now: NOW, version });
    if (!Array.isArray(out)) throw new Error(`rejected: ${JSON.stringify(out)}`);
    for (const e of out) state = d.evolve(state, { ...e, position: ++version } as never);
    decisions.push(out);
    return out;
  };
  /** Records in group commits of 100, as the reactor flushes them. */
  const many = (records: { type: InstallCommand["type"]; data: object }[]) =>
    Array.from({ length: Math.ceil(records.length / 100) }, (_, i) =>
      run("install.record-many", {
        records: records.slice(i * 100, i * 100 + 100).map((r) => ({ ...r, data: { clusterId, ...r.data } })),
      }),
    ).flat();
  return { run, many, decisions, state: () => state };
}

const slots = [...Array(N).keys()];

type Install = ReturnType<typeof install>;

/** Planned (one server, pool `web`), its secrets stored, `nodes` added (slot 0 the server) and online. */
function nodesOnline(i: Install, nodes: readonly number[]): InstallEvent[] {
  i.run("install.plan", {
    region: "eu-west-1",
    k3sVersion: "v1.31.4+k3s1",
    prebuiltAmi: true,
    servers: 1,
    pools: [{ name: "web", capacityType: "on-demand", labels: {}, taints: [] }],
  });
  i.run("install.record-secrets", { parameters: ["/cairn/big-1/token"] });
  i.many(
    nodes.map((s) => ({
      type: "install.add-node" as const,
      data: {
        slot: s,
        instanceId: inst(s),
        role: s === 0 ? "server" : "agent",
        pool: s === 0 ? "servers" : "web",
        capacityType: "on-demand",
      },
    })),
  );
  return i.many(
    nodes.map((s) => ({ type: "install.record-online" as const, data: { slot: s, instanceId: inst(s) } })),
  );
}

/** The first server's init sent and succeeded: the events of the decision that recorded its success. */
function serverInstalled(i: Install): InstallEvent[] {
  i.run("install.record-step-sent", {
    slot: 0,
    step: "k3s-server-init",
    attempt: 1,
    commandId: "init",
    sentAt: NOW.toISOString(),
  });
  return i.run("install.record-step-result", {
    slot: 0,
    step: "k3s-server-init",
    attempt: 1,
    commandId: "init",
    status: "Success",
    outputTail: "",
  });
}

describe("a 500-node install, decided as the reactor records it", () => {
  it("joins in one decision numbered 2..500 of 500, results in 5 decisions, one completion", () => {
    const i = install();
    const onlines = nodesOnline(i, slots);
    // Only the first server's init while it is not installed: no agent starts before.
    expect(onlines.filter((e) => e.type === "install.step-requested").map((e) => e.data)).toEqual([
      expect.objectContaining({ step: "k3s-server-init", slot: 0, number: 1, of: N }),
    ]);
    const init = serverInstalled(i);
    // Every agent's join in the one decision that installed the server, in slot order.
    const requested = init.flatMap((e) => (e.type === "install.step-requested" ? [e.data] : []));
    expect(requested.map((r) => r.slot)).toEqual(slots.slice(1));
    expect(requested.map((r) => r.number)).toEqual(slots.slice(1).map((s) => s + 1));
    expect(new Set(requested.map((r) => r.of))).toEqual(new Set([N]));
    const batches = init.flatMap((e) => (e.type === "install.batch-requested" ? [e.data] : []));
    expect(batches.map((b) => b.slots.length)).toEqual([50, 50, 50, 50, 50, 50, 50, 50, 50, 49]);

    i.run("install.record-kubeconfig", { parameter: "/cairn/big-1/kubeconfig", version: 1 });
    i.run("install.record-instances-ready", { count: N });
    for (const b of batches)
      i.run("install.record-batch-sent", {
        batch: b.batch,
        commandId: `cmd-${b.batch}`,
        sentAt: NOW.toISOString(),
        instanceIds: b.instanceIds,
      });
    const before = i.decisions.length;
    const results = i.many(
      batches.flatMap((b) =>
        b.slots.map((s: number) => ({
          type: "install.record-step-result" as const,
          data: {
            slot: s,
            step: "k3s-agent-join",
            attempt: 1,
            commandId: `cmd-${b.batch}`,
            status: "Success",
            outputTail: "joined",
          },
        })),
      ),
    );
    expect(i.decisions.length - before).toBe(5);
    expect(results.filter((e) => e.type === "install.step-succeeded")).toHaveLength(N - 1);
    // Nothing left to start, nothing complete until node-ops says the nodes are Ready.
    expect(results.filter((e) => e.type !== "install.step-succeeded")).toEqual([]);

    const facts = i.many(
      slots.map((s) => ({
        type: "install.record-node-state" as const,
        data: { node: inst(s), state: "ready", factSequence: s + 1 },
      })),
    );
    expect(facts.filter((e) => e.type === "install.node-ready")).toHaveLength(N);
    expect(facts.filter((e) => e.type === "install.completed")).toEqual([
      { type: "install.completed", data: { nodes: N, k3sVersion: "v1.31.4+k3s1" } },
    ]);
    expect(facts.at(-1)?.type).toBe("install.completed");
    const s = i.state();
    expect(s.status).toBe("Ready");
    if (s.status === "Absent") return;
    expect(Object.values(s.nodes).every((n) => n.joined && n.ready && !n.step)).toBe(true);
    expect(s.stepsDone).toBe(N);
  });

  it("with at most 20 joins at once, a join's result starts the next waiting agent, in slot order", () => {
    const i = install({ ...DEFAULT_INSTALL_POLICY, maxParallelJoins: 20 });
    const few = slots.slice(0, 30);
    nodesOnline(i, few);
    const init = serverInstalled(i);
    const first = init.flatMap((e) => (e.type === "install.step-requested" ? [e.data.slot] : []));
    expect(first).toEqual(slots.slice(1, 21));
    // Slot 5's join (requested, never sent) fails for good: slot 21 takes its place.
    const next = i.run("install.record-step-result", {
      slot: 5,
      step: "k3s-agent-join",
      attempt: 1,
      status: "Failed",
      outputTail: "",
      permanent: true,
    });
    expect(next.flatMap((e) => (e.type === "install.step-requested" ? [e.data] : []))).toEqual([
      expect.objectContaining({ slot: 21, attempt: 1, number: 21, of: 29 }),
    ]);
  });
});
