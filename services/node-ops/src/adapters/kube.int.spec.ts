/**
 * The Kubernetes adapter's resilience against the sim's API server, through the real
 * client-node: a 503 storm is retried and rides out; a 404 or a 403 is not retried; a
 * long storm opens the breaker of that cluster's API server only, with its own settings
 * (5 failed calls); the metrics show retries, the breaker and the calls it refused.
 */
import { catalogue, EventStore, isPermanent } from "@cairn/events";
import { startJetStream, type TestJetStream } from "@cairn/events/testing";
import {
  type BreakerState,
  RESILIENCE_METRICS,
  Resilience,
  registry,
  resilienceMetricsObserver,
} from "@cairn/service";
import { SIM_CREDENTIALS, type Sim, startSim, ZERO_LATENCIES } from "@cairn/sim";
import { CoreV1Api } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { simCluster } from "../testing/sim-cluster.ts";
import { createKube } from "./kube.ts";
import { KubeBreakerOpen, KubeForbidden, KubeNotFound, KubeUnavailable } from "./kube-errors.ts";
import { guardedApi, KUBE_SERVICE } from "./kube-resilience.ts";

let js: TestJetStream;
let sim: Sim;
let store: EventStore;
const states: { region: string; state: BreakerState }[] = [];
let resilience: Resilience;
let kube: ReturnType<typeof createKube>;

beforeAll(async () => {
  js = await startJetStream();
  sim = await startSim({ seed: 5, timeScale: 100, latencies: ZERO_LATENCIES });
  store = new EventStore({ js: js.nats.js, jsm: js.nats.jsm, catalogue });
  for (const id of ["storm-1", "storm-2", "calm-1"]) await simCluster(sim, store, id, ["node-a", "node-b"]);
  const metrics = resilienceMetricsObserver();
  resilience = new Resilience({
    // Millisecond backoffs; the breaker's settings are Kubernetes' own.
    policies: { default: { baseDelayMs: 1, maxDelayMs: 2 } },
    observer: {
      ...metrics,
      onBreakerStateChange: (e) => {
        states.push({ region: e.region, state: e.state });
        metrics.onBreakerStateChange?.(e);
      },
    },
  });
  kube = createKube({ nats: js.nats, endpoint: sim.url, credentials: SIM_CREDENTIALS, resilience });
}, 30_000);
afterAll(async () => {
  await sim?.stop();
  await js?.dispose();
});

const kubeRequests = (clusterId: string, action?: string) =>
  sim.requests.list({ service: "kube", region: clusterId, ...(action ? { action } : {}) });
const metric = async (name: string, labels: string) => {
  const m = new RegExp(`^${name}\\{${labels}\\} (\\d+)$`, "m").exec(await registry.metrics());
  return m ? Number(m[1]) : 0;
};

describe("Kubernetes resilience on the sim", () => {
  it("a 503 storm is retried and ridden out; the retries show in the metrics", async () => {
    const before = await metric(
      RESILIENCE_METRICS.retries,
      `service="kubernetes",region="storm-1",operation="patchNode"`,
    );
    sim.faults.add({
      kind: "kube-down",
      service: "kube",
      action: "patch",
      match: { clusterId: "storm-1" },
      count: 2,
    });
    await kube.cordon("storm-1", "node-a", { "cairn.dev/cordoned-by": "test" });
    expect(kubeRequests("storm-1", "patch node").map((r) => r.status)).toEqual([503, 503, 200]);
    expect((await kube.getNode("storm-1", "node-a"))?.unschedulable).toBe(true);
    expect(
      await metric(RESILIENCE_METRICS.retries, `service="kubernetes",region="storm-1",operation="patchNode"`),
    ).toBe(before + 2);
    expect(resilience.breakerState(KUBE_SERVICE, "storm-1")).toBe("closed");
  });

  it("a 404 is not retried: a missing node is a permanent KubeNotFound, with its hint", async () => {
    const patches = kubeRequests("storm-1", "patch node").length;
    const err = await kube.cordon("storm-1", "no-such-node", {}).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KubeNotFound);
    expect(isPermanent(err)).toBe(true);
    expect((err as KubeNotFound).remediation).toMatch(/check the node name/);
    expect(
      kubeRequests("storm-1", "patch node")
        .slice(patches)
        .map((r) => r.status),
    ).toEqual([404]);
    // getNode's 404 is its answer, once.
    const gets = kubeRequests("storm-1", "get node").length;
    await expect(kube.getNode("storm-1", "no-such-node")).resolves.toBeUndefined();
    expect(kubeRequests("storm-1", "get node").length).toBe(gets + 1);
  });

  it("a 403 is not retried and does not count towards the breaker", async () => {
    const core = guardedApi(
      resilience,
      "storm-1",
      (await kube.kubeConfig("storm-1")).makeApiClient(CoreV1Api),
    );
    for (let i = 0; i < 6; i++) {
      // The sim, like Kubernetes, forbids deleting the default namespace.
      const err = await core.deleteNamespace({ name: "default" }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(KubeForbidden);
      expect(isPermanent(err)).toBe(true);
      expect((err as KubeForbidden).remediation).toMatch(/RBAC/);
    }
    expect(kubeRequests("storm-1", "delete namespace").map((r) => r.status)).toEqual(Array(6).fill(403));
    expect(resilience.breakerState(KUBE_SERVICE, "storm-1")).toBe("closed");
  });

  it("a long storm opens that cluster's breaker after 5 failed calls: calls fail fast, other clusters flow", async () => {
    const rejectedBefore = await metric(
      RESILIENCE_METRICS.rejected,
      `service="kubernetes",region="storm-2",reason="breaker-open"`,
    );
    const fault = sim.faults.add({
      kind: "kube-down",
      service: "kube",
      match: { clusterId: "storm-2" },
      rate: 1,
    });
    for (let i = 0; i < 5; i++) {
      const err = await kube.getNode("storm-2", "node-a").catch((e: unknown) => e);
      expect(err).toBeInstanceOf(KubeUnavailable);
      expect(isPermanent(err)).toBe(false);
    }
    expect(states.filter((s) => s.region === "storm-2").map((s) => s.state)).toEqual(["open"]);
    // Each call: the default policy's 3 tries, then it counted once.
    expect(kubeRequests("storm-2", "get node")).toHaveLength(5 * 3);
    const fast = await kube.getNode("storm-2", "node-a").catch((e: unknown) => e);
    expect(fast).toBeInstanceOf(KubeBreakerOpen);
    expect((fast as KubeBreakerOpen).remediation).toMatch(/A breaker is open/);
    expect(kubeRequests("storm-2", "get node")).toHaveLength(15);
    expect(
      await metric(
        RESILIENCE_METRICS.rejected,
        `service="kubernetes",region="storm-2",reason="breaker-open"`,
      ),
    ).toBe(rejectedBefore + 1);
    expect(await metric(RESILIENCE_METRICS.breakerState, `service="kubernetes",region="storm-2"`)).toBe(2);
    // Another cluster's API server is another breaker.
    await expect(kube.getNode("calm-1", "node-a")).resolves.toMatchObject({ name: "node-a" });
    expect(resilience.breakerState(KUBE_SERVICE, "calm-1")).toBe("closed");
    sim.faults.remove(fault.id);
  });
});
