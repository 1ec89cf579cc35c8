import { hostname } from "node:os";
import {
  type ChangesBatch,
  CommandBus,
  catalogue,
  changesBatchHeaders,
  connectNats,
  EventStore,
  ensureStreams,
  expectedStreams,
  Headers,
  type Nats,
  newId,
  parseChangesBatchHeader,
  projectorChangesSubject,
  type RunnerLogger,
  type RunningConsumer,
  serveStrayCommands,
} from "@cairn/events";
import { acquireLeadership, type LeaderLease, leaseLogging } from "@cairn/service";
import { context, ROOT_CONTEXT } from "@opentelemetry/api";
import { sql } from "kysely";
import { type CheckpointSeen, ClusterCache, parseAnnouncedDurations } from "./api/cluster-cache.ts";
import { warmClusterCache } from "./api/clusters.ts";
import { type ApiOptions, assertListenAllowed, type RunningApi, startApi } from "./api/server.ts";
import { type Change, ChangeFeed } from "./changes.ts";
import {
  assertSchemaName,
  type Db,
  DEFAULT_SCHEMA,
  openDatabase,
  whileDatabaseUnavailable,
} from "./db/database.ts";
import { migrateToLatest } from "./db/migrate.ts";
import { type RunningProjection, startProjection } from "./projection.ts";
import type { StepDurationRow } from "./projections/step-durations.ts";
import { type ReplayServer, serveReplayRequests } from "./replay/trigger.ts";
import { ensureCheckpoint } from "./repository/checkpoint.ts";

/** Where NATS is: a URL to connect to (closed on stop), or a connection to borrow (left open). */
export type NatsSource =
  | { readonly natsUrl: string; readonly nats?: never }
  | { readonly nats: Nats; readonly natsUrl?: never };

export type ProjectorOptions = NatsSource & {
  readonly databaseUrl: string;
  /** pino fits; default: silent. */
  readonly logger?: RunnerLogger;
  /** The HTTP API, or `false` for none. */
  readonly api: ApiOptions | false;
  /**
   * Opens the connection the API writes and follows the heartbeat bucket on, with `noEcho`
   * (api/sessions.ts says why). Default: one to `natsUrl`; with a borrowed `nats`, none
   * (the heartbeats share it).
   */
  readonly heartbeatNats?: () => Promise<Nats>;
  /** Messages per batch (= per transaction) at most. Default `DEFAULT_BATCH_SIZE` (2,000). */
  readonly batchSize?: number;
  /**
   * How often the projection looks for acked messages a Postgres crash took out of the read
   * models (`healLostCommits` in projection.ts). Default 5 s; 0: never.
   */
  readonly healEveryMs?: number;
  /** Postgres schema of the live read models. Default `cairn`. */
  readonly schema?: string;
  /** Durable consumer name, also the checkpoint's name. Default `projector`. */
  readonly durable?: string;
  /** Answer replay requests on `cairn.admin.projector.replay`. Default true. */
  readonly serveReplay?: boolean;
  /** How long the projecting replica's lease lives without renewal. Default 10 s. */
  readonly leaseTtlMs?: number;
  /** Replicas the streams are expected to have (CAIRN_NATS_REPLICAS). Default 1. */
  readonly streamReplicas?: number;
  /**
   * Dead-letter what is published on command subjects no service serves (`serveStrayCommands`).
   * Default true; every replica competes on the one durable consumer.
   */
  readonly strayCommands?: boolean;
  /**
   * What this replica does (`CAIRN_PROJECTOR_ROLE`). `all` (default): it serves the API and
   * projects while it holds the projection lease. `api`: it serves the API only — it never
   * takes the lease, so it never folds a batch, serves no replay requests and no stray
   * commands; its live stream follows the projecting replica's change announcements, as a
   * standby's does. Reads then never wait behind a batch's fold or the projection's garbage
   * collections on the same event loop (docs/projector.md, "API reads beside the projection").
   * `projection`: it projects (when it holds the lease) and serves no API (`api` must be false).
   */
  readonly role?: ProjectorRole;
  /**
   * Whether `GET /clusters/:id` is answered from memory kept fresh by the change announcements
   * (api/cluster-cache.ts; `CAIRN_API_CLUSTER_CACHE`). Default: in role `api` only.
   */
  readonly clusterCache?: boolean;
};

