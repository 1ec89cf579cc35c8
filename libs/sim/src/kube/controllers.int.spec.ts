/**
 * The sim's workload controllers and garbage collector through the real client-node:
 * a Deployment owns ReplicaSets which own its pods (a template change rolls a new one,
 * old ones stay at 0 up to the history limit); DaemonSets run a pod on every node that
 * should run one; deleting an owner deletes what it owns as the propagation policy says
 * (Background, Foreground, Orphan), as kube-apiserver and kube-controller-manager do.
 */
import {
  PatchStrategy,
  setHeaderOptions,
  type V1DaemonSet,
  type V1Deployment,
} from "@kubernetes/client-node";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { agent, apiError, type KubeHarness, kubeSim, LATENCIES, podSpec } from "./test-support.ts";

const merge = setHeaderOptions("Content-Type", PatchStrategy.MergePatch);
const strategic = setHeaderOptions("Content-Type", PatchStrategy.StrategicMergePatch);

let h: KubeHarness;
beforeEach(async () => {
  h = await kubeSim();
});
afterEach(async () => {
  await h.sim.stop();
});

const ns = "default";
const deployment = (name: string, replicas: number, extra: Partial<V1Deployment["spec"]> = {}) =>
  h.apps.createNamespacedDeployment({
    namespace: ns,
    body: {
      metadata: { name },
      spec: {
        replicas,
        selector: { matchLabels: { app: name } },
        template: { metadata: { labels: { app: name } }, spec: podSpec() },
        ...extra,
      },
    },
  });
const daemonSet = (name: string, extra: Partial<V1DaemonSet["spec"]> = {}, namespace = ns) =>
  h.apps.createNamespacedDaemonSet({
    namespace,
    body: {
      metadata: { name },
      spec: {
        selector: { matchLabels: { app: name } },
        template: { metadata: { labels: { app: name } }, spec: podSpec() },
        ...extra,
      },
    },
  });
const replicaSets = async (app: string) =>
  (await h.apps.listNamespacedReplicaSet({ namespace: ns, labelSelector: `app=${app}` })).items;
const pods = async (selector: string, namespace = ns) =>
  (await h.core.listNamespacedPod({ namespace, labelSelector: selector })).items;
const live = async (selector: string, namespace = ns) =>
  (await pods(selector, namespace)).filter((p) => !p.metadata?.deletionTimestamp);
const tick = (seconds: number) => h.sim.clock.advance(seconds * 1000);

