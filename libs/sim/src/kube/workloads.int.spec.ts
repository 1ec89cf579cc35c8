import { PatchStrategy, setHeaderOptions, type V1Namespace, type V1Pod } from "@kubernetes/client-node";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { agent, apiError, type KubeHarness, kubeSim, LATENCIES, podSpec } from "./test-support.ts";

const merge = setHeaderOptions("Content-Type", PatchStrategy.MergePatch);

let h: KubeHarness;
beforeEach(async () => {
  h = await kubeSim();
});
afterEach(async () => {
  await h.sim.stop();
});

const createPod = (
  name: string,
  labels: Record<string, string>,
  spec: Record<string, unknown> = {},
  namespace = "default",
) =>
  h.core.createNamespacedPod({
    namespace,
    body: { metadata: { name, labels }, spec: podSpec(spec) } as V1Pod,
  });

/** The disruption controller processes a new or changed budget after `pdbSync`. */
const pdbProcessed = () => h.sim.clock.advance(LATENCIES.pdbSync * 1000);

const podsOn = async (node: string) =>
  (await h.core.listPodForAllNamespaces({ fieldSelector: `spec.nodeName=${node}` })).items
    .map((p) => p.metadata?.name)
    .sort();

describe("pods", () => {
  it("schedules a pod onto a Ready, schedulable node it tolerates and whose labels match", async () => {
    h.sim.world.kube.registerNode("c1", agent("cordoned"));
    h.sim.world.kube.registerNode(
      "c1",
      agent("tainted", { taints: [{ key: "dedicated", value: "gpu", effect: "NoSchedule" }] }),
    );
    h.sim.world.kube.registerNode("c1", agent("other-pool", { labels: { pool: "b" } }));
    h.sim.world.kube.registerNode("c1", agent("good", { labels: { pool: "a" } }));
    h.sim.world.kube.registerNode("c1", agent("down", { labels: { pool: "a" } }));
    h.sim.world.kube.setNodeReady("c1", "down", false);
    await h.core.patchNode({ name: "cordoned", body: { spec: { unschedulable: true } } }, merge);

    const created = await createPod("web", { app: "web" }, { nodeSelector: { pool: "a" } });
    expect(created.status?.phase).toBe("Pending");
    const pod = await h.core.readNamespacedPod({ name: "web", namespace: "default" });
    expect(pod.spec?.nodeName).toBe("good");
    expect(pod.status?.phase).toBe("Running");
    expect(pod.status?.conditions?.find((c) => c.type === "Ready")?.status).toBe("True");
    expect(pod.status?.podIP).toMatch(/^10\.42\./);

    const gpu = await createPod(
      "gpu",
      {},
      {
        tolerations: [{ key: "dedicated", operator: "Equal", value: "gpu", effect: "NoSchedule" }],
        nodeSelector: { "kubernetes.io/hostname": "tainted" },
      },
    );
    expect(gpu.metadata?.name).toBe("gpu");
    expect((await h.core.readNamespacedPod({ name: "gpu", namespace: "default" })).spec?.nodeName).toBe(
      "tainted",
    );

    await createPod("nowhere", {}, { nodeSelector: { pool: "z" } });
    const pending = await h.core.readNamespacedPod({ name: "nowhere", namespace: "default" });
    expect(pending.spec?.nodeName).toBeUndefined();
    expect(pending.status?.phase).toBe("Pending");
    const scheduled = pending.status?.conditions?.find((c) => c.type === "PodScheduled");
    expect(scheduled).toMatchObject({ status: "False", reason: "Unschedulable" });
    expect(scheduled?.message).toMatch(
      /^0\/5 nodes are available: .*didn't match Pod's node affinity\/selector/,
    );

    // a matching node appears: the scheduler places the pending pod
    h.sim.world.kube.registerNode("c1", agent("late", { labels: { pool: "z" } }));
    expect((await h.core.readNamespacedPod({ name: "nowhere", namespace: "default" })).spec?.nodeName).toBe(
      "late",
    );
  });

  it("lists DaemonSet-owned and mirror pods by spec.nodeName across namespaces; eviction of them is allowed", async () => {
    h.sim.world.kube.registerNode("c1", agent("n1"));
    h.sim.world.kube.registerNode("c1", agent("n2"));
    // A real DaemonSet (K3s' svclb is one): its controller puts a pod on each node.
    const ds = await h.apps.createNamespacedDaemonSet({
      namespace: "kube-system",
      body: {
        metadata: { name: "svclb" },
        spec: {
          selector: { matchLabels: { app: "svclb" } },
          template: { metadata: { labels: { app: "svclb" } }, spec: podSpec() },
        },
      },
    });
    // A mirror pod, as a kubelet makes one for a static pod: owned by its Node.
    const n1 = await h.core.readNode({ name: "n1" });
    await h.core.createNamespacedPod({
      namespace: "kube-system",
      body: {
        metadata: {
          name: "static-n1",
          annotations: { "kubernetes.io/config.mirror": "abc" },
          ownerReferences: [
            { apiVersion: "v1", kind: "Node", name: "n1", uid: n1.metadata!.uid!, controller: true },
          ],
        },
        spec: podSpec({ nodeName: "n1" }),
      },
    });
    await createPod("app", { app: "x" }, { nodeName: "n2" });

    const [svclbN1] = (
      await h.core.listNamespacedPod({
        namespace: "kube-system",
        fieldSelector: "spec.nodeName=n1",
        labelSelector: "app=svclb",
      })
    ).items;
    expect(svclbN1?.metadata?.ownerReferences?.[0]).toMatchObject({
      kind: "DaemonSet",
      uid: ds.metadata?.uid,
    });
    const svclb = svclbN1!.metadata!.name!;
    expect(await podsOn("n1")).toEqual(["static-n1", svclb].sort());
    expect((await podsOn("n2")).filter((n) => n !== "app")).toHaveLength(1);

    await h.core.createNamespacedPodEviction({
      name: svclb,
      namespace: "kube-system",
      body: { metadata: { name: svclb, namespace: "kube-system" } },
    });
    const evicted = await h.core.readNamespacedPod({ name: svclb, namespace: "kube-system" });
    expect(evicted.metadata?.deletionTimestamp).toBeDefined();
  });

  it("deletes a pod gracefully: deletionTimestamp, then gone after podTermination", async () => {
    h.sim.world.kube.registerNode("c1", agent("n1"));
    await createPod("p1", {});
    const deleted = await h.core.deleteNamespacedPod({ name: "p1", namespace: "default" });
    expect(deleted.metadata?.deletionTimestamp).toBeDefined();
    expect(
      (await h.core.readNamespacedPod({ name: "p1", namespace: "default" })).metadata
        ?.deletionGracePeriodSeconds,
    ).toBe(30);
    h.sim.clock.advance(LATENCIES.podTermination * 1000);
    expect((await apiError(h.core.readNamespacedPod({ name: "p1", namespace: "default" }))).code).toBe(404);

    await createPod("p2", {});
    await h.core.deleteNamespacedPod({ name: "p2", namespace: "default", gracePeriodSeconds: 0 });
    expect((await apiError(h.core.readNamespacedPod({ name: "p2", namespace: "default" }))).code).toBe(404);
  });

  it("keeps a pod of a NotReady node Terminating until the node comes back", async () => {
    h.sim.world.kube.registerNode("c1", agent("n1"));
    await createPod("p1", {});
    h.sim.world.kube.setNodeReady("c1", "n1", false);
    expect(
      (await h.core.readNamespacedPod({ name: "p1", namespace: "default" })).status?.conditions?.find(
        (c) => c.type === "Ready",
      )?.status,
    ).toBe("False");
    await h.core.deleteNamespacedPod({ name: "p1", namespace: "default" });
    h.sim.clock.advance(60_000);
    expect(
      (await h.core.readNamespacedPod({ name: "p1", namespace: "default" })).metadata?.deletionTimestamp,
    ).toBeDefined();
    h.sim.world.kube.setNodeReady("c1", "n1", true);
    h.sim.clock.advance(LATENCIES.podTermination * 1000);
    expect((await apiError(h.core.readNamespacedPod({ name: "p1", namespace: "default" }))).code).toBe(404);
  });

  it("rejects a duplicate (409), a missing namespace (404) and an invalid pod (422)", async () => {
    h.sim.world.kube.registerNode("c1", agent("n1"));
    await createPod("p1", {});
    const dup = await apiError(createPod("p1", {}));
    expect(dup.code).toBe(409);
    expect(dup.status).toMatchObject({ reason: "AlreadyExists", message: 'pods "p1" already exists' });
    const nsMissing = await apiError(createPod("p2", {}, {}, "nope"));
    expect(nsMissing.code).toBe(404);
    expect(nsMissing.status?.message).toBe('namespaces "nope" not found');
    const noName = await apiError(
      h.core.createNamespacedPod({ namespace: "default", body: { spec: podSpec() } as V1Pod }),
    );
    expect(noName.code).toBe(422);
    expect(noName.status?.message).toContain(
      "metadata.name: Required value: name or generateName is required",
    );
    const generated = await h.core.createNamespacedPod({
      namespace: "default",
      body: { metadata: { generateName: "job-" }, spec: podSpec() },
    });
    expect(generated.metadata?.name).toMatch(/^job-[a-z0-9]{5}$/);
  });
});

