/**
 * A cluster with a live session, deleted — through every real part on one disposable
 * JetStream and the sim: the provisioner, the installer and node-ops (startControlPlane),
 * the idle-detector, and the projector's API on a fresh Postgres database.
 *
 * create → Ready; a session → Running (its pod on the cluster); `DELETE /clusters/:id`
 * refused (409) with the provisioner's reason; `?force=true` → the session is ended
 * (cause cluster-deleted), its workload deleted through the cluster's API, and only then
 * are the instances terminated; the cluster Deleted; the secrets gone last. node-ops is
 * down when the forced delete is sent and comes back after the installer reacted to it,
 * so it must read the cluster's kubeconfig again to end the session (the secrets must
 * still be there).
 */
import { catalogue, clusterSessionsId, EventStore, exampleClusterCreate } from "@cairn/events";
import { type IdleDetector, startIdleDetector } from "@cairn/idle-detector";
import { type ControlPlane, startControlPlane } from "@cairn/installer/testing";
import { type Projector, startProjector } from "@cairn/projector";
import { createTestDatabase, type DisposableDatabase } from "@cairn/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const CLUSTER = "busy-1";
const SESSION = "s-busy";

let plane: ControlPlane;
let detector: IdleDetector;
let database: DisposableDatabase;
let projector: Projector;
let api: string;
let store: EventStore;
const logLines: string[] = [];
const logger = {
  info() {},
  warn: (o: object, m?: string) => void logLines.push(`${m} ${JSON.stringify(o)}`),
  error: (o: object, m?: string) => void logLines.push(`${m} ${JSON.stringify(o)}`),
};

beforeAll(async () => {
  plane = await startControlPlane({
    seed: 17,
    logger,
    nodeOps: {
      sessions: {
        poll: { firstMs: 20, minMs: 20, maxMs: 200 },
        unschedulableGraceMs: 0,
        movesIntervalMs: 200,
      },
    },
    installer: { reactor: { maxPollMs: 100 } },
  });
  detector = await startIdleDetector({ nats: plane.js.nats, sweepIntervalMs: 500, leaseTtlMs: 1_500 });
  database = await createTestDatabase("delete_sessions");
  projector = await startProjector({
    nats: plane.js.nats,
    databaseUrl: database.url,
    api: { port: 0, clusters: { deleteWaitMs: 15_000 } },
  });
  api = projector.api!.url;
  store = new EventStore({ js: plane.js.nats.js, jsm: plane.js.nats.jsm, catalogue });
}, 60_000);
afterAll(async () => {
  await projector?.stop();
  await detector?.stop();
  await plane?.stop();
  await database?.dispose();
});