describe("Deployments own ReplicaSets, ReplicaSets own pods", () => {
  it("a Deployment's ReplicaSet is an object it controls, and the ReplicaSet controls the pods", async () => {
    h.sim.world.kube.registerNode("c1", agent("n1"));
    const d = await deployment("web", 2);
    const [rs] = await replicaSets("web");
    expect(rs?.metadata?.ownerReferences).toEqual([
      {
        apiVersion: "apps/v1",
        kind: "Deployment",
        name: "web",
        uid: d.metadata!.uid!,
        controller: true,
        blockOwnerDeletion: true,
      },
    ]);
    const hash = rs!.metadata!.labels!["pod-template-hash"]!;
    expect(rs!.metadata!.name).toBe(`web-${hash}`);
    expect(rs!.spec).toMatchObject({
      replicas: 2,
      selector: { matchLabels: { app: "web", "pod-template-hash": hash } },
    });
    expect(rs!.metadata!.annotations).toMatchObject({ "deployment.kubernetes.io/revision": "1" });
    const owned = await pods("app=web");
    expect(owned).toHaveLength(2);
    for (const p of owned)
      expect(p.metadata?.ownerReferences).toEqual([
        {
          apiVersion: "apps/v1",
          kind: "ReplicaSet",
          name: rs!.metadata!.name,
          uid: rs!.metadata!.uid,
          controller: true,
          blockOwnerDeletion: true,
        },
      ]);
    tick(LATENCIES.deploymentReady);
    const ready = await h.apps.readNamespacedReplicaSet({ name: rs!.metadata!.name!, namespace: ns });
    expect(ready.status).toMatchObject({
      replicas: 2,
      readyReplicas: 2,
      availableReplicas: 2,
      fullyLabeledReplicas: 2,
    });
    expect(
      (await h.apps.readNamespacedDeployment({ name: "web", namespace: ns })).metadata?.annotations?.[
        "deployment.kubernetes.io/revision"
      ],
    ).toBe("1");
  });

  it("a template change rolls through a new ReplicaSet; the old one ends at 0 and stays as history, up to revisionHistoryLimit", async () => {
    h.sim.world.kube.registerNode("c1", agent("n1"));
    await deployment("roll", 4, { revisionHistoryLimit: 1 });
    tick(LATENCIES.deploymentReady);
    const [first] = await replicaSets("roll");
    const image = (tag: string) =>
      h.apps.patchNamespacedDeployment(
        {
          name: "roll",
          namespace: ns,
          body: { spec: { template: { spec: { containers: [{ name: "app", image: `nginx:${tag}` }] } } } },
        },
        strategic,
      );
    await image("1.28");
    const during = await replicaSets("roll");
    expect(during).toHaveLength(2);
    const second = during.find((r) => r.metadata?.name !== first!.metadata?.name)!;
    // replicas 4, surge 1, unavailable 1: old 4 → 3, new 0 → 2.
    expect(
      during.map((r) => [r.metadata?.annotations?.["deployment.kubernetes.io/revision"], r.spec?.replicas]),
    ).toEqual(
      expect.arrayContaining([
        ["1", 3],
        ["2", 2],
      ]),
    );
    for (let i = 0; i < 6; i++) tick(LATENCIES.deploymentReady);
    const done = await replicaSets("roll");
    expect(done.find((r) => r.metadata?.uid === first!.metadata?.uid)?.spec?.replicas).toBe(0);
    expect(done.find((r) => r.metadata?.uid === second.metadata?.uid)?.status).toMatchObject({
      replicas: 4,
      readyReplicas: 4,
    });
    tick(LATENCIES.podTermination);
    expect(await live("app=roll")).toHaveLength(4);
    // A third template: the first ReplicaSet falls out of a history of 1.
    await image("1.29");
    for (let i = 0; i < 8; i++) tick(LATENCIES.deploymentReady);
    tick(LATENCIES.podTermination);
    const names = (await replicaSets("roll")).map((r) => r.metadata?.uid);
    expect(names).not.toContain(first!.metadata?.uid);
    expect(names).toContain(second.metadata?.uid);
    expect(names).toHaveLength(2);
    const d = await h.apps.readNamespacedDeployment({ name: "roll", namespace: ns });
    expect(d.metadata?.annotations?.["deployment.kubernetes.io/revision"]).toBe("3");
    expect(d.status).toMatchObject({ replicas: 4, updatedReplicas: 4, readyReplicas: 4 });
  });

  it("Recreate scales the old ReplicaSet to 0 and starts the new one only once its pods are gone", async () => {
    h.sim.world.kube.registerNode("c1", agent("n1"));
    await deployment("batch", 2, { strategy: { type: "Recreate" } });
    tick(LATENCIES.deploymentReady);
    await h.apps.patchNamespacedDeployment(
      {
        name: "batch",
        namespace: ns,
        body: { spec: { template: { metadata: { labels: { app: "batch", v: "2" } } } } },
      },
      strategic,
    );
    expect(await live("app=batch")).toHaveLength(0);
    expect(await replicaSets("batch")).toHaveLength(1);
    tick(LATENCIES.podTermination);
    const rss = await replicaSets("batch");
    expect(rss.map((r) => r.spec?.replicas).sort()).toEqual([0, 2]);
    expect((await live("app=batch,v=2")).length).toBe(2);
  });

  it("a ReplicaSet of its own keeps its replicas, adopts a matching orphan and releases a pod relabelled away", async () => {
    h.sim.world.kube.registerNode("c1", agent("n1"));
    await h.core.createNamespacedPod({
      namespace: ns,
      body: { metadata: { name: "stray", labels: { app: "cache" } }, spec: podSpec({ nodeName: "n1" }) },
    });
    const rs = await h.apps.createNamespacedReplicaSet({
      namespace: ns,
      body: {
        metadata: { name: "cache" },
        spec: {
          replicas: 2,
          selector: { matchLabels: { app: "cache" } },
          template: { metadata: { labels: { app: "cache" } }, spec: podSpec() },
        },
      },
    });
    const all = await pods("app=cache");
    expect(all).toHaveLength(2);
    const stray = all.find((p) => p.metadata?.name === "stray");
    expect(stray?.metadata?.ownerReferences?.[0]).toMatchObject({
      kind: "ReplicaSet",
      uid: rs.metadata?.uid,
    });
    await h.core.patchNamespacedPod(
      { name: "stray", namespace: ns, body: { metadata: { labels: { app: "other" } } } },
      merge,
    );
    const released = await h.core.readNamespacedPod({ name: "stray", namespace: ns });
    expect(released.metadata?.ownerReferences).toBeUndefined();
    expect(await pods("app=cache")).toHaveLength(2); // a replacement for the one let go
  });
});

