/**
 * The sessions routes against real NATS and Postgres, with the idle-detector's side
 * played by hand: its admission refusing over quota (the ledger's `session.rejected`,
 * appended as the idle-detector appends it), and the heartbeat bucket it creates.
 */
import { Buckets, connectNats, Streams } from "@cairn/events";
import { Kvm } from "@nats-io/kv";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openDatabase } from "../db/database.ts";
import { type Projector, startProjector } from "../projector.ts";
import { liveSessionFacts, sessionFacts, sessionFactsChangedSince } from "../repository/session-facts.ts";
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

const heartbeat = (id: string, connections: number) =>
  call("POST", `/sessions/${id}/heartbeat`, { connections });
/** The bucket as the idle-detector makes it at start (or deploy/nats/bootstrap.ts). */
const heartbeatBucket = async () => {
  await new Kvm(infra.nats.nc).create(Buckets.heartbeats, { history: 1 });
  return await new Kvm(infra.nats.js).open(Buckets.heartbeats);
};
const lastEventSequence = async () => (await infra.nats.jsm.streams.info(Streams.events)).state.last_seq;

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
    // No heartbeat bucket exists yet: the read is answered at once. (A direct get on a
    // missing bucket is never answered, and each read of a session once sat out its 10 s.)
    const t0 = performance.now();
    const s = await call("GET", "/sessions/full-1");
    expect(performance.now() - t0).toBeLessThan(2_000);
    expect(s.body).toMatchObject({
      state: "Failed",
      failure: { cause: "quota" },
      rejection: { code: "over-quota" },
    });
    // A Failed session takes no heartbeat.
    expect(await heartbeat("full-1", 1)).toMatchObject({
      status: 409,
      body: { message: "session full-1 is Failed" },
    });
  });

  it("POST /sessions admitted: 202 with Starting, then history and counts show it", async () => {
    const t0 = performance.now();
    const r = await call("POST", "/sessions", {
      sessionId: "ok-1",
      user: "alice",
      clusterId: "c1",
      template: TEMPLATE,
    });
    expect(r.status).toBe(202);
    // Answered on the admission's change, not after a timeout.
    expect(performance.now() - t0).toBeLessThan(4_000);
    expect(r.body).toMatchObject({
      sessionId: "ok-1",
      state: "Starting",
      links: { session: "/sessions/ok-1" },
    });
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

  it("heartbeats without the bucket: 503 at once, saying what to do; zero connections needs no bucket", async () => {
    const t0 = performance.now();
    const r = await heartbeat("ok-1", 1);
    expect(performance.now() - t0).toBeLessThan(1_000);
    expect(r).toMatchObject({
      status: 503,
      body: { message: expect.stringMatching(/cairn_heartbeats does not exist: start the idle-detector/) },
    });
    expect(await heartbeat("ok-1", 0)).toEqual({ status: 200, body: { sessionId: "ok-1", activity: false } });
  });

  it("heartbeats write the bucket: activity with connections, none without, 404 unknown; a storm is one write and no event", async () => {
    const kv = await heartbeatBucket();
    // The API asks again whether the bucket exists at most once a second.
    await eventually(async () => (await heartbeat("ok-1", 2)).status === 200);
    const t0 = Date.now();
    const first = await kv.get("ok-1");
    expect(first?.json()).toMatchObject({ connections: 2 });
    const at = first!.json<{ at: number }>().at;
    expect(at).toBeLessThanOrEqual(t0);
    expect(at).toBeGreaterThan(t0 - 5_000);
    expect((await call("GET", "/sessions/ok-1")).body.lastActivity).toBe(new Date(at).toISOString());

    // Zero connections is not activity: answered, nothing written.
    expect(await heartbeat("ok-1", 0)).toEqual({ status: 200, body: { sessionId: "ok-1", activity: false } });
    expect((await kv.get("ok-1"))?.revision).toBe(first!.revision);
    expect((await heartbeat("nope", 1)).status).toBe(404);
    expect((await heartbeat("ok-1", -1)).status).toBe(400);

    // A storm: every heartbeat answered, at most one write a second, nothing in the log.
    const events = await lastEventSequence();
    const storm = await Promise.all(Array.from({ length: 200 }, () => heartbeat("ok-1", 1)));
    expect(storm.every((r) => r.status === 200 && r.body.activity === true)).toBe(true);
    const after = (await kv.get("ok-1"))!;
    expect(after.revision - first!.revision).toBeLessThanOrEqual(Math.ceil((Date.now() - t0) / 1_000) + 1);
    expect(await lastEventSequence()).toBe(events);
  });

  it("the heartbeat's fast path answers as fastify does: the same status, body and content type; what it does not take, fastify serves", async () => {
    await heartbeatBucket().catch(() => undefined);
    const raw = async (path: string, body: string, contentType = "application/json") => {
      const res = await fetch(`${base}${path}`, {
        method: "POST",
        headers: { "content-type": contentType },
        body,
      });
      return { status: res.status, type: res.headers.get("content-type"), body: await res.text() };
    };
    // The same request through the fast path (plain id) and through fastify (an escaped
    // character in the id: the fast path leaves it to the router, which decodes it).
    for (const [plain, escaped] of [
      ["/sessions/ok-1/heartbeat", "/sessions/ok%2D1/heartbeat"],
      ["/sessions/nope/heartbeat", "/sessions/n%6Fpe/heartbeat"],
      ["/sessions/full-1/heartbeat", "/sessions/full%2D1/heartbeat"],
    ] as const)
      for (const body of ['{"connections":1}', '{"connections":0}']) {
        const [fast, framework] = [await raw(plain, body), await raw(escaped, body)];
        expect(fast).toEqual(framework);
        expect(fast.type).toBe("application/json; charset=utf-8");
      }
    expect(JSON.parse((await raw("/sessions/full-1/heartbeat", '{"connections":1}')).body)).toEqual({
      error: "Conflict",
      message: "session full-1 is Failed",
    });
    // Bodies that are not exactly `{ connections }` are fastify's to judge (replayed), word for word.
    for (const body of ['{"connections":-1}', '{"connections":"1"}', "{nope", '{"connections":1.5}'])
      expect(await raw("/sessions/ok-1/heartbeat", body)).toEqual(
        await raw("/sessions/ok%2D1/heartbeat", body),
      );
    expect((await raw("/sessions/ok-1/heartbeat", "{nope")).status).toBe(400);
    // Extra keys are stripped by the route's schema: a heartbeat all the same.
    expect(JSON.parse((await raw("/sessions/ok-1/heartbeat", '{"connections":1,"x":2}')).body)).toEqual({
      sessionId: "ok-1",
      activity: true,
    });
    // A charset, a query string, another content type: each answered as the route answers it.
    expect(
      (await raw("/sessions/ok-1/heartbeat", '{"connections":1}', "application/json; charset=utf-8")).status,
    ).toBe(200);
    expect((await raw("/sessions/ok-1/heartbeat?x=1", '{"connections":1}')).status).toBe(200);
    // (text/plain: fastify's own parser gives the body as a string, which the schema refuses.)
    expect(await raw("/sessions/ok-1/heartbeat", '{"connections":1}', "text/plain")).toEqual({
      status: 400,
      type: "application/json; charset=utf-8",
      body: expect.stringContaining("invalid body"),
    });
  });

  it("two API replicas share the bucket: heartbeats through either count, and last activity only moves on", async () => {
    const kv = await heartbeatBucket();
    const nats = await connectNats(infra.natsServer.url, { name: "projector-replica" });
    const replica = await startProjector({ nats, databaseUrl: infra.database.url, api: { port: 0 } });
    try {
      const via = (url: string) =>
        fetch(`${url}/sessions/ok-1/heartbeat`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ connections: 1 }),
        }).then((r) => r.status);
      const ats: number[] = [];
      // Each a resolution (1 s) after the last: each a write, by one replica then the other,
      // each on a revision the other moved (a lost compare-and-set, read, written again).
      for (const url of [base, replica.api!.url, base, replica.api!.url]) {
        await new Promise((r) => setTimeout(r, 1_100));
        expect(await via(url)).toBe(200);
        // Written behind once this replica's writes have proven to land: read until it has.
        const previous = ats.at(-1) ?? 0;
        ats.push(
          await eventually(async () => {
            const at = (await kv.get("ok-1"))!.json<{ at: number }>().at;
            return at > previous ? at : undefined;
          }),
        );
      }
      for (let i = 1; i < ats.length; i++) expect(ats[i]!).toBeGreaterThan(ats[i - 1]!);
    } finally {
      await replica.stop();
      await nats.close();
    }
  });

  it("last activity comes from the heartbeat bucket, whoever wrote it (the idle-detector for hb.session.<id>)", async () => {
    const kv = await heartbeatBucket();
    const at = Date.now() + 60_000;
    await kv.put("ok-1", JSON.stringify({ at, connections: 1 }));
    await eventually(
      async () => (await call("GET", "/sessions/ok-1")).body.lastActivity === new Date(at).toISOString(),
    );
    // Nobody moves it backwards: a heartbeat now is covered by the later activity.
    const revision = (await kv.get("ok-1"))!.revision;
    expect((await heartbeat("ok-1", 1)).status).toBe(200);
    expect((await kv.get("ok-1"))!.revision).toBe(revision);
  });

  it("the directory's queries: a session's facts, and every live one at start", async () => {
    const db = openDatabase(infra.database.url);
    try {
      expect(await sessionFacts(db, "cairn", "full-1")).toMatchObject({ user: "alice", state: "Failed" });
      expect(await sessionFacts(db, "cairn", "nope")).toBeUndefined();
      const live = await liveSessionFacts(db, "cairn", 100);
      expect(live.rows).toEqual([
        ["ok-1", { user: "alice", state: "Starting", lastSequence: expect.any(Number) }],
      ]);
      // Changed since: in sequence order, nothing at or before the mark.
      const all = await sessionFactsChangedSince(db, "cairn", 0, 100);
      expect(all.map(([id]) => id).sort()).toEqual(["full-1", "ok-1"]);
      expect(all[0]![1].lastSequence).toBeLessThan(all[1]![1].lastSequence);
      expect(live.high).toBe(all[1]![1].lastSequence);
      expect(await sessionFactsChangedSince(db, "cairn", all[0]![1].lastSequence, 100)).toEqual([all[1]]);
      expect(await sessionFactsChangedSince(db, "cairn", live.high, 100)).toEqual([]);
    } finally {
      await db.destroy();
    }
  });

  it("a session that ends takes no more heartbeats (409), as soon as the read model says so", async () => {
    await infra.writer.append({ type: "session", id: "ok-1" }, [
      { type: "session.terminating", data: { sessionId: "ok-1", cause: "user" } },
      { type: "session.terminated", data: { sessionId: "ok-1", cause: "user", volumeReleased: true } },
    ]);
    await eventually(async () => (await heartbeat("ok-1", 1)).status === 409);
    expect((await heartbeat("ok-1", 1)).body.message).toBe("session ok-1 is Terminated");
  });
});
