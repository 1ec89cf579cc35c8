/**
 * Leader lease on a JetStream KV bucket: at most one holder of a named lease at a time, for
 * singletons (sweepers, schedulers) that run in several replicas for availability.
 *
 * Algorithm (key `lease.<name>` in bucket `Buckets.leases`, history 1, value `{holder, expiresAt}`):
 *  - absent or deleted key: `kv.create` (fails if anyone else created it first);
 *  - present and expired by our clock (`now() >= expiresAt`): `kv.update(key, ours, revision read)`,
 *    a compare-and-set on the revision, so of several contenders exactly one wins;
 *  - held and not expired: wait until it expires (or until a release is seen: see below);
 *  - leader: renew every `renewEveryMs` with `kv.update` on the revision we last wrote.
 * Deposed (onDeposed) when a renewal loses its CAS (someone took or deleted the key), when no
 * renewal succeeded before our own `expiresAt` (NATS unreachable), on `stop()` and `release()`.
 * A deposed contender keeps contending until stopped.
 *
 * A release is seen at once by a plain subscription to the key's subject (`$KV.<bucket>.<key>`),
 * where every write and delete of the key is published, not by a KV watch: a watch is a push
 * consumer on the bucket's stream, which deploy/nats/nats.conf refuses to services (a push
 * consumer's deliver subject is not checked against its creator's permissions). Without the
 * subscription, or when a delete is missed, followers still see it at their next poll.
 *
 * Safety rests on clocks: holders' clocks may differ by much less than `ttlMs`. The old leader
 * stops believing it leads at `expiresAt` by its clock; a successor starts at `expiresAt` by its
 * own. Side effects should still be idempotent and checked with `isLeader()` just before acting.
 */
import { Buckets } from "@cairn/events";
import { JetStreamApiCodes, JetStreamApiError, jetstream } from "@nats-io/jetstream";
import { type KV, type KvEntry, Kvm } from "@nats-io/kv";
import type { NatsConnection, Subscription } from "@nats-io/transport-node";
import type { Logger } from "pino";
import { z } from "zod";
import { LogKeys } from "./log-keys.ts";
import { gauge } from "./metrics.ts";

/** The options are unusable (bad name, ttl or renew period). */
export class LeaseOptionsError extends Error {
  override readonly name = "LeaseOptionsError";
}

/** The leases bucket could not be created or opened (no JetStream, no permission, NATS down). */
export class LeaseBucketError extends Error {
  override readonly name = "LeaseBucketError";
}

/** Why a leader stopped leading. */
export type DeposedReason =
  /** A renewal lost its compare-and-set: another holder took the key, or it was deleted. */
  | "lost"
  /** No renewal succeeded before the lease expired (NATS slow or unreachable). */
  | "expired"
  /** `stop()` was called. */
  | "stopped"
  /** `release()` was called. */
  | "released"
  /**
   * Our own onElected failed: the lease was given up (its key deleted) so that a replica that
   * can do the work takes it; this one contends again after `renewEveryMs`.
   */
  | "resigned";

export interface LeaderLeaseOptions {
  nc: NatsConnection;
  /** Lease name; the KV key is `lease.<name>`. Letters, digits, `-`, `_`, `=`, dot-separated. */
  name: string;
  /** Who we are; must be unique per process (e.g. `${hostname()}-${process.pid}-${randomUUID()}`). */
  holder: string;
  /** How long a lease lives without renewal. Default 10 000 ms. */
  ttlMs?: number;
  /** Renewal (and, for followers, polling) period; must be < ttlMs. Default ttlMs / 3. */
  renewEveryMs?: number;
  /**
   * Called when we become leader. Callbacks run one at a time, in order; errors are logged.
   * When onElected fails (throws or rejects) we resign: a leader that could not start its
   * work would otherwise hold the lease, renewing it, and do nothing for as long as it runs.
   */
  onElected?: () => unknown;
  /** Called once for every onElected, when we stop being leader. */
  onDeposed?: (reason: DeposedReason) => unknown;
  /** The clock, epoch ms. Default `Date.now`. */
  now?: () => number;
  logger?: Logger;
}

