/**
 * Answers sent as `JSON.stringify` makes them, not re-encoded through their zod schema.
 *
 * fastify-type-provider-zod's serializer runs `safeEncode(schema, answer)` on every answer
 * before `JSON.stringify`: it validates the answer, drops keys the schema does not know and
 * writes the keys in the schema's order. For a hot read (`GET /clusters/:id`) that walk is
 * most of fastify's share of the request's CPU (docs/projector.md "API"). A route whose
 * answer is built field by field in the schema's order (`toClusterView`) gains nothing from
 * it, so it may ask for the plain stringify with `config: { plainJson: [200] }`.
 *
 * The contract does not move: under test (vitest sets `VITEST`) or with
 * `CAIRN_API_CHECK_ANSWERS=1`, every plain answer is also encoded through zod and the two
 * texts must be identical, byte for byte, or the request fails with 500 — so each test that
 * reads such a route checks that the plain answer is the one zod would have sent.
 */
import type { FastifySchemaCompiler, FastifySerializerCompiler } from "fastify";
import { serializerCompiler } from "fastify-type-provider-zod";

declare module "fastify" {
  interface FastifyContextConfig {
    /** Statuses whose answer is sent with a plain `JSON.stringify` (plain-json.ts). */
    plainJson?: readonly number[];
  }
}

/** Whether plain answers are checked against zod's encoding (tests; `CAIRN_API_CHECK_ANSWERS=1`). */
export function checkAnswersByDefault(env: NodeJS.ProcessEnv = process.env): boolean {
  return (
    env.CAIRN_API_CHECK_ANSWERS === "1" || (env.VITEST !== undefined && env.CAIRN_API_CHECK_ANSWERS !== "0")
  );
}

/** An answer that was not what the route's schema would have sent. */
export class PlainAnswerMismatchError extends Error {
  override readonly name = "PlainAnswerMismatchError";
  readonly statusCode = 500;
  constructor(route: string, plain: string, encoded: string) {
    const at = [...plain].findIndex((c, i) => c !== encoded[i]);
    super(
      `${route}: the plain JSON answer differs from its schema's encoding at character ${at}: ` +
        `${JSON.stringify(plain.slice(Math.max(0, at - 40), at + 40))} vs ${JSON.stringify(encoded.slice(Math.max(0, at - 40), at + 40))}`,
    );
  }
}

/**
 * Collects the routes that ask for plain answers (call `register` from an `onRoute` hook,
 * before the app is ready) and compiles their serializers; every other answer goes through
 * fastify-type-provider-zod's serializer as before.
 */
export function plainJsonSerializers(opts: { check: boolean }) {
  const plain = new Set<string>();
  const key = (method: string, url: string, status: string | number) => `${method} ${url} ${status}`;
  const compiler: FastifySerializerCompiler<unknown> = (route) => {
    const zod = (serializerCompiler as FastifySchemaCompiler<unknown> as FastifySerializerCompiler<unknown>)(
      route,
    );
    if (!plain.has(key(route.method, route.url, route.httpStatus ?? ""))) return zod;
    if (!opts.check) return (data) => JSON.stringify(data);
    return (data) => {
      const text = JSON.stringify(data);
      const encoded = zod(data);
      if (text !== encoded) throw new PlainAnswerMismatchError(`${route.method} ${route.url}`, text, encoded);
      return text;
    };
  };
  return {
    compiler,
    register(route: { method: string | string[]; url: string; config?: { plainJson?: readonly number[] } }) {
      const statuses = route.config?.plainJson;
      if (!statuses) return;
      for (const method of [route.method].flat())
        for (const status of statuses) plain.add(key(method, route.url, String(status)));
    },
  };
}
