/**
 * Every Kubernetes request node-ops makes is a client span (HTTP semantic conventions), a
 * child of the span it was made under and carrying what the work is about: the generated
 * API clients' requests (a list, a patch, each retry its own span) and a watch's request,
 * spanned from the request to the answer's head. Against the sim's API server, through the
 * real client-node.
 */

import { readFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { catalogue, EventStore, inWork, SpanAttributes } from "@cairn/events";
import { startJetStream, type TestJetStream, useTestTracing } from "@cairn/events/testing";
import { Resilience } from "@cairn/service";
import { SIM_CREDENTIALS, type Sim, startSim, ZERO_LATENCIES } from "@cairn/sim";
import { CoreV1Api, KubeConfig, RequestContext } from "@kubernetes/client-node";
import { SpanKind, SpanStatusCode, trace } from "@opentelemetry/api";
import type { ReadableSpan } from "@opentelemetry/sdk-trace";
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import type { NodeWatchEnd } from "../ports.ts";
import { simCluster } from "../testing/sim-cluster.ts";
import { createKube } from "./kube.ts";
import { guardedApi } from "./kube-resilience.ts";
import {
  KUBE_CONNECTIONS_PER_CLUSTER,
  KUBE_IDLE_CONNECTION_MS,
  KUBE_REQUEST_TIMEOUT_MS,
  pooledAuthentication,
  tracedApiClient,
} from "./kube-trace.ts";
import { openWatch, WATCH_TIMEOUT_SECONDS } from "./kube-watch.ts";

const tracing = useTestTracing();
let js: TestJetStream;
let sim: Sim;
let kube: ReturnType<typeof createKube>;
let kc: KubeConfig;
const CLUSTER = "traced-1";

beforeAll(async () => {
  js = await startJetStream();
  sim = await startSim({ seed: 7, timeScale: 100, latencies: ZERO_LATENCIES });
  const store = new EventStore({ js: js.nats.js, jsm: js.nats.jsm, catalogue });
  ({ kc } = await simCluster(sim, store, CLUSTER, ["node-a", "node-b"]));
  kube = createKube({
    nats: js.nats,
    endpoint: sim.url,
    credentials: SIM_CREDENTIALS,
    resilience: new Resilience({ policies: { default: { baseDelayMs: 1, maxDelayMs: 2 } } }),
  });
}, 30_000);
afterAll(async () => {
  await sim?.stop();
  await js?.dispose();
});
beforeEach(() => tracing.reset());

/** Runs `fn` as a reaction would: under an active span, with the work named. */
async function inReaction<T>(fn: () => Promise<T>): Promise<{ value: T; reaction: ReadableSpan }> {
  const value = await trace.getTracer("test").startActiveSpan("reaction", async (span) => {
    try {
      return await inWork({ [SpanAttributes.aggregateId]: CLUSTER, [SpanAttributes.commandId]: "cmd-7" }, fn);
    } finally {
      span.end();
    }
  });
  const reaction = tracing.spans().find((s) => s.name === "reaction")!;
  return { value, reaction };
}

const clientSpans = () => tracing.spans().filter((s) => s.kind === SpanKind.CLIENT);

describe("Kubernetes client spans", () => {
  it("a list is a GET span under the reaction, with the URL, the status and what it was for", async () => {
    const { value, reaction } = await inReaction(() => kube.listNodes(CLUSTER));
    expect(value.nodes.map((n) => n.node).sort()).toEqual(["node-a", "node-b"]);
    const list = clientSpans().find((s) => s.name === "GET /api/v1/nodes");
    expect(
      list,
      clientSpans()
        .map((s) => s.name)
        .join(", "),
    ).toBeDefined();
    expect(list!.parentSpanContext?.spanId).toBe(reaction.spanContext().spanId);
    expect(list!.attributes).toMatchObject({
      "http.request.method": "GET",
      "http.response.status_code": 200,
      "server.address": "127.0.0.1",
      "url.template": "/api/v1/nodes",
      "k8s.cluster.name": CLUSTER,
      "cairn.aggregate.id": CLUSTER,
      "cairn.command.id": "cmd-7",
    });
    expect(String(list!.attributes["url.full"])).toMatch(new RegExp(`^${sim.url}/.*api/v1/nodes`));
    // The kubeconfig came from SSM, in the same reaction.
    const read = clientSpans().find((s) => s.name === "SSM.GetParameter");
    expect(read?.parentSpanContext?.spanId).toBe(reaction.spanContext().spanId);
  });

  it("a patch names the node; a 503 retried is one error span per try", async () => {
    sim.faults.add({
      kind: "kube-down",
      service: "kube",
      action: "patch",
      match: { clusterId: CLUSTER },
      count: 1,
    });
    await inReaction(() => kube.cordon(CLUSTER, "node-a", { "cairn.dev/cordoned-by": "test" }));
    const patches = clientSpans().filter((s) => s.name === "PATCH /api/v1/nodes/{name}");
    expect(patches.map((s) => s.attributes["http.response.status_code"])).toEqual([503, 200]);
    expect(patches.map((s) => s.status.code)).toEqual([SpanStatusCode.ERROR, SpanStatusCode.UNSET]);
    for (const p of patches) expect(p.attributes["k8s.node.name"]).toBe("node-a");
  });

  it("a watch's request is a span from the request to the answer, not for the stream's life", async () => {
    const list = await kube.listNodes(CLUSTER);
    tracing.reset();
    const ends: NodeWatchEnd[] = [];
    const { value: watch } = await inReaction(() =>
      kube.watchNodes(
        CLUSTER,
        list.resourceVersion,
        () => {},
        (e) => ends.push(e),
      ),
    );
    const opened = clientSpans().filter((s) => s.name === "GET /api/v1/nodes");
    expect(opened).toHaveLength(1);
    expect(opened[0]!.attributes).toMatchObject({
      "http.response.status_code": 200,
      "k8s.cluster.name": CLUSTER,
    });
    expect(String(opened[0]!.attributes["url.full"])).toContain("watch=true");
    // The span is over while the watch still runs.
    expect(ends).toEqual([]);
    watch.stop();
  });
});

describe("one connection pool per kubeconfig", () => {
  /** Established TCP connections to `port` (both ends are in this process: the sim runs here). */
  const connectionsTo = (port: number) =>
    readFileSync("/proc/net/tcp", "utf8")
      .split("\n")
      .slice(1)
      .map((l) => l.trim().split(/\s+/))
      .filter((f) => f[3] === "01" && Number.parseInt(f[2]?.split(":")[1] ?? "", 16) === port).length;

  it("every request of a kubeconfig gets the same dispatcher (client-node alone builds one per request)", async () => {
    const server = kc.getCurrentCluster()!.server;
    const auth = pooledAuthentication(kc);
    const contexts = [0, 1, 2].map(() => new RequestContext(`${server}/api/v1/nodes`, "GET" as never));
    for (const c of contexts) await auth.applySecurityAuthentication(c);
    expect(contexts[0]!.getDispatcher()).toBeDefined();
    expect(contexts[1]!.getDispatcher()).toBe(contexts[0]!.getDispatcher());
    expect(contexts[2]!.getDispatcher()).toBe(contexts[0]!.getDispatcher());
    const plain = [0, 1].map(() => new RequestContext(`${server}/api/v1/nodes`, "GET" as never));
    for (const c of plain) await kc.applySecurityAuthentication(c);
    expect(plain[1]!.getDispatcher()).not.toBe(plain[0]!.getDispatcher());
  });

  it("sequential requests through the adapter reuse a connection instead of leaving one open each", async () => {
    const port = Number(new URL(kc.getCurrentCluster()!.server).port);
    const before = connectionsTo(port);
    for (let i = 0; i < 30; i++) await kube.listNodes(CLUSTER);
    // Each side of a connection is one row: a handful at most, not 30 kept alive.
    expect(connectionsTo(port) - before).toBeLessThanOrEqual(4);
  });

  it("watches stopped, and watches the server ended, give their connections back: calls still get through", async () => {
    const list = await kube.listNodes(CLUSTER);
    // More watches than the pool has connections, one after another: each stopped, or
    // ended by the server (timeoutSeconds, wall time: the sim's clock jumps past it).
    for (let i = 0; i < KUBE_CONNECTIONS_PER_CLUSTER + 3; i++) {
      const ended: NodeWatchEnd[] = [];
      const w = await kube.watchNodes(
        CLUSTER,
        list.resourceVersion,
        () => {},
        (e) => ended.push(e),
      );
      if (i % 2 === 0) w.stop();
      else {
        sim.clock.advance(WATCH_TIMEOUT_SECONDS * 1000 * sim.clock.timeScale + 1_000);
        await vi.waitFor(() => expect(ended).toEqual([{ reason: "closed" }]), { timeout: 5_000 });
      }
    }
    // A pool whose connections were still held would queue these for ever.
    const lists = await Promise.race([
      Promise.all(Array.from({ length: 20 }, () => kube.listNodes(CLUSTER))),
      new Promise<never>((_, reject) =>
        setTimeout(() => reject(new Error("calls queued behind held connections")), 5_000),
      ),
    ]);
    expect(lists).toHaveLength(20);
  }, 30_000);

  it("a burst of calls opens at most KUBE_CONNECTIONS_PER_CLUSTER connections, and they close when idle", async () => {
    // A server that answers after 50 ms, so a burst's calls overlap; it would keep an idle
    // connection 60 s, as the sim does.
    let open = 0;
    let peak = 0;
    let opened = 0;
    const server = createServer((_req, res) => {
      setTimeout(() => {
        res.writeHead(200, { "Content-Type": "application/json" });
        res.end(
          JSON.stringify({
            kind: "NodeList",
            apiVersion: "v1",
            metadata: { resourceVersion: "1" },
            items: [],
          }),
        );
      }, 50);
    });
    server.keepAliveTimeout = 60_000;
    server.on("connection", (socket) => {
      opened++;
      peak = Math.max(peak, ++open);
      socket.on("close", () => open--);
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const { port } = server.address() as AddressInfo;
    const slow = new KubeConfig();
    slow.loadFromOptions({
      clusters: [{ name: "slow", server: `http://127.0.0.1:${port}`, skipTLSVerify: true }],
      users: [{ name: "slow", token: "t" }],
      contexts: [{ name: "slow", cluster: "slow", user: "slow" }],
      currentContext: "slow",
    });
    try {
      const core = tracedApiClient(slow, CoreV1Api, "slow");
      await Promise.all(Array.from({ length: 60 }, () => core.listNode()));
      // Without the bound: a connection for each call in flight (60).
      expect(peak).toBeGreaterThan(1);
      expect(peak).toBeLessThanOrEqual(KUBE_CONNECTIONS_PER_CLUSTER);
      expect(opened).toBeLessThanOrEqual(KUBE_CONNECTIONS_PER_CLUSTER);
      // The server would keep them 60 s; the pool closes them once idle.
      await vi.waitFor(() => expect(open).toBe(0), {
        timeout: KUBE_IDLE_CONNECTION_MS + 3_000,
        interval: 100,
      });
    } finally {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  }, 20_000);

  /** A server that does not answer while `hung` (holding each request), then answers a NodeList. */
  async function hangingServer() {
    const state = { hung: true, held: 0, open: 0 };
    const server = createServer((req, res) => {
      if (req.url?.includes("watch=true")) {
        // A watch: answered, its stream held open.
        res.writeHead(200, { "Content-Type": "application/json" });
        res.flushHeaders();
        return;
      }
      if (state.hung) {
        state.held++;
        req.socket.on("close", () => state.held--);
        return;
      }
      res.writeHead(200, { "Content-Type": "application/json" });
      res.end(
        JSON.stringify({ kind: "NodeList", apiVersion: "v1", metadata: { resourceVersion: "1" }, items: [] }),
      );
    });
    server.on("connection", (socket) => {
      state.open++;
      socket.on("close", () => state.open--);
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const { port } = server.address() as AddressInfo;
    const config = new KubeConfig();
    config.loadFromOptions({
      clusters: [{ name: "hung", server: `http://127.0.0.1:${port}`, skipTLSVerify: true }],
      users: [{ name: "hung", token: "t" }],
      contexts: [{ name: "hung", cluster: "hung", user: "hung" }],
      currentContext: "hung",
    });
    const close = async () => {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    };
    return { state, config, close };
  }

  it("a try that timed out aborts its request: retries and later calls do not queue behind orphans", async () => {
    const { state, config, close } = await hangingServer();
    try {
      // One try of 300 ms each; more calls than the pool has connections.
      const resilience = new Resilience({ policies: { default: { tries: 1, callTimeoutMs: 300 } } });
      const core = guardedApi(resilience, "hung", tracedApiClient(config, CoreV1Api, "hung"));
      const calls = await Promise.allSettled(Array.from({ length: 30 }, () => core.listNode()));
      expect(calls.every((c) => c.status === "rejected")).toBe(true);
      // Given up on, the requests are gone: no connection is held for them.
      await vi.waitFor(() => expect(state.held).toBe(0), { timeout: 2_000, interval: 50 });
      // The API answers again: a call gets through at once. Without the abort, 12 orphans
      // held every connection for ever and 18 more were queued ahead of it.
      // (Through a fresh breaker: 30 timeouts opened this one; the pool is the kubeconfig's.)
      state.hung = false;
      const fresh = new Resilience({ policies: { default: { tries: 1, callTimeoutMs: 2_000 } } });
      const list = await guardedApi(fresh, "hung", tracedApiClient(config, CoreV1Api, "hung")).listNode();
      expect(list.items).toEqual([]);
    } finally {
      await close();
    }
  }, 20_000);

  it(
    "a request without a caller's deadline (the session workloads') gives up after KUBE_REQUEST_TIMEOUT_MS",
    async () => {
      const { state, config, close } = await hangingServer();
      try {
        const core = tracedApiClient(config, CoreV1Api, "hung");
        const started = Date.now();
        const outcome = await core.listNode().then(
          () => "answered",
          (err: unknown) => (err as Error).name,
        );
        expect(outcome).toMatch(/Abort|Timeout/);
        expect(Date.now() - started).toBeGreaterThanOrEqual(KUBE_REQUEST_TIMEOUT_MS - 500);
        await vi.waitFor(() => expect(state.held).toBe(0), { timeout: 2_000, interval: 50 });
      } finally {
        await close();
      }
    },
    KUBE_REQUEST_TIMEOUT_MS + 10_000,
  );

  it("a watch opens on a connection of its own: calls holding every call connection do not delay it", async () => {
    const { state, config, close } = await hangingServer();
    try {
      const core = tracedApiClient(config, CoreV1Api, "hung");
      // Calls the server does not answer, as many as the calls' pool has connections.
      const calls = Array.from({ length: KUBE_CONNECTIONS_PER_CLUSTER + 4 }, () =>
        core.listNode().catch(() => undefined),
      );
      await vi.waitFor(() => expect(state.held).toBe(KUBE_CONNECTIONS_PER_CLUSTER), { timeout: 5_000 });
      const started = Date.now();
      const ends: unknown[] = [];
      const watches = [];
      for (const path of ["/api/v1/nodes", "/api/v1/namespaces/cairn-sessions/pods"])
        watches.push(
          await openWatch({
            clusterId: "hung",
            kubeConfig: async () => config,
            path,
            resourceVersion: "1",
            onObject: () => {},
            onEnd: (e) => ends.push(e),
            classify: (e) => e as Error,
          }),
        );
      // Sharing the calls' pool, each waited for a call to give up (KUBE_REQUEST_TIMEOUT_MS).
      expect(Date.now() - started).toBeLessThan(2_000);
      expect(ends).toEqual([]);
      for (const w of watches) w.stop();
      await close();
      await Promise.all(calls);
    } finally {
      await close().catch(() => {});
    }
  }, 20_000);

  it("a watch holds one connection of its own, no pool per cluster: its heap is what the watch needs", async () => {
    // Watches held open by the server, each of another cluster (its own kubeconfig), as
    // node-ops holds a node watch in every cluster for its life.
    const { state, config, close } = await hangingServer();
    setFlagsFromString("--expose-gc");
    const gc = runInNewContext("gc") as () => void;
    const heap = () => {
      gc();
      gc();
      return process.memoryUsage().heapUsed;
    };
    const CLUSTERS = 150;
    const configs = Array.from({ length: CLUSTERS }, () => {
      const c = new KubeConfig();
      c.loadFromString(config.exportConfig());
      return c;
    });
    const watch = (c: KubeConfig, i: number) =>
      openWatch({
        clusterId: `mem-${i}`,
        kubeConfig: async () => c,
        path: "/api/v1/nodes",
        resourceVersion: "1",
        onObject: () => {},
        onEnd: () => {},
        classify: (e) => e as Error,
      });
    try {
      // Warm: the code paths compiled, undici's parser loaded, before the measure.
      const warm = await Promise.all(
        Array.from({ length: 10 }, (_, i) => {
          const c = new KubeConfig();
          c.loadFromString(config.exportConfig());
          return watch(c, i);
        }),
      );
      for (const w of warm) w.stop();
      await vi.waitFor(() => expect(state.open).toBe(0), { timeout: 5_000, interval: 50 });
      const before = heap();
      const watches = [];
      for (let i = 0; i < CLUSTERS; i++) watches.push(await watch(configs[i]!, i));
      await vi.waitFor(() => expect(state.open).toBe(CLUSTERS), { timeout: 5_000, interval: 50 });
      const perWatch = (heap() - before) / CLUSTERS;
      // One connection a watch, gone when it is.
      for (const w of watches) w.stop();
      await vi.waitFor(() => expect(state.open).toBe(0), { timeout: 5_000, interval: 50 });
      // Both ends are in this process (the server's socket and request count too). Through
      // a pool per cluster (an undici Pool: its request queue alone is 16 KB) a watch cost
      // ~60 KB here; on a connection of its own, ~37 KB.
      expect(perWatch).toBeLessThan(48 * 1024);
    } finally {
      await close();
    }
  }, 30_000);
});