describe("eviction and PodDisruptionBudgets", () => {
  it("refuses an eviction that would violate the budget (429), allows it once the budget allows", async () => {
    h.sim.world.kube.registerNode("c1", agent("n1"));
    for (const n of ["db-0", "db-1", "db-2"]) await createPod(n, { app: "db" }, { nodeName: "n1" });
    await h.policy.createNamespacedPodDisruptionBudget({
      namespace: "default",
      body: {
        metadata: { name: "db-pdb" },
        spec: { minAvailable: 3, selector: { matchLabels: { app: "db" } } },
      },
    });
    pdbProcessed();
    const pdb = await h.policy.readNamespacedPodDisruptionBudget({ name: "db-pdb", namespace: "default" });
    expect(pdb.status).toMatchObject({
      currentHealthy: 3,
      desiredHealthy: 3,
      disruptionsAllowed: 0,
      expectedPods: 3,
    });

    const refused = await apiError(
      h.core.createNamespacedPodEviction({
        name: "db-0",
        namespace: "default",
        body: { metadata: { name: "db-0", namespace: "default" } },
      }),
    );
    expect(refused.code).toBe(429);
    expect(refused.status).toMatchObject({
      status: "Failure",
      reason: "TooManyRequests",
      message: "Cannot evict pod as it would violate the pod's disruption budget.",
      details: {
        causes: [
          {
            reason: "DisruptionBudget",
            message: "The disruption budget db-pdb needs 3 healthy pods and has 3 currently",
          },
        ],
      },
    });
    expect(
      (await h.core.readNamespacedPod({ name: "db-0", namespace: "default" })).metadata?.deletionTimestamp,
    ).toBeUndefined();

    await h.policy.patchNamespacedPodDisruptionBudget(
      { name: "db-pdb", namespace: "default", body: { spec: { minAvailable: 2 } } },
      merge,
    );
    pdbProcessed();
    expect(
      (await h.policy.readNamespacedPodDisruptionBudget({ name: "db-pdb", namespace: "default" })).status
        ?.disruptionsAllowed,
    ).toBe(1);

    await h.core.createNamespacedPodEviction({
      name: "db-0",
      namespace: "default",
      body: { metadata: { name: "db-0", namespace: "default" } },
    });
    const terminating = await h.core.readNamespacedPod({ name: "db-0", namespace: "default" });
    expect(terminating.metadata?.deletionTimestamp).toBeDefined();
    const after = await h.policy.readNamespacedPodDisruptionBudget({ name: "db-pdb", namespace: "default" });
    expect(after.status).toMatchObject({ currentHealthy: 2, disruptionsAllowed: 0 });

    // the next one is refused again: the budget is used up
    expect(
      (
        await apiError(
          h.core.createNamespacedPodEviction({
            name: "db-1",
            namespace: "default",
            body: { metadata: { name: "db-1" } },
          }),
        )
      ).code,
    ).toBe(429);

    h.sim.clock.advance(LATENCIES.podTermination * 1000);
    expect((await apiError(h.core.readNamespacedPod({ name: "db-0", namespace: "default" }))).code).toBe(404);
    expect(await podsOn("n1")).toEqual(["db-1", "db-2"]);
  });

  it("allows an eviction once another pod joins the budget; supports maxUnavailable percentages", async () => {
    h.sim.world.kube.registerNode("c1", agent("n1"));
    for (const n of ["w-0", "w-1"]) await createPod(n, { app: "w" }, { nodeName: "n1" });
    await h.policy.createNamespacedPodDisruptionBudget({
      namespace: "default",
      body: { metadata: { name: "w" }, spec: { minAvailable: 2, selector: { matchLabels: { app: "w" } } } },
    });
    pdbProcessed();
    expect(
      (
        await apiError(
          h.core.createNamespacedPodEviction({
            name: "w-0",
            namespace: "default",
            body: { metadata: { name: "w-0" } },
          }),
        )
      ).code,
    ).toBe(429);
    await createPod("w-2", { app: "w" }, { nodeName: "n1" });
    await h.core.createNamespacedPodEviction({
      name: "w-0",
      namespace: "default",
      body: { metadata: { name: "w-0" } },
    });

    await h.apps.createNamespacedDeployment({
      namespace: "default",
      body: {
        metadata: { name: "o" },
        spec: {
          replicas: 4,
          selector: { matchLabels: { app: "o" } },
          template: { metadata: { labels: { app: "o" } }, spec: podSpec() },
        },
      },
    });
    await h.policy.createNamespacedPodDisruptionBudget({
      namespace: "default",
      body: {
        metadata: { name: "other" },
        spec: { maxUnavailable: "50%", selector: { matchLabels: { app: "o" } } },
      },
    });
    h.sim.clock.advance(LATENCIES.deploymentReady * 1000);
    const other = await h.policy.readNamespacedPodDisruptionBudget({ name: "other", namespace: "default" });
    expect(other.status).toMatchObject({
      expectedPods: 4,
      desiredHealthy: 2,
      currentHealthy: 4,
      disruptionsAllowed: 2,
    });

    const invalid = await apiError(
      h.policy.createNamespacedPodDisruptionBudget({
        namespace: "default",
        body: {
          metadata: { name: "bad" },
          spec: { minAvailable: 1, maxUnavailable: 1, selector: { matchLabels: { app: "o" } } },
        },
      }),
    );
    expect(invalid.code).toBe(422);
  });

  it("refuses with Retry-After 10 while the disruption controller has not processed a new or changed budget", async () => {
    h.sim.world.kube.registerNode("c1", agent("n1"));
    for (const n of ["q-0", "q-1", "q-2"]) await createPod(n, { app: "q" }, { nodeName: "n1" });
    await h.policy.createNamespacedPodDisruptionBudget({
      namespace: "default",
      body: { metadata: { name: "q" }, spec: { minAvailable: 1, selector: { matchLabels: { app: "q" } } } },
    });
    const evictQ0 = () =>
      h.core.createNamespacedPodEviction({
        name: "q-0",
        namespace: "default",
        body: { metadata: { name: "q-0" } },
      });
    const early = await apiError(evictQ0());
    expect(early.code).toBe(429);
    expect(early.headers["retry-after"]).toBe("10");
    expect(early.status).toMatchObject({
      reason: "TooManyRequests",
      message: "Cannot evict pod as it would violate the pod's disruption budget.",
      details: {
        retryAfterSeconds: 10,
        causes: [
          {
            reason: "DisruptionBudget",
            message: "The disruption budget q is still being processed by the server.",
          },
        ],
      },
    });
    expect(
      (await h.policy.readNamespacedPodDisruptionBudget({ name: "q", namespace: "default" })).status
        ?.observedGeneration ?? 0,
    ).toBe(0);
    pdbProcessed();
    await evictQ0();
    // A spec change puts it back behind the controller for a moment.
    await h.policy.patchNamespacedPodDisruptionBudget(
      { name: "q", namespace: "default", body: { spec: { minAvailable: 0 } } },
      merge,
    );
    const again = await apiError(
      h.core.createNamespacedPodEviction({
        name: "q-1",
        namespace: "default",
        body: { metadata: { name: "q-1" } },
      }),
    );
    expect(again.status?.details?.causes?.[0]?.message).toContain("is still being processed");
    // A budget that refuses for lack of healthy pods sends no Retry-After (NewTooManyRequests(…, 0)).
    await h.policy.patchNamespacedPodDisruptionBudget(
      { name: "q", namespace: "default", body: { spec: { minAvailable: 2 } } },
      merge,
    );
    pdbProcessed();
    const full = await apiError(
      h.core.createNamespacedPodEviction({
        name: "q-1",
        namespace: "default",
        body: { metadata: { name: "q-1" } },
      }),
    );
    expect(full.code).toBe(429);
    expect(full.headers["retry-after"]).toBeUndefined();
    expect(full.status?.details?.causes?.[0]?.message).toBe(
      "The disruption budget q needs 2 healthy pods and has 2 currently",
    );
  });

  it("a maxUnavailable budget over a pod without a controller blocks its eviction (needs 0 healthy pods and has 1)", async () => {
    h.sim.world.kube.registerNode("c1", agent("n1"));
    await createPod("bare", { app: "bare" }, { nodeName: "n1" });
    await h.policy.createNamespacedPodDisruptionBudget({
      namespace: "default",
      body: {
        metadata: { name: "bare" },
        spec: { maxUnavailable: 1, selector: { matchLabels: { app: "bare" } } },
      },
    });
    pdbProcessed();
    expect(
      (await h.policy.readNamespacedPodDisruptionBudget({ name: "bare", namespace: "default" })).status,
    ).toMatchObject({ expectedPods: 0, desiredHealthy: 0, currentHealthy: 1, disruptionsAllowed: 0 });
    const err = await apiError(
      h.core.createNamespacedPodEviction({
        name: "bare",
        namespace: "default",
        body: { metadata: { name: "bare" } },
      }),
    );
    expect(err.code).toBe(429);
    expect(err.status?.details?.causes?.[0]?.message).toBe(
      "The disruption budget bare needs 0 healthy pods and has 1 currently",
    );
  });

  it("refuses to evict a pod two budgets select (500, like the API server)", async () => {
    h.sim.world.kube.registerNode("c1", agent("n1"));
    await createPod("p", { app: "p", tier: "x" }, { nodeName: "n1" });
    for (const [name, sel] of [
      ["a", { app: "p" }],
      ["b", { tier: "x" }],
    ] as const) {
      await h.policy.createNamespacedPodDisruptionBudget({
        namespace: "default",
        body: { metadata: { name }, spec: { maxUnavailable: 1, selector: { matchLabels: sel } } },
      });
    }
    const err = await apiError(
      h.core.createNamespacedPodEviction({
        name: "p",
        namespace: "default",
        body: { metadata: { name: "p" } },
      }),
    );
    expect(err.code).toBe(500);
    expect(err.status?.message).toContain("more than one PodDisruptionBudget");
  });

  it("an empty selector selects every pod of the namespace", async () => {
    h.sim.world.kube.registerNode("c1", agent("n1"));
    await createPod("a", { app: "a" }, { nodeName: "n1" });
    await createPod("b", { app: "b" }, { nodeName: "n1" });
    await h.policy.createNamespacedPodDisruptionBudget({
      namespace: "default",
      body: { metadata: { name: "all" }, spec: { minAvailable: 2, selector: {} } },
    });
    pdbProcessed();
    expect(
      (await h.policy.readNamespacedPodDisruptionBudget({ name: "all", namespace: "default" })).status
        ?.expectedPods,
    ).toBe(2);
    const err = await apiError(
      h.core.createNamespacedPodEviction({
        name: "a",
        namespace: "default",
        body: { metadata: { name: "a" } },
      }),
    );
    expect(err.code).toBe(429);
    expect(err.status?.details?.causes?.[0]?.message).toBe(
      "The disruption budget all needs 2 healthy pods and has 2 currently",
    );
  });

  it("a PDB lists, updates and deletes", async () => {
    await h.policy.createNamespacedPodDisruptionBudget({
      namespace: "default",
      body: { metadata: { name: "x" }, spec: { minAvailable: "50%", selector: { matchLabels: { a: "b" } } } },
    });
    expect(
      (await h.policy.listPodDisruptionBudgetForAllNamespaces()).items.map((p) => p.metadata?.name),
    ).toEqual(["x"]);
    const cur = await h.policy.readNamespacedPodDisruptionBudget({ name: "x", namespace: "default" });
    cur.spec!.minAvailable = 1;
    const replaced = await h.policy.replaceNamespacedPodDisruptionBudget({
      name: "x",
      namespace: "default",
      body: cur,
    });
    expect(replaced.metadata?.generation).toBe(2);
    await h.policy.deleteNamespacedPodDisruptionBudget({ name: "x", namespace: "default" });
    expect((await h.policy.listNamespacedPodDisruptionBudget({ namespace: "default" })).items).toEqual([]);
  });
});

