/**
 * Deleting a cluster a session lives on, with two processes of every service (DESIGN §8),
 * and both provisioners SIGKILLed as soon as the forced delete is accepted:
 * the refusal (409, the reason) comes from whichever replica took the command; the forced
 * delete goes on after the restart — the wait is counted from the deletion, not from a
 * process's start — and the session's objects are deleted through the cluster's API
 * before any of its instances is terminated. Nothing crashes, nothing is dead-lettered.
 */
import type { LoggedRequest } from "@cairn/sim";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createCommand, reached, type Sent, send } from "./harness/lifecycle.ts";
import { type Stack, startStack, until } from "./harness/stack.ts";

let stack: Stack;

beforeAll(async () => {
  stack = await startStack({ replicas: 2, timeScale: 50 });
});
afterAll(async () => {
  await stack?.stop();
});

const call = async (method: string, path: string, body?: unknown) => {
  const res = await fetch(`${stack.api()}${path}`, {
    method,
    ...(body !== undefined
      ? { headers: { "content-type": "application/json" }, body: JSON.stringify(body) }
      : {}),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
};

describe("deleting a cluster with a live session, two replicas of everything", () => {
  it("refused with the reason; forced, through a SIGKILL of both provisioners: the session ends first, then the instances", async () => {
    const id = "busy-e2e";
    const sessionId = "s-busy-e2e";
    const sent: Sent[] = [];
    const create = await send(stack, sent, createCommand(id, 1));
    await reached(stack, id, create.commandId);

    const created = await call("POST", "/sessions", {
      sessionId,
      user: "alice",
      clusterId: id,
      template: { image: "ghcr.io/acme/ide:1", cpu: "500m", memory: "1Gi", storage: "1Gi" },
    });
    expect(created.status).toBe(202);
    const sessionEvents = () => stack.events({ type: "session", id: sessionId });
    await until(stack, "the session Running", async () =>
      (await sessionEvents()).some((e) => e.type === "session.running"),
    );

    const refused = await call("DELETE", `/clusters/${id}`);
    expect(refused.status).toBe(409);
    expect(refused.body.message).toBe(
      `cluster ${id} has 1 live session (1 Running: ${sessionId}); terminate them first, or send the delete with force: true to terminate them (cause cluster-deleted) before the cluster is deleted`,
    );

    const forced = await call("DELETE", `/clusters/${id}?force=true`);
    expect(forced.status).toBe(202);
    // Both provisioners die as soon as the delete is accepted (while it waits for the
    // session, or about to); they come back and carry it on.
    await Promise.all(stack.of("provisioner").map((p) => p.restart()));
    await reached(stack, id, String(forced.body.commandId), "cluster.deleted");

    const session = await sessionEvents();
    expect(session.find((e) => e.type === "session.terminating")?.data).toMatchObject({
      cause: "cluster-deleted",
    });
    const terminated = session.find((e) => e.type === "session.terminated");
    expect(terminated?.data).toMatchObject({ cause: "cluster-deleted", volumeReleased: true });
    const clusterEvents = await stack.events({ type: "cluster", id });
    const deleted = clusterEvents.find((e) => e.type === "cluster.deleted");
    expect(terminated!.seq).toBeLessThan(deleted!.seq);
    expect(deleted?.data).not.toHaveProperty("sessionsLeft");

    // The cloud's own order of calls: the session's objects, then the instances.
    const requests = await stack.sim<LoggedRequest[]>("requests");
    const objectsDeleted = requests.filter(
      (r) =>
        r.service === "kube" &&
        r.region === id &&
        r.action.startsWith("delete ") &&
        r.ids.includes(`session-${sessionId}`) &&
        r.status < 300,
    );
    // Two node-ops replicas may both delete (an object still finalizing answers 200 again,
    // as kube-apiserver does): each kind deleted, whichever replica did it.
    expect([...new Set(objectsDeleted.map((r) => r.action))].sort()).toEqual([
      "delete deployment",
      "delete persistentvolumeclaim",
    ]);
    const instanceIds = clusterEvents
      .filter((e) => e.type === "cluster.instance-launched")
      .map((e) => String(e.data.instanceId));
    const terminations = requests.filter(
      (r) =>
        r.service === "ec2" &&
        r.action === "TerminateInstances" &&
        r.ids.some((i) => instanceIds.includes(i)),
    );
    expect(terminations.length).toBeGreaterThan(0);
    expect(Math.max(...objectsDeleted.map((r) => r.seq))).toBeLessThan(
      Math.min(...terminations.map((r) => r.seq)),
    );

    expect(await stack.deadLetters()).toEqual([]);
    expect(stack.crashes()).toEqual([]);
  });
});
