/**
 * An OTLP/HTTP trace receiver for the suites: what a collector (or Jaeger's OTLP port) gets
 * from the services, decoded. It accepts `POST /v1/traces` in OTLP/JSON (what
 * @opentelemetry/exporter-trace-otlp-http sends: `Content-Type: application/json`, ids in hex)
 * and keeps every span with its service, attributes, parent and links. Anything else is
 * answered 415 and recorded as a problem, so a suite sees it rather than silently losing spans.
 */
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";

export interface ReceivedSpan {
  readonly service: string;
  readonly traceId: string;
  readonly spanId: string;
  readonly parentSpanId: string | undefined;
  readonly name: string;
  /** OTLP's SpanKind number: 1 internal, 2 server, 3 client, 4 producer, 5 consumer. */
  readonly kind: number;
  readonly attributes: Readonly<Record<string, string | number | boolean>>;
  readonly links: readonly { traceId: string; spanId: string }[];
  /** 0 unset, 1 ok, 2 error. */
  readonly status: number;
  readonly startNs: bigint;
  readonly endNs: bigint;
}

export const SpanKindNumber = { internal: 1, server: 2, client: 3, producer: 4, consumer: 5 } as const;

export interface OtlpReceiver {
  /** The base URL to give as OTEL_EXPORTER_OTLP_ENDPOINT. */
  readonly endpoint: string;
  /** Every span received so far, in arrival order. */
  spans(): readonly ReceivedSpan[];
  /** Requests that could not be decoded (content type, body), as sentences. */
  problems(): readonly string[];
  close(): Promise<void>;
}

type AnyValue = {
  stringValue?: string;
  boolValue?: boolean;
  intValue?: string | number;
  doubleValue?: number;
  arrayValue?: { values?: AnyValue[] };
};
type KeyValue = { key: string; value?: AnyValue };
type OtlpSpan = {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind?: number;
  startTimeUnixNano?: string | number;
  endTimeUnixNano?: string | number;
  attributes?: KeyValue[];
  links?: { traceId: string; spanId: string }[];
  status?: { code?: number };
};
type Request = {
  resourceSpans?: { resource?: { attributes?: KeyValue[] }; scopeSpans?: { spans?: OtlpSpan[] }[] }[];
};

/** OTLP/JSON ids are hex; a base64 id (the protobuf JSON mapping) is turned into hex. */
function hexId(id: string | undefined, bytes: number): string | undefined {
  if (!id) return undefined;
  if (new RegExp(`^[0-9a-f]{${bytes * 2}}$`, "i").test(id)) return id.toLowerCase();
  const b = Buffer.from(id, "base64");
  return b.length === bytes ? b.toString("hex") : id;
}

function anyValue(v: AnyValue | undefined): string | number | boolean {
  if (!v) return "";
  if (v.stringValue !== undefined) return v.stringValue;
  if (v.boolValue !== undefined) return v.boolValue;
  if (v.intValue !== undefined) return Number(v.intValue);
  if (v.doubleValue !== undefined) return v.doubleValue;
  if (v.arrayValue) return (v.arrayValue.values ?? []).map(anyValue).join(",");
  return "";
}

function attributesOf(kvs: KeyValue[] | undefined): Record<string, string | number | boolean> {
  return Object.fromEntries((kvs ?? []).map((kv) => [kv.key, anyValue(kv.value)]));
}

/** Decodes one OTLP/JSON export request into spans. @throws on a body that is not one. */
export function decodeOtlpJson(body: string): ReceivedSpan[] {
  const req = JSON.parse(body) as Request;
  if (!Array.isArray(req.resourceSpans)) throw new Error("no resourceSpans");
  const out: ReceivedSpan[] = [];
  for (const rs of req.resourceSpans) {
    const service = String(attributesOf(rs.resource?.attributes)["service.name"] ?? "");
    for (const ss of rs.scopeSpans ?? [])
      for (const s of ss.spans ?? []) {
        out.push({
          service,
          traceId: hexId(s.traceId, 16) ?? "",
          spanId: hexId(s.spanId, 8) ?? "",
          parentSpanId: hexId(s.parentSpanId, 8),
          name: s.name,
          kind: s.kind ?? 0,
          attributes: attributesOf(s.attributes),
          links: (s.links ?? []).map((l) => ({
            traceId: hexId(l.traceId, 16) ?? "",
            spanId: hexId(l.spanId, 8) ?? "",
          })),
          status: s.status?.code ?? 0,
          startNs: BigInt(s.startTimeUnixNano ?? 0),
          endNs: BigInt(s.endTimeUnixNano ?? 0),
        });
      }
  }
  return out;
}

/** Starts the receiver on a free loopback port. */
export async function startOtlpReceiver(): Promise<OtlpReceiver> {
  const spans: ReceivedSpan[] = [];
  const problems: string[] = [];
  const server: Server = createServer((req: IncomingMessage, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const type = req.headers["content-type"] ?? "";
      if (req.method !== "POST" || req.url !== "/v1/traces" || !type.startsWith("application/json")) {
        problems.push(`${req.method} ${req.url} (${type}): not OTLP/JSON traces`);
        res.writeHead(415, { "content-type": "application/json" }).end("{}");
        return;
      }
      try {
        spans.push(...decodeOtlpJson(Buffer.concat(chunks).toString("utf8")));
        // An ExportTraceServiceResponse with nothing rejected.
        res.writeHead(200, { "content-type": "application/json" }).end("{}");
      } catch (err) {
        problems.push(`an undecodable export: ${(err as Error).message}`);
        res.writeHead(400, { "content-type": "application/json" }).end("{}");
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    spans: () => spans,
    problems: () => problems,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
