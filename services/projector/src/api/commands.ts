import { isBusUnavailable, isSchemaError, isTokenSafe, newId } from "@cairn/events";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import type { Change } from "../changes.ts";
import type { CommandRow } from "../projections/commands.ts";
import { getCommand } from "../repository/commands.ts";
import type { Principal } from "./auth.ts";
import { sessionOwner } from "./queries.ts";
import {
  busUnavailable,
  commandAccepted,
  commandRequest,
  commandUnknown,
  commandView,
  errorBody,
  idParams,
} from "./schemas.ts";
import { type ApiDeps, jaegerLink } from "./server.ts";

export function toCommandView(row: CommandRow, jaegerUiUrl?: string) {
  const jaegerUrl = jaegerLink(jaegerUiUrl, row.traceId);
  return {
    commandId: row.commandId,
    type: row.commandType,
    status: row.status,
    ...(row.code !== null ? { code: row.code } : {}),
    ...(row.reason !== null ? { reason: row.reason } : {}),
    aggregate: { type: row.aggregateType, id: row.aggregateId },
    sequence: row.firstSequence,
    traceId: row.traceId,
    ...(jaegerUrl ? { jaegerUrl } : {}),
  };
}

/**
 * Per-user scope of sessions: a caller below admin acts on their own sessions only.
 * `session.create` must name the caller as `data.user`; any other `session.*` command
 * must target a session whose creation event names the caller. A session whose owner
 * cannot be told yet (unknown, or its creation not projected) is refused: fail closed.
 * @returns why the command is refused, or undefined when it may go.
 */
export async function sessionScopeProblem(
  deps: ApiDeps,
  who: Principal,
  type: string,
  data: unknown,
): Promise<string | undefined> {
  if (who.role === "admin" || !type.startsWith("session.")) return undefined;
  const d = (typeof data === "object" && data !== null ? data : {}) as Record<string, unknown>;
  if (type === "session.create") {
    return typeof d.user === "string" && d.user !== who.user
      ? `${who.user} (${who.role}) may create sessions only for themself, not for ${JSON.stringify(d.user)}`
      : undefined;
  }
  // Not an id a session can have: the catalogue answers 400 (and looking it up could fail:
  // Postgres text holds no NUL).
  if (typeof d.sessionId !== "string" || !isTokenSafe(d.sessionId)) return undefined;
  const owner = await sessionOwner(deps.db, deps.schema, d.sessionId);
  if (owner === undefined)
    return `cannot tell whose session ${JSON.stringify(d.sessionId)} is (unknown, or not projected yet); only its owner or an admin may send ${type}`;
  if (owner !== who.user)
    return `session ${JSON.stringify(d.sessionId)} is not ${who.user}'s; only its owner or an admin may send ${type}`;
  return undefined;
}

/** What sending a command for a caller came to: 202 with the command's id and trace, or a refusal. */
export type SendOutcome =
  | {
      readonly status: 202;
      readonly body: {
        commandId: string;
        traceId?: string;
        jaegerUrl?: string;
        actor: string;
        links: { command: string };
      };
    }
  | { readonly status: 400 | 403; readonly body: { error: string; message: string; issues?: string[] } }
  | {
      readonly status: 503;
      readonly retryAfterSeconds: number;
      readonly body: { error: string; message: string; commandId: string };
    };

/**
 * Sends one command for the caller, as `POST /commands` and the typed routes do: the
 * session scope, the actor (the token's holder, when there are tokens), validation
 * against the catalogue (400 with the issues), and 202 with the command's id, trace and
 * the link to follow it.
 */
