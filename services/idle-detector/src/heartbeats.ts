/**
 * Heartbeats: high-rate signals, not decisions (DESIGN §2). A client publishes
 * `hb.session.<id>` with `{ "connections": n }` on core NATS; the replicas share them (a
 * queue group). A heartbeat with at least one connection is activity: its time goes to
 * the JetStream KV bucket `cairn_heartbeats` (key: the session id, value
 * `{ at, connections }`, last value only); zero connections is not activity and writes
 * nothing. Nothing here touches the event log. A request (a reply subject) is answered
 * `{ ok, status, error? }`: 404 for an unknown session, 409 for one that is over.
 *
 * Every replica also watches the bucket into memory (`lastActivity`), so the sweep reads
 * no KV at all. Writes are coalesced per session to one per `coalesceMs` in a process:
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

  // The watch: the bucket's current values, then every update, into memory.
  const watch = await kv.watch({});
  let markCaughtUp!: () => void;
  const caughtUp = new Promise<void>((r) => (markCaughtUp = r));
  const watching = (async () => {
    for await (const e of watch) {
      if (e.operation === "PUT") {
        try {
          const r = activityRecord.parse(e.json());
          if ((activity.get(e.key) ?? 0) < r.at) activity.set(e.key, r.at);
        } catch {
          // Somebody else's value: not a heartbeat.
        }
      } else activity.delete(e.key);
      if (e.delta === 0 || e.isUpdate) markCaughtUp();
    }
  })();
  // An empty bucket delivers nothing initially.
  void kv.status().then((s) => {
    if (s.values === 0) markCaughtUp();
  });

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
        activity.set(sessionId, Math.max(activity.get(sessionId) ?? 0, t));
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
      watch.stop();
      await watching.catch(() => {});
    },
  };
}