export interface LeaderLease {
  readonly name: string;
  readonly holder: string;
  /** True while we hold a lease that has not expired by our clock. Never throws. */
  isLeader(): boolean;
  /**
   * Stops contending and deletes the key if we still hold it (CAS on our last revision), so a
   * successor takes over at once. Resolves true if the key was deleted. Idempotent; never rejects.
   */
  release(): Promise<boolean>;
  /**
   * Stops renewing and contending, without touching the key: a successor takes over once it
   * expires. Idempotent; never rejects.
   */
  stop(): Promise<void>;
}

const leaseRecord = z.object({ holder: z.string(), expiresAt: z.number() });
type LeaseRecord = z.infer<typeof leaseRecord>;

const LEASE_NAME = /^[-\w=]+(\.[-\w=]+)*$/;

/**
 * `{ logger }` for `acquireLeadership` when `l` is a pino logger (the lease logs through
 * child loggers), else nothing: a plain `{ info, warn, error }` logger is not passed on.
 * @example acquireLeadership({ nc, name, holder, ...leaseLogging(log) })
 */
export function leaseLogging(l: unknown): { logger?: Logger } {
  return typeof (l as { child?: unknown } | undefined)?.child === "function" ? { logger: l as Logger } : {};
}

/** The KV key of a lease. */
export function leaseKey(name: string): string {
  return `lease.${name}`;
}

/** A write lost its compare-and-set (the key's last revision was not the one we named). */
function isCasFailure(err: unknown): boolean {
  return (
    err instanceof JetStreamApiError &&
    (err.code === JetStreamApiCodes.StreamWrongLastSequence ||
      err.code === JetStreamApiCodes.StreamWrongLastSequenceUnknown)
  );
}

