import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Projector, startProjector } from "../projector.ts";
import { cluster, deletionRequested, requested } from "../testing/fixtures.ts";
import { type Infra, startInfra } from "../testing/infra.ts";

let infra: Infra;
let projector: Projector;
let base: string;

beforeAll(async () => {
  infra = await startInfra();
  projector = await startProjector({
    nats: infra.nats,
    databaseUrl: infra.database.url,
    api: { port: 0, heartbeatMs: 50 },
  });
  base = projector.api!.url;
});
afterAll(async () => {
  // Streams still open here: stop() must end them rather than wait for them.
  await projector?.stop();
  await infra?.dispose();
});

/** A real HTTP client on the stream, reading it block by block (blocks end with a blank line). */
async function openStream(query = "") {
  const ctl = new AbortController();
  const res = await fetch(`${base}/events/stream${query}`, { signal: ctl.signal });
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  /** The next block for which `match` holds; blocks before it are passed over and returned too. */
  const next = async (match: (block: string) => boolean) => {
    const seen: string[] = [];
    for (;;) {
      const end = buffer.indexOf("\n\n");
      if (end >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        seen.push(block);
        if (match(block)) return { block, seen };
        continue;
      }
      const { value, done } = await reader.read();
      if (done) throw new Error(`stream ended; saw ${JSON.stringify(seen)}`);
      buffer += value;
    }
  };
  const change = async () => {
    const { block, seen } = await next((b) => b.includes("event: change"));
    const data = block.split("\n").find((l) => l.startsWith("data: "));
    const id = block.split("\n").find((l) => l.startsWith("id: "));
    return { change: JSON.parse(data!.slice(6)), id: id?.slice(4), seen };
  };
  return { res, next, change, close: () => ctl.abort() };
}

describe("GET /events/stream", () => {
  it("sends the changes of one row after they commit, skipping others, with heartbeats in between", async () => {
    const s = await openStream("?resource=clusters&id=live-1");
    try {
      expect(s.res.status).toBe(200);
      expect(s.res.headers.get("content-type")).toBe("text/event-stream; charset=utf-8");
      await s.next((b) => b.startsWith(": connected"));

      // Another cluster first: had the filter let it through, it would come first.
      await infra.writer.append(cluster("live-0"), [requested("live-0")]);
      const c1 = await infra.writer.append(cluster("live-1"), [requested("live-1")], {
        commandId: "cmd-live",
      });
      const first = await s.change();
      expect(first.id).toBe(String(c1.sequence));
      expect(first.change).toMatchObject({
        resource: "clusters",
        id: "live-1",
        sequence: c1.sequence,
        data: { id: "live-1", state: "Pending", version: 1 },
      });
      // What the stream said is what the API serves.
      // (`etaSeconds` counts down between the two reads: compare the ETA itself.)
      const get = await fetch(`${base}/clusters/live-1`);
      // (Session counts join the sessions read model on a read; the stream carries the row.)
      const withoutCountdown = ({
        sessions: _s,
        ...v
      }: {
        progress: Record<string, unknown>;
        sessions?: unknown;
      }) => ({
        ...v,
        progress: { ...v.progress, etaSeconds: typeof v.progress.etaSeconds },
      });
      expect(withoutCountdown(first.change.data)).toEqual(withoutCountdown((await get.json()) as never));

      await s.next((b) => b === ": heartbeat");

      await infra.writer.append(cluster("live-1"), [deletionRequested()]);
      const second = await s.change();
      expect(second.change).toMatchObject({ id: "live-1", data: { state: "Deleting", version: 2 } });
    } finally {
      s.close();
    }
  });

  it("a cluster's progress moves with its install: an install event sends the cluster too", async () => {
    const s = await openStream("?resource=clusters&id=live-3");
    try {
      await s.next((b) => b.startsWith(": connected"));
      await infra.writer.append(cluster("live-3"), [requested("live-3")]);
      expect((await s.change()).change.data.progress).toMatchObject({ done: 0, total: 9 });
      // Only the install moves (a node of it Ready, say): no cluster event, yet its progress moved.
      const install = { type: "install" as const, id: "live-3" };
      const planned = {
        type: "install.planned",
        data: { region: "eu-west-1", k3sVersion: "v1.31.4+k3s1", prebuiltAmi: false, servers: 1, pools: [] },
      };
      const i = await infra.writer.append(install, [planned]);
      const { change, id } = await s.change();
      expect(id).toBe(String(i.sequence));
      expect(change).toMatchObject({ resource: "clusters", id: "live-3", data: { version: 1 } });
    } finally {
      s.close();
    }
  });

  it("filtered by resource, sends command status changes", async () => {
    const s = await openStream("?resource=commands");
    try {
      await s.next((b) => b.startsWith(": connected"));
      await infra.writer.append(cluster("live-2"), [requested("live-2")], { commandId: "cmd-live-2" });
      const { change } = await s.change();
      expect(change).toMatchObject({
        resource: "commands",
        id: "cmd-live-2",
        data: { commandId: "cmd-live-2", type: "cluster.create", status: "accepted" },
      });
    } finally {
      s.close();
    }
  });

  it("a bad filter → 400", async () => {
    const r = await fetch(`${base}/events/stream?resource=planets`);
    expect(r.status).toBe(400);
    expect(((await r.json()) as { issues: string[] }).issues).toEqual([
      expect.stringMatching(/^querystring\.resource: /),
    ]);
  });

  it("a stream left open does not keep the API from stopping", async () => {
    const s = await openStream();
    await s.next((b) => b.startsWith(": connected"));
    // Left open on purpose: afterAll's stop() ends it.
    expect(s.res.ok).toBe(true);
  });
});