export async function sendFor(
  deps: ApiDeps,
  req: FastifyRequest,
  c: { id?: string; type: string; data: unknown; actor?: string | undefined },
): Promise<SendOutcome> {
  const who = req.principal;
  if (who) {
    const problem = await sessionScopeProblem(deps, who, c.type, c.data);
    if (problem) return { status: 403, body: { error: "Forbidden", message: problem } };
  }
  // With a token, the actor is its holder: `meta.actor` cannot speak for someone else.
  const actor = who?.user ?? c.actor ?? "anonymous";
  // The id is chosen here, not in the bus, so that a 503 can name it: sent again with it,
  // the command is kept once whether or not the first try reached the stream.
  const id = c.id ?? newId();
  let sent: Awaited<ReturnType<typeof deps.bus.send>>;
  try {
    sent = await deps.bus.send({
      id,
      type: c.type,
      data: c.data,
      meta: { actor },
    });
  } catch (err) {
    if (isSchemaError(err)) {
      return {
        status: 400,
        body: {
          error: "Bad Request",
          message: err.message,
          issues: err.issues.length > 0 ? [...err.issues] : [err.message],
        },
      };
    }
    if (isBusUnavailable(err)) {
      // The bus tried for its whole timeout (an R3 stream's leader election takes seconds).
      return {
        status: 503,
        retryAfterSeconds: 1,
        body: {
          error: "Service Unavailable",
          message: `the command stream cannot take commands just now (${err instanceof Error ? err.message : String(err)}); send it again with the same id (${id}): it is kept once`,
          commandId: id,
        },
      };
    }
    throw err;
  }
  const jaegerUrl = jaegerLink(deps.jaegerUiUrl, sent.traceId);
  return {
    status: 202,
    body: {
      commandId: sent.commandId,
      ...(sent.traceId !== undefined ? { traceId: sent.traceId } : {}),
      ...(jaegerUrl ? { jaegerUrl } : {}),
      actor,
      links: { command: `/commands/${encodeURIComponent(sent.commandId)}` },
    },
  };
}

/** A send's outcome as the answer (a 503 with its `Retry-After`). */
export function answerSent(reply: FastifyReply, out: SendOutcome) {
  if (out.status === 503) reply.header("retry-after", String(out.retryAfterSeconds));
  return reply.code(out.status).send(out.body);
}

/** {@link sendFor}, answered as it came. */
export async function publish(
  deps: ApiDeps,
  req: FastifyRequest,
  reply: FastifyReply,
  c: { id?: string; type: string; data: unknown; actor?: string | undefined },
) {
  return answerSent(reply, await sendFor(deps, req, c));
}

/**
 * Waits, at most `waitMs`, for what became of `commandId` as the projection records it:
 * its row (accepted or rejected), or undefined when none came in time or `also.settled()`
 * said the command was answered without one (a decision that appended nothing). Reads
 * once at the start and after every change of the command or of `also`'s row (the
 * in-process change feed).
 */
export async function awaitCommandOutcome(
  deps: ApiDeps,
  commandId: string,
  waitMs: number,
  also?: { resource: Change["resource"]; id: string; settled: () => Promise<boolean> },
): Promise<CommandRow | undefined> {
  let wake: (() => void) | undefined;
  let dirty = true;
  const unsubscribe = deps.changes.subscribe((c: Change) => {
    if (
      (c.resource === "commands" && c.id === commandId) ||
      (c.resource === also?.resource && c.id === also.id)
    ) {
      dirty = true;
      wake?.();
    }
  });
  const deadline = Date.now() + waitMs;
  try {
    for (;;) {
      if (dirty) {
        dirty = false;
        const row = await getCommand(deps.db, deps.schema, commandId);
        if (row) return row;
        if (await also?.settled()) return undefined;
      }
      const left = deadline - Date.now();
      if (left <= 0) return undefined;
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

export function commandRoutes(app: FastifyInstance, deps: ApiDeps): void {
  const r = app.withTypeProvider<ZodTypeProvider>();
  r.post(
    "/commands",
    {
      config: { access: "operator" },
      schema: {
        summary: "Send a command: validated against the catalogue, then published on the command stream",
        description:
          "202 means the command is on the bus, not that it was accepted: follow `links.command` for its outcome.",
        tags: ["commands"],
        body: commandRequest,
        response: { 202: commandAccepted, 400: errorBody, 403: errorBody, 503: busUnavailable },
      },
    },
    async (req, reply) => {
      const { id, type, data, meta } = req.body;
      return publish(deps, req, reply, {
        ...(id !== undefined ? { id } : {}),
        type,
        data,
        actor: meta?.actor,
      });
    },
  );
  r.get(
    "/commands/:id",
    {
      config: { access: "viewer" },
      schema: {
        summary: "What became of a command, once its events are projected",
        tags: ["commands"],
        params: idParams,
        response: { 200: commandView, 404: commandUnknown },
      },
    },
    async (req, reply) => {
      const row = await getCommand(deps.db, deps.schema, req.params.id);
      if (!row) return reply.code(404).send({ commandId: req.params.id, status: "unknown" as const });
      return toCommandView(row, deps.jaegerUiUrl);
    },
  );
}
