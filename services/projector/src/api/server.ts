/**
 * The projector's HTTP API: read models, command intake, health, OpenAPI at /docs.
 * Fastify with zod validation (fastify-type-provider-zod); every error is JSON
 * `{ error, message, issues? }`.
 */
import { createHash } from "node:crypto";
import { createServer } from "node:http";
import { isIP } from "node:net";
import type { AnyEvent, CommandBus, EventStore, Nats, RunnerLogger } from "@cairn/events";
import { drainingClose } from "@cairn/service";
import fastifyRateLimit from "@fastify/rate-limit";
import fastifySwagger from "@fastify/swagger";
import fastifySwaggerUi from "@fastify/swagger-ui";
import Fastify, { type FastifyError, type FastifyInstance, type FastifyRequest } from "fastify";
import {
  hasZodFastifySchemaValidationErrors,
  jsonSchemaTransform,
  jsonSchemaTransformObject,
  validatorCompiler,
} from "fastify-type-provider-zod";
import type { ChangeFeed } from "../changes.ts";
import type { Db } from "../db/database.ts";
import {
  type Access,
  type ApiAuth,
  allows,
  authenticate,
  bearerToken,
  DEFAULT_RATE_LIMIT,
  type Principal,
  type RateLimit,
} from "./auth.ts";
import type { ClusterCache } from "./cluster-cache.ts";
import { clusterRoutes } from "./clusters.ts";
import { commandRoutes } from "./commands.ts";
import { dashboardRoutes } from "./dashboard.ts";
import { healthRoutes } from "./health.ts";
import { type FastPath, heartbeatFastPath } from "./heartbeat-fast-path.ts";
import { historyRoutes } from "./history.ts";
import { installAndNodeRoutes } from "./installs-nodes.ts";
import { checkAnswersByDefault, plainJsonSerializers } from "./plain-json.ts";
import { errorBody } from "./schemas.ts";
import { type SessionApiOptions, sessionRoutes } from "./sessions.ts";
import { streamRoutes } from "./stream.ts";
import { type ClusterApiOptions, typedCommandRoutes } from "./typed-commands.ts";
import { whoamiRoutes } from "./whoami.ts";

export type { ApiAuth } from "./auth.ts";

declare module "fastify" {
  interface FastifyContextConfig {
    /** Who may call the route; routes that do not say need `admin` (deny by default). */
    access?: Access;
  }
  interface FastifyRequest {
    /** The token's holder, when the API has auth and the request carried a known token. */
    principal?: Principal;
    /** Why the request has no principal although it sent an Authorization header. */
    authProblem?: string;
  }
}

/** Default request body limit: commands are small; anything bigger is a mistake or abuse. */
export const DEFAULT_BODY_LIMIT = 256 * 1024;

export interface ApiOptions {
  readonly port: number;
  /** Default 127.0.0.1. Anything but loopback needs `auth`. */
  readonly host?: string;
  /** Bearer tokens (`loadTokensFile`). Without it the API serves loopback only, unauthenticated. */
  readonly auth?: ApiAuth;
  /** Jaeger UI base URL, e.g. http://localhost:16686: resources then carry a `jaegerUrl`. */
  readonly jaegerUiUrl?: string;
  /**
   * Per token holder (per address for callers without a valid token); `false`: none.
   * Default: 600/min with `auth`, none without (loopback only, so every caller is this machine).
   */
  readonly rateLimit?: RateLimit | false;
  /** Largest request body in bytes; default 256 KiB. */
  readonly bodyLimit?: number;
  /** Interval of the live stream's heartbeat comments; default 15 s. */
  readonly heartbeatMs?: number;
  /** The sessions routes: how long `POST /sessions` waits for admission, the idle grace. */
  readonly sessions?: SessionApiOptions;
  /** The cluster routes: how long `DELETE /clusters/:id` waits for the provisioner's answer. */
  readonly clusters?: ClusterApiOptions;
}

