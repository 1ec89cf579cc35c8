/**
 * Heartbeats on NATS: high-rate signals, not decisions (DESIGN §2). A client publishes
 * `hb.session.<id>` with `{ "connections": n }` on core NATS; the replicas share them (a
 * queue group). A heartbeat with at least one connection is activity: its time goes to
 * the JetStream KV bucket `cairn_heartbeats` through the shared session activity
 * (@cairn/events `startSessionActivity`: at most one write per session per second, a
 * compare-and-set that never moves last activity backwards); zero connections is not
 * activity and writes nothing. Nothing here touches the event log. A request (a reply
 * subject) is answered `{ ok, status, error? }`: 404 for an unknown session, 409 for one
 * that is over, 503 when the bucket could not be written.
 *
 * Every replica also follows the bucket's writes into memory (`lastActivity`) — the API's
 * writes (`POST /sessions/:id/heartbeat`) as well as the replicas' own — so the sweep
 * reads no KV at all; at start it reads each live session's last value once.
 */
import {
  Buckets,
  HEARTBEAT_QUEUE,
  HEARTBEAT_SUBJECTS,
  heartbeatBody,
  heartbeatSessionId,
  type SessionActivity,
  startSessionActivity,
} from "@cairn/events";
import { counter } from "@cairn/service";
import { jetstream } from "@nats-io/jetstream";
import { type KV, Kvm } from "@nats-io/kv";
import type { NatsConnection, Subscription } from "@nats-io/transport-node";
import { isLive } from "./session/decider.ts";
import type { SessionIndex } from "./session/session-index.ts";

export { HEARTBEAT_QUEUE, heartbeatSubject } from "@cairn/events";

/** Heartbeats with connections (`hb.session.<id>`), by what became of them in the bucket. */
const heartbeatOutcomes = counter(
  "cairn_session_activity_total",
  "Heartbeats with connections by outcome: written, covered (by a write within the resolution), conflict (a lost compare-and-set, decided again), failed",
  ["outcome"],
);

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
  /** The bucket, followed and written. */
  readonly activity: SessionActivity;
  stop(): Promise<void>;
}

export async function startHeartbeats(o: {
  nc: NatsConnection;
  index: SessionIndex;
  /** At most one KV write per session per this (default 1 s): the resolution of last activity. */
  coalesceMs?: number;
  now?: () => number;
}): Promise<Heartbeats> {
  await openHeartbeats(o.nc);
  const activity = await startSessionActivity({
    nc: o.nc,
    onOutcome: (outcome) => heartbeatOutcomes.inc({ outcome }),
    ...(o.coalesceMs !== undefined ? { resolutionMs: o.coalesceMs } : {}),
    ...(o.now ? { now: o.now } : {}),
  });

  // The last value of each live session, read once at start (direct gets); later writes
  // arrive through the activity's subscription.
  const caughtUp = (async () => {
    await o.index.caughtUp;
    const ids = [...o.index.live()].map(([id]) => id);
    for (let i = 0; i < ids.length; i += 64) await Promise.all(ids.slice(i, i + 64).map(activity.load));
  })();

  const sub: Subscription = o.nc.subscribe(HEARTBEAT_SUBJECTS, {
    queue: HEARTBEAT_QUEUE,
    callback: (err, msg) => {
      if (err) return;
      const sessionId = heartbeatSessionId(msg.subject);
      const answer = (status: number, error?: string) => {
        if (msg.reply)
          msg.respond(JSON.stringify({ ok: status === 200, status, ...(error ? { error } : {}) }));
      };
      let body: { connections: number };
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
      const written = activity.accept(sessionId, body.connections);
      if (!written) return answer(200);
      written.then(
        () => answer(200),
        (e: unknown) => answer(503, `could not record the heartbeat: ${e instanceof Error ? e.message : e}`),
      );
    },
  });

  return {
    lastActivity: (id) => activity.lastActivity(id),
    caughtUp,
    activity,
    stop: async () => {
      sub.unsubscribe();
      activity.stop();
      await caughtUp.catch(() => {});
    },
  };
}
