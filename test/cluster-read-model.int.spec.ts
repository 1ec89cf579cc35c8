/**
 * What a person sees of a cluster, through every real part on the sim (the provisioner,
 * the installer and node-ops: startControlPlane) and the projector's API on a fresh
 * Postgres database (issue 14, "every failure says why"):
 *
 * - progress is honest: while Configuring it counts K3s's steps (servers initialised and
 *   joined, agents joined, nodes Ready) and never shows 100 % before the cluster is Ready;
 * - a cluster whose launches the sim refuses (no capacity for its pool) is Failed, and the
 *   API says why and what to do, in its failure, health and conditions;
 * - what can be checked up front is refused up front: a create whose tags EC2 would
 *   refuse, published straight on NATS past every client-side check, is rejected by the
 *   provisioner with the rule; a cordon of a node the cluster does not have is rejected by
 *   node-ops naming the nodes it has;
 * - a replay of this real log rebuilds the same rows (conditions, health, failure included).
 */
import { commandSubject, exampleClusterCreate, newId } from "@cairn/events";
import { type ControlPlane, startControlPlane } from "@cairn/installer/testing";
import { type Projector, replay, startProjector } from "@cairn/projector";
import { createTestDatabase, type DisposableDatabase } from "@cairn/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

let plane: ControlPlane;
let database: DisposableDatabase;
let projector: Projector;
let api: string;
const logLines: string[] = [];
const logger = {
  info() {},
  warn: (o: object, m?: string) => void logLines.push(`${m} ${JSON.stringify(o)}`),
  error: (o: object, m?: string) => void logLines.push(`${m} ${JSON.stringify(o)}`),
};

beforeAll(async () => {
  [plane, database] = await Promise.all([
    startControlPlane({ seed: 41, logger, installer: { reactor: { maxPollMs: 100 } } }),
    createTestDatabase("read_model"),
  ]);
  projector = await startProjector({ nats: plane.js.nats, databaseUrl: database.url, api: { port: 0 } });
  api = projector.api!.url;
}, 60_000);
afterAll(async () => {
  await projector?.stop();
  await plane?.stop();
  await database?.dispose();
});

