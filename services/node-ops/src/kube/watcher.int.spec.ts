/**
 * The watcher's resume / relist / backoff rules, step by step, against a scripted
 * `KubeNodes` port (the cluster side) and a real NATS event store (the log side): a
 * closed watch resumes from the last recorded resourceVersion, 410 relists, a failure
 * records the API unreachable once and relists when it answers again.
 */
import {
  CommandHandler,
  catalogue,
  EventStore,
  type KubeCommand,
  type KubeEvent,
  type ObservedNode,
} from "@cairn/events";
import { startJetStream, type TestJetStream, until } from "@cairn/events/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { KubeNodes, NodeList, NodeWatchEnd, NodeWatchEvent } from "../ports.ts";
import { type KubeState, kubeDecider } from "./decider.ts";
import { createNodeWatcher } from "./watcher.ts";

let js: TestJetStream;
let store: EventStore;
let handler: CommandHandler<KubeCommand, KubeEvent, KubeState>;

beforeAll(async () => {
  js = await startJetStream();
  store = new EventStore({ js: js.nats.js, jsm: js.nats.jsm, catalogue });
  handler = new CommandHandler({ decider: kubeDecider, store, catalogue });
}, 30_000);
afterAll(async () => {
  await js?.dispose();
});

const node = (name: string, ready = true): ObservedNode => ({
  node: name,
  role: "agent",
  labels: {},
  taints: [],
  unschedulable: false,
  ready,
  ...(ready ? {} : { notReadyReason: "KubeletNotReady" }),
  pressure: [],
});

type Emit = (e: NodeWatchEvent) => void;
type End = (e: NodeWatchEnd) => void;
/** What one list or watch call does; the script runs them in order. */
type ListStep = () => Promise<NodeList>;
type WatchStep = (emit: Emit, end: End) => void;

/** A cluster side that follows a script and records how it was called. */
function scripted(lists: ListStep[], watches: WatchStep[]) {
  const calls: string[] = [];
  const port: KubeNodes = {
    listNodes: async () => {
      calls.push("list");
      const step = lists.shift();
      if (!step) return await new Promise<never>(() => {}); // script over: hang
      return await step();
    },
    watchNodes: async (_c, rv, onEvent, onEnd) => {
      calls.push(`watch ${rv}`);
      const step = watches.shift();
      if (step) setTimeout(() => step(onEvent, onEnd), 5);
      return { stop: () => {} };
    },
    forgetKubeconfig: () => {
      calls.push("forget");
    },
  };
  return { port, calls };
}

const types = async (clusterId: string) =>
  (await store.load({ type: "kube", id: clusterId })).events.map((e) => e.type);

