/**
 * The sessions API: the read model (`GET /sessions`, `/sessions/:id`, `?at=`, history),
 * the typed session commands, heartbeats, and a cluster's sessions (counts, and the
 * dependency graph cluster → nodes → sessions).
 *
 * Tenant scope: a caller sees a session when it is theirs or they are an operator or an
 * admin; they act on it (commands, heartbeats) when it is theirs or they are an admin.
 * A session a caller may not see answers 404, exactly like one that does not exist;
 * one they see but may not act on answers 403. Without tokens (loopback) every caller
 * is this machine and sees and acts on everything.
 *
 * `POST /sessions` waits (up to `admissionWaitMs`, 5 s by default) for the create's
 * outcome in the read model: admitted (202, state Starting or later), refused (403 over
 * quota with the limit and the usage; 404 no such cluster; 409 conflict or the id taken;
 * 400 invalid), or undecided (202, state Pending: follow the session). The refusal is the
 * idle-detector's own decision on its quota ledger — the `session.rejected` on the bus —
 * read back, not a second check here: one authority, race-free.
 */
import {
  ActivityBucketMissing,
  ConnectSession,
  CreateSession,
  HibernateSession,
  isLiveSession,
  type Nats,
  type SessionActivity,
  startSessionActivity,
  TerminateSession,
  WakeSession,
} from "@cairn/events";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { sql } from "kysely";
import { z } from "zod";
import type { Change } from "../changes.ts";
import { heartbeatOutcomes } from "../metrics.ts";
import type { NodeRow } from "../projections/nodes.ts";
import { foldSession, idleView, type SessionRow } from "../projections/sessions.ts";
import { getCluster } from "../repository/clusters.ts";
import { getCommand } from "../repository/commands.ts";
import { getDocs, listDocs, nodesTable, sessionsTable } from "../repository/doc-tables.ts";
import { liveSessionFacts, sessionFacts, sessionFactsChangedSince } from "../repository/session-facts.ts";
import type { Principal } from "./auth.ts";
import { eventsAt } from "./clusters.ts";
import { answerSent, sendFor } from "./commands.ts";
import { decodeCursor, encodeCursor } from "./cursor.ts";
import { toHistoryEvent } from "./history.ts";
import { aggregateHistory } from "./queries.ts";
import {
  busUnavailable,
  clusterDependencies,
  clusterQuery,
  commandAccepted,
  errorBody,
  heartbeatAnswer,
  heartbeatBody,
  historyQuery,
  idParams,
  sessionCreated,
  sessionHistory,
  sessionList,
  sessionListQuery,
  sessionRefusal,
  sessionView,
} from "./schemas.ts";
import { type ApiDeps, jaegerLink } from "./server.ts";
import { type SessionFacts, sessionDirectory } from "./session-directory.ts";

export const DEFAULT_ADMISSION_WAIT_MS = 5_000;
export const DEFAULT_IDLE_GRACE_SECONDS = 60;

// ── tenant scope ─────────────────────────────────────────────────────────────────────

/** Whether `who` may see sessions of `owner` (no principal: the API has no tokens). */
export const canSee = (who: Principal | undefined, owner: string) =>
  who === undefined || who.role !== "viewer" || who.user === owner;
/** Whether `who` may act on sessions of `owner`. */
export const canAct = (who: Principal | undefined, owner: string) =>
  who === undefined || who.role === "admin" || who.user === owner;

const notFound = (id: string) => ({
  error: "Not Found",
  message: `no session ${JSON.stringify(id)} (not created, not yours, or not projected yet)`,
});
const forbidden = (id: string, owner: string, who: Principal) => ({
  error: "Forbidden",
  message: `session ${JSON.stringify(id)} is ${owner}'s; only its owner or an admin may act on it (${who.user} is ${who.role})`,
});

// ── views ────────────────────────────────────────────────────────────────────────────

