import { setTimeout as sleep } from "node:timers/promises";
import {
  ADD,
  AppsV1Api,
  CoreV1Api,
  DELETE,
  KubeConfig,
  makeInformer,
  PatchStrategy,
  setHeaderOptions,
  UPDATE,
  type V1Node,
  type V1Pod,
} from "@kubernetes/client-node";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { startSim } from "../sim.ts";
import { WATCH_CACHE_FRESH_MS, WATCH_CACHE_MIN } from "./cluster.ts";
import { agent, type KubeHarness, kubeSim, LATENCIES, podSpec, watch } from "./test-support.ts";

const merge = setHeaderOptions("Content-Type", PatchStrategy.MergePatch);

let h: KubeHarness;
const stops: (() => void)[] = [];
beforeEach(async () => {
  h = await kubeSim();
});
afterEach(async () => {
  for (const s of stops.splice(0)) s();
  await h.sim.stop();
});

const open = async (path: string, params: Record<string, string | number | boolean | undefined> = {}) => {
  const w = await watch(h.kc, path, params);
  stops.push(w.stop);
  return w;
};

const readyOf = (o: unknown) => (o as V1Node).status?.conditions?.find((c) => c.type === "Ready")?.status;

describe("watch", () => {
  it("streams a MODIFIED event when a node goes NotReady", async () => {
    h.sim.world.kube.registerNode("c1", agent("n1"));
    const list = await h.core.listNode();
    const w = await open("/api/v1/nodes", { resourceVersion: list.metadata!.resourceVersion });

    h.sim.world.kube.setNodeReady("c1", "n1", false);
    const node = await h.core.readNode({ name: "n1" });
    expect(node.status?.conditions?.find((c) => c.type === "Ready")).toMatchObject({
      status: "False",
      reason: "KubeletNotReady",
    });
    expect(node.spec?.taints?.map((t) => `${t.key}:${t.effect}`)).toEqual([
      "node.kubernetes.io/not-ready:NoSchedule",
      "node.kubernetes.io/not-ready:NoExecute",
    ]);

    await vi.waitFor(() =>
      expect(w.events.some((e) => e.type === "MODIFIED" && readyOf(e.object) === "False")).toBe(true),
    );
    const rvs = w.events.map((e) => Number(e.object.metadata?.resourceVersion));
    expect(rvs).toEqual([...rvs].sort((a, b) => a - b));
    expect(w.events.every((e) => e.object.metadata?.name === "n1")).toBe(true);
  });

  it("starts with ADDED events for what exists when no resourceVersion is given", async () => {
    h.sim.world.kube.registerNode("c1", agent("a"));
    h.sim.world.kube.registerNode("c1", agent("b"));
    const w = await open("/api/v1/nodes");
    await vi.waitFor(() =>
      expect(w.events.map((e) => `${e.type} ${e.object.metadata?.name}`)).toEqual(["ADDED a", "ADDED b"]),
    );
    h.sim.world.kube.removeNode("c1", "a");
    await vi.waitFor(() => expect(w.events.map((e) => e.type)).toContain("DELETED"));
    expect(w.events.at(-1)?.object.metadata?.name).toBe("a");
  });

  it("resumes from a resourceVersion: replays exactly what happened after it", async () => {
    h.sim.world.kube.registerNode("c1", agent("n1"));
    const rv = (await h.core.readNode({ name: "n1" })).metadata!.resourceVersion!;
    await h.core.patchNode({ name: "n1", body: { metadata: { labels: { step: "1" } } } }, merge);
    h.sim.world.kube.registerNode("c1", agent("n2"));
    await h.core.patchNode({ name: "n1", body: { metadata: { labels: { step: "2" } } } }, merge);

    const w = await open("/api/v1/nodes", { resourceVersion: rv });
    await vi.waitFor(() => expect(w.events).toHaveLength(3));
    expect(w.events.map((e) => `${e.type} ${e.object.metadata?.name}`)).toEqual([
      "MODIFIED n1",
      "ADDED n2",
      "MODIFIED n1",
    ]);
    expect((w.events[2]!.object as V1Node).metadata?.labels?.step).toBe("2");
    for (const e of w.events) expect(Number(e.object.metadata?.resourceVersion)).toBeGreaterThan(Number(rv));

    // and keeps streaming what comes next
    await h.core.patchNode({ name: "n2", body: { spec: { unschedulable: true } } }, merge);
    await vi.waitFor(() => expect(w.events.length).toBeGreaterThanOrEqual(5)); // the patch, then the controller's taint
    expect(w.events.slice(3).every((e) => e.type === "MODIFIED" && e.object.metadata?.name === "n2")).toBe(
      true,
    );
  });

  it("keeps a window of events per resource (at least 100, or the last 75 s): an old but recent-enough version resumes", async () => {
    h.sim.world.kube.registerNode("c1", agent("n1"));
    const rv = (await h.core.readNode({ name: "n1" })).metadata!.resourceVersion!;
    // An hour later, with fewer than 100 node events since, the version is still in the cache.
    h.sim.clock.advance(3_600_000);
    for (let i = 0; i < 10; i++)
      await h.core.patchNode({ name: "n1", body: { metadata: { labels: { x: String(i) } } } }, merge);
    // Events of other resources do not push nodes out of their window.
    for (let i = 0; i < WATCH_CACHE_MIN + 20; i++)
      await h.core.createNamespacedPod({
        namespace: "default",
        body: { metadata: { name: `p${i}` }, spec: podSpec() },
      });
    const w = await open("/api/v1/nodes", { resourceVersion: rv });
    await vi.waitFor(() => expect(w.events.filter((e) => e.type === "MODIFIED")).toHaveLength(10));
    expect(w.ended()).toBe(false);
  });

  it("answers a version out of the resource's window with an ERROR event carrying a 410 Status", async () => {
    h.sim.world.kube.registerNode("c1", agent("n1"));
    const rv = (await h.core.readNode({ name: "n1" })).metadata!.resourceVersion!;
    // More than 100 node events, then more than 75 s: the first ones fall out of the window.
    for (let i = 0; i <= WATCH_CACHE_MIN; i++)
      await h.core.patchNode({ name: "n1", body: { metadata: { labels: { x: String(i) } } } }, merge);
    h.sim.clock.advance(WATCH_CACHE_FRESH_MS + 1000);
    await h.core.patchNode({ name: "n1", body: { metadata: { labels: { x: "last" } } } }, merge);

    const w = await open("/api/v1/nodes", { resourceVersion: rv });
    await vi.waitFor(() => expect(w.ended()).toBe(true));
    expect(w.events).toHaveLength(1);
    expect(w.events[0]).toMatchObject({
      type: "ERROR",
      object: { kind: "Status", status: "Failure", reason: "Expired", code: 410 },
    });
    expect(String(w.events[0]!.object.message)).toMatch(/^too old resource version: \d+ \(\d+\)$/);

    // the current resourceVersion still works
    const fresh = (await h.core.listNode()).metadata!.resourceVersion!;
    const ok = await open("/api/v1/nodes", { resourceVersion: fresh });
    await h.core.patchNode({ name: "n1", body: { metadata: { labels: { x: "again" } } } }, merge);
    await vi.waitFor(() => expect(ok.events.map((e) => e.type)).toEqual(["MODIFIED"]));
  });

  it("is 410 for a version older than the one before its oldest kept event, as the watch cache (not the last dropped one)", async () => {
    h.sim.world.kube.registerNode("c1", agent("n1"));
    // Two writes of another resource after the node's first event: versions no node event has.
    const rvOf = (o: { metadata?: { resourceVersion?: string } }) => Number(o.metadata!.resourceVersion);
    const p1 = rvOf(
      await h.core.createNamespacedPod({
        namespace: "default",
        body: { metadata: { name: "a" }, spec: podSpec() },
      }),
    );
    await h.core.createNamespacedPod({
      namespace: "default",
      body: { metadata: { name: "b" }, spec: podSpec() },
    });
    // 100 node events in all, then more than 75 s, then one more: only the first falls out.
    for (let i = 1; i < WATCH_CACHE_MIN; i++)
      await h.core.patchNode({ name: "n1", body: { metadata: { labels: { x: String(i) } } } }, merge);
    h.sim.clock.advance(WATCH_CACHE_FRESH_MS + 1000);
    await h.core.patchNode({ name: "n1", body: { metadata: { labels: { x: "last" } } } }, merge);
    // The oldest node event kept came after both pods: p1 < oldest - 1, so kube-apiserver
    // answers 410 (watch_cache.go getAllEventsSinceLocked: `resourceVersion < oldest-1`),
    // although no node event after p1 was dropped.
    const w = await open("/api/v1/nodes", { resourceVersion: String(p1) });
    await vi.waitFor(() => expect(w.ended()).toBe(true));
    expect(w.events.map((e) => [e.type, e.object.code])).toEqual([["ERROR", 410]]);
  });

  it("filters by label selector: an object that stops matching arrives as DELETED", async () => {
    h.sim.world.kube.registerNode("c1", agent("n1", { labels: { pool: "a" } }));
    h.sim.world.kube.registerNode("c1", agent("n2", { labels: { pool: "b" } }));
    const rv = (await h.core.listNode()).metadata!.resourceVersion!;
    const w = await open("/api/v1/nodes", { resourceVersion: rv, labelSelector: "pool=a" });
    await h.core.patchNode({ name: "n2", body: { metadata: { labels: { x: "1" } } } }, merge);
    await h.core.patchNode({ name: "n1", body: { metadata: { labels: { pool: "c" } } } }, merge);
    await h.core.patchNode({ name: "n2", body: { metadata: { labels: { pool: "a" } } } }, merge);
    await vi.waitFor(() =>
      expect(w.events.map((e) => `${e.type} ${e.object.metadata?.name}`)).toEqual(["DELETED n1", "ADDED n2"]),
    );
  });

  it("watches pods of a namespace and sees time-driven changes without other traffic", async () => {
    h.sim.world.kube.registerNode("c1", agent("n1"));
    await h.core.createNamespacedPod({
      namespace: "default",
      body: { metadata: { name: "p" }, spec: podSpec() },
    });
    const rv = (await h.core.listNamespacedPod({ namespace: "default" })).metadata!.resourceVersion!;
    const w = await open("/api/v1/namespaces/default/pods", {
      resourceVersion: rv,
      fieldSelector: "metadata.name=p",
    });
    await h.core.deleteNamespacedPod({ name: "p", namespace: "default" });
    h.sim.clock.advance(LATENCIES.podTermination * 1000);
    // no request follows: the watch's own tick applies the termination
    await vi.waitFor(() => expect(w.events.map((e) => e.type)).toEqual(["MODIFIED", "DELETED"]));
  });

  it("a watcher hears a pod turn Ready when it falls due, not at the next tick", async () => {
    // As on a real cluster, where the kubelet's status update reaches the API server's
    // watchers at once. Three Deployments started 70 ms apart: a 200 ms ticker alone
    // would tell at least one of them 130 ms or more late, whatever its phase.
    const readyMs = 1_000;
    const sim = await startSim({ seed: 3, timeScale: 1, latencies: { ...LATENCIES, deploymentReady: 1 } });
    try {
      sim.world.kube.ensureCluster("c2");
      sim.world.kube.registerNode("c2", agent("n1"));
      const kc = new KubeConfig();
      kc.loadFromString(sim.world.kube.kubeconfig("c2"));
      const apps = kc.makeApiClient(AppsV1Api);
      const core = kc.makeApiClient(CoreV1Api);
      const rv = (await core.listNamespacedPod({ namespace: "default" })).metadata!.resourceVersion!;
      const readyAt = new Map<string, number>();
      const w = await watch(kc, "/api/v1/namespaces/default/pods", { resourceVersion: rv });
      stops.push(w.stop);
      const seen = () => {
        for (const e of w.events) {
          const app = (e.object.metadata as { labels?: Record<string, string> }).labels?.app ?? "";
          const ready = (e.object as V1Pod).status?.conditions?.some(
            (c) => c.type === "Ready" && c.status === "True",
          );
          if (ready && !readyAt.has(app)) readyAt.set(app, performance.now());
        }
      };
      const created = new Map<string, number>();
      for (const app of ["a", "b", "c"]) {
        created.set(app, performance.now());
        await apps.createNamespacedDeployment({
          namespace: "default",
          body: {
            metadata: { name: app },
            spec: {
              replicas: 1,
              selector: { matchLabels: { app } },
              template: { metadata: { labels: { app } }, spec: podSpec() },
            },
          },
        });
        await new Promise((r) => setTimeout(r, 70));
      }
      await vi.waitFor(
        () => {
          seen();
          expect(readyAt.size).toBe(3);
        },
        { timeout: 5_000, interval: 5 },
      );
      const lateMs = [...created].map(([app, t]) => readyAt.get(app)! - (t + readyMs));
      for (const late of lateMs) {
        expect(late).toBeGreaterThanOrEqual(-5); // never before it is due
        // Under 130 ms, which a ticker could not do for all three; not tighter, for a
        // loaded machine's timers (60 ms failed there once).
        expect(late).toBeLessThan(125);
      }
    } finally {
      await sim.stop();
    }
  });

  it("ends open watches during a kube-down outage; a new watch gets 503 until it is over", async () => {
    const w = await open("/api/v1/nodes");
    h.sim.faults.add({ kind: "kube-down", service: "kube", rate: 1, until: h.sim.clock.now() + 30_000 });
    await vi.waitFor(() => expect(w.ended()).toBe(true));
    const again = await open("/api/v1/nodes");
    expect(again.ended()).toMatchObject({ statusCode: 503 });
    h.sim.clock.advance(31_000);
    const after = await open("/api/v1/nodes");
    h.sim.world.kube.registerNode("c1", agent("n1"));
    await vi.waitFor(() => expect(after.events.map((e) => e.type)).toEqual(["ADDED"]));
  });

  it("feeds client-node's informer (list, then watch from the list's resourceVersion)", async () => {
    h.sim.world.kube.registerNode("c1", agent("n1"));
    const informer = makeInformer(h.kc, "/api/v1/nodes", () => h.core.listNode());
    const seen: string[] = [];
    informer.on(ADD, (n) => seen.push(`add ${n.metadata?.name}`));
    informer.on(UPDATE, (n) => seen.push(`update ${n.metadata?.name} ${readyOf(n)}`));
    informer.on(DELETE, (n) => seen.push(`delete ${n.metadata?.name}`));
    await informer.start();
    stops.push(() => void informer.stop());
    h.sim.world.kube.registerNode("c1", agent("n2"));
    h.sim.world.kube.setNodeReady("c1", "n1", false);
    h.sim.world.kube.removeNode("c1", "n2");
    await vi.waitFor(() => expect(seen).toContain("delete n2"));
    expect(seen.slice(0, 3)).toEqual(["add n1", "add n2", "update n1 False"]);
    expect(informer.list().map((n) => n.metadata?.name)).toEqual(["n1"]);
  });

  it("a watch from a resourceVersion newer than the server's stays open and silent: no events, no bookmarks", async () => {
    // What a client sees after the cluster's datastore was replaced under it: the real
    // watch cache sends nothing at or below the watch's resourceVersion, bookmarks included.
    h.sim.world.kube.registerNode("c1", agent("n1"));
    const current = Number((await h.core.listNode()).metadata!.resourceVersion!);
    const w = await open("/api/v1/nodes", {
      resourceVersion: String(current + 1000),
      allowWatchBookmarks: true,
    });
    await h.core.patchNode({ name: "n1", body: { metadata: { labels: { x: "1" } } } }, merge);
    h.sim.world.kube.registerNode("c1", agent("n2"));
    h.sim.clock.advance(5 * 60_000);
    await new Promise((r) => setTimeout(r, 600)); // a few of the sim's watch ticks
    expect(w.events).toEqual([]);
    expect(w.ended()).toBe(false);
  });

  it("sends a bookmark about every minute, only when the server moved past the watch, and one before the deadline", async () => {
    h.sim.world.kube.registerNode("c1", agent("n1"));
    const rv = (await h.core.listNode()).metadata!.resourceVersion!;
    const w = await open("/api/v1/nodes", {
      resourceVersion: rv,
      allowWatchBookmarks: true,
      timeoutSeconds: 600,
    });
    h.sim.clock.advance(61_000);
    await new Promise((r) => setTimeout(r, 500));
    expect(w.events).toEqual([]); // a quiet cluster: nothing to bookmark
    await h.core.createNamespacedPod({
      namespace: "default",
      body: { metadata: { name: "p" }, spec: podSpec() },
    });
    h.sim.clock.advance(61_000);
    await vi.waitFor(() => expect(w.events.map((e) => e.type)).toEqual(["BOOKMARK"]));
    expect(Number(w.events[0]!.object.metadata?.resourceVersion)).toBeGreaterThan(Number(rv));
    await h.core.createNamespacedPod({
      namespace: "default",
      body: { metadata: { name: "q" }, spec: podSpec() },
    });
    h.sim.clock.advance(600_000 - 122_000 - 1_000); // 1 s before the deadline
    await vi.waitFor(() => expect(w.events.map((e) => e.type)).toEqual(["BOOKMARK", "BOOKMARK"]));
  });

  it("ends the watch at timeoutSeconds (wall time: sim time at time scale 1)", async () => {
    const w = await open("/api/v1/nodes", { timeoutSeconds: 30 });
    h.sim.clock.advance(31_000);
    await vi.waitFor(() => expect(w.ended()).toBe(true));
  });

  it("at a time scale, a watch lives timeoutSeconds of wall time, not of the faster sim time", async () => {
    // kube-apiserver's timer on a watch is wall time; the scale speeds up the world only.
    const fast = await kubeSim("c1", 1000);
    try {
      const w = await watch(fast.kc, "/api/v1/nodes", { timeoutSeconds: 2 });
      stops.push(w.stop);
      // 2 s of sim time (2 ms of wall time) and more: a scaled deadline would have ended it.
      fast.sim.clock.advance(10_000);
      await sleep(500); // 500 s of sim time at scale 1,000, still within the 2 s of wall time
      expect(w.ended()).toBe(false);
      // 2 s of wall time is 2,000 s of sim time: the server ends it there.
      fast.sim.clock.advance(2_000_000);
      await vi.waitFor(() => expect(w.ended()).toBe(true));
    } finally {
      await fast.sim.stop();
    }
  });
});
