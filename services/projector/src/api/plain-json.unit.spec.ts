import Fastify from "fastify";
import { validatorCompiler, type ZodTypeProvider } from "fastify-type-provider-zod";
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { checkAnswersByDefault, plainJsonSerializers } from "./plain-json.ts";

const answer = z.object({ a: z.number(), b: z.string() });

/** One route sending `body` for 200, plain or not, with or without the check. */
async function appWith(opts: { check: boolean; plain: boolean }, body: unknown) {
  const app = Fastify({ logger: false });
  const plain = plainJsonSerializers({ check: opts.check });
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(plain.compiler);
  app.addHook("onRoute", (route) => plain.register(route));
  app.setErrorHandler((err: Error, _req, reply) =>
    reply.code(500).send({ error: err.name, message: err.message }),
  );
  app
    .withTypeProvider<ZodTypeProvider>()
    .get(
      "/x",
      { config: opts.plain ? { plainJson: [200] } : {}, schema: { response: { 200: answer } } },
      async () => body as z.infer<typeof answer>,
    );
  await app.ready();
  return app;
}

describe("plain JSON answers", () => {
  it("are JSON.stringify's text, not zod's encoding (unknown keys kept, the route's key order)", async () => {
    const app = await appWith({ check: false, plain: true }, { b: "x", a: 1, extra: true });
    expect((await app.inject("/x")).body).toBe('{"b":"x","a":1,"extra":true}');
    await app.close();
  });

  it("a route that does not ask goes through zod as before", async () => {
    const app = await appWith({ check: false, plain: false }, { b: "x", a: 1, extra: true });
    expect((await app.inject("/x")).body).toBe('{"a":1,"b":"x"}');
    await app.close();
  });

  it("checked: the same text as zod's passes; another key order, an unknown key or an invalid answer is a 500", async () => {
    const good = await appWith({ check: true, plain: true }, { a: 1, b: "x" });
    const ok = await good.inject("/x");
    expect([ok.statusCode, ok.body]).toEqual([200, '{"a":1,"b":"x"}']);
    await good.close();
    for (const body of [
      { b: "x", a: 1 },
      { a: 1, b: "x", extra: true },
      { a: "1", b: "x" },
    ]) {
      const app = await appWith({ check: true, plain: true }, body);
      const r = await app.inject("/x");
      expect(r.statusCode).toBe(500);
      await app.close();
    }
    const mismatch = await appWith({ check: true, plain: true }, { b: "x", a: 1 });
    expect((await mismatch.inject("/x")).json()).toMatchObject({
      error: "PlainAnswerMismatchError",
      message: expect.stringContaining("differs from its schema's encoding at character 2"),
    });
    await mismatch.close();
  });

  it("checked under vitest and with CAIRN_API_CHECK_ANSWERS=1, not otherwise", () => {
    expect(checkAnswersByDefault({})).toBe(false);
    expect(checkAnswersByDefault({ CAIRN_API_CHECK_ANSWERS: "1" })).toBe(true);
    expect(checkAnswersByDefault({ VITEST: "true" })).toBe(true);
    expect(checkAnswersByDefault({ VITEST: "true", CAIRN_API_CHECK_ANSWERS: "0" })).toBe(false);
    expect(checkAnswersByDefault()).toBe(true);
  });
});
