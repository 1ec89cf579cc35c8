/**
 * Heartbeats: high-rate signals, not decisions (DESIGN §2). A client publishes
 * `hb.session.<id>` with `{ "connections": n }` on core NATS; the replicas share them (a
 * queue group). A heartbeat with at least one connection is activity: its time goes to
 * the JetStream KV bucket `cairn_heartbeats` (key: the session id, value
 * `{ at, connections }`, last value only); zero connections is not activity and writes
 * nothing. Nothing here touches the event log. A request (a reply subject) is answered
 * `{ ok, status, error? }`: 404 for an unknown session, 409 for one that is over.
 *
 * Every replica also follows the bucket's writes into memory (`lastActivity`), so the
 * sweep reads no KV at all. Writes are coalesced per session to one per `coalesceMs` in a process:
 * the sweep's resolution is seconds, a heartbeat storm is not.
 */
import { Buckets } from "@cairn/events";
import { jetstream } from "@nats-io/jetstream";
import { type KV, Kvm } from "@nats-io/kv";
import type { NatsConnection, Subscription } from "@nats-io/transport-node";
import { z } from "zod";
import { isLive } from "./session/decider.ts";
import type { SessionIndex } from "./session/session-index.ts";

export const HEARTBEAT_QUEUE = "idle-detector-heartbeats";
export const heartbeatSubject = (sessionId: string) => `hb.session.${sessionId}`;
const heartbeatBody = z.object({ connections: z.number().int().nonnegative() });
const activityRecord = z.object({ at: z.number(), connections: z.number() });

/** Opens the bucket (creating it, last value per key). */
export async function openHeartbeats(nc: NatsConnection): Promise<KV> {
  await new Kvm(nc).create(Buckets.heartbeats, { history: 1 });
  return await new Kvm(jetstream(nc, { timeout: 5_000 })).open(Buckets.heartbeats);
}

export interface Heartbeats {
  /** The last activity of a session (epoch ms) as this process knows it. */
  lastActivity(sessionId: string): number | undefined;
  /** Resolves once the bucket's contents are in memory. */
  readonly caughtUp: Promise<void>;
  stop(): Promise<void>;
}

export async function startHeartbeats(o: {
  nc: NatsConnection;
  index: SessionIndex;
  coalesceMs?: number;
  now?: () => number;
}): Promise<Heartbeats> {
  const kv = await openHeartbeats(o.nc);
  const now = o.now ?? Date.now;
  const coalesceMs = o.coalesceMs ?? 1_000;
  const activity = new Map<string, number>();
  const written = new Map<string, number>();

  // Every replica follows the bucket's writes as they are published (a plain subscription
  // on the bucket's subjects: no consumer on the KV stream, which a service may not make),
  // and reads the last value of each live session once at start (direct gets).
  const seen = (key: string, at: number) => {
    if ((activity.get(key) ?? 0) < at) activity.set(key, at);
  };
  const updates = o.nc.subscribe(`$KV.${Buckets.heartbeats}.*`, {
    callback: (err, m) => {
      if (err) return;
      const key = m.subject.slice(`$KV.${Buckets.heartbeats}.`.length);
      const op = m.headers?.get("KV-Operation");
      if (op === "DEL" || op === "PURGE") return void activity.delete(key);
      const r = activityRecord.safeParse(safeJson(m.data));
      if (r.success) seen(key, r.data.at);
    },
  });
  const caughtUp = (async () => {
    await o.index.caughtUp;
    const ids = [...o.index.live()].map(([id]) => id);
    for (let i = 0; i < ids.length; i += 64)
      await Promise.all(
        ids.slice(i, i + 64).map(async (id) => {
          const e = await kv.get(id).catch(() => null);
          if (e?.operation !== "PUT") return;
          const r = activityRecord.safeParse(safeJson(e.value));
          if (r.success) seen(id, r.data.at);
        }),
      );
  })();

  const sub: Subscription = o.nc.subscribe("hb.session.*", {
    queue: HEARTBEAT_QUEUE,
    callback: (err, msg) => {
      if (err) return;
      const sessionId = msg.subject.slice("hb.session.".length);
      const answer = (status: number, error?: string) => {
        if (msg.reply)
          msg.respond(JSON.stringify({ ok: status === 200, status, ...(error ? { error } : {}) }));
      };
      let body: z.infer<typeof heartbeatBody>;
      try {
        body = heartbeatBody.parse(msg.json());
      } catch {
        return answer(400, 'a heartbeat is { "connections": <integer ≥ 0> }');
      }
      const session = o.index.get(sessionId);
      if (!session?.state.status) return answer(404, `no session ${sessionId}`);
      if (!isLive(session.state.status))
        return answer(409, `session ${sessionId} is ${session.state.status}`);
      // Zero connections: the session is open somewhere but nobody uses it. Not activity.
      if (body.connections === 0) return answer(200);
      const t = now();
      if (t - (written.get(sessionId) ?? 0) >= coalesceMs) {
        written.set(sessionId, t);
        if (written.size > 200_000) written.clear();
        seen(sessionId, t);
        kv.put(sessionId, JSON.stringify({ at: t, connections: body.connections })).then(
          () => answer(200),
          (e: unknown) => answer(503, `could not record the heartbeat: ${String(e)}`),
        );
        return;
      }
      answer(200);
    },
  });

  return {
    lastActivity: (id) => activity.get(id),
    caughtUp,
    stop: async () => {
      sub.unsubscribe();
      updates.unsubscribe();
      await caughtUp.catch(() => {});
    },
  };
}

function safeJson(data: Uint8Array): unknown {
  try {
    return JSON.parse(new TextDecoder().decode(data));
  } catch {
    return undefined;
  }
}
