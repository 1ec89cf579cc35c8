import { type AnyEvent, type EventStore, isTokenSafe } from "@cairn/events";
import type { FastifyInstance } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import type { Selectable } from "kysely";
import { z } from "zod";
import { type ClustersTable, withRawClient } from "../db/database.ts";
import { lifecycleProgress } from "../projections/cluster-progress.ts";
import { type ClusterRow, foldCluster } from "../projections/clusters.ts";
import { applyInstallEvent, type InstallRow } from "../projections/installs.ts";
import { etaView, type StepDurationRow } from "../projections/step-durations.ts";
import { fromStored, listClusters } from "../repository/clusters.ts";
import { getAllDocs, getDocs, installsTable, stepDurationsTable } from "../repository/doc-tables.ts";
import type { ClusterCache } from "./cluster-cache.ts";
import { decodeCursor, encodeCursor } from "./cursor.ts";
import { clusterList, clusterListQuery, clusterQuery, clusterView, errorBody, idParams } from "./schemas.ts";
import { type ApiDeps, jaegerLink } from "./server.ts";
import { sessionCountsFrom } from "./sessions.ts";

/** What the ETA of a cluster is computed from: its install row, the learnt durations, and now. */
export interface EtaInputs {
  readonly install: InstallRow | undefined;
  readonly durations: readonly StepDurationRow[];
  readonly now: Date;
}

/** The install rows of these clusters and the learnt durations: two reads for a page of clusters. */
export async function etaInputs(deps: ApiDeps, clusterIds: readonly string[]) {
  const installs = await getDocs(deps.db, deps.schema, installsTable, clusterIds);
  const durations = await getAllDocs(deps.db, deps.schema, stepDurationsTable);
  const now = new Date();
  return (id: string): EtaInputs => ({ install: installs.get(id), durations, now });
}

/** The clusters table's columns, named (not `c.*`): see `clusterLiveText`. */
const CLUSTER_COLUMNS = [
  "id",
  "name",
  "region",
  "state",
  "spec",
  "version",
  "trace_id",
  "created_at",
  "updated_at",
  "last_event_type",
  "last_sequence",
  "progress",
  "conditions",
  "health",
  "failure",
] as const satisfies readonly (keyof ClustersTable)[];

/**
 * The live view's statement for a schema. Sent as a named prepared statement (node-postgres
 * `name:`): each connection parses and plans it once, then only binds and executes it.
 * Postgres re-analyses a prepared statement whenever a table it reads is altered, renamed
 * or dropped (a replay's schema swap), by name, from this text. The columns are named, not
 * `c.*`: a column a later migration adds would change the statement's result type, which
 * Postgres refuses for a prepared statement ("cached plan must not change result type")
 * on every connection an older replica already prepared it on. A column whose type a
 * migration changes does that still: `clusterWithEtaAndSessions` retries once, on a fresh
 * connection.
 */
function clusterLiveText(schema: string): string {
  const t = (name: string) => `${schema}.${name}`;
  return `select ${CLUSTER_COLUMNS.map((c) => `c.${c}`).join(", ")},
      (select doc from ${t("installs")} where id = $1) as install_doc,
      (select coalesce(json_agg(doc order by id), '[]') from ${t("step_durations")}) as durations,
      (select coalesce(json_agg(json_build_object('state', state, 'n', n) order by state), '[]')
         from (select state, count(*)::int as n from ${t("sessions")} where cluster_id = $1 group by state) s
      ) as session_counts,
      (select last_sequence from ${t("projector_checkpoint")} where name = $2) as checkpoint
    from ${t("clusters")} c where c.id = $1`;
}

/**
 * A page of clusters in id order after `$1` (at most `$3`), each with what its live view adds
 * (as `clusterLiveText`), the learnt durations on the first row only, and the checkpoint in
 * the same snapshot: the cluster cache's warm-up (`warmClusterCache`).
 */
