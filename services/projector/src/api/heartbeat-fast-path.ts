/**
 * `POST /sessions/:id/heartbeat` served before the framework: heartbeats are the one
 * high-rate route (every client, every few seconds), and per heartbeat fastify's request
 * cycle — routing, hooks, the content-type parser, zod on the params and the body, the
 * async handler, the zod serializer, the reply's hooks — cost as much CPU as the heartbeat
 * itself (bench/sessions, docs/sessions.md). The route stays registered in fastify (the
 * OpenAPI document, and every request this path does not take).
 *
 * It takes only the plain case, decided from the request line and headers before a byte
 * of the body is read: POST, the path exactly `/sessions/<id>/heartbeat` with an id of
 * letters, digits and `. _ ~ -` (nothing to decode), no query, `Content-Type:
 * application/json`, a `Content-Length` under 1 KiB, no rate limit configured (fastify's
 * plugin counts requests), and — when the API has tokens — a known bearer token (every
 * role may send a heartbeat; the route needs `viewer`). Anything else goes to fastify
 * untouched: a missing or unknown token gets its 401 there, a big body its 413.
 * A body that is not exactly `{ "connections": <integer ≥ 0> }` (bad JSON, a wrong type,
 * extra keys, a `__proto__`) is replayed through fastify (`inject`, the same headers and
 * bytes), so that its 400 is the framework's own, word for word.
 *
 * The answer is the route's own (the shared `Heartbeat` of sessions.ts): the same statuses,
 * bodies and content type; tenant scope, 404/409, zero connections and the write behind
 * all decided there.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Socket } from "node:net";
import type { FastifyInstance } from "fastify";
import { type ApiAuth, authenticate, bearerToken, type Principal } from "./auth.ts";
import type { Heartbeat, HeartbeatAnswer } from "./sessions.ts";

/** Handles the request and returns true, or returns false (untouched) for fastify to serve. */
export type FastPath = (req: IncomingMessage, res: ServerResponse) => boolean;

const PATH = /^\/sessions\/([A-Za-z0-9._~-]{1,256})\/heartbeat$/;
/** A heartbeat's body is ~20 bytes; anything near this is not one the fast path needs. */
const MAX_BODY = 1_024;
const JSON_TYPE = "application/json; charset=utf-8";

function send(res: ServerResponse, answer: HeartbeatAnswer): void {
  const body = JSON.stringify(answer.body);
  res.writeHead(answer.status, { "content-type": JSON_TYPE, "content-length": Buffer.byteLength(body) });
  res.end(body);
}

/** `connections` of a body that is exactly `{ "connections": <safe integer ≥ 0> }`, else undefined. */
function connectionsOf(raw: string): number | undefined {
  let v: unknown;
  try {
    v = JSON.parse(raw);
  } catch {
    return undefined;
  }
  if (typeof v !== "object" || v === null || Array.isArray(v)) return undefined;
  const keys = Object.keys(v);
  if (keys.length !== 1 || keys[0] !== "connections") return undefined;
  const n = (v as { connections: unknown }).connections;
  return typeof n === "number" && Number.isSafeInteger(n) && n >= 0 ? n : undefined;
}

/**
 * The fast path over `heartbeat`; `app` replays what it does not take after reading the body.
 * @example
 * const fast = heartbeatFastPath({ auth, heartbeat, app });
 * http.createServer((req, res) => fast(req, res) || fastifyHandler(req, res));
 */
export function heartbeatFastPath(o: {
  auth: ApiAuth | undefined;
  heartbeat: Heartbeat;
  app: FastifyInstance;
}): FastPath {
  const { auth, heartbeat, app } = o;
  /**
   * The token a keep-alive connection last presented and whom it named: a client beats
   * over one connection, and its token is hashed once for it, not per heartbeat. Compared
   * only with what the same connection sent before (which its sender holds already), so the
   * constant-time check against the tokens file (auth.ts) leaks nothing more.
   */
  const known = new WeakMap<Socket, { readonly header: string; readonly who: Principal }>();
  /** Hands a read request to fastify as it came (a 400 worded by the framework). */
  const replay = (req: IncomingMessage, res: ServerResponse, raw: string) => {
    app.inject({ method: "POST", url: req.url ?? "/", headers: req.headers, payload: raw }).then(
      (r) => {
        const headers = { ...r.headers };
        // This connection's own framing, not the injected one's.
        delete headers.connection;
        delete headers["keep-alive"];
        delete headers["transfer-encoding"];
        res.writeHead(r.statusCode, headers);
        res.end(r.rawPayload);
      },
      () => {
        res.writeHead(500, { "content-type": JSON_TYPE });
        res.end(JSON.stringify({ error: "Internal Server Error", message: "internal error" }));
      },
    );
  };

  return (req, res) => {
    // 1. The plain case, from the request line and headers only.
    if (req.method !== "POST") return false;
    const m = PATH.exec(req.url ?? "");
    if (!m) return false;
    const type = req.headers["content-type"];
    if (type !== "application/json" && !type?.startsWith("application/json;")) return false;
    const length = Number(req.headers["content-length"]);
    if (!(length > 0 && length <= MAX_BODY) || req.headers["transfer-encoding"] !== undefined) return false;
    let who: Principal | undefined;
    if (auth) {
      const header = req.headers.authorization;
      if (header === undefined) return false;
      const last = known.get(req.socket);
      if (last?.header === header) who = last.who;
      else {
        const token = bearerToken(header);
        who = token !== undefined ? authenticate(auth, token) : undefined;
        if (!who) return false;
        known.set(req.socket, { header, who });
      }
    }
    const id = m[1]!;

    // 2. The body, then the heartbeat itself.
    let raw = "";
    req.setEncoding("utf8");
    req.on("data", (chunk: string) => {
      raw += chunk;
    });
    req.on("error", () => {
      // The client went away: nothing to answer.
    });
    req.on("end", () => {
      const connections = connectionsOf(raw);
      if (connections === undefined) return replay(req, res, raw);
      const answer = heartbeat(who, id, connections);
      if (answer instanceof Promise)
        answer.then(
          (a) => send(res, a),
          () => send(res, { status: 503, body: { error: "Service Unavailable", message: "retry" } }),
        );
      else send(res, answer);
    });
    return true;
  };
}
