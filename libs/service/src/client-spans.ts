/**
 * Client spans for every call Cairn makes to an outside system, following the OpenTelemetry
 * semantic conventions: AWS SDK calls (`rpc.system = aws-api`, span name `Service.Operation`,
 * e.g. `EC2.RunInstances`) and HTTP calls (`http.request.method`, `url.full`, `server.address`,
 * `http.response.status_code`, span name `GET /api/v1/nodes/{name}`).
 *
 * A client span is a child of the span active where the call is made (the reaction's or the
 * command's: the context manager is AsyncLocalStorage, so it follows every await), and it
 * carries the work attributes of that context (`cairn.aggregate.id`, `cairn.command.id`, …;
 * see `inWork` in @cairn/events), so an EC2 call three functions below a reactor says which
 * cluster and which command it was for, without the adapter being told.
 */
import { workAttributes } from "@cairn/events";
import { type Attributes, context, type Span, SpanKind, SpanStatusCode, trace } from "@opentelemetry/api";
import type {
  HandlerExecutionContext,
  InitializeHandlerOutput,
  InitializeMiddleware,
  MetadataBearer,
  MiddlewareStack,
} from "@smithy/types";

/** Attribute keys of client spans (OpenTelemetry semantic conventions), shared by adapters and tests. */
export const ClientSpanAttributes = {
  rpcSystem: "rpc.system",
  rpcService: "rpc.service",
  rpcMethod: "rpc.method",
  awsRequestId: "aws.request_id",
  cloudRegion: "cloud.region",
  httpMethod: "http.request.method",
  httpStatus: "http.response.status_code",
  urlFull: "url.full",
  urlTemplate: "url.template",
  serverAddress: "server.address",
  serverPort: "server.port",
  errorType: "error.type",
} as const;

/** `rpc.system` of an AWS SDK call. */
export const AWS_API = "aws-api";

function tracer() {
  return trace.getTracer("cairn.clients");
}

/**
 * Runs `call` in a CLIENT span named `name`, a child of the active span, with `attributes`
 * and the context's work attributes; records an exception and an error status if it throws
 * (and rethrows). `describe` may add attributes from the result or the error (a request id,
 * a status code) before the span ends.
 * @example await inClientSpan("EC2.RunInstances", { "rpc.system": "aws-api" }, () => client.send(cmd));
 */
export async function inClientSpan<T>(
  name: string,
  attributes: Attributes,
  call: (span: Span) => Promise<T>,
  describe?: (outcome: { ok: true; value: T } | { ok: false; error: unknown }) => Attributes,
): Promise<T> {
  const parent = context.active();
  const span = tracer().startSpan(
    name,
    { kind: SpanKind.CLIENT, attributes: { ...workAttributes(parent), ...attributes } },
    parent,
  );
  try {
    const value = await context.with(trace.setSpan(parent, span), () => call(span));
    if (describe) span.setAttributes(describe({ ok: true, value }));
    return value;
  } catch (err) {
    if (describe) span.setAttributes(describe({ ok: false, error: err }));
    const e = err instanceof Error ? err : new Error(String(err));
    span.recordException(e);
    span.setAttribute(ClientSpanAttributes.errorType, e.name || "Error");
    span.setStatus({ code: SpanStatusCode.ERROR, message: e.message });
    throw err;
  } finally {
    span.end();
  }
}

/**
 * Marks an HTTP client span failed for an answer of 400 or more (the semantic conventions:
 * `error.type` is the status code, the span's status is error) when the client did not throw.
 */
export function markHttpFailure(span: Span, status: number): void {
  if (status < 400) return;
  span.setAttribute(ClientSpanAttributes.errorType, String(status));
  span.setStatus({ code: SpanStatusCode.ERROR, message: `HTTP ${status}` });
}

/** What the middleware needs of an AWS SDK v3 client (any `@aws-sdk/client-*` client fits). */
export interface AwsClientLike<I extends object, O extends MetadataBearer> {
  readonly config: { readonly serviceId?: string; readonly region?: unknown };
  readonly middlewareStack: MiddlewareStack<I, O>;
}

/** The `$metadata` AWS SDK v3 puts on every output and every service error. */
function metadataOf(x: unknown): { requestId?: unknown; httpStatusCode?: unknown } | undefined {
  const m = (x as { $metadata?: unknown } | null | undefined)?.$metadata;
  return m && typeof m === "object" ? (m as { requestId?: unknown; httpStatusCode?: unknown }) : undefined;
}