export interface ApiDeps {
  readonly db: Db;
  readonly schema: string;
  readonly bus: CommandBus;
  /** The event log, for point-in-time views. */
  readonly store: EventStore<AnyEvent>;
  /** Read-model changes after each commit, for the live stream. */
  readonly changes: ChangeFeed;
  /** `GET /clusters/:id`'s inputs in memory (cluster-cache.ts); absent: every read asks Postgres. */
  readonly clusterCache?: ClusterCache | undefined;
  /** The projection's checkpoint row (its durable name), read with the live cluster view. Default `projector`. */
  readonly checkpointName?: string | undefined;
  readonly logger: RunnerLogger;
  readonly jaegerUiUrl?: string | undefined;
  readonly auth?: ApiAuth | undefined;
  readonly rateLimit?: RateLimit | false | undefined;
  readonly bodyLimit?: number | undefined;
  readonly heartbeatMs?: number | undefined;
  readonly sessions?: SessionApiOptions | undefined;
  readonly clusters?: ClusterApiOptions | undefined;
  /** NATS, for heartbeats: the heartbeat bucket, written and followed for last activity. */
  readonly nats?: Nats | undefined;
  /** Opens a connection of its own for the heartbeat bucket (`noEcho`); absent: `nats` is used. */
  readonly heartbeatNats?: (() => Promise<Nats>) | undefined;
  /**
   * Whether the projection consumer runs, and the checkpoint it reached; `standby`: this
   * replica does not project (another holds the lease) and serves reads.
   */
  /**
   * Whether answers a route sends as plain JSON are also encoded through zod and compared
   * (plain-json.ts); default: under test or with `CAIRN_API_CHECK_ANSWERS=1`.
   */
  readonly checkAnswers?: boolean | undefined;
  readonly consumerStatus: () => {
    running: boolean;
    standby?: boolean | undefined;
    checkpoint?: number | undefined;
    lastError?: string | undefined;
  };
}

/** `<jaegerUiUrl>/trace/<traceId>`, when both are known. */
export function jaegerLink(jaegerUiUrl: string | undefined, traceId: string | null | undefined) {
  return jaegerUiUrl && traceId ? `${jaegerUiUrl.replace(/\/+$/, "")}/trace/${traceId}` : undefined;
}

export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, "").toLowerCase();
  if (h === "localhost" || h === "::1") return true;
  if (isIP(h) === 4) return h.startsWith("127.");
  if (h.startsWith("::ffff:")) return h.slice(7).startsWith("127.");
  return false;
}

/** @throws Error when asked to listen beyond loopback without authentication. */
export function assertListenAllowed(opts: Pick<ApiOptions, "host" | "auth">): void {
  const host = opts.host ?? "127.0.0.1";
  if (!isLoopback(host) && opts.auth === undefined) {
    throw new Error(
      `refusing to serve the projector API on ${host}: a non-loopback host needs the \`auth\` option (listen on 127.0.0.1, or configure auth)`,
    );
  }
}

function statusText(code: number): string {
  return (
    {
      400: "Bad Request",
      401: "Unauthorized",
      403: "Forbidden",
      404: "Not Found",
      405: "Method Not Allowed",
      413: "Content Too Large",
      415: "Unsupported Media Type",
      429: "Too Many Requests",
      503: "Service Unavailable",
    }[code] ?? (code >= 500 ? "Internal Server Error" : "Error")
  );
}

/** What a request needs: its route's `access`; unknown routes need any token; the docs are open. */
function accessOf(req: FastifyRequest): Access {
  if (req.is404) return "viewer";
  const url = req.routeOptions.url ?? "";
  // The OpenAPI document and its UI describe the API and hold no data; a browser loads
  // the UI's assets without a token. (The dashboard's files say so in their routes' config.)
  if (url === "/docs" || url.startsWith("/docs/")) return "public";
  return req.routeOptions.config.access ?? "admin";
}

/** A weak ETag of a response body: equal bodies, equal tags, whatever produced them. */
function etagOf(body: string): string {
  return `W/"${createHash("sha256").update(body).digest("base64url").slice(0, 27)}"`;
}