function clusterPageText(schema: string): string {
  const t = (name: string) => `${schema}.${name}`;
  return `select ${CLUSTER_COLUMNS.map((c) => `c.${c}`).join(", ")},
      i.doc as install_doc,
      case when row_number() over (order by c.id) = 1 then
        (select coalesce(json_agg(doc order by id), '[]') from ${t("step_durations")}) end as durations,
      (select coalesce(json_agg(json_build_object('state', state, 'n', n) order by state), '[]')
         from (select state, count(*)::int as n from ${t("sessions")} where cluster_id = c.id group by state) s
      ) as session_counts,
      (select last_sequence from ${t("projector_checkpoint")} where name = $2) as checkpoint
    from ${t("clusters")} c left join ${t("installs")} i on i.id = c.id
    where c.id > $1 order by c.id limit $3`;
}

/**
 * Fills `cache` with every cluster (up to its `maxEntries`), a page (`pageSize`) per
 * statement, each row through `cache.fill` with the page's checkpoint: the same rule as a
 * read's fill (kept only when the page saw the cache's watermark or later, and nothing reset
 * since its ticket). Stops at the first page taken while the cache was emptied. Never serves
 * anything itself: what it puts in is what a read of each cluster would have put in.
 */
export async function warmClusterCache(
  deps: Pick<ApiDeps, "db" | "schema" | "checkpointName">,
  cache: ClusterCache,
  pageSize = 500,
): Promise<{ pages: number; kept: number }> {
  const text = clusterPageText(deps.schema);
  let after = "";
  let pages = 0;
  let kept = 0;
  for (let n = 0, tries = 0; n < cache.maxEntries; ) {
    const ticket = cache.ticket();
    const r = await withRawClient(deps.db, (client) =>
      client.query<
        Selectable<ClustersTable> & {
          install_doc: InstallRow | null;
          durations: StepDurationRow[] | null;
          session_counts: { state: string; n: number }[];
          checkpoint: number | string | null;
        }
      >(text, [after, deps.checkpointName ?? "projector", Math.min(pageSize, cache.maxEntries - n)]),
    );
    pages++;
    const keptBefore = kept;
    const durations = r.rows[0]?.durations ?? [];
    for (const found of r.rows) {
      const checkpoint = found.checkpoint === null ? undefined : Number(found.checkpoint);
      const inputs = {
        row: fromStored(found),
        install: found.install_doc ?? undefined,
        sessions: found.session_counts,
        durations,
      };
      if (cache.fill(ticket, checkpoint, found.id, inputs)) kept++;
    }
    if (ticket !== cache.ticket() || r.rows.length === 0) break;
    // None kept, nothing reset: the page read a snapshot older than the watermark (a batch's
    // announcement came first). The same page again, a few times.
    if (kept === keptBefore && tries++ < 3) continue;
    tries = 0;
    n += r.rows.length;
    after = r.rows.at(-1)!.id;
    if (r.rows.length < pageSize) break;
  }
  return { pages, kept };
}

/** Postgres refusing a prepared statement whose result type changed since it was prepared (SQLSTATE 0A000). */
function isStalePreparedPlan(err: unknown): boolean {
  const e = err as { code?: unknown; message?: unknown };
  return e?.code === "0A000" && typeof e.message === "string" && e.message.includes("cached plan");
}

const clusterLiveStatements = new Map<string, { name: string; text: string }>();

/**
 * A cluster's row with what its live view adds (its install row and the learnt durations for
 * the ETA, its sessions counted by state) in ONE prepared statement; undefined when there is
 * no such cluster.
 */
async function clusterWithEtaAndSessions(deps: ApiDeps, id: string) {
  let statement = clusterLiveStatements.get(deps.schema);
  if (!statement) {
    // The schema is in the name: one connection never holds two texts under one name.
    statement = { name: `cairn_cluster_live_${deps.schema}`, text: clusterLiveText(deps.schema) };
    clusterLiveStatements.set(deps.schema, statement);
  }
  const { name, text } = statement;
  const query = () =>
    withRawClient(deps.db, (client) =>
      client.query<
        Selectable<ClustersTable> & {
          install_doc: InstallRow | null;
          durations: StepDurationRow[];
          session_counts: { state: string; n: number }[];
          checkpoint: number | string | null;
        }
      >({ name, text, values: [id, deps.checkpointName ?? "projector"] }),
    );
  // A column's type changed under a connection that prepared the statement (a newer
  // replica's migration, e.g. jsonb → json): Postgres refuses the old plan ("cached plan
  // must not change result type"). The failed connection was closed on release (and the
  // name with it), so the next one prepares the statement afresh: once more.
  const r = await query().catch((err: unknown) => {
    if (isStalePreparedPlan(err)) return query();
    throw err;
  });
  const found = r.rows[0];
  if (!found) return undefined;
  return {
    row: fromStored(found),
    eta: { install: found.install_doc ?? undefined, durations: found.durations, now: new Date() },
    sessions: found.session_counts,
    // The checkpoint in the same snapshot as the rows: where the read model was (cluster-cache.ts).
    checkpoint: found.checkpoint === null ? undefined : Number(found.checkpoint),
  };
}

