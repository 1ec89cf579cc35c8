/**
 * The sessions routes against real NATS and Postgres, with the idle-detector's side
 * played by hand: its admission refusing over quota (the ledger's `session.rejected`,
 * appended as the idle-detector appends it) and its heartbeat responder.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Projector, startProjector } from "../projector.ts";
import { eventually, type Infra, startInfra } from "../testing/infra.ts";

let infra: Infra;
let projector: Projector;
let base: string;
const TEMPLATE = { image: "ghcr.io/cairn/ide:1", cpu: "1", memory: "2Gi", storage: "10Gi" };
const breach = {
  scope: "user",
  owner: "alice",
  dimension: "sessions",
  limit: 2,
  usage: { sessions: 2, cpuMillis: 2000, memoryBytes: 2 ** 32 },
  requested: { sessions: 1, cpuMillis: 1000, memoryBytes: 2 ** 31 },
};

beforeAll(async () => {
  infra = await startInfra();
  projector = await startProjector({
    nats: infra.nats,
    databaseUrl: infra.database.url,
    api: { port: 0, sessions: { admissionWaitMs: 5_000 } },
  });
  base = projector.api!.url;
  // The idle-detector's admission, played: over quota for "full-*" sessions, admitted otherwise.
  infra.nats.nc.subscribe("cmd.session.create", {
    callback: (_err, m) => {
      const c = m.json<{ id: string; data: { sessionId: string; user: string; clusterId: string } }>();
      const ref = { type: "session" as const, id: c.data.sessionId };
      void (async () => {
        await infra.writer.append(
          ref,
          [
            {
              type: "session.requested",
              data: {
                ...c.data,
                template: TEMPLATE,
                idleTimeoutSeconds: 60,
                maxLifetimeSeconds: 3600,
                cause: "user",
              },
            },
          ],
          { commandId: c.id },
        );
        const reason = "over quota: user alice has 2 live session(s) and the limit is 2";
        await infra.writer.append(
          ref,
          c.data.sessionId.startsWith("full-")
            ? [
                {
                  type: "session.rejected",
                  data: {
                    commandId: c.id,
                    commandType: "session.create",
                    code: "over-quota",
                    reason,
                    quota: breach,
                  },
                },
                {
                  type: "session.failed",
                  data: { sessionId: c.data.sessionId, cause: "quota", reason, from: "Pending" },
                },
              ]
            : [
                {
                  type: "session.admitted",
                  data: { sessionId: c.data.sessionId, groups: [], cause: "user" },
                },
              ],
          { commandId: `admit-${c.id}` },
        );
      })();
    },
  });
  // The idle-detector's heartbeat responder, played.
  infra.nats.nc.subscribe("hb.session.*", {
    callback: (_err, m) => {
      m.respond(JSON.stringify({ ok: true, status: 200 }));
    },
  });
});
afterAll(async () => {
  await projector?.stop();
  await infra?.dispose();
});

async function call(method: string, path: string, body?: unknown) {
  const res = await fetch(`${base}${path}`, {
    method,
    ...(body !== undefined
      ? { headers: { "content-type": "application/json" }, body: JSON.stringify(body) }
      : {}),
  });
  // biome-ignore lint/suspicious/noExplicitAny: answers are checked by the assertions
  return { status: res.status, body: (await res.json()) as any };
}

describe("sessions API", () => {
  it("POST /sessions over quota: 403 with the limit and the usage, the ledger's own refusal; the command shows rejected", async () => {
    const r = await call("POST", "/sessions", {
      sessionId: "full-1",
      user: "alice",
      clusterId: "c1",
      template: TEMPLATE,
    });
    expect(r.status).toBe(403);
    expect(r.body).toMatchObject({
      code: "over-quota",
      limit: 2,
      usage: { sessions: 2 },
      quota: { dimension: "sessions", owner: "alice" },
      message: expect.stringMatching(/over quota/),
    });
    const cmd = await call("GET", `/commands/${r.body.commandId}`);
    expect(cmd.body).toMatchObject({ status: "rejected", code: "over-quota", type: "session.create" });
    const s = await call("GET", "/sessions/full-1");
    expect(s.body).toMatchObject({
      state: "Failed",
      failure: { cause: "quota" },
      rejection: { code: "over-quota" },
    });
  });

  it("POST /sessions admitted: 202 with Starting, then heartbeats count, history and counts show it", async () => {
    const r = await call("POST", "/sessions", {
      sessionId: "ok-1",
      user: "alice",
      clusterId: "c1",
      template: TEMPLATE,
    });
    expect(r.status).toBe(202);
    expect(r.body).toMatchObject({
      sessionId: "ok-1",
      state: "Starting",
      links: { session: "/sessions/ok-1" },
    });
    const hb = await call("POST", "/sessions/ok-1/heartbeat", { connections: 2 });
    expect(hb).toEqual({ status: 200, body: { sessionId: "ok-1", activity: true } });
    expect((await call("POST", "/sessions/ok-1/heartbeat", { connections: 0 })).body.activity).toBe(false);
    expect((await call("POST", "/sessions/nope/heartbeat", { connections: 1 })).status).toBe(404);
    const history = await call("GET", "/sessions/ok-1/history");
    expect(history.body.items.map((e: { type: string }) => e.type)).toEqual([
      "session.requested",
      "session.admitted",
    ]);
    // The point in time before admission.
    const first = history.body.items[0].sequence;
    expect((await call("GET", `/sessions/ok-1?at=${first}`)).body.state).toBe("Pending");
    const list = await call("GET", "/sessions?user=alice&state=Starting");
    expect(list.body.items.map((s: { id: string }) => s.id)).toEqual(["ok-1"]);
  });

  it("last activity comes from the heartbeat bucket when the API reads the session", async () => {
    const kv = await infra.nats.jsm.streams
      .add({
        name: "KV_cairn_heartbeats",
        subjects: ["$KV.cairn_heartbeats.>"],
        allow_direct: true,
        max_msgs_per_subject: 1,
      })
      .catch(() => undefined);
    expect(kv?.config.name ?? "KV_cairn_heartbeats").toBe("KV_cairn_heartbeats");
    const at = Date.parse("2026-11-22T10:00:00Z");
    await infra.nats.js.publish("$KV.cairn_heartbeats.ok-1", JSON.stringify({ at, connections: 1 }));
    await eventually(
      async () => (await call("GET", "/sessions/ok-1")).body.lastActivity === new Date(at).toISOString(),
    );
  });
});