function matchesEtag(ifNoneMatch: string | undefined, etag: string): boolean {
  if (!ifNoneMatch) return false;
  const bare = (t: string) => t.trim().replace(/^W\//, "");
  return ifNoneMatch.split(",").some((t) => t.trim() === "*" || bare(t) === bare(etag));
}

/**
 * OpenAPI 3.0 has no `null` type: a nullable enum is `{ enum: [...], nullable: true }`,
 * and since 3.0.3 its `enum` must list `null` too, or validators refuse the null the
 * API sends (`z.enum(…).nullable()` is written without it by the converter). Adds it.
 */
function nullableEnumsAllowNull<T>(doc: T): T {
  const visit = (v: unknown): void => {
    if (Array.isArray(v)) for (const x of v) visit(x);
    else if (v !== null && typeof v === "object") {
      const o = v as Record<string, unknown>;
      if (o.nullable === true && Array.isArray(o.enum) && !o.enum.includes(null)) o.enum = [...o.enum, null];
      for (const x of Object.values(o)) visit(x);
    }
  };
  visit(doc);
  return doc;
}

export async function buildApi(deps: ApiDeps): Promise<FastifyInstance> {
  const bodyLimit = deps.bodyLimit ?? DEFAULT_BODY_LIMIT;
  // The heartbeat's fast path (heartbeat-fast-path.ts) sees each request first, once the
  // routes are ready; whatever it does not take is fastify's, as it came.
  let fast: FastPath | undefined;
  const app = Fastify({
    logger: false,
    bodyLimit,
    serverFactory: (handler, options) => {
      const opts = options as {
        keepAliveTimeout?: number;
        requestTimeout?: number;
        connectionTimeout?: number;
      };
      const server = createServer((req, res) => {
        if (fast?.(req, res)) return;
        handler(req, res);
      });
      // What fastify sets on a server it makes itself.
      if (opts.keepAliveTimeout !== undefined) server.keepAliveTimeout = opts.keepAliveTimeout;
      if (opts.requestTimeout !== undefined) server.requestTimeout = opts.requestTimeout;
      server.setTimeout(opts.connectionTimeout ?? 0);
      return server;
    },
  });
  app.setValidatorCompiler(validatorCompiler);
  // zod's serializer for every answer but those a route sends plain (plain-json.ts).
  const plain = plainJsonSerializers({ check: deps.checkAnswers ?? checkAnswersByDefault() });
  app.setSerializerCompiler(plain.compiler);
  app.addHook("onRoute", (route) => plain.register(route));

  app.setErrorHandler((err: FastifyError, req, reply) => {
    if (hasZodFastifySchemaValidationErrors(err)) {
      const where = err.validationContext ?? "request";
      const issues = err.validation.map((v) => {
        const path = v.instancePath.replace(/^\//, "").replaceAll("/", ".");
        return `${where}${path ? `.${path}` : ""}: ${v.message}`;
      });
      return reply.code(400).send({ error: "Bad Request", message: `invalid ${where}`, issues });
    }
    if (err.code === "FST_ERR_CTP_BODY_TOO_LARGE") {
      return reply.code(413).send({
        error: statusText(413),
        message: `request body is larger than the limit of ${bodyLimit} bytes`,
      });
    }
    const code = err.statusCode && err.statusCode >= 400 ? err.statusCode : 500;
    if (code >= 500)
      deps.logger.error({ err: err.message, method: req.method, url: req.url }, "request failed");
    return reply
      .code(code)
      .send({ error: statusText(code), message: code >= 500 ? "internal error" : err.message });
  });
  // Postgres text holds no NUL: an id or a filter with one names nothing, and put in a query
  // it failed the query (500; found by test/fuzz). Refused first, whoever asks.
  app.addHook("onRequest", async (req, reply) => {
    if (req.url.includes("%00"))
      return reply.code(400).send({
        error: statusText(400),
        message: "the path or query string holds a NUL character (%00), which no id or filter can",
      });
  });
  app.setNotFoundHandler((req, reply) =>
    reply.code(404).send({ error: "Not Found", message: `no route ${req.method} ${req.url.split("?")[0]}` }),
  );

  // Authentication, in two steps around the rate limit: identify the caller first (so the
  // limit counts per token holder), then refuse before the body is even parsed.
  // (Hooks on every request take fastify's callback form: no promise per request and hook.
  // One that answers early sends and does not call `done`.)
  const auth = deps.auth;
  if (auth) {
    app.addHook("onRequest", (req, _reply, done) => {
      const header = req.headers.authorization;
      if (header !== undefined) {
        const token = bearerToken(header);
        const who = token !== undefined ? authenticate(auth, token) : undefined;
        if (who) req.principal = who;
        else
          req.authProblem =
            token === undefined ? "the Authorization header is not `Bearer <token>`" : "unknown token";
      }
      done();
    });
    app.addHook("preParsing", (req, reply, payload, done) => {
      const access = accessOf(req);
      if (access === "public") return done(null, payload);
      const who = req.principal;
      if (!who) {
        const invalid = req.authProblem !== undefined;
        reply.header(
          "www-authenticate",
          invalid ? 'Bearer realm="cairn", error="invalid_token"' : 'Bearer realm="cairn"',
        );
        void reply.code(401).send({
          error: statusText(401),
          message: invalid
            ? `${req.authProblem}: send a token from the API's tokens file as \`Authorization: Bearer <token>\``
            : "this API needs a token: send `Authorization: Bearer <token>` (`cairn token create` makes one)",
        });
        return;
      }
      if (!allows(who.role, access)) {
        void reply.code(403).send({
          error: statusText(403),
          message: `${req.method} ${req.routeOptions.url ?? req.url} needs the ${access} role (or higher); ${who.user} is ${who.role}`,
        });
        return;
      }
      done(null, payload);
    });
  }

  // Without tokens every caller is this machine (loopback only) and would share one
  // address's budget: no limit unless asked for. With tokens, each holder has its own.
  const rateLimit = deps.rateLimit ?? (auth ? DEFAULT_RATE_LIMIT : false);
  if (rateLimit) {
    await app.register(fastifyRateLimit, {
      max: rateLimit.max,
      timeWindow: rateLimit.timeWindowMs,
      // One budget per token holder; callers without a (valid) token share their address's.
      keyGenerator: (req) => (req.principal ? `user:${req.principal.user}` : `ip:${req.ip}`),
      errorResponseBuilder: (_req, ctx) => ({
        statusCode: 429,
        error: statusText(429),
        message: `rate limit exceeded: at most ${ctx.max} requests per ${ctx.after}; retry in ${Math.ceil(ctx.ttl / 1000)} s`,
      }),
    });
  }

  // ETags on every JSON answer to a GET: a client that sends the tag back gets 304 while
  // the answer would be the same. Derived from the body, so it can never go stale.
  app.addHook("onSend", (req, reply, payload, done) => {
    if (req.method !== "GET" || reply.statusCode !== 200 || typeof payload !== "string")
      return done(null, payload);
    if (!String(reply.getHeader("content-type") ?? "").startsWith("application/json"))
      return done(null, payload);
    const etag = etagOf(payload);
    reply.header("etag", etag);
    if (matchesEtag(req.headers["if-none-match"], etag)) {
      reply.code(304);
      reply.removeHeader("content-type");
      reply.removeHeader("content-length");
      return done(null, "");
    }
    done(null, payload);
  });

  // Every route documents the refusals the hooks above may answer with.
  app.addHook("onRoute", (route) => {
    const access = route.config?.access ?? "admin";
    const schema = route.schema;
    if (!schema?.response || typeof schema.response !== "object") return;
    // Open routes say so in the document (the default security is the bearer token).
    if (access === "public") (schema as { security?: unknown[] }).security = [];
    const response = schema.response as Record<string, unknown>;
    if (rateLimit) response["429"] ??= errorBody;
    if (route.method === "POST" || (Array.isArray(route.method) && route.method.includes("POST")))
      response["413"] ??= errorBody;
    if (auth && access !== "public") {
      response["401"] ??= errorBody;
      response["403"] ??= errorBody;
    }
  });

  await app.register(fastifySwagger, {
    openapi: {
      info: {
        title: "Cairn projector API",
        description:
          "Read models of the Cairn event log, and the command intake. With a tokens file, every route but /healthz, /readyz, /docs and the dashboard's files (`/`) needs `Authorization: Bearer <token>`.",
        version: "0.2.0",
      },
      components: { securitySchemes: { bearer: { type: "http", scheme: "bearer" } } },
      security: deps.auth ? [{ bearer: [] }] : [],
    },
    transform: jsonSchemaTransform,
    transformObject: (doc) => nullableEnumsAllowNull(jsonSchemaTransformObject(doc)),
  });
  await app.register(fastifySwaggerUi, { routePrefix: "/docs" });

  healthRoutes(app, deps);
  clusterRoutes(app, deps);
  historyRoutes(app, deps);
  installAndNodeRoutes(app, deps);
  commandRoutes(app, deps);
  typedCommandRoutes(app, deps);
  const { heartbeat } = await sessionRoutes(app, deps);
  streamRoutes(app, deps);
  whoamiRoutes(app, deps);
  await dashboardRoutes(app);
  await app.ready();
  // With a rate limit the heartbeats go through fastify, where its plugin counts them.
  if (!rateLimit) fast = heartbeatFastPath({ auth, heartbeat, app });
  return app;
}

export interface RunningApi {
  readonly app: FastifyInstance;
  readonly url: string;
  readonly port: number;
  close(): Promise<void>;
}

export async function startApi(opts: ApiOptions, deps: ApiDeps): Promise<RunningApi> {
  assertListenAllowed(opts);
  const host = opts.host ?? "127.0.0.1";
  const app = await buildApi({
    ...deps,
    auth: opts.auth,
    rateLimit: opts.rateLimit,
    bodyLimit: opts.bodyLimit,
    heartbeatMs: opts.heartbeatMs,
    sessions: opts.sessions,
    clusters: opts.clusters,
    jaegerUiUrl: opts.jaegerUiUrl ?? deps.jaegerUiUrl,
  });
  const close = drainingClose(app, {
    onForced: (connections) =>
      deps.logger.warn({ connections }, "API stopping: ended connections still open after the drain"),
  });
  await app.listen({ port: opts.port, host });
  const addr = app.server.address();
  const port = typeof addr === "object" && addr ? addr.port : opts.port;
  const urlHost = host.includes(":") ? `[${host}]` : host;
  deps.logger.info(
    { host, port, auth: deps.auth ? `${deps.auth.tokens.length} tokens` : "none (loopback only)" },
    "projector API listening",
  );
  return { app, url: `http://${urlHost}:${port}`, port, close };
}
