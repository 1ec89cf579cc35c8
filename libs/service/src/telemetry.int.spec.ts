import { createServer, type IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";
import { trace } from "@opentelemetry/api";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTelemetry } from "./telemetry.ts";

// A stand-in OTLP/HTTP collector on loopback: records what the exporter posts.
const received: { url: string; body: Buffer }[] = [];
const collector = createServer((req: IncomingMessage, res) => {
  const chunks: Buffer[] = [];
  req.on("data", (c: Buffer) => chunks.push(c));
  req.on("end", () => {
    received.push({ url: req.url ?? "", body: Buffer.concat(chunks) });
    res.writeHead(200, { "content-type": req.headers["content-type"] ?? "application/json" }).end("{}");
  });
});
let endpoint: string;

beforeAll(async () => {
  await new Promise<void>((r) => collector.listen(0, "127.0.0.1", r));
  endpoint = `http://127.0.0.1:${(collector.address() as AddressInfo).port}`;
});
afterAll(async () => {
  await new Promise((r) => collector.close(r));
});

describe("startTelemetry with an OTLP endpoint", () => {
  it("exports spans to <endpoint>/v1/traces and flushes them on shutdown", async () => {
    const t = startTelemetry({ serviceName: "exported-svc", otlpEndpoint: endpoint });
    trace.getTracer("t").startActiveSpan("exported-span", (span) => span.end());
    await t.shutdown();
    expect(received.map((r) => r.url)).toContain("/v1/traces");
    const body = Buffer.concat(received.map((r) => r.body)).toString("latin1");
    expect(body).toContain("exported-span");
    expect(body).toContain("exported-svc");
  });
});
