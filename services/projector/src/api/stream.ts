/**
 * `GET /events/stream`: server-sent events of read-model changes, as the projection
 * commits them. Each change is `event: change`, `id: <stream sequence>`, and
 * `data: { resource, id, sequence, data: <the row's API view> }`. Comment lines
 * (`: heartbeat`) keep idle connections (and the proxies in between) open.
 */
import type { ServerResponse } from "node:http";
import type { FastifyInstance } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { z } from "zod";
import type { Change } from "../changes.ts";
import { etaInputs, toClusterView } from "./clusters.ts";
import { toCommandView } from "./commands.ts";
import { toInstallView, toNodeOpView, toNodeView } from "./installs-nodes.ts";
import { streamQuery } from "./schemas.ts";
import type { ApiDeps } from "./server.ts";
import { canSee, getSession, toSessionView } from "./sessions.ts";

export const DEFAULT_HEARTBEAT_MS = 15_000;
/** A client this far behind is cut off (it reconnects); the projection never waits for it. */
const MAX_BUFFERED_BYTES = 1 << 20;

/** The row as its GET route shows it (installs without their steps, as in the list). */
async function viewOf(c: Change, deps: ApiDeps): Promise<unknown> {
  const jaegerUiUrl = deps.jaegerUiUrl;
  switch (c.resource) {
    case "clusters":
      // The ETA is computed at read time, from the install row and the learnt durations.
      return toClusterView(c.row, jaegerUiUrl, (await etaInputs(deps, [c.id]))(c.id));
    case "commands":
      return toCommandView(c.row, jaegerUiUrl);
    case "installs":
      return toInstallView(c.row, jaegerUiUrl, false);
    case "nodes":
      return toNodeView(c.row);
    case "nodeops":
      return toNodeOpView(c.row);
    case "sessions":
      // With `now`, a Running session carries when it goes idle (from the log's activity;
      // heartbeats are merged only by the GET routes, which read the heartbeat bucket).
      return toSessionView(c.row, {
        jaegerUiUrl,
        graceSeconds: deps.sessions?.idleGraceSeconds ?? 60,
        now: new Date(),
      });
  }
}

export function streamRoutes(app: FastifyInstance, deps: ApiDeps): void {
  const open = new Set<ServerResponse>();
  // Close the streams before the server closes: it would otherwise wait for them forever.
  app.addHook("preClose", async () => {
    for (const res of open) res.end();
  });

  const r = app.withTypeProvider<ZodTypeProvider>();
  r.get(
    "/events/stream",
    {
      config: { access: "viewer" },
      schema: {
        summary: "Live read-model changes as server-sent events, optionally of one resource or row",
        description:
          "`event: change` with `data: { resource, id, sequence, data }`, where `data` is the row as its GET route shows it (`/clusters/:id` without the ETA, `/commands/:id`, `/installs/:clusterId` without the steps, `/nodes` items, `/nodeops/:id`, `/sessions/:id` without the heartbeat merge: `lastActivity` and `idleAt` from the log's activity only); a viewer gets their own sessions only; `: heartbeat` comments in between.",
        tags: ["live"],
        querystring: streamQuery,
        produces: ["text/event-stream"],
        response: { 200: z.string().describe("A text/event-stream") },
      },
    },
    (req, reply) => {
      const { resource, id } = req.query;
      reply.hijack();
      const res = reply.raw;
      res.writeHead(200, {
        "content-type": "text/event-stream; charset=utf-8",
        "cache-control": "no-cache, no-transform",
        connection: "keep-alive",
        "x-accel-buffering": "no",
      });
      open.add(res);
      const send = (text: string) => {
        if (res.writableLength > MAX_BUFFERED_BYTES) return res.end();
        res.write(text);
      };
      // Tells the client the stream is live before any change happens.
      send(": connected\nretry: 3000\n\n");
      // Tenant scope: a viewer follows their own sessions only (and their sessions' commands).
      const who = req.principal;
      const inScope = async (c: Change) => {
        if (who?.role !== "viewer") return true;
        if (c.resource === "sessions") return canSee(who, c.row.user);
        if (c.resource !== "commands" || c.row.aggregateType !== "session") return true;
        const owner = (await getSession(deps, c.row.aggregateId))?.user;
        return owner !== undefined && canSee(who, owner);
      };
      const wanted = (c: Change) =>
        (resource === undefined || c.resource === resource) && (id === undefined || c.id === id);
      // Views are built one after another (a cluster's reads its ETA inputs), so the
      // changes go out in the order they were committed.
      let queue = Promise.resolve();
      const unsubscribe = deps.changes.subscribe((c) => {
        if (!wanted(c)) return;
        queue = queue
          .then(async () => {
            if (!(await inScope(c))) return;
            const data = await viewOf(c, deps);
            if (res.writableEnded) return;
            send(
              `id: ${c.sequence}\nevent: change\ndata: ${JSON.stringify({ resource: c.resource, id: c.id, sequence: c.sequence, data })}\n\n`,
            );
          })
          .catch((err: unknown) => {
            deps.logger.warn({ err: String(err) }, "live stream: could not build a change's view");
          });
      });
      const heartbeat = setInterval(() => send(": heartbeat\n\n"), deps.heartbeatMs ?? DEFAULT_HEARTBEAT_MS);
      res.on("close", () => {
        clearInterval(heartbeat);
        unsubscribe();
        open.delete(res);
      });
    },
  );
}
