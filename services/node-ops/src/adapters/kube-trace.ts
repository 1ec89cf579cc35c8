/**
 * A CLIENT span for every request node-ops makes to a cluster's Kubernetes API, by the HTTP
 * semantic conventions (`http.request.method`, `url.full`, `server.address`,
 * `http.response.status_code`, span name `GET /api/v1/nodes/{name}`) plus what it is about:
 * `k8s.cluster.name` (the Cairn cluster id) and, read from the path, `k8s.namespace.name`
 * and `k8s.node.name` / `k8s.pod.name` / `k8s.deployment.name`.
 *
 * Two places carry every request: the generated API clients send through their
 * configuration's `httpApi` (`tracedApiClient` wraps client-node's own fetch library, and
 * also writes `traceparent` into the request, as HTTP instrumentation does, so an API
 * server with tracing on continues the trace); a watch (client-node's `Watch`) opens its
 * own fetch, so `openWatch` spans it itself with `kubeRequestSpan` (request to response
 * head: the stream that follows is not the call).
 */
import { AsyncLocalStorage } from "node:async_hooks";
import { traceparentOf } from "@cairn/events";
import { ClientSpanAttributes, httpClientAttributes, inClientSpan, markHttpFailure } from "@cairn/service";
import {
  type ApiType,
  type Configuration,
  createConfiguration,
  IsomorphicFetchHttpLibrary,
  type KubeConfig,
  type RequestContext,
  type ResponseContext,
  type SecurityAuthentication,
  ServerConfiguration,
  setHeaderMiddleware,
  wrapHttpLibrary,
} from "@kubernetes/client-node";
import type { Attributes, Span } from "@opentelemetry/api";
import { Agent, Client } from "undici";

/** Attribute keys of Kubernetes client spans (semantic conventions' `k8s.*`). */
export const KubeSpanAttributes = {
  cluster: "k8s.cluster.name",
  namespace: "k8s.namespace.name",
  node: "k8s.node.name",
  pod: "k8s.pod.name",
  deployment: "k8s.deployment.name",
} as const;

/** Resource kinds whose object name has a `k8s.<kind>.name` attribute. */
const NAMED: Readonly<Record<string, string>> = {
  nodes: KubeSpanAttributes.node,
  pods: KubeSpanAttributes.pod,
  deployments: KubeSpanAttributes.deployment,
};

/**
 * The path's template and what it names. Pure.
 * @example kubePath("/api/v1/namespaces/cairn-sessions/pods/s-1/eviction")
 * // → { template: "/api/v1/namespaces/{namespace}/pods/{name}/eviction",
 * //     attributes: { "k8s.namespace.name": "cairn-sessions", "k8s.pod.name": "s-1" } }
 */
export function kubePath(path: string): { template: string; attributes: Attributes } {
  const all = path.split("?")[0]!.split("/");
  // A server may sit under a path of its own (a proxy's `/k8s/clusters/<id>`, the sim's
  // per-cluster prefix): the template starts at `/api` or `/apis`, the route the API knows.
  const at = all.findIndex((p, i) => i > 0 && (p === "api" || p === "apis"));
  const parts = at > 0 ? ["", ...all.slice(at)] : all;
  const attributes: Attributes = {};
  // /api/v1/… or /apis/<group>/<version>/…: the resource path starts after the version.
  const start = parts[1] === "api" ? 3 : parts[1] === "apis" ? 4 : parts.length;
  const out = parts.slice(0, Math.min(start, parts.length));
  let i = start;
  if (parts[i] === "namespaces" && parts[i + 1] !== undefined && parts[i + 2] !== undefined) {
    attributes[KubeSpanAttributes.namespace] = decodeURIComponent(parts[i + 1]!);
    out.push("namespaces", "{namespace}");
    i += 2;
  }
  const resource = parts[i];
  if (resource !== undefined) {
    out.push(resource);
    const name = parts[i + 1];
    if (name !== undefined && name !== "") {
      const key = NAMED[resource];
      if (key) attributes[key] = decodeURIComponent(name);
      out.push("{name}", ...parts.slice(i + 2));
    }
  }
  return { template: out.join("/"), attributes };
}

/**
 * Runs one request to a cluster's API in a CLIENT span; `status` reads the answer's HTTP
 * status from the result or the error (client-node's errors carry `code` or `statusCode`).
 */
export async function kubeRequestSpan<T>(
  clusterId: string,
  method: string,
  url: string,
  call: (span: Span) => Promise<T>,
  status: (outcome: { ok: true; value: T } | { ok: false; error: unknown }) => number | undefined,
): Promise<T> {
  let path = "/";
  try {
    path = new URL(url).pathname;
  } catch {
    // an unparseable URL keeps the root path; the call itself will say what is wrong
  }
  const { template, attributes } = kubePath(path);
  return await inClientSpan(
    `${method} ${template}`,
    {
      ...httpClientAttributes(method, url, template),
      [KubeSpanAttributes.cluster]: clusterId,
      ...attributes,
    },
    call,
    (outcome) => {
      const code = status(outcome);
      return code !== undefined ? { [ClientSpanAttributes.httpStatus]: code } : {};
    },
  );
}