function parseRecord(entry: KvEntry): LeaseRecord | undefined {
  try {
    const parsed = leaseRecord.safeParse(entry.json());
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

const leaderGauge = () =>
  gauge("cairn_lease_leader", "1 while this process holds the named leader lease", ["lease"]);

/**
 * Opens (creating if missing) the leases bucket, makes a first attempt at the lease, and keeps
 * contending/renewing in the background until `stop()` or `release()`. Resolves once the first
 * attempt is done, so `isLeader()` is meaningful at once. Rejects with {@link LeaseOptionsError}
 * or {@link LeaseBucketError}; later NATS errors are logged and retried, never thrown.
 * @example
 * const lease = await acquireLeadership({
 *   nc, name: "idle-sweeper", holder: `${hostname()}-${process.pid}`,
 *   onElected: () => sweeper.start(), onDeposed: () => sweeper.stop(),
 * });
 * shutdown.onShutdown("lease", () => lease.release());
 */
export async function acquireLeadership(opts: LeaderLeaseOptions): Promise<LeaderLease> {
  const ttlMs = opts.ttlMs ?? 10_000;
  const renewEveryMs = opts.renewEveryMs ?? Math.floor(ttlMs / 3);
  const now = opts.now ?? Date.now;
  const { name, holder } = opts;
  const log = opts.logger?.child({ [LogKeys.lease]: name, [LogKeys.holder]: holder });

  if (!LEASE_NAME.test(name)) {
    throw new LeaseOptionsError(
      `lease name ${JSON.stringify(name)} must be dot-separated [-_=A-Za-z0-9] tokens`,
    );
  }
  if (!holder) throw new LeaseOptionsError("holder must not be empty");
  if (!(ttlMs > 0) || !(renewEveryMs > 0) || renewEveryMs >= ttlMs) {
    throw new LeaseOptionsError(`need 0 < renewEveryMs (${renewEveryMs}) < ttlMs (${ttlMs})`);
  }

  // Lease operations get a short request timeout: an answer later than a renewal period is
  // worthless, and a request left waiting through a NATS outage would delay re-election.
  const opTimeoutMs = Math.min(5_000, Math.max(500, renewEveryMs));
  let kv: KV;
  try {
    await new Kvm(opts.nc).create(Buckets.leases, { history: 1 });
    kv = await new Kvm(jetstream(opts.nc, { timeout: opTimeoutMs })).open(Buckets.leases);
  } catch (err) {
    throw new LeaseBucketError(`cannot open KV bucket ${Buckets.leases}`, { cause: err });
  }

  const key = leaseKey(name);
  const metric = leaderGauge();
  const encode = (expiresAt: number) => JSON.stringify({ holder, expiresAt } satisfies LeaseRecord);

  let stopped = false;
  /** Set while we lead: the revision we last wrote and when that lease ends by our clock. */
  let leading: { revision: number; expiresAt: number } | undefined;
  /** The revision of our last successful write, even if deposed since: release() deletes on it. */
  let ownRevision: number | undefined;
  let tickTimer: NodeJS.Timeout | undefined;
  let expiryTimer: NodeJS.Timeout | undefined;
  let inflight: Promise<void> | undefined;
  let again = false;
  let watcher: Subscription | undefined;
  let callbacks: Promise<void> = Promise.resolve();
  let stopping: Promise<void> | undefined;
  let releasing: Promise<boolean> | undefined;

  /** Queues a user callback behind the previous ones; never rejects. */
  const emit = (what: string, fn: (() => unknown) | undefined, onFailure?: () => void) => {
    if (!fn) return;
    callbacks = callbacks
      .then(fn)
      .then(() => undefined)
      .catch((err: unknown) => {
        log?.error({ err }, `lease: ${what} callback failed`);
        onFailure?.();
      });
  };
  /** Not before this (our clock) do we contend again: set when we resign. */
  let resignedUntil = 0;

  const depose = (reason: DeposedReason) => {
    if (!leading) return;
    leading = undefined;
    clearTimeout(expiryTimer);
    metric.set({ lease: name }, 0);
    // Involuntary loss is worth a warning; stop/release are the normal way out.
    const voluntary = reason === "stopped" || reason === "released";
    log?.[voluntary ? "info" : "warn"]({ [LogKeys.reason]: reason }, "lease: deposed");
    emit("onDeposed", opts.onDeposed && (() => opts.onDeposed?.(reason)));
  };

  /** Deposes at expiresAt unless a renewal moved it; re-arms from the clock each time. */
  const armExpiry = () => {
    clearTimeout(expiryTimer);
    if (!leading) return;
    expiryTimer = setTimeout(
      () => {
        if (leading && now() >= leading.expiresAt) depose("expired");
        else armExpiry();
      },
      Math.max(0, leading.expiresAt - now()),
    );
  };

  const becomeLeader = (revision: number, expiresAt: number) => {
    ownRevision = revision;
    if (stopped) return;
    const was = leading !== undefined;
    leading = { revision, expiresAt };
    armExpiry();
    if (!was) {
      metric.set({ lease: name }, 1);
      log?.info("lease: elected");
      emit("onElected", opts.onElected, () => void resign());
    }
  };

  /**
   * Gives the lease up after our onElected failed (a chaos run found a projector that held
   * it for minutes, renewing, with its projection never started: nobody projected). The key
   * is deleted by CAS on the revision we hold, so other replicas take it at
   * once; we wait a renewal period before contending again, so that they come first.
   */
  const resign = async () => {
    if (stopped || !leading) return;
    resignedUntil = now() + renewEveryMs;
    const revision = leading.revision;
    depose("resigned");
    try {
      await kv.delete(key, { previousSeq: revision });
      ownRevision = undefined;
    } catch (err) {
      // Renewed and lost meanwhile, or NATS away: the lease expires by itself instead.
      if (!isCasFailure(err)) log?.warn({ err }, "lease: resigning failed; it will expire instead");
    }
    schedule(renewEveryMs);
  };

  /** One renewal. Returns the delay until the next tick. */
  const renew = async (current: { revision: number; expiresAt: number }): Promise<number> => {
    if (now() >= current.expiresAt) {
      depose("expired");
      return 0; // contend at once: nobody may have taken it
    }
    const expiresAt = now() + ttlMs;
    try {
      becomeLeader(await kv.update(key, encode(expiresAt), current.revision), expiresAt);
    } catch (err) {
      if (!isCasFailure(err)) throw err; // transient: retried next tick; the expiry timer bounds it
      ownRevision = undefined;
      depose("lost");
    }
    return renewEveryMs;
  };

  /** One attempt to take the lease. Returns the delay until the next tick. */
  const contend = async (): Promise<number> => {
    if (now() < resignedUntil) return resignedUntil - now();
    const entry = await kv.get(key);
    const expiresAt = now() + ttlMs;
    try {
      if (entry?.operation !== "PUT") {
        becomeLeader(await kv.create(key, encode(expiresAt)), expiresAt);
        return renewEveryMs;
      }
      const record = parseRecord(entry);
      if (record && record.holder !== holder && now() < record.expiresAt) {
        ownRevision = undefined;
        // Look again when it is due to expire (plus a little), but at least every renewEveryMs.
        return Math.min(renewEveryMs, record.expiresAt - now() + 5);
      }
      // Expired, unreadable, or our own (a late renewal after a local expiry): take it by CAS.
      if (!record) log?.warn({ [LogKeys.sequence]: entry.revision }, "lease: unreadable record, taking over");
      becomeLeader(await kv.update(key, encode(expiresAt), entry.revision), expiresAt);
    } catch (err) {
      if (!isCasFailure(err)) throw err;
      // Another contender got there first.
    }
    return renewEveryMs;
  };

  /** Never rejects. */
  const tick = async (): Promise<number> => {
    try {
      return leading ? await renew(leading) : await contend();
    } catch (err) {
      log?.warn({ err }, leading ? "lease: renewal failed, retrying" : "lease: attempt failed, retrying");
      return renewEveryMs;
    }
  };

  const schedule = (delayMs: number) => {
    clearTimeout(tickTimer);
    tickTimer = stopped ? undefined : setTimeout(run, Math.max(0, delayMs));
  };

  /** Runs a tick unless one is in flight (then runs another right after it). */
  function run(): void {
    tickTimer = undefined;
    if (stopped) return;
    if (inflight) {
      again = true;
      return;
    }
    inflight = tick().then((delay) => {
      inflight = undefined;
      const soon = again;
      again = false;
      schedule(soon ? 0 : delay);
    });
  }

  /**
   * Follows the key's writes so a follower reacts to a release (a delete or purge) at once
   * instead of at its next poll. A plain subscription, not `kv.watch` (see the top of the file).
   */
  const watch = () => {
    try {
      watcher = opts.nc.subscribe(`$KV.${Buckets.leases}.${key}`, {
        callback: (err, msg) => {
          if (err || stopped || leading) return;
          const op = msg.headers?.get("KV-Operation");
          if (op === "DEL" || op === "PURGE") run();
        },
      });
    } catch (err) {
      // Polling still works; the subscription only makes takeover faster.
      log?.warn({ err }, "lease: cannot follow the key; relying on polling");
    }
  };

  const stop = (reason: DeposedReason = "stopped"): Promise<void> => {
    stopping ??= (async () => {
      stopped = true;
      clearTimeout(tickTimer);
      watcher?.unsubscribe();
      depose(reason);
      await inflight;
      await callbacks;
    })();
    return stopping;
  };

  const release = (): Promise<boolean> => {
    releasing ??= (async () => {
      await stop("released");
      if (ownRevision === undefined) return false;
      try {
        await kv.delete(key, { previousSeq: ownRevision });
        ownRevision = undefined;
        log?.info("lease: released");
        return true;
      } catch (err) {
        // CAS lost: someone else holds it now, nothing of ours to delete.
        if (!isCasFailure(err)) log?.warn({ err }, "lease: release failed; it will expire instead");
        return false;
      }
    })();
    return releasing;
  };

  watch();
  run();
  await inflight;

  return {
    name,
    holder,
    isLeader: () => leading !== undefined && now() < leading.expiresAt,
    release,
    stop: () => stop(),
  };
}
