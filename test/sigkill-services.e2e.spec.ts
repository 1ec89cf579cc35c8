/**
 * SIGKILL each service at a moment that matters and start it again (issue 11, finding 9):
 * the provisioner right after it asked for launches, the installer with a step in flight,
 * the projector while events stream in, node-ops mid-drain. The cluster must reach Ready on
 * its creating trace, with no duplicate instance and no step sent twice, and no phase may
 * stall longer than a few seconds for the kill (the runtime's ack wait is 5 s).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  duplicateInstances,
  longestGap,
  offTrace,
  readModelProblems,
  settledStepSendProblems,
  unansweredCommands,
  unrecordedInstances,
  watchInstances,
} from "./harness/checks.ts";
import { createCommand, nodeopEvents, reached, type Sent, send } from "./harness/lifecycle.ts";
import type { LoggedEvent, ServiceName, Stack } from "./harness/stack.ts";
import { startStack } from "./harness/stack.ts";

let stack: Stack;
/** How long a kill may hold a phase up (wall ms): ack wait 5 s + a restart on a busy machine. */
const MAX_GAP_MS = 8_000;

beforeAll(async () => {
  stack = await startStack({ replicas: 1, timeScale: 50 });
});
afterAll(async () => {
  await stack?.stop();
});

interface Kill {
  readonly service: ServiceName;
  readonly moment: string;
  at?: number;
  /** The event that triggered it. */
  after?: string;
}

/**
 * Watches the cluster's log and kills each service once at its moment (the first event of
 * `trigger`), starting it again at once. Resolves the kills done when stopped.
 */
function killAt(clusterId: string, plan: { kill: Kill; trigger: (e: LoggedEvent) => boolean }[]) {
  let running = true;
  const restarts: Promise<void>[] = [];
  const loop = (async () => {
    while (running && plan.some((p) => p.kill.at === undefined)) {
      const events = [
        ...(await stack.events({ type: "cluster", id: clusterId })),
        ...(await stack.events({ type: "install", id: clusterId })),
        ...(await nodeopEvents(stack, clusterId)),
      ];
      for (const p of plan) {
        if (p.kill.at !== undefined) continue;
        const e = events.find(p.trigger);
        if (!e) continue;
        p.kill.at = Date.now();
        p.kill.after = `${e.type} #${e.seq}`;
        const proc = stack.proc(p.kill.service);
        await proc.kill("SIGKILL");
        restarts.push(proc.start());
      }
      await new Promise((r) => setTimeout(r, 30));
    }
  })();
  return {
    /** The kills, filled in as they happen. */
    kills: plan.map((p) => p.kill),
    stop: async () => {
      running = false;
      await loop;
      await Promise.all(restarts);
      return plan.map((p) => p.kill);
    },
  };
}

describe("SIGKILL each service mid-lifecycle", () => {
  it("reaches Ready on the creating trace, with nothing duplicated and no long stall", async () => {
    const id = "killed-1";
    const sent: Sent[] = [];
    const instances = watchInstances(stack, id);
    const creating = killAt(id, [
      {
        kill: { service: "provisioner", moment: "right after its launch requests" },
        trigger: (e) => e.type === "cluster.instance-launch-requested",
      },
      {
        kill: { service: "installer", moment: "mid-install (a step in flight)" },
        trigger: (e) => e.type === "install.step-sent",
      },
      {
        kill: { service: "projector", moment: "mid-batch (events streaming in)" },
        trigger: (e) => e.type === "install.step-requested" && e.data.step === "k3s-agent-join",
      },
    ]);
    const create = await send(stack, sent, createCommand(id, 3));
    const ready = await reached(stack, id, create.commandId, "cluster.ready", 75_000);
    const kills = await creating.stop();

    // The creating trace: every cluster.* and install.* event up to Ready is on it or links to it.
    expect(create.traceId).toMatch(/^[0-9a-f]{32}$/);
    const upToReady = [
      ...(await stack.events({ type: "cluster", id })),
      ...(await stack.events({ type: "install", id })),
    ].filter((e) => e.seq <= ready.seq);
    expect(offTrace(upToReady, create.traceId ?? "")).toEqual([]);
    expect(ready.meta.traceparent?.split("-")[1]).toBe(create.traceId);

    // node-ops mid-drain: a scale down by one drains a worker.
    const drain = killAt(id, [
      {
        kill: { service: "node-ops", moment: "mid-drain" },
        trigger: (e) => e.type === "nodeop.drain-requested",
      },
    ]);
    const down = await send(stack, sent, {
      type: "cluster.scale",
      data: { clusterId: id, pool: "workers", count: 2 },
    });
    await reached(stack, id, down.commandId, "cluster.ready", 45_000);
    kills.push(...(await drain.stop()));

    // Every kill happened, and none held its phase up for long.
    const all = [
      ...(await stack.events({ type: "cluster", id })),
      ...(await stack.events({ type: "install", id })),
      ...(await nodeopEvents(stack, id)),
    ];
    const gaps = kills.map((k) => {
      const nextReady = all
        .filter((e) => e.type === "cluster.ready" && e.at > (k.at ?? 0))
        .sort((a, b) => a.at - b.at)[0];
      const gap = longestGap(all, k.at ?? 0, nextReady?.at ?? Date.now());
      return { service: k.service, moment: k.moment, killedAfter: k.after, gap };
    });
    console.log(
      `kills: ${gaps.map((g) => `${g.service} after ${g.killedAfter}: longest gap ${g.gap.ms} ms (${g.gap.after} → ${g.gap.before})`).join("; ")}`,
    );
    for (const g of gaps) {
      expect(g.killedAfter, `${g.service} was never killed ${g.moment}`).toBeDefined();
      expect(g.gap.ms, `${g.service} killed ${g.moment}: ${g.gap.after} → ${g.gap.before}`).toBeLessThan(
        MAX_GAP_MS,
      );
    }

    // Nothing duplicated, nothing lost.
    const clusterEvents = await stack.events({ type: "cluster", id });
    const seen = await instances.stop();
    expect(duplicateInstances(seen)).toEqual([]);
    expect(unrecordedInstances(seen, clusterEvents)).toEqual([]);
    const steps = await settledStepSendProblems(
      stack,
      [id],
      seen.map((i) => i.instanceId),
    );
    expect(steps.problems).toEqual([]);
    expect(await unansweredCommands(stack, sent, clusterEvents)).toEqual([]);
    expect(await readModelProblems(stack, id)).toEqual([]);
    expect(stack.crashes()).toEqual([]);
  });
});
