/**
 * Session activity: the heartbeat bucket (JetStream KV `cairn_heartbeats`), followed into
 * memory and written the same way by every process that records heartbeats — the
 * idle-detector for `hb.session.<id>` on NATS, the projector's API for
 * `POST /sessions/:id/heartbeat` — and read by the idle sweep and the API's views.
 * Heartbeats are signals, not decisions: nothing here touches the event log.
 *
 * Key: the session id. Value: `{ "at": <epoch ms>, "connections": n }`, last value only.
 *
 * Contracts:
 *  - **Never backwards.** A write is a compare-and-set on the key's revision
 *    (`Nats-Expected-Last-Subject-Sequence`) and replaces only a value whose `at` is
 *    earlier. A writer that loses the race reads the winner: when the winner is as late,
 *    its heartbeat is covered and it stops; otherwise it tries again on the winner's
 *    revision. With any number of writers (replicas of both services, clocks that differ),
 *    the bucket's `at` of a session only grows.
 *  - **Resolution.** At most one write per session per `resolutionMs` (default 1 s): a
 *    heartbeat less than that after a write this process made or saw (every process
 *    follows every write) is covered by it, and one that comes while a write of its session
 *    is in flight waits for that write. Last activity is therefore known to within
 *    `resolutionMs` — against idle timeouts of minutes — and a heartbeat storm costs at most
 *    one KV write per session per `resolutionMs` per writer that has not yet seen the others'.
 *  - **Written behind, while writing works.** `accept` answers at once with the write on
 *    its way (typically landing within milliseconds), so a heartbeat costs its caller no
 *    round trip to JetStream — the write's ack is what bounds a heartbeat's latency
 *    otherwise (the raw KV put's p99 is twice the HTTP floor's here: docs/sessions.md). It
 *    does so only while writing is proven: until a write of this process has landed, after
 *    any write failed (until one lands again), and with `maxQueued` writes already on their
 *    way, `accept` hands back the write to wait for, as `record` does — so a caller hears of
 *    a missing bucket or an unreachable NATS at once, and a storm faster than the bucket
 *    meets backpressure instead of a growing queue. What a SIGKILL can lose is the writes
 *    on their way: activity of the last milliseconds, against idle timeouts of minutes and
 *    clients that beat every few seconds.
 *  - **No timeout is waited out.** Whether the bucket exists is asked first (stream info,
 *    answered at once either way), again at most once a second while it is missing. A get
 *    on a missing bucket is never sent: nobody answers a direct get there, and the request
 *    would sit out its whole timeout. While it is missing, `record` fails at once with
 *    {@link ActivityBucketMissing} and `load` answers undefined.
 *
 * Every process follows the bucket's writes with a plain subscription on its subjects (no
 * consumer on the KV stream, which a service may not make: deploy/nats/nats.conf) and
 * reads a session not seen since by one direct get.
 */
import {
  JetStreamApiCodes,
  JetStreamApiError,
  type JetStreamManager,
  jetstreamManager,
} from "@nats-io/jetstream";
import type { Msg, NatsConnection } from "@nats-io/transport-node";
import { z } from "zod";
import { ackedPublisher, PublishNotAcked } from "./acked-publisher.ts";
import { Buckets } from "./subjects.ts";

/** The bucket's stream. */
const STREAM = `KV_${Buckets.heartbeats}`;
const PREFIX = `$KV.${Buckets.heartbeats}.`;

/** A heartbeat as clients send it: the connections open to the session now. */
export const heartbeatBody = z.object({ connections: z.number().int().nonnegative() });
export type HeartbeatBody = z.infer<typeof heartbeatBody>;

/** The bucket's value. */
export const activityRecord = z.object({ at: z.number(), connections: z.number() });