/**
 * A cluster's live view: from the replica's memory when it holds the cluster at a point of
 * the log it may answer from (cluster-cache.ts), else from Postgres (kept for the next read
 * when the statement saw the point the memory is at). Undefined: no such cluster.
 */
async function liveClusterView(
  deps: ApiDeps,
  id: string,
  atLeastSequence: number | undefined,
  source: (from: "mem" | "pg") => void,
) {
  const cache = deps.clusterCache;
  const held = cache?.get(id, atLeastSequence);
  source(held ? "mem" : "pg");
  if (held) {
    const eta = { install: held.install, durations: held.durations, now: new Date() };
    return { ...toClusterView(held.row, deps.jaegerUiUrl, eta), sessions: sessionCountsFrom(held.sessions) };
  }
  const ticket = cache?.ticket();
  const live = await clusterWithEtaAndSessions(deps, id);
  if (!live) return undefined;
  if (cache && ticket !== undefined)
    cache.fill(ticket, live.checkpoint, id, {
      row: live.row,
      install: live.eta.install,
      sessions: live.sessions,
      durations: live.eta.durations,
    });
  return {
    ...toClusterView(live.row, deps.jaegerUiUrl, live.eta),
    sessions: sessionCountsFrom(live.sessions),
  };
}

/**
 * The cluster as the API shows it. Progress counts the install's steps (the install row
 * of `eta`, or `install` for a past view); without `eta` (a past view) `eta` and
 * `etaSeconds` are null.
 */
export function toClusterView(
  row: ClusterRow,
  jaegerUiUrl?: string,
  eta?: EtaInputs,
  install: InstallRow | undefined = eta?.install,
) {
  const jaegerUrl = jaegerLink(jaegerUiUrl, row.traceId);
  return {
    id: row.id,
    name: row.name,
    region: row.region,
    state: row.state,
    health: row.health,
    // Rebuilt field by field in the schema's order: the row's documents come from jsonb,
    // which keeps its own key order, and this view is sent as JSON.stringify writes it.
    conditions: row.conditions.map((c) => ({
      type: c.type,
      status: c.status,
      reason: c.reason,
      message: c.message,
      lastTransitionTime: c.lastTransitionTime,
    })),
    failure: row.failure && {
      reason: row.failure.reason,
      remediation: row.failure.remediation,
      code: row.failure.code,
      since: row.failure.since,
    },
    spec: row.spec as unknown as Record<string, unknown>,
    version: row.version,
    sequence: row.lastSequence,
    progress: {
      ...lifecycleProgress(row, install),
      ...(eta ? etaView(row, eta.install, eta.durations, eta.now) : { eta: null, etaSeconds: null }),
    },
    traceId: row.traceId,
    ...(jaegerUrl ? { jaegerUrl } : {}),
    createdAt: row.createdAt,
    updatedAt: row.updatedAt,
  };
}

/** When each `GET /clusters/:id` reached its route (for Server-Timing). */
const requestStarted = new WeakMap<object, number>();

const listCursor = z.object({ id: z.string() });

/** `?at=`: a stream sequence (digits only) or a time. */
export function parseAt(at: string): { toSequence: number } | { toTime: Date } {
  return /^\d+$/.test(at) ? { toSequence: Number(at) } : { toTime: new Date(at) };
}

/**
 * An aggregate's events up to `at` (`?at=`), read from the log. An id that is not
 * token-safe names no aggregate (no subject can hold it): no events, so the route answers
 * 404 — the event store refuses to build its subject, which answered 500 (found by test/fuzz).
 */