describe("the node watcher", () => {
  it("closed → resumes from the last recorded resourceVersion; 410 → relists; nothing recorded twice", async () => {
    const { port, calls } = scripted(
      [
        async () => ({ nodes: [node("a")], resourceVersion: "10" }),
        async () => ({ nodes: [node("a", false)], resourceVersion: "30" }),
      ],
      [
        (emit, end) => {
          emit({ kind: "upsert", node: node("a", false), resourceVersion: "11" });
          emit({ kind: "bookmark", resourceVersion: "15" });
          end({ reason: "closed" });
        },
        (emit, end) => {
          // The same change again (a replay): no new fact.
          emit({ kind: "upsert", node: node("a", false), resourceVersion: "16" });
          end({ reason: "expired" });
        },
      ],
    );
    const watcher = createNodeWatcher({ handler, nodes: port, backoff: { baseMs: 1, maxMs: 5 } });
    watcher.watch("w-1");
    await until("the relist's watch", () => calls.includes("watch 30"));
    await watcher.stop();
    expect(calls).toEqual(["list", "watch 10", "watch 15", "list", "watch 30"]);
    expect(await types("w-1")).toEqual([
      "kube.api-reachable",
      "kube.node-registered",
      "kube.node-ready",
      "kube.node-not-ready",
    ]);
  });

  it("a failed watch: unreachable once, relists with backoff until it answers, then reachable", async () => {
    const down = async (): Promise<NodeList> => {
      throw new Error("the Kubernetes API of cluster w-2 answered 503");
    };
    const { port, calls } = scripted(
      [
        async () => ({ nodes: [node("a")], resourceVersion: "1" }),
        down,
        down,
        async () => ({ nodes: [node("a")], resourceVersion: "9" }),
      ],
      [
        (_emit, end) =>
          end({ reason: "failed", error: new Error("the Kubernetes API of cluster w-2 answered 503") }),
      ],
    );
    const watcher = createNodeWatcher({ handler, nodes: port, backoff: { baseMs: 1, maxMs: 5 } });
    watcher.watch("w-2");
    expect(watcher.clusters()).toEqual(["w-2"]);
    await until("the watch after the outage", () => calls.includes("watch 9"));
    await watcher.unwatch("w-2");
    expect(watcher.clusters()).toEqual([]);
    expect(calls).toEqual(["list", "watch 1", "list", "list", "list", "watch 9"]);
    const events = (await store.load({ type: "kube", id: "w-2" })).events;
    expect(events.map((e) => e.type)).toEqual([
      "kube.api-reachable",
      "kube.node-registered",
      "kube.node-ready",
      "kube.api-unreachable",
      "kube.api-reachable",
    ]);
    expect(events[3]?.data).toEqual({ reason: "the Kubernetes API of cluster w-2 answered 503" });
  });

  it("a re-published kubeconfig (newer version) restarts the watch with the kubeconfig read again", async () => {
    const listed = async () => ({ nodes: [node("a")], resourceVersion: "1" });
    const { port, calls } = scripted([listed, listed], []);
    const watcher = createNodeWatcher({ handler, nodes: port, backoff: { baseMs: 1, maxMs: 5 } });
    const kubeconfig = (version: number) => ({ parameter: "/cairn/w-4/kubeconfig", version });
    watcher.watch("w-4", kubeconfig(1));
    await until("the first watch", () => calls.includes("watch 1"));
    watcher.watch("w-4", kubeconfig(1)); // the same publication again (a redelivery): nothing
    watcher.watch("w-4", kubeconfig(2));
    await until("the second watch", () => calls.filter((c) => c === "watch 1").length === 2);
    await watcher.stop();
    expect(calls).toEqual(["list", "watch 1", "forget", "list", "watch 1"]);
    // The relist found nothing new.
    expect(await types("w-4")).toEqual(["kube.api-reachable", "kube.node-registered", "kube.node-ready"]);
  });

  it("a list of 120 nodes is recorded in commits of at most 50 nodes' facts; a relist lacking some removes them", async () => {
    const many = Array.from({ length: 120 }, (_, i) => node(`n-${String(i).padStart(3, "0")}`));
    const { port, calls } = scripted(
      [
        async () => ({ nodes: many, resourceVersion: "1" }),
        async () => ({ nodes: many.slice(0, 100), resourceVersion: "2" }),
      ],
      [(_emit, end) => end({ reason: "expired" })],
    );
    const watcher = createNodeWatcher({ handler, nodes: port, backoff: { baseMs: 1, maxMs: 5 } });
    watcher.watch("w-6");
    await until("the relist's watch", () => calls.includes("watch 2"));
    await watcher.stop();
    const events = (await store.load({ type: "kube", id: "w-6" })).events;
    const commits = new Map<number, string[]>();
    for (const e of events) commits.set(e.sequence, [...(commits.get(e.sequence) ?? []), e.type]);
    // Each commit: one node's registered + ready per node, 50 nodes at most (one whole-list
    // commit of 120 nodes would be 240 facts; at 500 nodes ~740 KB).
    for (const types of commits.values()) expect(types.length).toBeLessThanOrEqual(100);
    expect(events.filter((e) => e.type === "kube.node-registered")).toHaveLength(120);
    expect(events.filter((e) => e.type === "kube.node-ready")).toHaveLength(120);
    // The relist's own commit: the 20 nodes it lacks, and nothing recorded twice.
    expect(
      events.filter((e) => e.type === "kube.node-removed").map((e) => (e.data as { node: string }).node),
    ).toEqual(many.slice(100).map((n) => n.node));
    expect(events.filter((e) => e.type === "kube.api-reachable")).toHaveLength(1);
  });

  it("stop ends a watch in hand and a backoff at once", async () => {
    const { port } = scripted([async () => ({ nodes: [], resourceVersion: "1" })], []);
    const watcher = createNodeWatcher({ handler, nodes: port, backoff: { baseMs: 60_000, maxMs: 60_000 } });
    watcher.watch("w-3");
    await until("the list to be recorded", async () => (await types("w-3")).length > 0);
    await watcher.stop(); // the scripted watch never ends by itself: stop must not wait for it
    expect(watcher.clusters()).toEqual([]);
    // A list that never answers (a dead API without a connection error) is not waited for either.
    const hanging = scripted([], []);
    const other = createNodeWatcher({ handler, nodes: hanging.port });
    other.watch("w-5");
    await until("the list to start", () => hanging.calls.includes("list"));
    await other.stop();
    expect(await types("w-5")).toEqual([]);
  });
});