describe("cascading deletion", () => {
  it("Background (what node-ops sends): the Deployment goes at once, its ReplicaSet with it, then its pods after their termination", async () => {
    h.sim.world.kube.registerNode("c1", agent("n1"));
    await deployment("gone", 2);
    const status = await h.apps.deleteNamespacedDeployment({
      name: "gone",
      namespace: ns,
      propagationPolicy: "Background",
    });
    expect(status).toMatchObject({ status: "Success", details: { name: "gone", kind: "deployments" } });
    expect((await apiError(h.apps.readNamespacedDeployment({ name: "gone", namespace: ns }))).code).toBe(404);
    expect(await replicaSets("gone")).toEqual([]);
    const terminating = await pods("app=gone");
    expect(terminating).toHaveLength(2);
    expect(terminating.every((p) => p.metadata?.deletionTimestamp)).toBe(true);
    tick(LATENCIES.podTermination);
    expect(await pods("app=gone")).toEqual([]);
  });

  it("no policy given: Background too, as apps/v1's default", async () => {
    h.sim.world.kube.registerNode("c1", agent("n1"));
    await deployment("plain", 1);
    await h.apps.deleteNamespacedDeployment({ name: "plain", namespace: ns });
    expect(await replicaSets("plain")).toEqual([]);
    expect((await pods("app=plain")).every((p) => p.metadata?.deletionTimestamp)).toBe(true);
  });

  it("Foreground: the Deployment stays (deletionTimestamp, foregroundDeletion) until its ReplicaSet and pods are gone", async () => {
    h.sim.world.kube.registerNode("c1", agent("n1"));
    await deployment("fg", 2);
    // The answer is the Deployment itself (client-node types it a V1Status, so read it back).
    await h.apps.deleteNamespacedDeployment({ name: "fg", namespace: ns, propagationPolicy: "Foreground" });
    const d = await h.apps.readNamespacedDeployment({ name: "fg", namespace: ns });
    expect(d.metadata?.deletionTimestamp).toBeDefined();
    expect(d.metadata?.finalizers).toEqual(["foregroundDeletion"]);
    const [rs] = await replicaSets("fg");
    expect(rs?.metadata?.finalizers).toEqual(["foregroundDeletion"]);
    expect((await pods("app=fg")).every((p) => p.metadata?.deletionTimestamp)).toBe(true);
    tick(LATENCIES.podTermination);
    expect(await pods("app=fg")).toEqual([]);
    expect(await replicaSets("fg")).toEqual([]);
    expect((await apiError(h.apps.readNamespacedDeployment({ name: "fg", namespace: ns }))).code).toBe(404);
  });

  it("Orphan: the Deployment goes, its ReplicaSet stays without an owner and keeps its pods", async () => {
    h.sim.world.kube.registerNode("c1", agent("n1"));
    await deployment("kept", 2);
    await h.apps.deleteNamespacedDeployment({ name: "kept", namespace: ns, propagationPolicy: "Orphan" });
    expect((await apiError(h.apps.readNamespacedDeployment({ name: "kept", namespace: ns }))).code).toBe(404);
    const [rs] = await replicaSets("kept");
    expect(rs?.metadata?.ownerReferences).toBeUndefined();
    tick(LATENCIES.deploymentReady);
    expect(await live("app=kept")).toHaveLength(2);
    expect(
      (await h.apps.readNamespacedReplicaSet({ name: rs!.metadata!.name!, namespace: ns })).status
        ?.readyReplicas,
    ).toBe(2);
  });

  it("an object owned by a Deployment (node-ops' spot twin) goes with it; one with another owner left loses only the gone reference", async () => {
    h.sim.world.kube.registerNode("c1", agent("n1"));
    const main = await deployment("main", 1);
    const other = await deployment("other", 0);
    const ref = (d: V1Deployment, controller: boolean) => ({
      apiVersion: "apps/v1",
      kind: "Deployment",
      name: d.metadata!.name!,
      uid: d.metadata!.uid!,
      controller,
    });
    await h.apps.createNamespacedDeployment({
      namespace: ns,
      body: {
        metadata: { name: "main-spot", ownerReferences: [ref(main, true)] },
        spec: {
          replicas: 1,
          selector: { matchLabels: { app: "main-spot" } },
          template: { metadata: { labels: { app: "main-spot" } }, spec: podSpec() },
        },
      },
    });
    await h.core.createNamespacedPersistentVolumeClaim({
      namespace: ns,
      body: {
        metadata: { name: "shared", ownerReferences: [ref(main, false), ref(other, false)] },
        spec: { accessModes: ["ReadWriteOnce"], resources: { requests: { storage: "1Gi" } } },
      },
    });
    await h.apps.deleteNamespacedDeployment({ name: "main", namespace: ns, propagationPolicy: "Background" });
    expect((await apiError(h.apps.readNamespacedDeployment({ name: "main-spot", namespace: ns }))).code).toBe(
      404,
    );
    expect(await replicaSets("main-spot")).toEqual([]);
    expect((await pods("app=main-spot")).every((p) => p.metadata?.deletionTimestamp)).toBe(true);
    const pvc = await h.core.readNamespacedPersistentVolumeClaim({ name: "shared", namespace: ns });
    expect(pvc.metadata?.deletionTimestamp).toBeUndefined();
    expect(pvc.metadata?.ownerReferences?.map((r) => r.name)).toEqual(["other"]);
  });

  it("a finalizer holds a deleted object until it is removed; then it goes", async () => {
    const rs = await h.apps.createNamespacedReplicaSet({
      namespace: ns,
      body: {
        metadata: { name: "held", finalizers: ["example.com/cleanup"] },
        spec: {
          replicas: 0,
          selector: { matchLabels: { app: "held" } },
          template: { metadata: { labels: { app: "held" } }, spec: podSpec() },
        },
      },
    });
    await h.apps.deleteNamespacedReplicaSet({ name: "held", namespace: ns });
    const held = await h.apps.readNamespacedReplicaSet({ name: "held", namespace: ns });
    expect(held.metadata).toMatchObject({ deletionGracePeriodSeconds: 0, generation: 2 });
    expect(held.metadata?.deletionTimestamp).toBeDefined();
    await h.apps.patchNamespacedReplicaSet(
      { name: "held", namespace: ns, body: { metadata: { finalizers: null } } },
      merge,
    );
    expect((await apiError(h.apps.readNamespacedReplicaSet({ name: "held", namespace: ns }))).code).toBe(404);
    expect(rs.metadata?.uid).toBeDefined();
  });

  it("deleting a namespace deletes its Deployments, ReplicaSets, DaemonSets and pods, then the namespace", async () => {
    h.sim.world.kube.registerNode("c1", agent("n1"));
    await h.core.createNamespace({ body: { metadata: { name: "team" } } });
    await h.apps.createNamespacedDeployment({
      namespace: "team",
      body: {
        metadata: { name: "api" },
        spec: {
          replicas: 1,
          selector: { matchLabels: { app: "api" } },
          template: { metadata: { labels: { app: "api" } }, spec: podSpec() },
        },
      },
    });
    await daemonSet("agent", {}, "team");
    expect((await h.core.listNamespacedPod({ namespace: "team" })).items).toHaveLength(2);
    await h.core.deleteNamespace({ name: "team" });
    expect((await h.apps.listNamespacedReplicaSet({ namespace: "team" })).items).toEqual([]);
    expect((await h.apps.listNamespacedDaemonSet({ namespace: "team" })).items).toEqual([]);
    tick(LATENCIES.podTermination);
    expect((await h.core.listNamespacedPod({ namespace: "team" })).items).toEqual([]);
    expect((await apiError(h.core.readNamespace({ name: "team" }))).code).toBe(404);
  });
});