async function regionOf(client: {
  readonly config: { readonly region?: unknown };
}): Promise<string | undefined> {
  const r = client.config.region;
  try {
    const v = typeof r === "function" ? await (r as () => Promise<unknown>)() : r;
    return typeof v === "string" ? v : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Gives every call of an AWS SDK v3 client a CLIENT span (`EC2.RunInstances`, kind CLIENT,
 * `rpc.system=aws-api`, `rpc.service`, `rpc.method`, `cloud.region`, `aws.request_id` and
 * the HTTP status when the response carries them), by one middleware at the head of the
 * client's stack: one span per `send`, around serialising, signing, the request and the
 * parsing. Idempotent (the middleware is named and overridden).
 *
 * Hand-written rather than @opentelemetry/instrumentation-aws-sdk: that one patches the
 * SDK's modules at load time through require/import hooks, which an ESM process started
 * without a loader flag never runs; a middleware is the SDK's own extension point.
 *
 * @example const ec2 = new EC2Client({ region }); traceAwsClient(ec2);
 */
export function traceAwsClient<I extends object, O extends MetadataBearer>(
  client: AwsClientLike<I, O>,
): void {
  const service = client.config.serviceId;
  const middleware: InitializeMiddleware<I, O> =
    (next, ctx: HandlerExecutionContext) =>
    async (args): Promise<InitializeHandlerOutput<O>> => {
      const rpcService = service ?? ctx.clientName?.replace(/Client$/, "") ?? "AWS";
      const rpcMethod = ctx.commandName?.replace(/Command$/, "") ?? "Unknown";
      const region = await regionOf(client);
      return await inClientSpan(
        `${rpcService}.${rpcMethod}`,
        {
          [ClientSpanAttributes.rpcSystem]: AWS_API,
          [ClientSpanAttributes.rpcService]: rpcService,
          [ClientSpanAttributes.rpcMethod]: rpcMethod,
          ...(region ? { [ClientSpanAttributes.cloudRegion]: region } : {}),
        },
        () => next(args),
        (outcome) => {
          const m = metadataOf(outcome.ok ? outcome.value.output : outcome.error);
          return {
            ...(typeof m?.requestId === "string" ? { [ClientSpanAttributes.awsRequestId]: m.requestId } : {}),
            ...(typeof m?.httpStatusCode === "number"
              ? { [ClientSpanAttributes.httpStatus]: m.httpStatusCode }
              : {}),
          };
        },
      );
    };
  client.middlewareStack.add(middleware, {
    step: "initialize",
    name: "cairnClientSpan",
    priority: "high",
    override: true,
  });
}

/** The name under which AWS SDK v3 clients carry their call-logging middleware. */
export const AWS_SDK_LOGGER_MIDDLEWARE = "loggerMiddleware";

/**
 * Takes the SDK's own call logging off a client that is given no `logger`. The SDK's
 * `loggerMiddleware` calls `logger.info({ input, output })` after every call, and its
 * default logger (`NoOpLogger`) has an `info` that does nothing — so the arguments are
 * built anyway: the whole output walked against its schema to mask sensitive members and
 * copied (`schemaLogFilter`), then thrown away. For a RunInstances or DescribeInstances
 * answer of 100 instances that was ~5 % of the provisioner's CPU in bench/provisioner at 500
 * nodes. Cairn logs calls itself (the resilience observer, the client span), never through
 * the SDK's logger. Idempotent; a no-op on a client without the middleware.
 *
 * @example const ec2 = new EC2Client({ region }); withoutSdkCallLogging(ec2);
 */
export function withoutSdkCallLogging(client: {
  readonly middlewareStack: { remove(name: string): boolean };
}): void {
  client.middlewareStack.remove(AWS_SDK_LOGGER_MIDDLEWARE);
}

/**
 * An AWS SDK v3 client as Cairn's adapters use it: the SDK's retries off (the adapters'
 * resilience policies retry; both would multiply), endpoint and credentials from the
 * options or else the environment, a client span per call ({@link traceAwsClient}) and no
 * SDK call logging ({@link withoutSdkCallLogging}).
 *
 * @example const ec2 = adapterAwsClient(EC2Client, "eu-west-1", { endpoint: simUrl });
 */
export function adapterAwsClient<
  C extends AwsClientLike<I, O> & { readonly middlewareStack: { remove(name: string): boolean } },
  Credentials,
  I extends object = object,
  O extends MetadataBearer = MetadataBearer,
>(
  Client: new (config: {
    region: string;
    maxAttempts: number;
    endpoint?: string;
    credentials?: Credentials;
  }) => C,
  region: string,
  opts: { readonly endpoint?: string | undefined; readonly credentials?: Credentials | undefined },
): C {
  const client = new Client({
    region,
    maxAttempts: 1,
    ...(opts.endpoint !== undefined ? { endpoint: opts.endpoint } : {}),
    ...(opts.credentials !== undefined ? { credentials: opts.credentials } : {}),
  });
  traceAwsClient(client);
  withoutSdkCallLogging(client);
  return client;
}

/**
 * The attributes of an HTTP client call by the semantic conventions: method, full URL (its
 * query kept, its credentials never), server address and port, and the URL template when the
 * caller knows one (`/api/v1/nodes/{name}`).
 */
export function httpClientAttributes(method: string, url: string, template?: string): Attributes {
  let u: URL | undefined;
  try {
    u = new URL(url);
  } catch {
    u = undefined;
  }
  if (!u) return { [ClientSpanAttributes.httpMethod]: method };
  u.username = "";
  u.password = "";
  const port = u.port ? Number(u.port) : u.protocol === "https:" ? 443 : 80;
  return {
    [ClientSpanAttributes.httpMethod]: method,
    [ClientSpanAttributes.urlFull]: u.toString(),
    [ClientSpanAttributes.serverAddress]: u.hostname,
    [ClientSpanAttributes.serverPort]: port,
    ...(template ? { [ClientSpanAttributes.urlTemplate]: template } : {}),
  };
}