describe("deployments", () => {
  const createDeployment = (name: string, replicas: number) =>
    h.apps.createNamespacedDeployment({
      namespace: "default",
      body: {
        metadata: { name },
        spec: {
          replicas,
          selector: { matchLabels: { app: name } },
          template: { metadata: { labels: { app: name } }, spec: podSpec() },
        },
      },
    });

  it("the garbage collector deletes a pod whose ReplicaSet or Deployment owner does not exist; a pod of a real owner stays", async () => {
    h.sim.world.kube.registerNode("c1", agent("n1"));
    await createDeployment("real", 1);
    const [owned] = (await h.core.listNamespacedPod({ namespace: "default", labelSelector: "app=real" }))
      .items;
    const rs = owned!.metadata!.ownerReferences![0]!;
    const d = await h.apps.readNamespacedDeployment({ name: "real", namespace: "default" });
    const make = (name: string, ref: object) =>
      h.core.createNamespacedPod({
        namespace: "default",
        body: { metadata: { name, ownerReferences: [ref as never] }, spec: podSpec({ nodeName: "n1" }) },
      });
    const madeUp = {
      apiVersion: "apps/v1",
      kind: "ReplicaSet",
      name: "rs-x",
      uid: "00000000-0000-4000-a000-000000000000",
      controller: true,
    };
    await make("dangling-rs", madeUp);
    await make("dangling-deploy", {
      apiVersion: "apps/v1",
      kind: "Deployment",
      name: "real",
      uid: "00000000-0000-4000-a000-000000000001",
    });
    await make("of-real-rs", { ...rs, controller: false });
    await make("of-real-deploy", {
      apiVersion: "apps/v1",
      kind: "Deployment",
      name: "real",
      uid: d.metadata!.uid!,
      controller: true,
    });
    const deleting = async (name: string) =>
      (await h.core.readNamespacedPod({ name, namespace: "default" })).metadata?.deletionTimestamp !==
      undefined;
    expect(await deleting("dangling-rs")).toBe(true);
    expect(await deleting("dangling-deploy")).toBe(true);
    expect(await deleting("of-real-rs")).toBe(false);
    expect(await deleting("of-real-deploy")).toBe(false);
    h.sim.clock.advance(LATENCIES.podTermination * 1000);
    expect(
      (await apiError(h.core.readNamespacedPod({ name: "dangling-rs", namespace: "default" }))).code,
    ).toBe(404);
  });

  it("a template change rolls out (new ReplicaSet, maxSurge/maxUnavailable 25%) rather than replacing every pod at once", async () => {
    h.sim.world.kube.registerNode("c1", agent("n1"));
    await createDeployment("roll", 4);
    h.sim.clock.advance(LATENCIES.deploymentReady * 1000);
    const hashOf = (p: V1Pod) => p.metadata?.labels?.["pod-template-hash"];
    const pods = async () =>
      (await h.core.listNamespacedPod({ namespace: "default", labelSelector: "app=roll" })).items;
    const [first] = await pods();
    const oldHash = hashOf(first!);
    await h.apps.patchNamespacedDeployment(
      {
        name: "roll",
        namespace: "default",
        body: { spec: { template: { spec: { containers: [{ name: "app", image: "nginx:1.28" }] } } } },
      },
      setHeaderOptions("Content-Type", PatchStrategy.StrategicMergePatch),
    );
    const during = await pods();
    const live = during.filter((p) => !p.metadata?.deletionTimestamp);
    const oldLive = live.filter((p) => hashOf(p) === oldHash);
    const fresh = live.filter((p) => hashOf(p) !== oldHash);
    // replicas 4: at most 5 pods (surge 1), at least 3 available (unavailable 1).
    expect(oldLive).toHaveLength(3);
    expect(fresh).toHaveLength(2);
    expect(fresh.every((p) => p.metadata?.ownerReferences?.[0]?.name === `roll-${hashOf(p)}`)).toBe(true);
    expect(fresh[0]!.metadata?.ownerReferences?.[0]?.name).not.toBe(
      first!.metadata?.ownerReferences?.[0]?.name,
    );
    // Each round of new pods becoming ready moves it on, until only the new template runs.
    for (let i = 0; i < 6; i++) h.sim.clock.advance(LATENCIES.deploymentReady * 1000);
    const after = (await pods()).filter((p) => !p.metadata?.deletionTimestamp);
    expect(after).toHaveLength(4);
    expect(after.every((p) => hashOf(p) !== oldHash)).toBe(true);
    const d = await h.apps.readNamespacedDeployment({ name: "roll", namespace: "default" });
    expect(d.status).toMatchObject({ readyReplicas: 4, updatedReplicas: 4 });
  });

  it("creates its pods, becomes ready after deploymentReady, and scales through the scale subresource", async () => {
    h.sim.world.kube.registerNode("c1", agent("n1"));
    h.sim.world.kube.registerNode("c1", agent("n2"));
    await createDeployment("web", 2);
    const d0 = await h.apps.readNamespacedDeployment({ name: "web", namespace: "default" });
    expect(d0.status?.replicas).toBe(2);
    expect(d0.status?.readyReplicas ?? 0).toBe(0);
    const pods = (await h.core.listNamespacedPod({ namespace: "default", labelSelector: "app=web" })).items;
    expect(pods).toHaveLength(2);
    expect(new Set(pods.map((p) => p.spec?.nodeName))).toEqual(new Set(["n1", "n2"]));
    expect(pods[0]!.metadata?.ownerReferences?.[0]).toMatchObject({ kind: "ReplicaSet", controller: true });
    expect(pods[0]!.metadata?.name).toMatch(/^web-[a-z0-9]+-[a-z0-9]{5}$/);
    expect(pods[0]!.status?.phase).toBe("Pending");

    h.sim.clock.advance(LATENCIES.deploymentReady * 1000);
    const d1 = await h.apps.readNamespacedDeployment({ name: "web", namespace: "default" });
    expect(d1.status).toMatchObject({
      replicas: 2,
      readyReplicas: 2,
      availableReplicas: 2,
      updatedReplicas: 2,
    });
    expect(d1.status?.conditions?.find((c) => c.type === "Available")?.status).toBe("True");

    const scale = await h.apps.readNamespacedDeploymentScale({ name: "web", namespace: "default" });
    expect(scale).toMatchObject({
      kind: "Scale",
      spec: { replicas: 2 },
      status: { replicas: 2, selector: "app=web" },
    });
    const scaled = await h.apps.replaceNamespacedDeploymentScale({
      name: "web",
      namespace: "default",
      body: { metadata: { name: "web" }, spec: { replicas: 3 } },
    });
    expect(scaled.spec?.replicas).toBe(3);
    const d2 = await h.apps.readNamespacedDeployment({ name: "web", namespace: "default" });
    expect(d2.spec?.replicas).toBe(3);
    expect(d2.status?.readyReplicas).toBe(2);
    h.sim.clock.advance(LATENCIES.deploymentReady * 1000);
    expect(
      (await h.apps.readNamespacedDeployment({ name: "web", namespace: "default" })).status?.readyReplicas,
    ).toBe(3);

    const stale = await apiError(
      h.apps.replaceNamespacedDeploymentScale({
        name: "web",
        namespace: "default",
        body: {
          metadata: { name: "web", resourceVersion: scale.metadata!.resourceVersion! },
          spec: { replicas: 5 },
        },
      }),
    );
    expect(stale.code).toBe(409);

    await h.apps.patchNamespacedDeploymentScale(
      { name: "web", namespace: "default", body: { spec: { replicas: 1 } } },
      merge,
    );
    const remaining = (await h.core.listNamespacedPod({ namespace: "default", labelSelector: "app=web" }))
      .items;
    expect(remaining.filter((p) => !p.metadata?.deletionTimestamp)).toHaveLength(1);
    h.sim.clock.advance(LATENCIES.podTermination * 1000);
    expect(
      (await h.core.listNamespacedPod({ namespace: "default", labelSelector: "app=web" })).items,
    ).toHaveLength(1);
    expect(
      (await h.apps.readNamespacedDeployment({ name: "web", namespace: "default" })).status,
    ).toMatchObject({ replicas: 1, readyReplicas: 1 });
  });

  it("recreates an evicted pod on another schedulable node, ready after the latency", async () => {
    h.sim.world.kube.registerNode("c1", agent("n1"));
    h.sim.world.kube.registerNode("c1", agent("n2"));
    await createDeployment("api", 1);
    h.sim.clock.advance(LATENCIES.deploymentReady * 1000);
    const [pod] = (await h.core.listNamespacedPod({ namespace: "default", labelSelector: "app=api" })).items;
    const from = pod!.spec!.nodeName!;
    const to = from === "n1" ? "n2" : "n1";
    await h.core.patchNode({ name: from, body: { spec: { unschedulable: true } } }, merge);
    await h.policy.createNamespacedPodDisruptionBudget({
      namespace: "default",
      body: {
        metadata: { name: "api" },
        spec: { maxUnavailable: 1, selector: { matchLabels: { app: "api" } } },
      },
    });
    pdbProcessed();

    await h.core.createNamespacedPodEviction({
      name: pod!.metadata!.name!,
      namespace: "default",
      body: { metadata: { name: pod!.metadata!.name! } },
    });
    const pods = (await h.core.listNamespacedPod({ namespace: "default", labelSelector: "app=api" })).items;
    const replacement = pods.find((p) => p.metadata?.name !== pod!.metadata?.name)!;
    expect(replacement.spec?.nodeName).toBe(to);
    expect(
      (await h.apps.readNamespacedDeployment({ name: "api", namespace: "default" })).status?.readyReplicas ??
        0,
    ).toBe(0);

    h.sim.clock.advance(LATENCIES.deploymentReady * 1000);
    expect(
      (await h.apps.readNamespacedDeployment({ name: "api", namespace: "default" })).status?.readyReplicas,
    ).toBe(1);
    expect(await podsOn(from)).toEqual([]);
    expect(await podsOn(to)).toEqual([replacement.metadata?.name]);
  });

  it("evicts the pods of a node NotReady for 5 minutes (taint-based eviction) and replaces them elsewhere", async () => {
    h.sim.world.kube.registerNode("c1", agent("n1"));
    await createDeployment("svc", 1);
    h.sim.clock.advance(LATENCIES.deploymentReady * 1000);
    const [pod] = (await h.core.listNamespacedPod({ namespace: "default", labelSelector: "app=svc" })).items;
    expect(pod!.spec?.tolerations).toContainEqual({
      key: "node.kubernetes.io/not-ready",
      operator: "Exists",
      effect: "NoExecute",
      tolerationSeconds: 300,
    });
    await h.core.createNamespacedPod({
      namespace: "default",
      body: {
        metadata: { name: "agent-n1" },
        spec: podSpec({
          nodeName: "n1",
          tolerations: [{ key: "node.kubernetes.io/not-ready", operator: "Exists", effect: "NoExecute" }],
        }),
      },
    });
    h.sim.world.kube.registerNode("c1", agent("n2"));

    h.sim.world.kube.setNodeReady("c1", "n1", false);
    h.sim.clock.advance(295_000); // taint timestamps have whole seconds: stay clear of the edge
    expect(
      (await h.core.readNamespacedPod({ name: pod!.metadata!.name!, namespace: "default" })).metadata
        ?.deletionTimestamp,
    ).toBeUndefined();
    h.sim.clock.advance(10_000);
    const evicted = await h.core.readNamespacedPod({ name: pod!.metadata!.name!, namespace: "default" });
    expect(evicted.metadata?.deletionTimestamp).toBeDefined();
    expect(
      (await h.core.readNamespacedPod({ name: "agent-n1", namespace: "default" })).metadata
        ?.deletionTimestamp,
    ).toBeUndefined();
    const replacement = (
      await h.core.listNamespacedPod({ namespace: "default", labelSelector: "app=svc" })
    ).items.find((p) => !p.metadata?.deletionTimestamp);
    expect(replacement?.spec?.nodeName).toBe("n2");

    // no kubelet confirms: the old pod stays Terminating until its node is gone
    h.sim.clock.advance(600_000);
    expect(
      (await h.core.readNamespacedPod({ name: pod!.metadata!.name!, namespace: "default" })).metadata
        ?.deletionTimestamp,
    ).toBeDefined();
    h.sim.world.kube.removeNode("c1", "n1");
    h.sim.clock.advance(61_000); // pod GC: orphaned pods go about a minute after their node
    expect(await podsOn("n1")).toEqual([]);
    expect(
      (await h.apps.readNamespacedDeployment({ name: "svc", namespace: "default" })).status?.readyReplicas,
    ).toBe(1);
  });

  it("evicts pods that do not tolerate a NoExecute taint added to their node at once", async () => {
    h.sim.world.kube.registerNode("c1", agent("n1"));
    await createPod("plain", {}, { nodeName: "n1" });
    await createPod(
      "tolerant",
      {},
      { nodeName: "n1", tolerations: [{ key: "maintenance", operator: "Exists", effect: "NoExecute" }] },
    );
    await createPod(
      "brief",
      {},
      {
        nodeName: "n1",
        tolerations: [{ key: "maintenance", operator: "Exists", effect: "NoExecute", tolerationSeconds: 60 }],
      },
    );
    await h.core.patchNode(
      { name: "n1", body: { spec: { taints: [{ key: "maintenance", effect: "NoExecute" }] } } },
      merge,
    );
    const terminating = async () =>
      (await h.core.listNamespacedPod({ namespace: "default" })).items
        .filter((p) => p.metadata?.deletionTimestamp)
        .map((p) => p.metadata?.name);
    expect(await terminating()).toEqual(["plain"]);
    h.sim.clock.advance(61_000);
    expect(await terminating()).toEqual(["brief"]);
  });

  it("validates the selector against the template and deletes its pods with it", async () => {
    h.sim.world.kube.registerNode("c1", agent("n1"));
    const bad = await apiError(
      h.apps.createNamespacedDeployment({
        namespace: "default",
        body: {
          metadata: { name: "x" },
          spec: {
            selector: { matchLabels: { app: "x" } },
            template: { metadata: { labels: { app: "y" } }, spec: podSpec() },
          },
        },
      }),
    );
    expect(bad.code).toBe(422);
    expect(bad.status?.message).toContain("`selector` does not match template `labels`");

    await createDeployment("gone", 2);
    await h.apps.deleteNamespacedDeployment({ name: "gone", namespace: "default" });
    const pods = (await h.core.listNamespacedPod({ namespace: "default" })).items;
    expect(pods.every((p) => p.metadata?.deletionTimestamp)).toBe(true);
    h.sim.clock.advance(LATENCIES.podTermination * 1000);
    expect((await h.core.listNamespacedPod({ namespace: "default" })).items).toEqual([]);
  });
});