/** What a projector replica does: see `ProjectorOptions.role`. */
export const PROJECTOR_ROLES = ["all", "api", "projection"] as const;
export type ProjectorRole = (typeof PROJECTOR_ROLES)[number];

export interface Projector {
  readonly api?: { readonly url: string; readonly port: number };
  /** Closes the API, drains the consumer, closes NATS (if it opened it) and the pool. Idempotent. */
  stop(): Promise<void>;
}

const silent: RunnerLogger = { info() {}, warn() {}, error() {} };

/** Rows per change announcement: a few hundred rows stay well under NATS's payload limit. */
const CHANGES_PER_MESSAGE = 200;

/**
 * Messages per live batch at most (one transaction each). A batch is whatever is buffered
 * when the previous one commits, so at a steady few hundred commits/s batches stay small
 * and this bounds only a catch-up (a start behind the head, a burst). Larger than it was
 * (500), because a batch writes each row it touches once: a cluster with several commits in
 * the batch is one 2 kB row upsert, and that upsert is most of a batch's Postgres time (A/B
 * in process, same log, alternated: 2,000 a batch 1.28× the rate of 500; docs/projector.md
 * "Live apply"). Not larger still (6,000 was 1.7× the rate of 2,000 on that log): a batch
 * holds the event loop for its fold and its statement text, and at 5,000 on a machine at
 * load 20 the projector missed its lease renewals (10 s) during a catch-up.
 */
export const DEFAULT_BATCH_SIZE = 2_000;

/**
 * Runs the projector: migrations, streams, the projection consumer and the API.
 * @example
 * const p = await startProjector({ natsUrl, databaseUrl, api: { port: 8080 } });
 * … await p.stop();
 */