/** The HTTP status an error of client-node carries, if any. */
export function statusOfKubeError(err: unknown): number | undefined {
  const e = err as { code?: unknown; statusCode?: unknown } | null | undefined;
  const code =
    typeof e?.code === "number" ? e.code : typeof e?.statusCode === "number" ? e.statusCode : undefined;
  return code !== undefined && code >= 100 && code < 600 ? code : undefined;
}

/**
 * A request with no caller's deadline gives up after this long (ms): the session
 * workloads' calls (not under the resilience's per-try timeout) included. A request that
 * waits for one of the cluster's pooled connections waits at most this long too, instead
 * of for ever behind calls the API server does not answer; a handler's few calls stay
 * within the message's 60 s hold, and the failure is transient (handed back, retried).
 */
export const KUBE_REQUEST_TIMEOUT_MS = 10_000;

const callSignal = new AsyncLocalStorage<AbortSignal>();

/**
 * Runs `fn` with `signal` as the abort signal of every Kubernetes API request it makes
 * through tracedApiClient: the resilience's per-try timeout (guardedApi) aborts the request
 * itself, so a try given up on leaves no request behind holding, or queued for, one of the
 * cluster's pooled connections (it did: the retries queued behind their own orphans).
 */
export function withKubeCallSignal<T>(signal: AbortSignal | undefined, fn: () => T): T {
  return signal ? callSignal.run(signal, fn) : fn();
}

/** client-node's own fetch library, every request in a client span of the cluster. */
function tracedHttpLibrary(clusterId: string) {
  const inner = new IsomorphicFetchHttpLibrary();
  return wrapHttpLibrary({
    send: (request: RequestContext): Promise<ResponseContext> =>
      kubeRequestSpan(
        clusterId,
        request.getHttpMethod().toString(),
        request.getUrl(),
        async (span) => {
          // The client span's own context is active here: the API server continues from it.
          const tp = traceparentOf();
          if (tp) request.setHeaderParam("traceparent", tp);
          // The caller's deadline (guardedApi's try), else the default one: never unbounded.
          request.setSignal(callSignal.getStore() ?? AbortSignal.timeout(KUBE_REQUEST_TIMEOUT_MS));
          const response = await inner.send(request).toPromise();
          // client-node answers a refusal as a response; the API class throws on it later.
          markHttpFailure(span, response.httpStatusCode);
          return response;
        },
        (o) => (o.ok ? o.value.httpStatusCode : statusOfKubeError(o.error)),
      ),
  });
}

type Dispatcher = NonNullable<ReturnType<RequestContext["getDispatcher"]>>;

/**
 * At most this many connections to one cluster's API server for its calls: the 10 its
 * bulkhead lets through at once (SERVICE_SETTINGS.kubernetes) and the session workloads'
 * (no bulkhead; each under KUBE_REQUEST_TIMEOUT_MS). Watches have connections of their own
 * (watchConnection). Past it a request waits for a connection instead of
 * opening one more: a burst of calls (20 session pods started at once) opened ~20 sockets a
 * cluster, each kept alive (24 a cluster at 50 clusters, docs/benchmarks.md, load).
 */
export const KUBE_CONNECTIONS_PER_CLUSTER = 12;
/**
 * An idle connection is closed after this long (ms), whatever the server's `Keep-Alive`
 * hint says (undici keeps one up to the hint, 10 minutes at most; the sim says 60 s): what a
 * cluster holds between bursts is its watches, not the burst's sockets.
 */
export const KUBE_IDLE_CONNECTION_MS = 4_000;

/** client-node's private factory of a request's dispatcher (config.js; the tests pin it). */
type DispatcherFactory = (cluster: unknown, agentOptions: unknown) => Dispatcher | undefined;

/**
 * A watch's connection: one undici `Client` (a single connection, no pool) built for the
 * watch and destroyed when it ends, apart from the calls' pool. On HTTP/1.1 a watch holds
 * its connection for its life; sharing the calls' pool, a watch's (re)open queued behind a
 * burst of calls, and watches left the calls fewer connections. Real clients get the same
 * separation from HTTP/2: client-go multiplexes every request and watch of a host on one
 * connection as streams, so a watch never waits for a call's connection nor takes one.
 *
 * Not a pool per cluster: an undici `Pool` costs 16 KB of heap for its request queue
 * alone (`FixedQueue`, 2,048 slots) and the node watch kept one alive in every cluster for
 * the process's life (1,000 clusters: ~16 MB of node-ops' heap in queues that never held
 * more than one request; a heap snapshot diff 50 → 150 clusters, docs/benchmarks.md). A
 * `Client`'s queue is a plain array. The connections a cluster's watches hold are its open
 * watches (the nodes' and the session pods', one each, a list-and-watch loop reopening one
 * only after the last ended), not a bound of their own.
 */
export interface WatchConnection {
  /** The kubeconfig whose requests (the watch's one) go through this connection. */
  readonly config: KubeConfig;
  /** Ends the connection (idempotent): the watch's stream, if still open, with it. */
  close(): void;
}