export async function eventsAt(
  store: EventStore<AnyEvent>,
  aggregate: { type: "cluster" | "install" | "session"; id: string },
  at: string,
) {
  if (!isTokenSafe(aggregate.id)) return [];
  return (await store.load(aggregate, parseAt(at))).events;
}

export function clusterRoutes(app: FastifyInstance, deps: ApiDeps): void {
  const r = app.withTypeProvider<ZodTypeProvider>();
  r.get(
    "/clusters",
    {
      config: { access: "viewer" },
      schema: {
        summary: "List clusters in id order, optionally in one state or region (cursor pagination)",
        tags: ["clusters"],
        querystring: clusterListQuery,
        response: { 200: clusterList, 400: errorBody },
      },
    },
    async (req) => {
      const { state, region, limit, cursor } = req.query;
      const page = await listClusters(deps.db, deps.schema, {
        limit,
        ...(state !== undefined ? { state } : {}),
        ...(region !== undefined ? { region } : {}),
        ...(cursor !== undefined ? { cursor: decodeCursor(cursor, listCursor).id } : {}),
      });
      const inputs = await etaInputs(
        deps,
        page.items.map((row) => row.id),
      );
      return {
        items: page.items.map((row) => toClusterView(row, deps.jaegerUiUrl, inputs(row.id))),
        ...(page.nextCursor !== undefined ? { nextCursor: encodeCursor({ id: page.nextCursor }) } : {}),
      };
    },
  );
  r.get(
    "/clusters/:id",
    {
      // The live view is built in the schema's key order: sent as JSON.stringify makes it
      // (plain-json.ts; checked against zod's encoding under test).
      config: { access: "viewer", plainJson: [200] },
      // Server-Timing: the time this process spent on the request, from the route's first look
      // at it (onRequest) to the answer serialized (a client's latency minus this is the network, the
      // client's own delays and this event loop's delay before it read the request), and
      // where the live view came from (`mem`: this replica's memory, `pg`: Postgres).
      onRequest: async (req) => {
        requestStarted.set(req, performance.now());
      },
      onSend: async (req, reply, payload) => {
        const src = reply.getHeader("server-timing");
        const ms = performance.now() - (requestStarted.get(req) ?? performance.now());
        reply.header("server-timing", `app;dur=${ms.toFixed(2)}${src ? `, ${String(src)}` : ""}`);
        return payload;
      },
      schema: {
        summary: "One cluster as the projection last saw it, or as it was at a sequence or time (`?at=`)",
        description:
          "With `at`, the cluster's events are read from the log up to that stream sequence or time and folded with the same reducer the projection uses.",
        tags: ["clusters"],
        params: idParams,
        querystring: clusterQuery,
        response: { 200: clusterView, 400: errorBody, 404: errorBody },
      },
    },
    async (req, reply) => {
      const { id } = req.params;
      const { at, atLeastSequence } = req.query;
      let row: ClusterRow | undefined;
      let install: InstallRow | undefined;
      if (at === undefined) {
        // The live view: one statement, so one pool checkout and one round trip (it was
        // four in a row: the cluster, its install, the learnt durations, its session
        // counts, each its own checkout, each queued behind whatever the loaded event loop
        // and Postgres were doing).
        // On a replica that does not project, from memory kept by the announcements.
        const view = await liveClusterView(deps, id, atLeastSequence, (from) =>
          reply.header("server-timing", `src;desc=${from}`),
        );
        if (view) return view;
      } else {
        // The log, not the read model: the fold is the live projection's reducer over a
        // prefix, and so is its install's (the progress counts the install's steps then).
        const events = await eventsAt(deps.store, { type: "cluster", id }, at);
        row = foldCluster(events.map((event) => ({ event, sequence: event.sequence })));
        for (const e of await eventsAt(deps.store, { type: "install", id }, at))
          install = applyInstallEvent(install, e, e.sequence);
      }
      if (!row) {
        return reply.code(404).send({
          error: "Not Found",
          message:
            at === undefined
              ? `no cluster ${JSON.stringify(id)} (not created, or not projected yet)`
              : `no cluster ${JSON.stringify(id)} at ${at} (it was not created by then)`,
        });
      }
      // An ETA is about now: a past view (`at`) has none (its install then is not in the read model).
      return toClusterView(row, deps.jaegerUiUrl, undefined, install);
    },
  );
}