describe("DaemonSets", () => {
  it("runs one pod on every node, pinned by node affinity; a new node gets one, a deleted node's goes with pod GC", async () => {
    for (const n of ["n1", "n2"]) h.sim.world.kube.registerNode("c1", agent(n));
    const ds = await daemonSet("agent");
    const placed = async () =>
      Object.fromEntries((await live("app=agent")).map((p) => [p.spec?.nodeName, p.metadata?.name]));
    expect(Object.keys(await placed()).sort()).toEqual(["n1", "n2"]);
    const [p] = await pods("app=agent");
    expect(p!.metadata?.ownerReferences?.[0]).toMatchObject({
      kind: "DaemonSet",
      name: "agent",
      uid: ds.metadata?.uid,
      controller: true,
    });
    expect(p!.metadata?.name).toMatch(/^agent-[a-z0-9]{5}$/);
    expect(
      p!.spec?.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms,
    ).toEqual([{ matchFields: [{ key: "metadata.name", operator: "In", values: [p!.spec?.nodeName] }] }]);
    expect(p!.spec?.tolerations).toContainEqual({
      key: "node.kubernetes.io/unreachable",
      operator: "Exists",
      effect: "NoExecute",
    });
    tick(LATENCIES.deploymentReady);
    expect((await h.apps.readNamespacedDaemonSet({ name: "agent", namespace: ns })).status).toMatchObject({
      desiredNumberScheduled: 2,
      currentNumberScheduled: 2,
      numberReady: 2,
      numberAvailable: 2,
      updatedNumberScheduled: 2,
      numberMisscheduled: 0,
    });
    h.sim.world.kube.registerNode("c1", agent("n3"));
    expect(Object.keys(await placed()).sort()).toEqual(["n1", "n2", "n3"]);
    h.sim.world.kube.removeNode("c1", "n2");
    tick(61);
    expect(Object.keys(await placed()).sort()).toEqual(["n1", "n3"]);
  });

  it("stays on cordoned and NotReady nodes; skips nodes whose labels or NoSchedule taints it does not match", async () => {
    h.sim.world.kube.registerNode("c1", agent("gpu", { labels: { pool: "gpu" } }));
    h.sim.world.kube.registerNode(
      "c1",
      agent("tainted", { labels: { pool: "gpu" }, taints: [{ key: "dedicated", effect: "NoSchedule" }] }),
    );
    h.sim.world.kube.registerNode("c1", agent("cpu", { labels: { pool: "cpu" } }));
    await daemonSet("driver", {
      template: { metadata: { labels: { app: "driver" } }, spec: podSpec({ nodeSelector: { pool: "gpu" } }) },
    });
    const nodesOf = async () => (await live("app=driver")).map((p) => p.spec?.nodeName).sort();
    expect(await nodesOf()).toEqual(["gpu"]);
    await h.core.patchNode({ name: "gpu", body: { spec: { unschedulable: true } } }, merge);
    h.sim.world.kube.setNodeReady("c1", "gpu", false);
    tick(600); // past the 300 s every other pod tolerates not-ready for
    expect(await nodesOf()).toEqual(["gpu"]);
    await h.core.patchNode({ name: "cpu", body: { metadata: { labels: { pool: "gpu" } } } }, merge);
    expect(await nodesOf()).toEqual(["cpu", "gpu"]);
  });

  it("a template change replaces its pods one node at a time (maxUnavailable 1)", async () => {
    for (const n of ["n1", "n2", "n3"]) h.sim.world.kube.registerNode("c1", agent(n));
    await daemonSet("logs");
    tick(LATENCIES.deploymentReady);
    const first = (await pods("app=logs")).map((p) => p.metadata?.labels?.["controller-revision-hash"]);
    await h.apps.patchNamespacedDaemonSet(
      {
        name: "logs",
        namespace: ns,
        body: { spec: { template: { spec: { containers: [{ name: "app", image: "nginx:1.28" }] } } } },
      },
      strategic,
    );
    const during = await pods("app=logs");
    expect(during.filter((p) => p.metadata?.deletionTimestamp)).toHaveLength(1);
    tick(LATENCIES.podTermination);
    tick(LATENCIES.deploymentReady);
    for (let i = 0; i < 6; i++) {
      tick(LATENCIES.podTermination);
      tick(LATENCIES.deploymentReady);
    }
    const after = await live("app=logs");
    expect(after).toHaveLength(3);
    expect(after.every((p) => p.metadata?.labels?.["controller-revision-hash"] !== first[0])).toBe(true);
    expect(
      (await h.apps.readNamespacedDaemonSet({ name: "logs", namespace: ns })).status?.updatedNumberScheduled,
    ).toBe(3);
  });

  it("a maxUnavailable budget over DaemonSet pods cannot be computed (no scale): no disruption allowed, evictions refused", async () => {
    h.sim.world.kube.registerNode("c1", agent("n1"));
    await daemonSet("proxy");
    tick(LATENCIES.deploymentReady);
    await h.policy.createNamespacedPodDisruptionBudget({
      namespace: ns,
      body: {
        metadata: { name: "proxy" },
        spec: { maxUnavailable: 1, selector: { matchLabels: { app: "proxy" } } },
      },
    });
    tick(LATENCIES.pdbSync);
    const pdb = await h.policy.readNamespacedPodDisruptionBudget({ name: "proxy", namespace: ns });
    expect(pdb.status?.disruptionsAllowed).toBe(0);
    expect(pdb.status?.conditions?.find((c) => c.type === "DisruptionAllowed")).toMatchObject({
      status: "False",
      reason: "SyncFailed",
      message: expect.stringContaining("found no controllers for pod"),
    });
    const [p] = await pods("app=proxy");
    const refused = await apiError(
      h.core.createNamespacedPodEviction({
        name: p!.metadata!.name!,
        namespace: ns,
        body: { metadata: { name: p!.metadata!.name! } },
      }),
    );
    expect(refused.code).toBe(429);
  });

  it("deleting a DaemonSet deletes its pods (background)", async () => {
    for (const n of ["n1", "n2"]) h.sim.world.kube.registerNode("c1", agent(n));
    await daemonSet("gone");
    await h.apps.deleteNamespacedDaemonSet({ name: "gone", namespace: ns });
    expect((await pods("app=gone")).every((p) => p.metadata?.deletionTimestamp)).toBe(true);
    tick(LATENCIES.podTermination);
    expect(await pods("app=gone")).toEqual([]);
  });
});