/** The bucket does not exist (yet): the idle-detector creates it at start, and so does deploy/nats/bootstrap.ts. */
export class ActivityBucketMissing extends Error {
  override readonly name = "ActivityBucketMissing";
  readonly remediation = "start the idle-detector (it creates the bucket) or run deploy/nats/bootstrap.ts";
  constructor() {
    super(`the heartbeat bucket ${Buckets.heartbeats} does not exist`);
  }
}

/** The heartbeat could not be written (NATS or JetStream unavailable, or too many conflicting writers). */
export class ActivityNotRecorded extends Error {
  override readonly name = "ActivityNotRecorded";
}

export interface SessionActivity {
  /** The last activity of a session (epoch ms) this process knows of: written, seen or read. Never blocks. */
  lastActivity(sessionId: string): number | undefined;
  /** The last activity, reading the bucket once (one direct get) for a session not known yet. Never throws. */
  load(sessionId: string): Promise<number | undefined>;
  /**
   * Records activity of a session at `at` (default now). `undefined`: already covered by a
   * write within the resolution (nothing to wait for); a promise: resolves once a write
   * that covers it is in the bucket, rejects with {@link ActivityBucketMissing} or
   * {@link ActivityNotRecorded}. A caller checks first that the heartbeat is activity
   * (connections ≥ 1) and that the session is live.
   */
  record(sessionId: string, connections: number, at?: number): Promise<void> | undefined;
  /**
   * Records activity, written behind (see the contracts above): `undefined` when covered or
   * when the write is on its way and writing is proven; otherwise the write to wait for, as
   * {@link SessionActivity.record}.
   */
  accept(sessionId: string, connections: number, at?: number): Promise<void> | undefined;
  /** What this process did: writes that landed, heartbeats covered by another write, lost compare-and-sets. */
  readonly counts: { readonly writes: number; readonly covered: number; readonly conflicts: number };
  stop(): void;
}

/**
 * What became of a heartbeat with connections: its write landed, a write within the
 * resolution covered it, a compare-and-set was lost to another writer (and decided again),
 * or it could not be written.
 */
export type ActivityOutcome = "written" | "covered" | "conflict" | "failed";

export interface SessionActivityOptions {
  nc: NatsConnection;
  /** Told every outcome (a metric's counter). Must not throw. */
  onOutcome?: (outcome: ActivityOutcome) => void;
  /** At most one write per session per this; default 1 000 ms. */
  resolutionMs?: number;
  /** Writes `accept` lets go without waiting, at most; default 10 000. */
  maxQueued?: number;
  /** Timeout of each bucket request (put, get); default 2 000 ms. */
  timeoutMs?: number;
  now?: () => number;
}

interface Known {
  /** The latest `at` written, seen or read; -Infinity: none. */
  at: number;
  /** The key's revision as last read or written by us; undefined: unknown (read before writing). */
  revision: number | undefined;
  /** The write of this session in flight, and the `at` it writes. */
  inflight: { readonly at: number; readonly done: Promise<void> } | undefined;
  /** Whether the bucket was read for this key (or a write seen): `load` need not ask. */
  loaded: boolean;
}

const MAX_CONFLICTS = 5;
const decoder = new TextDecoder();

/** `{"at":` as bytes: the start of every value this module writes. */
const AT_PREFIX = [0x7b, 0x22, 0x61, 0x74, 0x22, 0x3a];

/**
 * `at` of a value, or undefined when it is not a record. Never throws. (A plain check, not
 * the zod schema: every process reads every write of the bucket, and this is all it needs.)
 * The value as written here, `{"at":<digits>,…`, is read from its bytes without decoding
 * or parsing it — every process does this for every write of every session; anything
 * else goes through JSON.parse.
 */