export function toSessionView(
  row: SessionRow,
  o: { jaegerUiUrl?: string | undefined; heartbeatAt?: number | undefined; graceSeconds: number; now?: Date },
) {
  const jaegerUrl = jaegerLink(o.jaegerUiUrl, row.traceId);
  const idle = o.now
    ? idleView(row, { heartbeatAt: o.heartbeatAt, graceSeconds: o.graceSeconds, now: o.now })
    : { lastActivity: row.lastActivityAt, idleAt: null, idleInSeconds: null };
  return {
    id: row.id,
    user: row.user,
    clusterId: row.clusterId,
    state: row.state,
    template: row.template,
    idleTimeoutSeconds: row.idleTimeoutSeconds,
    maxLifetimeSeconds: row.maxLifetimeSeconds,
    groups: [...row.groups],
    node: row.node,
    pod: row.pod,
    cause: row.lastTransition.cause,
    lastTransition: row.lastTransition,
    ...idle,
    idledAt: row.idledAt,
    idleForSeconds: row.idleForSeconds,
    hibernatedAt: row.hibernatedAt,
    wakeLatencyMs: row.wake?.latencyMs ?? null,
    wakes: row.wakes,
    moves: row.moves,
    failure: row.failure,
    rejection: row.rejection,
    volumeReleased: row.volumeReleased,
    version: row.version,
    sequence: row.lastSequence,
    traceId: row.traceId,
    ...(jaegerUrl ? { jaegerUrl } : {}),
    createdAt: row.createdAt,
    updatedAt: row.updatedAt,
  };
}

export async function getSession(deps: ApiDeps, id: string): Promise<SessionRow | undefined> {
  return (await getDocs(deps.db, deps.schema, sessionsTable, [id])).get(id);
}

/** A cluster's sessions by state. */
export async function sessionCountsOf(deps: ApiDeps, clusterId: string) {
  const r = await sql<{ state: string; n: number }>`
    select state, count(*)::int as n from ${sql.table(`${deps.schema}.sessions`)}
    where cluster_id = ${clusterId} group by state order by state`.execute(deps.db);
  return sessionCountsFrom(r.rows);
}

/** The session counts of a cluster from its sessions counted by state. */
export function sessionCountsFrom(rows: readonly { state: string; n: number }[]) {
  const byState: Record<string, number> = {};
  let total = 0;
  let live = 0;
  for (const { state, n } of rows) {
    byState[state] = n;
    total += n;
    if (isLiveSession(state as SessionRow["state"])) live += n;
  }
  return { total, live, byState };
}

/** The sessions of one cluster (at most `limit`), in id order. */
async function sessionsOfCluster(deps: ApiDeps, clusterId: string, limit = 10_000): Promise<SessionRow[]> {
  return (await listDocs(deps.db, deps.schema, sessionsTable, { where: { cluster_id: clusterId }, limit }))
    .items;
}

// ── the create's outcome ─────────────────────────────────────────────────────────────

type Admission =
  | { readonly outcome: "admitted" | "pending"; readonly row: SessionRow | undefined }
  | {
      readonly outcome: "rejected";
      readonly code: string;
      readonly reason: string;
      readonly quota: NonNullable<SessionRow["rejection"]>["quota"];
    };

/**
 * Waits for the create `commandId` of `sessionId` to be admitted or refused, as the
 * projection records it, for at most `waitMs`; reads again after every change of the
 * session or the command (the in-process change feed), and once at the start.
 */
async function awaitAdmission(
  deps: ApiDeps,
  sessionId: string,
  commandId: string,
  waitMs: number,
): Promise<Admission> {
  let wake: (() => void) | undefined;
  let dirty = true;
  const unsubscribe = deps.changes.subscribe((c: Change) => {
    if (
      (c.resource === "sessions" && c.id === sessionId) ||
      (c.resource === "commands" && c.id === commandId)
    ) {
      dirty = true;
      wake?.();
    }
  });
  const deadline = Date.now() + waitMs;
  let row: SessionRow | undefined;
  try {
    for (;;) {
      if (dirty) {
        dirty = false;
        // The session first, then the command: a batch that commits between the two reads
        // then shows its rejection in the second (the command's row and the session's are
        // written in one transaction). Read the other way round, a create refused in that
        // moment read as an accepted command beside a Failed session, and answered 202.
        row = await getSession(deps, sessionId);
        const command = await getCommand(deps.db, deps.schema, commandId);
        // Rejected since the session was read: read it again for the refusal's details.
        if (command?.status === "rejected" && row?.rejection?.commandId !== commandId)
          row = await getSession(deps, sessionId);
        const ownRejection = row?.rejection?.commandId === commandId;
        if (command?.status === "rejected" || ownRejection) {
          const detail = ownRejection ? row?.rejection : undefined;
          return {
            outcome: "rejected",
            code: detail?.code ?? command?.code ?? "rejected",
            reason: detail?.reason ?? command?.reason ?? "rejected",
            quota: detail?.quota ?? null,
          };
        }
        if (row && row.createCommandId === commandId && row.state !== "Pending")
          return { outcome: "admitted", row };
      }
      const left = deadline - Date.now();
      if (left <= 0) return { outcome: "pending", row };
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        wake = () => {
          clearTimeout(t);
          resolve();
        };
        if (dirty) wake();
      });
      wake = undefined;
    }
  } finally {
    unsubscribe();
  }
}