export async function startProjector(opts: ProjectorOptions): Promise<Projector> {
  const log = opts.logger ?? silent;
  const schema = assertSchemaName(opts.schema ?? DEFAULT_SCHEMA);
  const durable = opts.durable ?? "projector";
  const batchSize = opts.batchSize ?? DEFAULT_BATCH_SIZE;
  if (!Number.isInteger(batchSize) || batchSize < 1)
    throw new Error(`batchSize must be a positive integer, got ${batchSize}`);
  const role = opts.role ?? "all";
  if (!PROJECTOR_ROLES.includes(role))
    throw new Error(`role must be one of ${PROJECTOR_ROLES.join(", ")}, got ${role}`);
  if (role === "api" && !opts.api) throw new Error("role api serves the API: api must not be false");
  if (role === "projection" && opts.api) throw new Error("role projection serves no API: api must be false");
  // Only a replica that may project takes the lease, and with it the projecting side's jobs.
  const projects = role !== "api";
  // Refuse a public listen before touching anything.
  if (opts.api) assertListenAllowed(opts.api);

  let db: Db | undefined;
  let nats: Nats | undefined;
  let ownNats = false;
  let projection: RunningProjection | undefined;
  let api: RunningApi | undefined;
  let replays: ReplayServer | undefined;
  let lease: LeaderLease | undefined;
  let fanout: { stop(): void } | undefined;
  let strays: RunningConsumer | undefined;
  // Leading and following run one after another (the lease's callbacks are serialised).
  let leading = false;

  const shutdown = async () => {
    const errors: unknown[] = [];
    const step = async (f: (() => Promise<void>) | undefined) => {
      if (!f) return;
      try {
        await f();
      } catch (err) {
        errors.push(err);
      }
    };
    // Released first, so a successor takes over at once; deposing stops our projection.
    await step(lease && (() => lease!.release().then(() => {})));
    await step(replays && (() => replays!.stop()));
    await step(api && (() => api!.close()));
    await step(strays && (() => strays!.stop()));
    await step(projection && (() => projection!.stop()));
    fanout?.stop();
    await step(ownNats && nats ? () => nats!.close() : undefined);
    await step(db && (() => db!.destroy()));
    if (errors.length > 0) throw new AggregateError(errors, "projector did not stop cleanly");
  };

  try {
    db = openDatabase(opts.databaseUrl);
    // A Postgres restarting as we start (its connections ended, refused until it is back) is
    // waited for, as NATS is on the first connect: exiting would only start us again.
    await whileDatabaseUnavailable(
      async () => {
        await migrateToLatest(db!, schema);
        await ensureCheckpoint(db!, schema, durable);
      },
      {
        onRetry: (err, attempt) =>
          log.warn({ err: String(err), attempt }, "Postgres unavailable at start; waiting"),
      },
    );
    if (opts.nats) {
      nats = opts.nats;
    } else {
      nats = await connectNats(opts.natsUrl, { name: "projector" });
      ownNats = true;
    }
    const streams = await ensureStreams(nats.jsm, expectedStreams({ replicas: opts.streamReplicas ?? 1 }));
    if (streams.drift.length > 0)
      log.warn({ drift: streams.drift }, "streams differ from the expected config");
    // No command may lie in CMD unanswered because its subject has no owner.
    if (projects && (opts.strayCommands ?? true))
      strays = await serveStrayCommands({ js: nats.js, jsm: nats.jsm, logger: log });
    const changes = new ChangeFeed((err) =>
      log.warn({ err: err instanceof Error ? err.message : String(err) }, "a change listener failed"),
    );
    // Every replica serves the API; one projects (it holds the lease). The projecting one
    // announces each committed batch's rows on NATS and every replica, itself included,
    // feeds them to its live stream.
    const nc = nats.nc;
    const subject = projectorChangesSubject(durable);
    // An API replica that does not project keeps `GET /clusters/:id`'s inputs in memory,
    // fresh from these announcements (api/cluster-cache.ts).
    const clusterCache =
      opts.api && (opts.clusterCache ?? role === "api")
        ? new ClusterCache({
            poll: () => pollCheckpoint(db!, schema, durable),
            // Every cluster read once at start and after each reset, so a cluster's first read
            // is not the one that goes to Postgres.
            warm: async (cache) => {
              const { pages, kept } = await warmClusterCache(
                { db: db!, schema, checkpointName: durable },
                cache,
              );
              log.info({ pages, kept }, "cluster cache warmed");
            },
            onReset: (why) => log.info({ why }, "cluster cache emptied"),
          })
        : undefined;
    // This replica's id on its announcements: it hands its own batches' rows to its listeners
    // in process (`announce` below) and skips them when NATS echoes them back.
    const origin = newId();
    /** One announcement (a batch's part) to this replica's cache and live stream. */
    const received = (
      batch: ChangesBatch | undefined,
      rows: readonly Change[],
      durations: readonly StepDurationRow[] | undefined,
    ) => {
      // The cache first: a change on this replica's live stream is readable through it.
      clusterCache?.announced(batch, rows, durations);
      changes.publish(rows);
    };
    const sub = nc.subscribe(subject, {
      callback: (err, msg) => {
        if (err) return;
        // Nobody follows the live stream on this replica: the rows need not be parsed
        // (a busy batch announces about a megabyte).
        if (changes.listenerCount === 0 && !clusterCache) return;
        // Our own: already handed over in process, when it was announced.
        if (msg.headers?.get(Headers.changesOrigin) === origin) return;
        let rows: Change[];
        try {
          rows = msg.json<Change[]>();
        } catch (e) {
          clusterCache?.announced(undefined, []);
          log.warn({ err: e instanceof Error ? e.message : String(e) }, "an unreadable change announcement");
          return;
        }
        received(
          parseChangesBatchHeader(msg.headers?.get(Headers.changesBatch)),
          rows,
          parseAnnouncedDurations(msg.headers?.get(Headers.changesDurations)),
        );
      },
    });
    fanout = {
      stop: () => {
        sub.unsubscribe();
        clusterCache?.stop();
      },
    };
    const announce = (
      c: readonly Change[],
      range: { from: number; to: number },
      durations: readonly StepDurationRow[],
    ) => {
      // In slices well under NATS's 1 MB payload limit; each says its batch and its part,
      // and a batch with no rows is announced too, so a follower knows it missed none.
      // The step durations the batch wrote go with its last part (a handful of small rows).
      const parts = Math.max(1, Math.ceil(c.length / CHANGES_PER_MESSAGE));
      const local = changes.listenerCount > 0 || clusterCache !== undefined;
      for (let part = 1; part <= parts; part++) {
        const slice = c.slice((part - 1) * CHANGES_PER_MESSAGE, part * CHANGES_PER_MESSAGE);
        const last = part === parts;
        nc.publish(subject, JSON.stringify(slice), {
          headers: changesBatchHeaders(
            { ...range, part, parts },
            last && durations.length > 0 ? JSON.stringify(durations) : "[]",
            origin,
          ),
        });
        // The other replicas hear it from NATS; this one's listeners now, in process: no
        // round trip through nats-server and no parse of what it has just serialised (the
        // NATS hop was a 15 ms p99 of command → read model: docs/projector.md, "API").
        // Outside the batch's trace, as a NATS delivery is: what the listeners do (views, waits,
        // replies) must not run in the span of the batch that happened to carry the rows.
        if (local)
          context.with(ROOT_CONTEXT, () => received({ ...range, part, parts }, slice, last ? durations : []));
      }
    };
    // The first election's start-up, awaited below: a projector that leads from the start
    // returns with its projection and replay server running.
    let firstLead: (() => void) | undefined;
    const firstLeadDone = new Promise<void>((r) => (firstLead = r));
    const lead = async () => {
      leading = true;
      projection = await startProjection({
        nats: nats!,
        target: { db: db!, schema, name: durable },
        durable,
        batchSize,
        logger: log,
        onCommitted: announce,
        ...(opts.healEveryMs !== undefined ? { healEveryMs: opts.healEveryMs } : {}),
      });
      if (opts.serveReplay ?? true) {
        replays = serveReplayRequests({
          nats: nats!,
          databaseUrl: opts.databaseUrl,
          schema,
          name: durable,
          logger: log,
        });
      }
      log.info({ durable }, "this replica projects (it holds the projection lease)");
      firstLead?.();
    };
    const follow = async () => {
      if (!leading) return;
      leading = false;
      const [r, p] = [replays, projection];
      replays = undefined;
      projection = undefined;
      await r?.stop();
      await p?.stop();
      log.info({ durable }, "this replica stopped projecting (lease lost or released)");
    };
    if (projects) {
      lease = await acquireLeadership({
        nc,
        name: `projector-${durable}`,
        holder: `${hostname()}-${process.pid}-${newId()}`,
        ...(opts.leaseTtlMs !== undefined ? { ttlMs: opts.leaseTtlMs } : {}),
        ...leaseLogging(log),
        onElected: lead,
        onDeposed: follow,
      });
      if (lease.isLeader()) await firstLeadDone;
    }
    if (opts.api) {
      api = await startApi(opts.api, {
        db,
        schema,
        bus: new CommandBus({ js: nats.js, catalogue }),
        store: new EventStore({ js: nats.js, jsm: nats.jsm, catalogue }),
        changes,
        ...(clusterCache ? { clusterCache } : {}),
        checkpointName: durable,
        nats,
        heartbeatNats:
          opts.heartbeatNats ??
          (opts.natsUrl !== undefined
            ? () => connectNats(opts.natsUrl, { name: "projector-heartbeats", noEcho: true })
            : undefined),
        logger: log,
        jaegerUiUrl: opts.api.jaegerUiUrl,
        // The projecting replica: its consumer runs while it is not stopped and its NATS
        // connection is not closed (a NATS outage is ridden out by reconnecting). Another
        // replica stands by and serves reads.
        consumerStatus: () => {
          const p = projection;
          if (!p) return { running: false, standby: !nc.isClosed() };
          return { ...p.status, running: p.status.running && !nc.isClosed(), standby: false };
        },
      });
    }
  } catch (err) {
    await shutdown().catch(() => {});
    throw err;
  }
  log.info({ schema, durable, batchSize, role, api: api?.url }, "projector started");

  let stopping: Promise<void> | undefined;
  return {
    ...(api ? { api: { url: api.url, port: api.port } } : {}),
    stop: () => {
      stopping ??= shutdown().then(() => log.info({ durable }, "projector stopped"));
      return stopping;
    },
  };
}

/** The checkpoint and which table is `<schema>.clusters` (a replay swaps another in). */
async function pollCheckpoint(db: Db, schema: string, durable: string): Promise<CheckpointSeen> {
  const r = await sql<{ checkpoint: number | null; tbl: string | null }>`select
      (select last_sequence from ${sql.table(`${schema}.projector_checkpoint`)} where name = ${durable}) as checkpoint,
      to_regclass(${`${schema}.clusters`})::oid::text as tbl`.execute(db);
  const row = r.rows[0];
  return {
    checkpoint: row?.checkpoint == null ? undefined : Number(row.checkpoint),
    table: row?.tbl ?? null,
  };
}