export function activityAt(data: Uint8Array): number | undefined {
  if (data.length > AT_PREFIX.length && AT_PREFIX.every((b, i) => data[i] === b)) {
    let at = 0;
    let i = AT_PREFIX.length;
    for (; i < data.length && i < AT_PREFIX.length + 15; i++) {
      const d = data[i]! - 0x30;
      if (d < 0 || d > 9) break;
      at = at * 10 + d;
    }
    // Up to 15 digits (exact in a double), ended by the next key or the object's end.
    if (i > AT_PREFIX.length && (data[i] === 0x2c || data[i] === 0x7d)) return at;
  }
  try {
    const v: unknown = JSON.parse(decoder.decode(data));
    const at = typeof v === "object" && v !== null && "at" in v ? v.at : undefined;
    return typeof at === "number" && Number.isFinite(at) ? at : undefined;
  } catch {
    return undefined;
  }
}

const isDeletion = (op: string | undefined) => op === "DEL" || op === "PURGE";

/**
 * Follows the heartbeat bucket and writes it (see the contracts above).
 * @example
 * const activity = await startSessionActivity({ nc });
 * await activity.record("s-1", 2); // written (or covered by a write within 1 s)
 * activity.lastActivity("s-1");   // 1764700000000
 */
export async function startSessionActivity(o: SessionActivityOptions): Promise<SessionActivity> {
  const now = o.now ?? Date.now;
  const resolutionMs = o.resolutionMs ?? 1_000;
  const timeout = o.timeoutMs ?? 2_000;
  const publisher = ackedPublisher(o.nc, { timeoutMs: timeout });
  const jsm: JetStreamManager = await jetstreamManager(o.nc, { timeout, checkAPI: false });
  const known = new Map<string, Known>();
  const counts = { writes: 0, covered: 0, conflicts: 0 };
  const told = o.onOutcome ?? (() => {});
  const maxQueued = o.maxQueued ?? 10_000;
  // Whether the last write that ended landed (false until one has): `accept` writes behind only then.
  let proven = false;
  let queued = 0;
  const entry = (id: string): Known => {
    let k = known.get(id);
    if (!k) {
      k = { at: Number.NEGATIVE_INFINITY, revision: undefined, inflight: undefined, loaded: false };
      known.set(id, k);
    }
    return k;
  };
  const seen = (k: Known, at: number) => {
    if (at > k.at) k.at = at;
  };

  // 1. Follow every write (ours included) as it is published.
  const updates = o.nc.subscribe(`${PREFIX}*`, {
    callback: (err, m: Msg) => {
      if (err) return;
      const k = entry(m.subject.slice(PREFIX.length));
      // A delete or purge has no body (nats KV): a write with one needs no header decoded.
      if (m.data.length === 0 && isDeletion(m.headers?.get("KV-Operation"))) {
        k.at = Number.NEGATIVE_INFINITY;
        k.revision = undefined;
        return;
      }
      const at = activityAt(m.data);
      if (at !== undefined) {
        seen(k, at);
        k.loaded = true;
      }
    },
  });

  // 2. The bucket: asked at once whether it exists, again at most once a second while not.
  let exists = false;
  let askedAt = Number.NEGATIVE_INFINITY;
  let asking: Promise<boolean> | undefined;
  const bucketExists = (): boolean | Promise<boolean> => {
    if (exists) return true;
    if (Date.now() - askedAt < 1_000) return false;
    asking ??= jsm.streams
      .info(STREAM)
      .then(
        () => (exists = true),
        (err: unknown) => {
          if (err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamNotFound) return false;
          throw err;
        },
      )
      .finally(() => {
        askedAt = Date.now();
        asking = undefined;
      });
    return asking;
  };

  /** The key's value now: its revision (0: none) and `at`. Throws when the bucket cannot be read. */
  const read = async (id: string) => {
    const m = await jsm.direct.getMessage(STREAM, { last_by_subj: `${PREFIX}${id}` });
    if (!m) return { revision: 0, at: undefined };
    return {
      revision: m.seq,
      at: isDeletion(m.header?.get("KV-Operation")) ? undefined : activityAt(m.data),
    };
  };

  // 3. One write: compare-and-set on the revision, never over a later `at`.
  const write = async (id: string, k: Known, at: number, connections: number) => {
    const value = JSON.stringify({ at, connections });
    try {
      if (!(await bucketExists())) throw new ActivityBucketMissing();
      for (let attempt = 0; attempt < MAX_CONFLICTS; attempt++) {
        if (k.revision === undefined) {
          const cur = await read(id);
          k.revision = cur.revision;
          k.loaded = true;
          if (cur.at !== undefined) seen(k, cur.at);
          // The bucket already holds this time or a later one: covered.
          if (cur.at !== undefined && cur.at >= at) {
            counts.covered++;
            told("covered");
            return;
          }
        }
        try {
          k.revision = await publisher.publish(`${PREFIX}${id}`, value, {
            expectedLastSubjectSequence: k.revision,
          });
          seen(k, at);
          counts.writes++;
          proven = true;
          told("written");
          return;
        } catch (err) {
          // Another writer wrote the key since we read it: read theirs, then decide again.
          if (!(err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamWrongLastSequence))
            throw err;
          counts.conflicts++;
          told("conflict");
          k.revision = undefined;
        }
      }
      throw new ActivityNotRecorded(
        `could not write the heartbeat of ${id}: ${MAX_CONFLICTS} writers raced for it; retry`,
      );
    } catch (err) {
      proven = false;
      told("failed");
      if (err instanceof ActivityBucketMissing || err instanceof ActivityNotRecorded) throw err;
      // The bucket went away under us: ask again before the next write.
      if (err instanceof PublishNotAcked && err.reason === "no-stream") {
        exists = false;
        throw new ActivityBucketMissing();
      }
      k.revision = undefined;
      throw new ActivityNotRecorded(
        `could not write the heartbeat of ${id}: ${err instanceof Error ? err.message : String(err)}`,
        { cause: err },
      );
    }
  };

  /** Whether activity at `written` covers activity at `at`: as late, or less than the resolution before it. */
  const covers = (written: number, at: number) => written >= at || at - written < resolutionMs;
  const record = (id: string, connections: number, at = now()): Promise<void> | undefined => {
    const k = entry(id);
    const inflight = k.inflight;
    if (inflight) {
      // The write in flight covers it, or it goes once that write is done.
      if (covers(inflight.at, at)) {
        counts.covered++;
        told("covered");
        return inflight.done;
      }
      return inflight.done.then(
        () => record(id, connections, at),
        () => record(id, connections, at),
      );
    }
    if (covers(k.at, at)) {
      counts.covered++;
      told("covered");
      return undefined;
    }
    const done = write(id, k, at, connections).finally(() => {
      if (k.inflight?.done === done) k.inflight = undefined;
    });
    k.inflight = { at, done };
    return done;
  };

  const accept = (id: string, connections: number, at = now()): Promise<void> | undefined => {
    const written = record(id, connections, at);
    if (!written || !proven || queued >= maxQueued) return written;
    queued++;
    const settled = () => {
      queued--;
    };
    written.then(settled, settled);
    return undefined;
  };

  const load = async (id: string): Promise<number | undefined> => {
    const k = known.get(id);
    if (k?.loaded) return Number.isFinite(k.at) ? k.at : undefined;
    try {
      if (!(await bucketExists())) return undefined;
      const cur = await read(id);
      const e = entry(id);
      if (e.revision === undefined) e.revision = cur.revision;
      if (cur.at !== undefined) seen(e, cur.at);
      e.loaded = true;
      return Number.isFinite(e.at) ? e.at : undefined;
    } catch {
      // Unreadable now (NATS away): what we know, and ask again next time.
      const e = known.get(id);
      return e && Number.isFinite(e.at) ? e.at : undefined;
    }
  };

  return {
    lastActivity: (id) => {
      const at = known.get(id)?.at;
      return at !== undefined && Number.isFinite(at) ? at : undefined;
    },
    load,
    record,
    accept,
    counts,
    stop: () => {
      updates.unsubscribe();
      publisher.stop();
    },
  };
}