const REFUSAL_STATUS: Record<string, 400 | 403 | 404 | 409> = {
  "over-quota": 403,
  "not-found": 404,
  conflict: 409,
  "already-exists": 409,
  invalid: 400,
};

// ── routes ───────────────────────────────────────────────────────────────────────────

export interface SessionApiOptions {
  /** How long `POST /sessions` waits for admission before answering 202 Pending. */
  readonly admissionWaitMs?: number | undefined;
  /** `CAIRN_SESSION_IDLE_GRACE_SECONDS`, as the idle-detector has it: for `idleAt`. */
  readonly idleGraceSeconds?: number | undefined;
}

/** What a heartbeat is answered: its status and JSON body. */
export type HeartbeatAnswer =
  | { readonly status: 200; readonly body: { sessionId: string; activity: boolean } }
  | { readonly status: 403 | 404 | 409 | 503; readonly body: { error: string; message: string } };

/** A heartbeat of `who` (undefined: the API has no tokens) for session `id`, answered without the framework. */
export type Heartbeat = (
  who: Principal | undefined,
  id: string,
  connections: number,
) => HeartbeatAnswer | Promise<HeartbeatAnswer>;

/** Registers the session routes; returns the heartbeat itself, for the API's fast path. */
export async function sessionRoutes(
  app: FastifyInstance,
  deps: ApiDeps & { nats?: Nats | undefined },
): Promise<{ heartbeat: Heartbeat }> {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const tags = ["sessions"];
  const graceSeconds = deps.sessions?.idleGraceSeconds ?? DEFAULT_IDLE_GRACE_SECONDS;
  const waitMs = deps.sessions?.admissionWaitMs ?? DEFAULT_ADMISSION_WAIT_MS;
  // The heartbeat bucket, followed (last activity in the views) and written (heartbeats) —
  // on a connection of its own with `noEcho` when one can be opened: this process knows its
  // own writes when they are acked, and hearing each one again (every heartbeat's write,
  // at thousands a second) cost the server a delivery and this process a message to read.
  // Other writers' writes arrive as before.
  const own = deps.nats && deps.heartbeatNats ? await deps.heartbeatNats() : undefined;
  const activity: SessionActivity | undefined = deps.nats
    ? await startSessionActivity({
        nc: (own ?? deps.nats).nc,
        onOutcome: (outcome) => heartbeatOutcomes.inc({ outcome }),
      })
    : undefined;
  // Whose each session is and its state, in memory: a heartbeat reads no Postgres.
  const directory = sessionDirectory({
    changes: deps.changes,
    source: {
      read: (id) => sessionFacts(deps.db, deps.schema, id),
      live: (limit) => liveSessionFacts(deps.db, deps.schema, limit),
      changedSince: (after, limit) => sessionFactsChangedSince(deps.db, deps.schema, after, limit),
    },
  });
  app.addHook("onClose", async () => {
    activity?.stop();
    directory.stop();
    await own?.close();
  });

  const view = async (row: SessionRow, now = new Date()) =>
    toSessionView(row, {
      jaegerUiUrl: deps.jaegerUiUrl,
      heartbeatAt: await activity?.load(row.id),
      graceSeconds,
      now,
    });
  /** The session if the caller may see it; otherwise 404 is sent and undefined returned. */
  const visible = async (req: FastifyRequest, reply: FastifyReply, id: string) => {
    const row = await getSession(deps, id);
    if (!row || !canSee(req.principal, row.user)) {
      void reply.code(404).send(notFound(id));
      return undefined;
    }
    return row;
  };
  /** The session if the caller may act on it; otherwise 404 / 403 is sent. */
  const actionable = async (req: FastifyRequest, reply: FastifyReply, id: string) => {
    const row = await visible(req, reply, id);
    if (!row) return undefined;
    if (!canAct(req.principal, row.user)) {
      void reply.code(403).send(forbidden(id, row.user, req.principal!));
      return undefined;
    }
    return row;
  };

  /**
   * A heartbeat, framework-free: served by the route below and by the API's fast path
   * (heartbeat-fast-path.ts), which answer alike. Synchronous when the session is known
   * and the write goes behind (the common case): no promise per heartbeat then.
   */
  const beat: Heartbeat = (who, id, connections) => {
    const found = directory.lookup(id);
    if (found instanceof Promise) return found.then((session) => beatKnown(who, id, connections, session));
    return beatKnown(who, id, connections, found);
  };
  const beatKnown = (
    who: Principal | undefined,
    id: string,
    connections: number,
    session: SessionFacts | undefined,
  ): HeartbeatAnswer | Promise<HeartbeatAnswer> => {
    if (!session || !canSee(who, session.user)) return { status: 404, body: notFound(id) };
    if (!canAct(who, session.user)) return { status: 403, body: forbidden(id, session.user, who!) };
    if (!isLiveSession(session.state))
      return { status: 409, body: { error: "Conflict", message: `session ${id} is ${session.state}` } };
    // Zero connections: open somewhere, used by nobody. Not activity; nothing to write.
    if (connections === 0) return { status: 200, body: { sessionId: id, activity: false } };
    if (!activity)
      return { status: 503, body: { error: "Service Unavailable", message: "heartbeats need NATS" } };
    const written = activity.accept(id, connections);
    if (!written) return { status: 200, body: { sessionId: id, activity: true } };
    return written.then(
      (): HeartbeatAnswer => ({ status: 200, body: { sessionId: id, activity: true } }),
      (err: unknown): HeartbeatAnswer => ({
        status: 503,
        body: {
          error: "Service Unavailable",
          message:
            err instanceof ActivityBucketMissing
              ? `${err.message}: ${err.remediation}`
              : `${err instanceof Error ? err.message : String(err)}; retry`,
        },
      }),
    );
  };

  r.get(
    "/sessions",
    {
      config: { access: "viewer" },
      schema: {
        summary: "List sessions in id order, by user, cluster or state (cursor pagination)",
        description: "A viewer sees their own sessions only; operators and admins see all.",
        tags,
        querystring: sessionListQuery,
        response: { 200: sessionList, 400: errorBody },
      },
    },
    async (req) => {
      const { user, clusterId, state, limit, cursor } = req.query;
      const who = req.principal;
      const own = who && who.role === "viewer" ? who.user : undefined;
      if (own !== undefined && user !== undefined && user !== own) return { items: [] };
      const page = await listDocs(deps.db, deps.schema, sessionsTable, {
        where: { user_id: own ?? user, cluster_id: clusterId, state },
        limit,
        ...(cursor !== undefined ? { cursor: decodeCursor(cursor, z.object({ id: z.string() })).id } : {}),
      });
      const now = new Date();
      return {
        items: await Promise.all(page.items.map((row) => view(row, now))),
        ...(page.nextCursor !== undefined ? { nextCursor: encodeCursor({ id: page.nextCursor }) } : {}),
      };
    },
  );

  r.get(
    "/sessions/:id",
    {
      config: { access: "viewer" },
      schema: {
        summary: "One session as the projection last saw it, or as it was at a sequence or time (`?at=`)",
        description:
          "`lastActivity` merges the heartbeat bucket's last write; `idleAt`/`idleInSeconds` say when a Running session goes idle. With `at`, the session's events are read from the log and folded with the projection's reducer (no heartbeat, no idle time).",
        tags,
        params: idParams,
        querystring: clusterQuery,
        response: { 200: sessionView, 400: errorBody, 404: errorBody },
      },
    },
    async (req, reply) => {
      const { id } = req.params;
      const at = req.query.at;
      if (at === undefined) {
        const row = await visible(req, reply, id);
        return row ? await view(row) : reply;
      }
      const events = await eventsAt(deps.store, { type: "session", id }, at);
      const row = foldSession(events.map((event) => ({ event, sequence: event.sequence })));
      if (!row || !canSee(req.principal, row.user))
        return reply.code(404).send({
          error: "Not Found",
          message: `no session ${JSON.stringify(id)} at ${at} (not created by then, or not yours)`,
        });
      return toSessionView(row, { jaegerUiUrl: deps.jaegerUiUrl, graceSeconds });
    },
  );

  r.get(
    "/sessions/:id/history",
    {
      config: { access: "viewer" },
      schema: {
        summary: "Every event of a session in version order: time, type, cause, actor and trace",
        tags,
        params: idParams,
        querystring: historyQuery,
        response: { 200: sessionHistory, 400: errorBody, 404: errorBody },
      },
    },
    async (req, reply) => {
      const { id } = req.params;
      if (!(await visible(req, reply, id))) return reply;
      const { limit, cursor } = req.query;
      const after =
        cursor !== undefined ? decodeCursor(cursor, z.object({ p: z.number().int() })).p : undefined;
      const rows = await aggregateHistory(deps.db, deps.schema, {
        type: "session",
        id,
        limit,
        ...(after !== undefined ? { afterPosition: after } : {}),
      });
      const items = rows.slice(0, limit);
      const last = items.at(-1);
      return {
        sessionId: id,
        items: items.map((e) => toHistoryEvent(e, deps.jaegerUiUrl)),
        ...(rows.length > limit && last ? { nextCursor: encodeCursor({ p: last.position }) } : {}),
      };
    },
  );

  r.post(
    "/sessions",
    {
      config: { access: "viewer" },
      schema: {
        summary: "Create a session (session.create) and wait briefly for its admission",
        description:
          "`user` defaults to the caller. 202 once admitted (state Starting or later) or when admission has not answered in time (state Pending: follow `links.session`). Refused: 403 over quota with `limit` and `usage` (the idle-detector's ledger decision, also on the bus as `session.rejected`), 404 no such cluster, 409 cluster not Ready or the id taken, 400 invalid.",
        tags,
        body: z
          .object({
            sessionId: z.string().describe("The new session's id (letters, digits, - _ .)"),
            user: z.string().optional().describe("Whose session; default the caller (a token's user)"),
            clusterId: z.string(),
            template: z.record(z.string(), z.unknown()),
            idleTimeoutSeconds: z.number().optional(),
            maxLifetimeSeconds: z.number().optional(),
          })
          .loose(),
        response: {
          202: sessionCreated,
          400: sessionRefusal,
          403: sessionRefusal,
          404: sessionRefusal,
          409: sessionRefusal,
          503: busUnavailable,
        },
      },
    },
    async (req, reply) => {
      const body = req.body;
      const data = { ...body, user: body.user ?? req.principal?.user };
      const sent = await sendFor(deps, req, { type: CreateSession.type, data });
      if (sent.status !== 202) return answerSent(reply, sent);
      const { commandId } = sent.body;
      const out = await awaitAdmission(deps, body.sessionId, commandId, waitMs);
      if (out.outcome === "rejected") {
        const status = REFUSAL_STATUS[out.code] ?? 409;
        return reply.code(status).send({
          error: { 400: "Bad Request", 403: "Forbidden", 404: "Not Found", 409: "Conflict" }[status],
          message: out.reason,
          code: out.code,
          commandId,
          ...(out.quota ? { limit: out.quota.limit, usage: out.quota.usage, quota: out.quota } : {}),
        });
      }
      return reply.code(202).send({
        ...sent.body,
        sessionId: body.sessionId,
        state: out.row?.state ?? "Pending",
        links: { ...sent.body.links, session: `/sessions/${encodeURIComponent(body.sessionId)}` },
      });
    },
  );

  const sessionCommand = (method: "post" | "delete", path: string, def: { type: string }, summary: string) =>
    r.route({
      method: method.toUpperCase() as "POST" | "DELETE",
      url: path,
      config: { access: "viewer" },
      schema: {
        summary,
        description:
          "The session's owner or an admin. 202: the command is on the bus; follow `links.command`.",
        tags,
        params: idParams,
        response: {
          202: commandAccepted,
          400: errorBody,
          403: errorBody,
          404: errorBody,
          503: busUnavailable,
        },
      },
      handler: async (req: FastifyRequest<{ Params: { id: string } }>, reply: FastifyReply) => {
        const { id } = req.params;
        if (!(await actionable(req, reply, id))) return reply;
        return answerSent(reply, await sendFor(deps, req, { type: def.type, data: { sessionId: id } }));
      },
    });
  sessionCommand(
    "post",
    "/sessions/:id/hibernate",
    HibernateSession,
    "Hibernate a Running session (session.hibernate)",
  );
  sessionCommand("post", "/sessions/:id/wake", WakeSession, "Wake a Hibernated session (session.wake)");
  sessionCommand(
    "post",
    "/sessions/:id/connect",
    ConnectSession,
    "Connect to a session (session.connect): wakes it when Hibernated, the wake latency recorded",
  );
  sessionCommand(
    "delete",
    "/sessions/:id",
    TerminateSession,
    "Terminate a session for good (session.terminate)",
  );

  r.post(
    "/sessions/:id/heartbeat",
    {
      config: { access: "viewer" },
      schema: {
        summary: "A heartbeat: `{ connections }` (0 is not activity); never touches the event log",
        description:
          "The session's owner or an admin. With connections ≥ 1 its time is written to the KV bucket `cairn_heartbeats` (at most once a second per session: a heartbeat within a second of the last write is covered by it; last activity never moves backwards); 200 once covered, or once the write is on its way while this process's writes land (written behind: it lands within milliseconds; after a failed write, until one lands again, the answer waits for the write). 404 unknown session, 409 Terminated or Failed, 503 when the bucket could not be written (retry).",
        tags,
        params: idParams,
        body: heartbeatBody,
        response: {
          200: heartbeatAnswer,
          400: errorBody,
          403: errorBody,
          404: errorBody,
          409: errorBody,
          503: errorBody,
        },
      },
    },
    async (req, reply) => {
      const a = await beat(req.principal, req.params.id, req.body.connections);
      return a.status === 200 ? a.body : reply.code(a.status).send(a.body);
    },
  );

  r.get(
    "/clusters/:id/dependencies",
    {
      config: { access: "viewer" },
      schema: {
        summary: "What depends on a cluster: its nodes, and the sessions on each node",
        description:
          "cluster → nodes (those not gone) → sessions (by the node its pod runs on); live sessions with no pod on a known node are `unplaced`. A viewer sees their own sessions only; the counts are of all.",
        tags: ["clusters"],
        params: idParams,
        response: { 200: clusterDependencies, 404: errorBody },
      },
    },
    async (req, reply) => {
      const { id } = req.params;
      const cluster = await getCluster(deps.db, deps.schema, id);
      if (!cluster)
        return reply.code(404).send({ error: "Not Found", message: `no cluster ${JSON.stringify(id)}` });
      // A gone node (scaled down, replaced, its cluster deleted — also one the deletion
      // event did not name) is no dependency: a session still naming it is unplaced.
      const nodes: NodeRow[] = (
        await listDocs(deps.db, deps.schema, nodesTable, { where: { cluster_id: id }, limit: 10_000 })
      ).items.filter((n) => !n.gone && cluster.state !== "Deleted");
      const sessions = (await sessionsOfCluster(deps, id)).filter(
        (s) => isLiveSession(s.state) && canSee(req.principal, s.user),
      );
      const brief = (s: SessionRow) => ({ id: s.id, state: s.state, user: s.user });
      const names = new Set(nodes.map((n) => n.node));
      return {
        cluster: { id: cluster.id, state: cluster.state },
        nodes: nodes.map((n) => ({
          id: n.id,
          node: n.node,
          pool: n.pool,
          k3sState: n.k3s,
          sessions: sessions.filter((s) => s.node === n.node && s.state !== "Hibernated").map(brief),
        })),
        unplaced: sessions
          .filter((s) => s.node === null || !names.has(s.node) || s.state === "Hibernated")
          .map(brief),
        sessions: await sessionCountsOf(deps, id),
      };
    },
  );
  return { heartbeat: beat };
}
