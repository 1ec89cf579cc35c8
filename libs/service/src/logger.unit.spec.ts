import { trace } from "@opentelemetry/api";
import type { DestinationStream } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CENSOR, createLogger, LogKeys, scrubSecrets } from "./logger.ts";
import { startTelemetry, type Telemetry } from "./telemetry.ts";

let telemetry: Telemetry;
beforeAll(() => {
  telemetry = startTelemetry({ serviceName: "logger-test" });
});
afterAll(async () => {
  await telemetry.shutdown();
});

/** A logger writing into an array of parsed lines. */
function capture(level: "info" | "debug" = "info") {
  const raw: string[] = [];
  const destination: DestinationStream = { write: (s: string) => void raw.push(s) };
  const log = createLogger({ service: "svc-test", level, destination });
  const lines = () => raw.map((s) => JSON.parse(s) as Record<string, unknown>);
  return { log, raw, lines };
}

const K3S = "K10a1b2c3d4e5f60718293a4b5c6d7e8f9::server:5up3rs3cr3t";
const PEM = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----";

describe("createLogger", () => {
  it("writes service on every line, and the active span's trace_id/span_id", () => {
    const { log, lines } = capture();
    const tracer = trace.getTracer("test");
    let ids: { traceId: string; spanId: string } | undefined;
    tracer.startActiveSpan("work", (span) => {
      ids = span.spanContext();
      log.info("inside");
      span.end();
    });
    log.info("outside");

    const [inside, outside] = lines();
    expect(ids?.traceId).toMatch(/^[0-9a-f]{32}$/);
    expect(ids?.traceId).not.toBe("00000000000000000000000000000000");
    expect(inside?.[LogKeys.traceId]).toBe(ids?.traceId);
    expect(inside?.[LogKeys.spanId]).toBe(ids?.spanId);
    expect(inside?.[LogKeys.service]).toBe("svc-test");
    expect(inside?.level).toBe("info");
    expect(outside?.[LogKeys.service]).toBe("svc-test");
    expect(outside).not.toHaveProperty(LogKeys.traceId);
  });

  it("keeps the trace ids across an await inside the span", async () => {
    const { log, lines } = capture();
    const tracer = trace.getTracer("test");
    const traceId = await tracer.startActiveSpan("async-work", async (span) => {
      await new Promise((r) => setTimeout(r, 5));
      log.info("after await");
      span.end();
      return span.spanContext().traceId;
    });
    expect(lines()[0]?.[LogKeys.traceId]).toBe(traceId);
  });

  it("redacts secret keys at any depth", () => {
    const { log, raw, lines } = capture();
    log.info(
      {
        kubeconfig: "apiVersion: v1\nclusters: []",
        cluster: { auth: { joinToken: "jt-123", password: "pw-1" } },
        headers: { authorization: "abc" },
        a: { b: { c: { d: { e: { f: { g: { apiToken: "very-deep-token" } } } } } } },
        nested: { kubeconfig: { clusters: [{ name: "x" }] } },
      },
      "secrets",
    );
    const line = lines()[0] as Record<string, Record<string, Record<string, unknown>>>;
    expect(line.kubeconfig).toBe(CENSOR);
    expect(line.cluster?.auth?.joinToken).toBe(CENSOR);
    expect(line.cluster?.auth?.password).toBe(CENSOR);
    expect(line.headers?.authorization).toBe(CENSOR);
    expect(line.nested?.kubeconfig).toBe(CENSOR);
    const all = raw.join("");
    for (const secret of ["apiVersion", "jt-123", "pw-1", "very-deep-token", '"name":"x"']) {
      expect(all).not.toContain(secret);
    }
  });

  it("scrubs K3s tokens, bearer tokens and PEM blocks from messages, values and errors", () => {
    const { log, raw, lines } = capture();
    log.info(`joining with ${K3S} now`);
    log.info({ header: "Bearer abc", note: { cert: PEM } }, "request sent");
    log.error(new Error(`install failed for token ${K3S}`), "install failed");
    log.info({ cmd: `curl -H "Authorization: Bearer abc.def-ghi"` }, "curl");

    const all = raw.join("");
    expect(all).not.toContain("5up3rs3cr3t");
    expect(all).not.toContain("K10a1b2c3");
    expect(all).not.toContain("Bearer abc");
    expect(all).not.toContain("MIIEvQIBADANBgkqhkiG9w0BAQEFAASC");
    expect(all).not.toContain("abc.def-ghi");

    const [msgLine, valueLine, errLine, quoted] = lines() as Record<string, unknown>[];
    expect(msgLine?.msg).toBe(`joining with ${CENSOR} now`);
    expect(valueLine?.header).toBe(`Bearer ${CENSOR}`);
    expect(valueLine?.note).toEqual({ cert: CENSOR });
    expect(JSON.stringify(errLine?.err)).toContain(CENSOR);
    expect(quoted?.cmd).toBe(`curl -H "Authorization: Bearer ${CENSOR}"`);
  });

  it("respects the level", () => {
    const { log, raw } = capture("info");
    log.debug("hidden");
    log.info("shown");
    expect(raw).toHaveLength(1);
  });
});

describe("scrubSecrets", () => {
  it("leaves ordinary text alone and censors each secret shape", () => {
    expect(scrubSecrets("cluster demo-1 is ready")).toBe("cluster demo-1 is ready");
    expect(scrubSecrets(`token=${K3S}`)).toBe(`token=${CENSOR}`);
    expect(scrubSecrets("Authorization: Bearer eyJhbGciOi.J9x_y-z==")).toBe(
      `Authorization: Bearer ${CENSOR}`,
    );
    expect(scrubSecrets(`key:\n${PEM}\nend`)).toBe(`key:\n${CENSOR}\nend`);
  });
});