// biome-ignore lint/suspicious/noExplicitAny: the API's JSON, read as the tests need it.
type Json = any;
async function call(method: string, path: string, body?: unknown): Promise<{ status: number; body: Json }> {
  const res = await fetch(`${api}${path}`, {
    method,
    ...(body !== undefined
      ? { headers: { "content-type": "application/json" }, body: JSON.stringify(body) }
      : {}),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}
async function until<T>(what: string, f: () => Promise<T | undefined>, ms = 60_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v !== undefined) return v;
    if (Date.now() > end)
      throw new Error(`timed out waiting for ${what}; last log: ${logLines.slice(-5).join(" | ")}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
const commandOutcome = (commandId: string) =>
  until(`command ${commandId} answered`, async () => {
    const r = await call("GET", `/commands/${commandId}`);
    return r.status === 200 ? r.body : undefined;
  });

describe("a cluster as the API shows it, on the sim", () => {
  it("progress is honest: Configuring counts K3s's steps and is never 100 % before Ready", async () => {
    const created = await call("POST", "/clusters", exampleClusterCreate("honest-1").data);
    expect(created.status).toBe(202);
    // Every distinct look at the cluster while it is built (state, done of total, percent, step).
    const seen: { state: string; done: number; total: number; percent: number; step: string }[] = [];
    const ready = await until("honest-1 Ready", async () => {
      const r = await call("GET", "/clusters/honest-1");
      if (r.status !== 200) return undefined;
      const { state, progress } = r.body;
      const look = {
        state,
        done: progress.done,
        total: progress.total,
        percent: progress.percent,
        step: progress.step,
      };
      const last = seen.at(-1);
      if (!last || last.step !== look.step || last.state !== look.state) seen.push(look);
      return state === "Ready" ? r.body : undefined;
    });
    const configuring = seen.filter((s) => s.state === "Configuring");
    expect(configuring.length, JSON.stringify(seen)).toBeGreaterThan(0);
    // Three nodes, three steps each; every instance runs once Configuring, K3s has steps to go.
    for (const s of configuring) {
      expect(s.total).toBe(9);
      expect(s.done).toBeGreaterThanOrEqual(3);
      expect(s.percent).toBeLessThan(100);
    }
    // It moves through K3s's steps, forward only.
    const steps = seen.map((s) => s.done);
    expect(steps).toEqual([...steps].sort((a, b) => a - b));
    expect(configuring.some((s) => /K3s|Ready/.test(s.step))).toBe(true);
    // Ready: every step done, and the conditions agree.
    expect(ready.progress).toMatchObject({ operation: null, done: 9, total: 9, percent: 100 });
    expect(ready.health).toBe("Healthy");
    expect(ready.failure).toBeNull();
    const byType = Object.fromEntries(ready.conditions.map((c: Json) => [c.type, c]));
    expect(byType.Ready).toMatchObject({ status: "True", reason: "Ready" });
    expect(byType.Validated).toMatchObject({ status: "True", reason: "ImageFound" });
    expect(byType.Provisioned).toMatchObject({ status: "True", reason: "InstancesRunning" });
    expect(byType.Installed).toMatchObject({ status: "True", reason: "K3sReady" });
    expect(byType.Degraded).toMatchObject({ status: "False", reason: "HealthChecksPass" });
    expect(byType.Failed).toMatchObject({ status: "False" });
    // The learnt step durations moved: the next ETA comes from this install.
    const durations = (await call("GET", "/step-durations")).body.items;
    expect(durations.find((d: Json) => d.kind === "k3s-server-init")?.samples).toBeGreaterThan(0);
  });

  it("a cluster whose launches EC2 refuses is Failed, saying why and what to do", async () => {
    // No capacity for the pool's only instance type, anywhere: every placement fails.
    plane.sim.faults.add({
      kind: "insufficient-capacity",
      service: "ec2",
      rate: 1,
      match: { instanceType: "t3.xlarge" },
    });
    const spec = exampleClusterCreate("doomed-1").data;
    const created = await call("POST", "/clusters", {
      ...spec,
      pools: [{ name: "workers", capacityType: "spot", instanceTypes: ["t3.xlarge"], count: 1 }],
    });
    expect(created.status).toBe(202);
    const failed = await until("doomed-1 Failed", async () => {
      const r = await call("GET", "/clusters/doomed-1");
      return r.body?.state === "Failed" ? r.body : undefined;
    });
    expect(failed.health).toBe("Failed");
    expect(failed.failure).toEqual({
      reason: expect.stringMatching(/^no capacity left for slot 1000 \(pool workers\)/),
      remediation: expect.stringContaining("add instance types or availability zones to the pool"),
      code: "no-capacity",
      since: expect.any(String),
    });
    const byType = Object.fromEntries(failed.conditions.map((c: Json) => [c.type, c]));
    expect(byType.Failed).toMatchObject({
      status: "True",
      reason: "NoCapacity",
      message: failed.failure.reason,
    });
    expect(byType.Provisioned).toMatchObject({ status: "False", reason: "NoCapacity" });
    expect(byType.Ready).toMatchObject({ status: "False", reason: "Failed" });
    // Its progress says how far it got, not 100 %.
    expect(failed.progress.percent).toBeLessThan(100);
    // The list says it too (what a dashboard and `cairn cluster list -o wide` read).
    const list = await call("GET", "/clusters?state=Failed");
    expect(list.body.items.map((c: Json) => [c.id, c.health, c.failure?.code])).toEqual([
      ["doomed-1", "Failed", "no-capacity"],
    ]);
  });

  it("a create with tags EC2 would refuse, published straight on NATS, is rejected with the rule", async () => {
    const id = newId();
    const tags = Object.fromEntries(Array.from({ length: 300 }, (_, i) => [`team-${i}`, "x"]));
    // A publisher that checks nothing: the raw envelope on the command subject.
    await plane.js.nats.js.publish(
      commandSubject("cluster.create"),
      JSON.stringify({
        id,
        type: "cluster.create",
        data: { ...exampleClusterCreate("tagged-1").data, tags },
        meta: { actor: "script" },
      }),
      { msgID: id },
    );
    const outcome = await commandOutcome(id);
    expect(outcome).toMatchObject({
      status: "rejected",
      code: "invalid",
      aggregate: { type: "cluster", id: "tagged-1" },
    });
    expect(outcome.reason).toMatch(/tags: 300 tags, but an instance takes at most 44 of yours/);
    // Nothing was launched: no cluster at all.
    expect((await call("GET", "/clusters/tagged-1")).status).toBe(404);
  });

  it("a cordon of a node the cluster does not have is rejected at once, naming its nodes", async () => {
    const nodes = await until("honest-1's nodes in node-ops' facts", async () => {
      const r = await call("GET", "/nodes?clusterId=honest-1");
      const ready = (r.body?.items ?? []).filter((n: Json) => n.kube?.registered && n.kube?.ready);
      return ready.length === 3 ? r.body.items.map((n: Json) => n.node as string) : undefined;
    });
    const sent = await call("POST", "/clusters/honest-1/nodes/ip-10-99-99-99/cordon", { reason: "typo" });
    expect(sent.status).toBe(202);
    const outcome = await commandOutcome(sent.body.commandId);
    expect(outcome).toMatchObject({ status: "rejected", code: "not-found" });
    expect(outcome.reason).toContain(
      `cluster honest-1 has no node ip-10-99-99-99; its nodes: ${[...nodes].sort().join(", ")}`,
    );
  });

  it("a replay of this log rebuilds the same read models, conditions and failures included", async () => {
    const result = await replay({ databaseUrl: database.url, nats: plane.js.nats, checkOnly: true });
    expect(result.comparison).toMatchObject({ compared: true, equal: true });
  });
});