describe("determinism", () => {
  it("gives the same seed the same uids, tokens and pod names", async () => {
    const run = async () => {
      const s = await kubeSim();
      s.sim.world.kube.registerNode("c1", agent("n1"));
      await s.apps.createNamespacedDeployment({
        namespace: "default",
        body: {
          metadata: { name: "d" },
          spec: {
            replicas: 2,
            selector: { matchLabels: { app: "d" } },
            template: { metadata: { labels: { app: "d" } }, spec: podSpec() },
          },
        },
      });
      const pods = (await s.core.listNamespacedPod({ namespace: "default" })).items.map(
        (p) => `${p.metadata?.name} ${p.metadata?.uid} ${p.status?.podIP}`,
      );
      const node = (await s.core.readNode({ name: "n1" })).metadata?.uid;
      const token = s.sim.world.kube.ensureCluster("c1").token;
      await s.sim.stop();
      return { pods, node, token };
    };
    const a = await run();
    expect(a.pods).toHaveLength(2);
    expect(await run()).toEqual(a);
  });
});

describe("namespaces and PVCs", () => {
  it("creates, lists and deletes namespaces; default and kube-system exist and are protected", async () => {
    const names = async () => (await h.core.listNamespace()).items.map((n) => n.metadata?.name);
    expect(await names()).toEqual(expect.arrayContaining(["default", "kube-system"]));
    await h.core.createNamespace({ body: { metadata: { name: "team-a" } } });
    expect((await h.core.readNamespace({ name: "team-a" })).status?.phase).toBe("Active");
    expect((await apiError(h.core.deleteNamespace({ name: "default" }))).code).toBe(403);

    h.sim.world.kube.registerNode("c1", agent("n1"));
    await createPod("p", {}, {}, "team-a");
    // the API answers a namespace deletion with the Namespace (client-node types it as a Status)
    const deleting = (await h.core.deleteNamespace({ name: "team-a" })) as unknown as V1Namespace;
    expect(deleting.status?.phase).toBe("Terminating");
    expect((await apiError(createPod("q", {}, {}, "team-a"))).code).toBe(403);
    h.sim.clock.advance(LATENCIES.podTermination * 1000);
    expect(await names()).not.toContain("team-a");
  });

  it("binds a PVC and protects it while a pod uses it", async () => {
    h.sim.world.kube.registerNode("c1", agent("n1"));
    const pvc = await h.core.createNamespacedPersistentVolumeClaim({
      namespace: "default",
      body: {
        metadata: { name: "data" },
        spec: { accessModes: ["ReadWriteOnce"], resources: { requests: { storage: "1Gi" } } },
      },
    });
    expect(pvc.status?.phase).toBe("Bound");
    expect(pvc.spec?.storageClassName).toBe("local-path");
    await createPod("user", {}, { volumes: [{ name: "d", persistentVolumeClaim: { claimName: "data" } }] });
    const deleting = await h.core.deleteNamespacedPersistentVolumeClaim({
      name: "data",
      namespace: "default",
    });
    expect(deleting.metadata?.deletionTimestamp).toBeDefined();
    expect(
      (await h.core.readNamespacedPersistentVolumeClaim({ name: "data", namespace: "default" })).metadata
        ?.finalizers,
    ).toContain("kubernetes.io/pvc-protection");
    await h.core.deleteNamespacedPod({ name: "user", namespace: "default" });
    h.sim.clock.advance(LATENCIES.podTermination * 1000);
    expect(
      (await apiError(h.core.readNamespacedPersistentVolumeClaim({ name: "data", namespace: "default" })))
        .code,
    ).toBe(404);
  });
});
