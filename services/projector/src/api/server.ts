/**
 * The projector's HTTP API: read models, command intake, health, OpenAPI at /docs.
 * Fastify with zod validation (fastify-type-provider-zod); every error is JSON
 * `{ error, message, issues? }`.
 */
import { isIP } from "node:net";
import type { CommandBus, RunnerLogger } from "@cairn/events";
import fastifySwagger from "@fastify/swagger";
import fastifySwaggerUi from "@fastify/swagger-ui";
import Fastify, { type FastifyError, type FastifyInstance } from "fastify";
import {
  hasZodFastifySchemaValidationErrors,
  jsonSchemaTransform,
  jsonSchemaTransformObject,
  serializerCompiler,
  validatorCompiler,
} from "fastify-type-provider-zod";
import type { Db } from "../db/database.ts";
import { clusterRoutes } from "./clusters.ts";
import { commandRoutes } from "./commands.ts";
import { healthRoutes } from "./health.ts";

/** Placeholder for the API's authentication (it arrives later); its presence allows a public listen. */
export type ApiAuth = Readonly<Record<string, unknown>>;

export interface ApiOptions {
  readonly port: number;
  /** Default 127.0.0.1. Anything but loopback needs `auth`. */
  readonly host?: string;
  readonly auth?: ApiAuth;
  /** Jaeger UI base URL, e.g. http://localhost:16686: clusters then carry a `jaegerUrl`. */
  readonly jaegerUiUrl?: string;
}

export interface ApiDeps {
  readonly db: Db;
  readonly schema: string;
  readonly bus: CommandBus;
  readonly logger: RunnerLogger;
  readonly jaegerUiUrl?: string | undefined;
  /** Whether the projection consumer runs, and the checkpoint it reached. */
  readonly consumerStatus: () => {
    running: boolean;
    checkpoint?: number | undefined;
    lastError?: string | undefined;
  };
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
      404: "Not Found",
      405: "Method Not Allowed",
      415: "Unsupported Media Type",
      503: "Service Unavailable",
    }[code] ?? (code >= 500 ? "Internal Server Error" : "Error")
  );
}

export async function buildApi(deps: ApiDeps): Promise<FastifyInstance> {
  const app = Fastify({ logger: false });
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);

  app.setErrorHandler((err: FastifyError, req, reply) => {
    if (hasZodFastifySchemaValidationErrors(err)) {
      const where = err.validationContext ?? "request";
      const issues = err.validation.map((v) => {
        const path = v.instancePath.replace(/^\//, "").replaceAll("/", ".");
        return `${where}${path ? `.${path}` : ""}: ${v.message}`;
      });
      return reply.code(400).send({ error: "Bad Request", message: `invalid ${where}`, issues });
    }
    const code = err.statusCode && err.statusCode >= 400 ? err.statusCode : 500;
    if (code >= 500)
      deps.logger.error({ err: err.message, method: req.method, url: req.url }, "request failed");
    return reply
      .code(code)
      .send({ error: statusText(code), message: code >= 500 ? "internal error" : err.message });
  });
  app.setNotFoundHandler((req, reply) =>
    reply.code(404).send({ error: "Not Found", message: `no route ${req.method} ${req.url.split("?")[0]}` }),
  );

  await app.register(fastifySwagger, {
    openapi: {
      info: {
        title: "Cairn projector API",
        description: "Read models of the Cairn event log, and the command intake.",
        version: "0.1.0",
      },
    },
    transform: jsonSchemaTransform,
    transformObject: jsonSchemaTransformObject,
  });
  await app.register(fastifySwaggerUi, { routePrefix: "/docs" });

  healthRoutes(app, deps);
  clusterRoutes(app, deps);
  commandRoutes(app, deps);
  await app.ready();
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
  if (!isLoopback(host)) {
    deps.logger.warn({ host }, "projector API listens beyond loopback; authentication is not enforced yet");
  }
  const app = await buildApi(deps);
  await app.listen({ port: opts.port, host });
  const addr = app.server.address();
  const port = typeof addr === "object" && addr ? addr.port : opts.port;
  const urlHost = host.includes(":") ? `[${host}]` : host;
  return { app, url: `http://${urlHost}:${port}`, port, close: () => app.close() };
}