async function until<T>(what: string, f: () => Promise<T | undefined>, ms = 60_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v !== undefined) return v;
    if (Date.now() > end)
      throw new Error(`timed out waiting for ${what}; last log: ${logLines.slice(-5).join(" | ")}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
const clusterStatus = async () =>
  (
    await plane.provisioner.handler.read(
      { type: "cluster", id: CLUSTER },
      { atLeastSequence: Number.MAX_SAFE_INTEGER },
    )
  ).state.status;
const sessionStatus = async () =>
  (await detector.handler.read({ type: "session", id: SESSION })).state.status;
const call = async (method: string, path: string) => {
  const res = await fetch(`${api}${path}`, { method });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
};

describe("deleting a cluster with a live session, every part real", () => {
  it("refused with the reason; forced: the session ends first (cause cluster-deleted), then the instances; Deleted", async () => {
    await plane.bus.send(exampleClusterCreate(CLUSTER));
    await until("the cluster Ready", async () => ((await clusterStatus()) === "Ready" ? true : undefined));
    await plane.bus.send({
      type: "session.create",
      data: {
        sessionId: SESSION,
        user: "alice",
        clusterId: CLUSTER,
        template: { image: "ghcr.io/acme/ide:1", cpu: "500m", memory: "1Gi", storage: "1Gi" },
      },
      meta: { actor: "alice" },
    });
    await until("the session Running", async () =>
      (await sessionStatus()) === "Running" ? true : undefined,
    );

    // 1. Refused, saying why and what to do; nothing changes.
    const refused = await call("DELETE", `/clusters/${CLUSTER}`);
    expect(refused).toEqual({
      status: 409,
      body: {
        error: "Conflict",
        message: `cluster ${CLUSTER} has 1 live session (1 Running: ${SESSION}); terminate them first, or send the delete with force: true to terminate them (cause cluster-deleted) before the cluster is deleted`,
        code: "conflict",
        commandId: expect.any(String),
      },
    });
    expect((await call("GET", `/commands/${refused.body.commandId}`)).body).toMatchObject({
      status: "rejected",
      code: "conflict",
    });
    expect(await clusterStatus()).toBe("Ready");
    expect(await sessionStatus()).toBe("Running");

    // 2. Forced, while node-ops is down: the one that comes back has no kubeconfig in
    //    memory and does not watch a cluster being deleted, so it reads the kubeconfig
    //    from SSM to delete the session's objects — after the installer has reacted to
    //    the deletion (the secrets must outlive the sessions).
    await plane.nodeOps.stop();
    const forced = await call("DELETE", `/clusters/${CLUSTER}?force=true`);
    expect(forced.status).toBe(202);
    await until("the session Terminating", async () =>
      (await sessionStatus()) === "Terminating" ? true : undefined,
    );
    await until("the install stopped", async () =>
      (await store.load({ type: "install", id: CLUSTER })).events.some(
        (e) => e.type === "install.removal-requested",
      )
        ? true
        : undefined,
    );
    await new Promise((r) => setTimeout(r, 500));
    expect(await clusterStatus()).toBe("Deleting");
    await plane.restartNodeOps(0);
    await until(
      "the cluster Deleted",
      async () => ((await clusterStatus()) === "Deleted" ? true : undefined),
      90_000,
    );

    // The session was ended with its cluster, its workload and volume deleted.
    const sessionEvents = (await store.load({ type: "session", id: SESSION })).events;
    expect(sessionEvents.find((e) => e.type === "session.terminating")?.data).toEqual({
      sessionId: SESSION,
      cause: "cluster-deleted",
      reason: `its cluster ${CLUSTER} is being deleted (forced)`,
    });
    const terminated = sessionEvents.find((e) => e.type === "session.terminated");
    expect(terminated?.data).toEqual({ sessionId: SESSION, cause: "cluster-deleted", volumeReleased: true });
    const clusterEvents = (await store.load({ type: "cluster", id: CLUSTER })).events;
    expect(clusterEvents.find((e) => e.type === "cluster.deletion-requested")?.data).toEqual({
      force: true,
      sessions: [{ sessionId: SESSION, status: "Running" }],
    });
    const deleted = clusterEvents.find((e) => e.type === "cluster.deleted");
    expect(deleted?.data).not.toHaveProperty("sessionsLeft");
    expect(terminated!.sequence).toBeLessThan(deleted!.sequence);

    // In the cloud's own order of calls: the session's objects deleted through the
    // cluster's API (found by a node-ops that had to read the kubeconfig again), then the
    // instances terminated.
    const requests = plane.sim.requests.list();
    const objectsDeleted = requests.filter(
      (r) =>
        r.service === "kube" &&
        r.region === CLUSTER &&
        r.action.startsWith("delete ") &&
        r.ids.includes(`session-${SESSION}`) &&
        r.status < 300,
    );
    expect(objectsDeleted.map((r) => r.action).sort()).toEqual([
      "delete deployment",
      "delete persistentvolumeclaim",
    ]);
    const instanceIds = new Set(
      plane.sim.world.ec2
        .instances("eu-west-1")
        .filter((i) => i.tags["cairn:cluster"] === CLUSTER)
        .map((i) => i.instanceId),
    );
    const terminations = requests.filter(
      (r) =>
        r.service === "ec2" && r.action === "TerminateInstances" && r.ids.some((id) => instanceIds.has(id)),
    );
    expect(terminations.length).toBeGreaterThan(0);
    expect(Math.max(...objectsDeleted.map((r) => r.seq))).toBeLessThan(
      Math.min(...terminations.map((r) => r.seq)),
    );

    // Its place on the cluster's ledger given back; the secrets removed once the cluster was Deleted.
    await until("the ledger empty", async () => {
      const { state } = await detector.handler.read({ type: "session", id: clusterSessionsId(CLUSTER) });
      return Object.keys(state.ledger.holders).length === 0 ? true : undefined;
    });
    await until("the secrets removed", async () =>
      plane.sim.world.ssm.parameter("eu-west-1", `/cairn/${CLUSTER}/kubeconfig`) === undefined
        ? true
        : undefined,
    );
    expect(logLines.filter((l) => l.includes("the cluster cannot be reached for good"))).toEqual([]);
    await until("the API shows it Deleted", async () =>
      (await call("GET", `/clusters/${CLUSTER}`)).body.state === "Deleted" ? true : undefined,
    );
  }, 180_000);
});
