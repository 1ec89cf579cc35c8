/**
 * Two processes of every service through a cluster's whole lifecycle (issue 11; DESIGN §8:
 * any service may run two replicas): create → Ready, scale a pool up, scale it down by two,
 * roll back to an earlier version (which removes two more), a spot interruption, delete →
 * Deleted. Nothing may be lost, duplicated or left unanswered: every command is answered, no
 * slot has two instances, no install step is sent twice without a recorded failure, and the
 * projector's read model equals the log.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  duplicateInstances,
  readModelProblems,
  settledStepSendProblems,
  unansweredCommands,
  unrecordedInstances,
  watchInstances,
} from "./harness/checks.ts";
import { createCommand, reached, runningInstances, type Sent, send } from "./harness/lifecycle.ts";
import { REGION, type Stack, startStack, until } from "./harness/stack.ts";

let stack: Stack;

beforeAll(async () => {
  stack = await startStack({ replicas: 2, timeScale: 50 });
});
afterAll(async () => {
  await stack?.stop();
});

describe("two replicas of every service", () => {
  it("take a cluster through create, scale up, scale down by two, rollback, a spot interruption and delete", async () => {
    const id = "replicas-1";
    const sent: Sent[] = [];
    const phases: Record<string, number> = {};
    const timed = async <T>(phase: string, f: () => Promise<T>): Promise<T> => {
      const t = Date.now();
      const v = await f();
      phases[phase] = Date.now() - t;
      return v;
    };
    const instances = watchInstances(stack, id);

    // 1. Create: one server, two spot workers.
    const create = await send(stack, sent, createCommand(id, 2));
    const firstReady = await timed("create → Ready", () => reached(stack, id, create.commandId));

    // 2. Scale up to 6, 3. down by two to 4.
    const up = await send(stack, sent, {
      type: "cluster.scale",
      data: { clusterId: id, pool: "workers", count: 6 },
    });
    await timed("scale 2 → 6", () => reached(stack, id, up.commandId));
    const down = await send(stack, sent, {
      type: "cluster.scale",
      data: { clusterId: id, pool: "workers", count: 4 },
    });
    await timed("scale 6 → 4", () => reached(stack, id, down.commandId));

    // 4. Roll back to the first Ready: two workers, so two more go.
    const rollback = await send(stack, sent, {
      type: "cluster.rollback",
      data: { clusterId: id, toVersion: firstReady.position },
    });
    await timed("rollback 4 → 2", () => reached(stack, id, rollback.commandId));
    const afterRollback = await stack.events({ type: "cluster", id });
    expect(runningInstances(afterRollback).size).toBe(3);

    // 5. A spot interruption of a worker, as AWS gives it (EventBridge's warning on SQS).
    const workerSlot = [...runningInstances(afterRollback)].find(([slot]) => slot >= 1000);
    if (!workerSlot) throw new Error("no worker runs after the rollback");
    const [slot, victim] = workerSlot;
    const interruptedAt = Date.now();
    await stack.sim("ec2/interrupt-spot", { region: REGION, instanceId: victim });
    const replaced = await timed("spot interruption → replacement requested", () =>
      until(stack, `a replacement of ${victim}`, async () => {
        const events = await stack.events({ type: "cluster", id });
        return events.find(
          (e) => e.type === "cluster.node-replacement-requested" && e.data.instanceId === victim,
        );
      }),
    );
    await timed("replacement → Ready", () =>
      until(stack, "Ready after the replacement", async () => {
        const events = await stack.events({ type: "cluster", id });
        return events.some((e) => e.type === "cluster.ready" && e.seq > replaced.seq);
      }),
    );
    phases["spot notice → Ready (wall)"] = Date.now() - interruptedAt;
    const afterSpot = runningInstances(await stack.events({ type: "cluster", id }));
    expect(afterSpot.get(slot)).toBeDefined();
    expect(afterSpot.get(slot)).not.toBe(victim);

    // 6. Delete.
    const del = await send(stack, sent, { type: "cluster.delete", data: { clusterId: id } });
    await timed("delete → Deleted", () => reached(stack, id, del.commandId, "cluster.deleted"));
    console.log(
      `lifecycle with two replicas (time scale ${stack.timeScale}): ${Object.entries(phases)
        .map(([k, ms]) => `${k} ${(ms / 1000).toFixed(1)} s`)
        .join(", ")}`,
    );

    const clusterEvents = await stack.events({ type: "cluster", id });
    const seen = await instances.stop();

    // Every command answered (accepted with events, or rejected with a reason).
    expect(await unansweredCommands(stack, sent, clusterEvents)).toEqual([]);
    // One instance per slot and launch attempt, and none the log does not know.
    expect(seen.length).toBeGreaterThanOrEqual(1 + 6 + 1);
    expect(duplicateInstances(seen)).toEqual([]);
    expect(unrecordedInstances(seen, clusterEvents)).toEqual([]);
    // Everything terminated after the delete.
    await until(
      stack,
      "every instance terminated",
      async () => {
        const { describeClusterInstances } = await import("./harness/checks.ts");
        const now = await describeClusterInstances(stack, id);
        return now.every((i) => i.state === "terminated" || i.state === "shutting-down") ? true : undefined;
      },
      15_000,
    );
    // No install step sent twice without a recorded failure.
    const sentSteps = await settledStepSendProblems(
      stack,
      [id],
      seen.map((i) => i.instanceId),
    );
    expect(sentSteps.commands.length).toBeGreaterThan(0);
    expect(sentSteps.problems).toEqual([]);
    // The read model is the log.
    expect(await readModelProblems(stack, id)).toEqual([]);
    // Each phase ended within the sim's own times, not a deadline (a drain's is 5 min).
    for (const [phase, ms] of Object.entries(phases)) expect(ms, phase).toBeLessThan(30_000);
    expect(stack.crashes()).toEqual([]);
  });
});
