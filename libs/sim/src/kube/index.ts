/**
 * The simulated Kubernetes API servers: one per managed cluster under
 * `/k8s/<clusterId>`, spoken to by the real `@kubernetes/client-node`. See
 * docs/sim-kube.md for what is modelled and what is not.
 */
import type { ServerResponse } from "node:http";
import type { KubePort, NodeRegistration, SimCall, SimContext, SimModule } from "../world.ts";
import {
  actionOf,
  create,
  evict,
  get,
  list,
  parseRoute,
  patch,
  remove,
  scale,
  update,
  verbOf,
} from "./api.ts";
import { Cluster, type ClusterSnapshot } from "./cluster.ts";
import { isNodeReady } from "./model.ts";
import { normalizedImage } from "./objects.ts";
import { NODES, PODS } from "./resources.ts";
import { parseFieldSelector, parseLabelSelector, SelectorError } from "./selectors.ts";
import {
  badRequest,
  internalError,
  KubeError,
  methodNotAllowed,
  noSuchRoute,
  serviceUnavailable,
  tooManyRequests,
  unauthorized,
} from "./status.ts";
import { WatchStream } from "./watch.ts";

/** How often (wall ms) at most the nodes are compared with their instances' states. */
const KUBELET_CHECK_MS = 100;
/** How often (wall ms) open watches are served what time made happen, deadlines and bookmarks. */
const TICK_MS = 200;
/** Like kube-apiserver (APIResponseCompression), lists larger than this go gzipped to clients that accept it. */
const GZIP_ABOVE = 128 * 1024;
/**
 * A watch without timeoutSeconds ends after this (wall seconds), like the API server's
 * minRequestTimeout (its default; the real server picks 1–2× it at random).
 */
const DEFAULT_WATCH_TIMEOUT_S = 1800;

const CLUSTER_ID = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

function send(
  res: ServerResponse,
  status: number,
  body: string | Buffer[],
  headers: Record<string, string> = {},
  type = "application/json",
): void {
  const chunks = typeof body === "string" ? [Buffer.from(body, "utf8")] : body;
  let length = 0;
  for (const c of chunks) length += c.length;
  res.writeHead(status, {
    "Content-Type": type,
    "Content-Length": length,
    "Cache-Control": "no-cache, private",
    ...headers,
  });
  for (const c of chunks) res.write(c);
  res.end();
}

/** A kubeconfig for a cluster's API server (JSON-quoted scalars are valid YAML). */
export function kubeconfigYaml(clusterId: string, server: string, token: string): string {
  const q = JSON.stringify;
  return [
    "apiVersion: v1",
    "kind: Config",
    "clusters:",
    `- name: ${q(clusterId)}`,
    "  cluster:",
    `    server: ${q(server)}`,
    // Plain http on loopback: @kubernetes/client-node refuses http unless TLS checks are off.
    "    insecure-skip-tls-verify: true",
    "contexts:",
    `- name: ${q(clusterId)}`,
    "  context:",
    `    cluster: ${q(clusterId)}`,
    `    user: ${q(`${clusterId}-admin`)}`,
    `current-context: ${q(clusterId)}`,
    "preferences: {}",
    "users:",
    `- name: ${q(`${clusterId}-admin`)}`,
    "  user:",
    `    token: ${q(token)}`,
    "",
  ].join("\n");
}