/** A kubeconfig for one watch, on a connection of its own (WatchConnection). */
export function watchConnection(kc: KubeConfig): WatchConnection {
  const own = (kc as unknown as { createDispatcher: DispatcherFactory }).createDispatcher;
  let closed = false;
  let dispatcher: Dispatcher | undefined;
  const destroy = () => {
    const d = dispatcher as unknown as { destroy?: () => Promise<void> } | undefined;
    void d?.destroy?.().catch(() => {});
  };
  const createDispatcher: DispatcherFactory = (cluster, agentOptions) => {
    if (dispatcher) return dispatcher;
    const opts = kc.createDispatcherOptions(cluster as never, agentOptions as never);
    const server = (cluster as { server?: string } | null)?.server;
    dispatcher =
      opts.type === "agent" && server
        ? (new Client(new URL(server).origin, { connect: opts.connect }) as unknown as Dispatcher)
        : own.call(kc, cluster, agentOptions);
    // Closed before its request went out: the request fails on a destroyed connection
    // rather than going out on another dispatcher.
    if (closed) destroy();
    return dispatcher;
  };
  return {
    config: Object.create(kc, { createDispatcher: { value: createDispatcher } }) as KubeConfig,
    close: () => {
      if (closed) return;
      closed = true;
      destroy();
    },
  };
}

const pooledConfigs = new WeakMap<KubeConfig, KubeConfig>();

/** The kubeconfig with one undici Agent of `connections` built on first use and kept (pooledConfig). */
function boundedConfig(
  kc: KubeConfig,
  cache: WeakMap<KubeConfig, KubeConfig>,
  connections: number,
): KubeConfig {
  let c = cache.get(kc);
  if (c) return c;
  const own = (kc as unknown as { createDispatcher: DispatcherFactory }).createDispatcher;
  let built = false;
  let dispatcher: Dispatcher | undefined;
  const createDispatcher: DispatcherFactory = (cluster, agentOptions) => {
    if (built) return dispatcher;
    const opts = kc.createDispatcherOptions(cluster as never, agentOptions as never);
    dispatcher =
      opts.type === "agent"
        ? (new Agent({
            connect: opts.connect,
            connections,
            keepAliveTimeout: KUBE_IDLE_CONNECTION_MS,
            keepAliveMaxTimeout: KUBE_IDLE_CONNECTION_MS,
          }) as unknown as Dispatcher)
        : own.call(kc, cluster, agentOptions);
    built = true;
    return dispatcher;
  };
  c = Object.create(kc, { createDispatcher: { value: createDispatcher } }) as KubeConfig;
  cache.set(kc, c);
  return c;
}

/**
 * The kubeconfig with one bounded connection pool for its calls: every request made
 * through it (API calls with pooledAuthentication) shares one undici Agent of at most
 * KUBE_CONNECTIONS_PER_CLUSTER connections, idle ones closed after KUBE_IDLE_CONNECTION_MS.
 * client-node 2.x builds a new Agent for every request (`createDispatcher` in
 * `applySecurityAuthentication`, whenever the kubeconfig has TLS options, skip-verify
 * included), each with its own keep-alive socket: node-ops held ~1,000 Agents and sockets
 * at 20 clusters (bench/load's heap snapshot). Here the first one is built with the
 * kubeconfig's TLS options (client-node's `createDispatcherOptions`) and bounds, and kept
 * (its TLS options cannot change: a new kubeconfig is a new KubeConfig). A proxy or SOCKS
 * dispatcher is client-node's own, kept likewise. Everything else is the kubeconfig's.
 * Watches have connections of their own (watchConnection).
 */
export function pooledConfig(kc: KubeConfig): KubeConfig {
  return boundedConfig(kc, pooledConfigs, KUBE_CONNECTIONS_PER_CLUSTER);
}

/** The kubeconfig's authentication on its one bounded connection pool (pooledConfig). */
export function pooledAuthentication(kc: KubeConfig): SecurityAuthentication {
  const pooled = pooledConfig(kc);
  return {
    getName: () => kc.getName(),
    applySecurityAuthentication: (context: RequestContext) => pooled.applySecurityAuthentication(context),
  };
}

/**
 * `kc.makeApiClient(Api)` with every request in a client span of `clusterId`: the same
 * configuration (the kubeconfig's server and authentication, client-node's user agent
 * header) with a traced HTTP library.
 * @example const core = tracedApiClient(kc, CoreV1Api, "demo-1");
 */
export function tracedApiClient<T extends ApiType>(
  kc: KubeConfig,
  api: new (config: Configuration) => T,
  clusterId: string,
): T {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error("No active cluster!");
  return new api(
    createConfiguration({
      baseServer: new ServerConfiguration(cluster.server, {}),
      authMethods: { default: pooledAuthentication(kc) },
      httpApi: tracedHttpLibrary(clusterId),
      middleware: [setHeaderMiddleware("User-Agent", "kubernetes-client-javascript (cairn node-ops)")],
    }),
  );
}
