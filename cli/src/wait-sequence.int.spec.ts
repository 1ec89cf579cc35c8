/**
 * `--wait` counts only views at or past its command's commit, against the real API: the
 * provisioner, installer and node-ops on the sim (real NATS JetStream), the projector on real
 * Postgres. A scale of a Ready cluster is the race: before the projector folds the scale, the
 * cluster reads "Ready" — the goal. The view a stale read returns is exactly the cluster as
 * it was just before the scale's commit (`GET /clusters/:id?at=<sequence - 1>`).
 */
import { type ControlPlane, startControlPlane } from "@cairn/installer/testing";
import { type Projector, startProjector } from "@cairn/projector";
import { createTestDatabase, type DisposableDatabase } from "@cairn/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ApiClient, apiClient } from "./api-client.ts";
import { clusterVerdict } from "./cluster/outcome.ts";
import type { ClusterView } from "./cluster/view.ts";
import { type CommandView, commandStatus, sendCommand } from "./command-status.ts";
import { waitForCluster } from "./commands/cluster.ts";
import { demoCluster } from "./demo.ts";

let plane: ControlPlane;
let database: DisposableDatabase;
let projector: Projector;
let api: ApiClient;

beforeAll(async () => {
  [plane, database] = await Promise.all([
    startControlPlane({ seed: 7, installer: { reactor: { maxPollMs: 100 } } }),
    createTestDatabase("cli_wait_sequence"),
  ]);
  projector = await startProjector({ nats: plane.js.nats, databaseUrl: database.url, api: { port: 0 } });
  api = apiClient(projector.api!.url, undefined);
}, 60_000);

afterAll(async () => {
  await projector?.stop();
  await plane?.stop();
  await database?.dispose();
});

async function answered(commandId: string): Promise<CommandView> {
  for (const end = Date.now() + 30_000; Date.now() < end; ) {
    const c = await commandStatus(api, commandId);
    if (c) return c;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`command ${commandId} was not answered in 30 s`);
}

describe("a wait ignores views older than its command's commit", () => {
  it("a scale of a Ready cluster: the Ready from before it does not count, the one after it does", async () => {
    const id = "seq-1";
    const create = await sendCommand(api, "cluster.create", demoCluster(id).data, "alice");
    const ready = await waitForCluster(api, id, "Ready", {
      commandId: create.commandId,
      timeoutMs: 60_000,
      quiet: true,
    });
    expect(ready.sequence).toEqual(expect.any(Number));

    const scale = await sendCommand(
      api,
      "cluster.scale",
      { clusterId: id, pool: "workers", count: 3 },
      "alice",
    );
    const command = await answered(scale.commandId);
    // The API's sequence is the commit that answered the command: the scale's own event.
    const history = await api.get<{ items: { sequence: number; type: string; commandId: string | null }[] }>(
      `/clusters/${id}/history`,
    );
    const scaleEvent = history.items.find((e) => e.commandId === scale.commandId);
    expect(scaleEvent?.type).toBe("cluster.scale-requested");
    expect(command).toMatchObject({ status: "accepted", sequence: scaleEvent?.sequence });
    const s = command.sequence as number;
    expect(s).toBeGreaterThan(ready.sequence as number);

    // What a read racing the projection sees: Ready, one commit short of the scale.
    const stale = await api.get<ClusterView>(`/clusters/${id}?at=${s - 1}`);
    expect(stale).toMatchObject({ state: "Ready", sequence: ready.sequence });
    expect(clusterVerdict("Ready", id, { view: stale, command, unanswered: true })).toMatchObject({
      kind: "waiting",
      state: "Ready (command not shown by the read model yet)",
    });
    // The scale's own commit shows: the cluster is no longer Ready then.
    const moved = await api.get<ClusterView>(`/clusters/${id}?at=${s}`);
    expect(moved.sequence).toBe(s);
    expect(moved.state).not.toBe("Ready");
    expect(clusterVerdict("Ready", id, { view: moved, command, unanswered: true }).kind).toBe("waiting");

    // The wait itself ends on a Ready past the scale: with the fourth node.
    const after = await waitForCluster(api, id, "Ready", {
      commandId: scale.commandId,
      timeoutMs: 60_000,
      quiet: true,
    });
    expect(after.sequence).toBeGreaterThanOrEqual(s);
    expect(after.progress.nodes).toMatchObject({ ready: 4, wanted: 4 });
  }, 120_000);

  it("a node operation's view carries its sequence: at or past its command's", async () => {
    const nodes = await api.get<{ items: { node: string }[] }>("/clusters/seq-1/nodes");
    const node = nodes.items[0]!.node;
    const cordon = await sendCommand(
      api,
      "node.cordon",
      { clusterId: "seq-1", node, reason: "sequence test" },
      "alice",
    );
    const command = await answered(cordon.commandId);
    const ops = await api.get<{ items: { sequence: number; node: string }[] }>("/nodeops?clusterId=seq-1");
    const op = ops.items.find((o) => o.node === node);
    expect(op?.sequence).toBeGreaterThanOrEqual(command.sequence as number);
  }, 60_000);
});