export function createKube(ctx: SimContext): SimModule<KubePort> {
  const clusters = new Map<string, Cluster>();
  /** Images the registry does not have (normalized), shared by every cluster. */
  const missingImages = new Set<string>();
  const watches = new Set<WatchStream>();
  let ticker: ReturnType<typeof setInterval> | undefined;
  /** The wake-up armed for the next due effect of a watched cluster (sim time `at`). */
  let due: { at: number; timer: ReturnType<typeof setTimeout> } | undefined;

  const mustCluster = (id: string) => {
    const c = clusters.get(id);
    if (!c) throw new Error(`kube: no cluster "${id}" (ensureCluster first)`);
    return c;
  };

  /** A change from outside the API (a kubelet, a fault): catch up with time first, then let the controllers act. */
  const mutate = <T>(id: string, fn: (c: Cluster) => T): T => {
    const c = mustCluster(id);
    c.advance(ctx.clock.now());
    const out = fn(c);
    c.reconcile();
    armDue();
    return out;
  };

  const ec2Facts = (reg: NodeRegistration) => {
    const region = reg.availabilityZone?.replace(/[a-z]$/, "");
    let instanceType: string | undefined;
    if (reg.instanceId && region) {
      try {
        instanceType = ctx.world.ec2?.instance?.(region, reg.instanceId)?.instanceType;
      } catch {
        instanceType = undefined;
      }
    }
    return { instanceType, region };
  };

  /**
   * A kubelet lives on its instance: the kubelet of a node whose EC2 instance is
   * stopping, stopped, shutting down or terminated (a spot reclaim, a replacement) stops
   * posting status, and the node lifecycle controller marks the node Ready=Unknown
   * (`unreachable` taints) after its grace period (`nodeMonitorGrace`). Checked lazily,
   * at most every `KUBELET_CHECK_MS` wall ms.
   */
  let kubeletsCheckedAt = 0;
  const kubeletsGone = () => {
    if (performance.now() - kubeletsCheckedAt < KUBELET_CHECK_MS) return;
    kubeletsCheckedAt = performance.now();
    for (const [id, c] of clusters) {
      for (const { obj } of c.entries(NODES)) {
        const m = /^aws:\/\/\/([a-z0-9-]+[a-z])\/(i-[0-9a-f]+)$/.exec(String(obj.spec?.providerID ?? ""));
        if (!m || !isNodeReady(obj) || c.kubeletDown(obj.metadata.name)) continue;
        const state = ctx.world.ec2?.instance?.(m[1]!.slice(0, -1), m[2]!)?.state;
        if (state && state !== "pending" && state !== "running")
          mutate(id, (cl) => cl.stopKubelet(obj.metadata.name));
      }
    }
  };

  const serverOf = (id: string) => `${ctx.baseUrl()}/k8s/${encodeURIComponent(id)}`;

  const port: KubePort = {
    ensureCluster(clusterId) {
      if (!CLUSTER_ID.test(clusterId))
        throw new Error(`kube: cluster id "${clusterId}" must match ${CLUSTER_ID}`);
      let c = clusters.get(clusterId);
      if (!c) {
        c = new Cluster(clusterId, `${ctx.random.hex(24)}.${ctx.random.hex(40)}`, ctx, missingImages);
        clusters.set(clusterId, c);
      }
      return { server: serverOf(clusterId), token: c.token };
    },
    registerNode(clusterId, node) {
      const { instanceType, region } = ec2Facts(node);
      mutate(clusterId, (c) => c.registerNode(node, instanceType, region));
    },
    setNodeReady(clusterId, nodeName, ready) {
      mutate(clusterId, (c) => c.setNodeReady(nodeName, ready));
    },
    stopKubelet(clusterId, nodeName) {
      mutate(clusterId, (c) => c.stopKubelet(nodeName));
    },
    removeNode(clusterId, nodeName) {
      mutate(clusterId, (c) => c.drop(NODES, nodeName));
    },
    replaceDatastore(clusterId) {
      const old = mustCluster(clusterId);
      for (const w of watches) if (w.clusterId === clusterId) w.close();
      const fresh = new Cluster(clusterId, old.token, ctx, missingImages);
      clusters.set(clusterId, fresh);
      // The kubelets register their nodes again with the new datastore.
      for (const { obj } of old.entries(NODES)) {
        const { resourceVersion: _rv, ...metadata } = structuredClone(obj.metadata);
        fresh.put(NODES, { ...structuredClone(obj), metadata: { ...metadata, resourceVersion: "" } });
      }
      fresh.reconcile();
    },
    kubeconfig(clusterId) {
      const c = mustCluster(clusterId);
      return kubeconfigYaml(clusterId, serverOf(clusterId), c.token);
    },
    clusters: () => [...clusters.keys()],
    setImageAvailable(image, available) {
      if (available) missingImages.delete(normalizedImage(image));
      else missingImages.add(normalizedImage(image));
    },
  };

  /**
   * Is the cluster's API server down for certain (a kube-down rule with rate 1 in force)?
   * Then its open watches end, as they would when the server goes away.
   */
  const down = (clusterId: string, now: number) =>
    ctx.faults
      .list()
      .some(
        (r) =>
          r.kind === "kube-down" &&
          r.rate === 1 &&
          (!r.service || r.service === "kube") &&
          (!r.action || r.action === "watch") &&
          (!r.region || r.region === clusterId) &&
          (r.until === undefined || now <= r.until) &&
          Object.entries(r.match ?? {}).every(([k, v]) => k === "clusterId" && v === clusterId),
      );

  const tick = () => {
    kubeletsGone();
    const now = ctx.clock.now();
    for (const c of clusters.values()) if (c.watchers.size > 0) c.advance(now);
    const cut = new Set([...clusters.keys()].filter((id) => down(id, now)));
    for (const w of watches) {
      if (cut.has(w.clusterId)) w.close();
      else w.tick(now);
      if (w.closed) watches.delete(w);
    }
    if (watches.size === 0 && ticker) {
      clearInterval(ticker);
      ticker = undefined;
    }
    armDue();
  };

  /**
   * Arms a wake-up for the moment the next effect of a watched cluster falls due (a pod
   * turning Ready, a pod gone), so its watchers hear of it then — as a kubelet's status
   * update reaches kube-apiserver's watchers at once — and not at the next tick, up to
   * TICK_MS later. Nothing is armed while no watch is open.
   */
  function armDue(): void {
    let next: number | undefined;
    for (const c of clusters.values()) {
      if (c.watchers.size === 0) continue;
      const at = c.nextDueAt();
      if (at !== undefined && (next === undefined || at < next)) next = at;
    }
    if (due && (next === undefined || next < due.at || watches.size === 0)) {
      clearTimeout(due.timer);
      due = undefined;
    }
    if (next === undefined || due || watches.size === 0) return;
    const wallMs = Math.max(0, Math.ceil(ctx.clock.realMs(next - ctx.clock.now())));
    const timer = setTimeout(() => {
      due = undefined;
      tick();
    }, wallMs);
    timer.unref?.();
    due = { at: next, timer };
  }

  /** Serves one call, then arms the wake-up for what it made due (see armDue). */
  async function handle(call: SimCall): Promise<void> {
    try {
      await serve(call);
    } finally {
      armDue();
    }
  }

  async function serve({ req, res, url, body }: SimCall): Promise<void> {
    const m = /^\/k8s\/([^/]+)(\/.*)?$/.exec(url.pathname);
    const clusterId = m ? decodeURIComponent(m[1]!) : "";
    const method = req.method ?? "GET";
    let action = `${method.toLowerCase()} ${m?.[2] ?? "/"}`;
    let ids: string[] = [];
    const record = (status: number, error?: string) =>
      ctx.requests.record({
        time: ctx.clock.iso(),
        service: "kube",
        region: clusterId,
        action,
        ids,
        status,
        ...(error ? { error } : {}),
      });
    const fail = (e: KubeError) => {
      if (res.headersSent) res.end();
      else send(res, e.code, JSON.stringify(e.toStatus()), e.headers);
      record(e.code, e.reason);
    };
    try {
      const c = clusters.get(clusterId);
      if (!c) {
        throw new KubeError(
          404,
          "NotFound",
          `the sim runs no Kubernetes API server for cluster "${clusterId}" (ensureCluster creates one)`,
          {
            name: clusterId,
          },
        );
      }
      const route = parseRoute(m?.[2] ?? "/", url.host);
      if (!route) throw noSuchRoute();
      const q = url.searchParams;
      const verb = route.t === "resource" ? verbOf(method, route, q) : method === "GET" ? "get" : undefined;
      if (route.t === "resource") {
        action = verb ? actionOf(verb, route) : `${method.toLowerCase()} ${route.def.resource}`;
        if (route.name) ids = [route.name];
      } else {
        action = "get discovery";
      }
      if (!verb) throw methodNotAllowed();

      let node: string | undefined;
      if (route.t === "resource") {
        if (route.def === NODES) node = route.name;
        else if (route.def === PODS && route.name && route.ns)
          node = c.get(PODS, `${route.ns}/${route.name}`)?.obj.spec?.nodeName as string | undefined;
        else if (route.def === PODS)
          node = /(?:^|,)spec\.nodeName==?([^,]*)/.exec(q.get("fieldSelector") ?? "")?.[1];
      }
      const fault = ctx.faults.take(
        {
          service: "kube",
          action: verb,
          region: clusterId,
          facts: {
            clusterId,
            node,
            resource: route.t === "resource" ? route.def.resource : "discovery",
            namespace: route.t === "resource" ? route.ns : undefined,
            name: route.t === "resource" ? route.name : undefined,
          },
        },
        ["kube-down", "throttle", "internal-error"],
      );
      if (fault?.kind === "kube-down") throw serviceUnavailable();
      if (fault?.kind === "throttle") throw tooManyRequests(1);
      if (fault?.kind === "internal-error") throw internalError(`injected fault ${fault.id}`);

      if (req.headers.authorization !== `Bearer ${c.token}`) throw unauthorized();

      if (route.t === "discovery") {
        send(res, 200, JSON.stringify(route.body));
        record(200);
        return;
      }
      if (route.t === "text") {
        send(res, 200, route.body, {}, "text/plain; charset=utf-8");
        record(200);
        return;
      }
      if (verb === "watch") {
        startWatch(c, route, q, res);
        record(200);
        return;
      }
      const answer = (() => {
        switch (verb) {
          case "list":
            return list(c, route, q);
          case "get":
            return route.sub === "scale" ? scale(c, req, verb, route, body, q) : get(c, route);
          case "create":
            return create(c, route, body, q);
          case "update":
            return route.sub === "scale" ? scale(c, req, verb, route, body, q) : update(c, route, body, q);
          case "patch":
            return route.sub === "scale"
              ? scale(c, req, verb, route, body, q)
              : patch(c, req, route, body, q);
          case "delete":
            return remove(c, route, body, q);
          case "evict":
            return evict(c, route, body, q);
          default:
            throw methodNotAllowed();
        }
      })();
      if (answer.ids.length > 0) ids = answer.ids;
      const size =
        typeof answer.body === "string" ? answer.body.length : answer.body.reduce((n, b) => n + b.length, 0);
      if (answer.gzip && size > GZIP_ABOVE && /\bgzip\b/.test(String(req.headers["accept-encoding"] ?? ""))) {
        send(res, answer.status, answer.gzip(), { "Content-Encoding": "gzip", Vary: "Accept-Encoding" });
      } else {
        send(res, answer.status, answer.body);
      }
      record(answer.status);
    } catch (e) {
      if (e instanceof KubeError) return fail(e);
      return fail(internalError((e as Error).message));
    }
  }

  function startWatch(
    c: Cluster,
    route: Extract<ReturnType<typeof parseRoute>, { t: "resource" }>,
    q: URLSearchParams,
    res: ServerResponse,
  ): void {
    let labels: ReturnType<typeof parseLabelSelector>;
    let fields: ReturnType<typeof parseFieldSelector>;
    try {
      labels = parseLabelSelector(q.get("labelSelector"));
      fields = parseFieldSelector(q.get("fieldSelector"));
    } catch (e) {
      if (e instanceof SelectorError) throw badRequest(e.message);
      throw e;
    }
    for (const f of fields)
      if (!route.def.fields[f.field]) throw badRequest(`field label not supported: ${f.field}`);
    if (route.name !== undefined)
      fields = [...fields, { field: "metadata.name", op: "=", value: route.name }];
    const rvText = q.get("resourceVersion");
    let resourceVersion: number | undefined;
    if (rvText !== null && rvText !== "" && rvText !== "0") {
      if (!/^\d+$/.test(rvText))
        throw badRequest(`resourceVersion: Invalid value: "${rvText}": must be a valid resource version`);
      resourceVersion = Number(rvText);
    }
    const timeoutText = q.get("timeoutSeconds");
    const timeout =
      timeoutText !== null && /^\d+$/.test(timeoutText) ? Number(timeoutText) : DEFAULT_WATCH_TIMEOUT_S;
    const now = ctx.clock.now();
    const w = new WatchStream(
      c,
      res,
      {
        def: route.def,
        ns: route.ns,
        labels,
        fields,
        resourceVersion,
        // kube-apiserver ends a watch after `timeoutSeconds` of wall time (a timer on the
        // request, handlers/get.go); the time scale speeds the simulated world up, not the
        // server's request timers. Scaled like the world, a client's 300 s watch would
        // live 0.3 s at scale 1,000 and be reopened 1,000× as often as against a real
        // server: churn no real cluster makes.
        deadline: now + timeout * 1000 * ctx.clock.timeScale,
        bookmarks: q.get("allowWatchBookmarks") === "true",
        timeScale: ctx.clock.timeScale,
      },
      now,
    );
    w.start();
    if (w.closed) return;
    watches.add(w);
    ticker ??= setInterval(tick, TICK_MS);
    ticker.unref?.();
  }

  return {
    port,
    handle,
    settle() {
      const now = ctx.clock.now();
      for (const c of clusters.values()) c.advance(now);
      kubeletsGone();
    },
    state: () => ({ clusters: Object.fromEntries([...clusters].map(([id, c]) => [id, c.state()])) }),
    snapshot: () => ({
      clusters: [...clusters.values()].map((c) => c.snapshot()),
      missingImages: [...missingImages],
    }),
    restore(s) {
      const snap = s as { clusters: ClusterSnapshot[]; missingImages: string[] };
      for (const w of watches) w.close();
      missingImages.clear();
      for (const i of snap.missingImages) missingImages.add(i);
      clusters.clear();
      for (const c of snap.clusters) clusters.set(c.id, new Cluster(c.id, c.token, ctx, missingImages, c));
    },
    async admin(action, body) {
      const b = (body ?? {}) as { clusterId?: string; node?: unknown; ready?: unknown; image?: unknown };
      if (action === "image-available") {
        const available = (body as { available?: unknown } | undefined)?.available;
        if (typeof b.image !== "string" || typeof available !== "boolean")
          throw new Error("body is { image, available: boolean }");
        port.setImageAvailable(b.image, available);
        return { image: normalizedImage(b.image), available };
      }
      if (typeof b.clusterId !== "string") throw new Error("body needs clusterId");
      const clusterId = b.clusterId;
      switch (action) {
        case "ensure-cluster":
          return port.ensureCluster(clusterId);
        case "node-ready": {
          if (typeof b.node !== "string" || typeof b.ready !== "boolean")
            throw new Error("body is { clusterId, node, ready: boolean }");
          port.setNodeReady(clusterId, b.node, b.ready);
          return { clusterId, node: b.node, ready: b.ready };
        }
        case "register-node": {
          const n = b.node as Partial<NodeRegistration> | undefined;
          if (!n || typeof n.name !== "string")
            throw new Error("body is { clusterId, node: NodeRegistration }");
          port.registerNode(clusterId, {
            ...n,
            name: n.name,
            role: n.role ?? "agent",
            labels: n.labels ?? {},
            taints: n.taints ?? [],
          });
          return { clusterId, node: n.name };
        }
        case "kubelet-stop":
          if (typeof b.node !== "string") throw new Error("body is { clusterId, node }");
          port.stopKubelet(clusterId, b.node);
          return { clusterId, node: b.node };
        case "replace-datastore":
          port.replaceDatastore(clusterId);
          return { clusterId };
        case "remove-node": {
          if (typeof b.node !== "string") throw new Error("body is { clusterId, node }");
          port.removeNode(clusterId, b.node);
          return { clusterId, node: b.node };
        }
        default:
          throw new Error(
            `kube admin actions: ensure-cluster, node-ready, kubelet-stop, register-node, remove-node, replace-datastore, image-available; not ${action}`,
          );
      }
    },
  };
}
