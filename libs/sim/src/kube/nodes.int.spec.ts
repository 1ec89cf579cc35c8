import { CoreV1Api, KubeConfig, PatchStrategy, setHeaderOptions, VersionApi } from "@kubernetes/client-node";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { agent, apiError, type KubeHarness, kubeSim } from "./test-support.ts";

const merge = setHeaderOptions("Content-Type", PatchStrategy.MergePatch);
const strategic = setHeaderOptions("Content-Type", PatchStrategy.StrategicMergePatch);
const jsonPatch = setHeaderOptions("Content-Type", PatchStrategy.JsonPatch);

let h: KubeHarness;
beforeEach(async () => {
  h = await kubeSim();
});
afterEach(async () => {
  await h.sim.stop();
});

describe("nodes", () => {
  it("lists a registered node with its labels, taints, providerID and Ready", async () => {
    h.sim.world.kube.registerNode("c1", {
      name: "srv-1",
      role: "server",
      labels: { "cairn.dev/pool": "system" },
      taints: [{ key: "CriticalAddonsOnly", value: "true", effect: "NoExecute" }],
      instanceId: "i-0abc123def4567890",
      availabilityZone: "eu-west-1b",
      internalIp: "10.0.2.7",
    });
    h.sim.world.kube.registerNode("c1", agent("agt-1", { labels: { "cairn.dev/pool": "workers" } }));

    const list = await h.core.listNode();
    expect(list.items.map((n) => n.metadata?.name)).toEqual(["agt-1", "srv-1"]);
    expect(Number(list.metadata?.resourceVersion)).toBeGreaterThan(0);

    const srv = list.items[1]!;
    expect(srv.metadata?.labels).toMatchObject({
      "kubernetes.io/hostname": "srv-1",
      "node-role.kubernetes.io/control-plane": "true",
      "cairn.dev/pool": "system",
      "topology.kubernetes.io/zone": "eu-west-1b",
    });
    expect(srv.spec?.taints).toEqual([{ key: "CriticalAddonsOnly", value: "true", effect: "NoExecute" }]);
    expect(srv.spec?.providerID).toBe("aws:///eu-west-1b/i-0abc123def4567890");
    expect(srv.status?.addresses).toContainEqual({ type: "InternalIP", address: "10.0.2.7" });
    const ready = srv.status?.conditions?.find((c) => c.type === "Ready");
    expect(ready?.status).toBe("True");
    for (const t of ["MemoryPressure", "DiskPressure", "PIDPressure"]) {
      expect(srv.status?.conditions?.find((c) => c.type === t)?.status).toBe("False");
    }
    expect(srv.status?.allocatable?.pods).toBe("110");
    expect(list.items[0]!.metadata?.labels?.["node-role.kubernetes.io/control-plane"]).toBeUndefined();
  });

  it("filters by label and field selectors", async () => {
    h.sim.world.kube.registerNode("c1", agent("a1", { labels: { pool: "a" } }));
    h.sim.world.kube.registerNode("c1", agent("a2", { labels: { pool: "b" } }));
    h.sim.world.kube.registerNode("c1", agent("a3", { labels: { pool: "c", spot: "true" } }));
    const names = async (params: { labelSelector?: string; fieldSelector?: string }) =>
      (await h.core.listNode(params)).items.map((n) => n.metadata?.name);

    expect(await names({ labelSelector: "pool=a" })).toEqual(["a1"]);
    expect(await names({ labelSelector: "pool!=a" })).toEqual(["a2", "a3"]);
    expect(await names({ labelSelector: "pool in (a, c)" })).toEqual(["a1", "a3"]);
    expect(await names({ labelSelector: "pool notin (a),!spot" })).toEqual(["a2"]);
    expect(await names({ labelSelector: "spot" })).toEqual(["a3"]);
    expect(await names({ fieldSelector: "metadata.name=a2" })).toEqual(["a2"]);
    await h.core.patchNode({ name: "a3", body: { spec: { unschedulable: true } } }, merge);
    expect(await names({ fieldSelector: "spec.unschedulable=true" })).toEqual(["a3"]);
    expect(await names({ fieldSelector: "spec.unschedulable!=true", labelSelector: "pool" })).toEqual([
      "a1",
      "a2",
    ]);

    const bad = await apiError(h.core.listNode({ fieldSelector: "status.phase=Running" }));
    expect(bad.code).toBe(400);
    expect(bad.status?.message).toBe("field label not supported: status.phase");
  });

  it("cordons with a merge patch; the node lifecycle controller taints it", async () => {
    h.sim.world.kube.registerNode("c1", agent("n1"));
    const patched = await h.core.patchNode({ name: "n1", body: { spec: { unschedulable: true } } }, merge);
    expect(patched.spec?.unschedulable).toBe(true);

    const node = await h.core.readNode({ name: "n1" });
    expect(node.spec?.taints).toContainEqual({
      key: "node.kubernetes.io/unschedulable",
      effect: "NoSchedule",
    });
    expect(Number(node.metadata?.resourceVersion)).toBeGreaterThan(Number(patched.metadata?.resourceVersion));

    await h.core.patchNode({ name: "n1", body: { spec: { unschedulable: null } } }, merge);
    const uncordoned = await h.core.readNode({ name: "n1" });
    expect(uncordoned.spec?.unschedulable).toBeUndefined();
    expect(uncordoned.spec?.taints ?? []).toEqual([]);
  });

  it("cordons and taints with strategic merge patches as kubectl sends them", async () => {
    h.sim.world.kube.registerNode(
      "c1",
      agent("n1", { taints: [{ key: "a", value: "1", effect: "NoSchedule" }] }),
    );
    // kubectl cordon
    const cordoned = await h.core.patchNode(
      { name: "n1", body: { spec: { unschedulable: true } } },
      strategic,
    );
    expect(cordoned.spec?.unschedulable).toBe(true);
    expect(cordoned.spec?.taints).toEqual([{ key: "a", value: "1", effect: "NoSchedule" }]);

    // kubectl taint sends the whole new list: it replaces (taints are atomic)
    const current = await h.core.readNode({ name: "n1" });
    const taints = [
      ...(current.spec?.taints ?? []),
      { key: "cairn.dev/draining", value: "true", effect: "NoSchedule" },
    ];
    const tainted = await h.core.patchNode({ name: "n1", body: { spec: { taints } } }, strategic);
    expect(tainted.spec?.taints?.map((t) => t.key)).toEqual([
      "a",
      "node.kubernetes.io/unschedulable",
      "cairn.dev/draining",
    ]);

    // the sim's $patch extension: delete one taint by key without resending the list
    const untainted = await h.core.patchNode(
      { name: "n1", body: { spec: { taints: [{ key: "a", $patch: "delete" }] } } },
      strategic,
    );
    expect(untainted.spec?.taints?.map((t) => t.key)).toEqual([
      "node.kubernetes.io/unschedulable",
      "cairn.dev/draining",
    ]);

    // labels merge; null removes
    await h.core.patchNode({ name: "n1", body: { metadata: { labels: { x: "1", y: "2" } } } }, strategic);
    const labelled = await h.core.patchNode(
      { name: "n1", body: { metadata: { labels: { x: null } } } },
      strategic,
    );
    expect(labelled.metadata?.labels?.y).toBe("2");
    expect(labelled.metadata?.labels?.x).toBeUndefined();
    expect(labelled.metadata?.labels?.["kubernetes.io/hostname"]).toBe("n1");
  });

  it("labels and taints with JSON patches (RFC 6902, ~1 escapes)", async () => {
    h.sim.world.kube.registerNode("c1", agent("n1"));
    const labelled = await h.core.patchNode(
      {
        name: "n1",
        body: [
          { op: "add", path: "/metadata/labels/cairn.dev~1drain", value: "pending" },
          { op: "add", path: "/spec/taints", value: [] },
          {
            op: "add",
            path: "/spec/taints/-",
            value: { key: "cairn.dev/drain", value: "true", effect: "NoSchedule" },
          },
          { op: "replace", path: "/metadata/labels/kubernetes.io~1os", value: "linux" },
        ],
      },
      jsonPatch,
    );
    expect(labelled.metadata?.labels?.["cairn.dev/drain"]).toBe("pending");
    expect(labelled.spec?.taints).toEqual([{ key: "cairn.dev/drain", value: "true", effect: "NoSchedule" }]);

    const removed = await h.core.patchNode(
      {
        name: "n1",
        body: [
          { op: "test", path: "/metadata/labels/cairn.dev~1drain", value: "pending" },
          { op: "remove", path: "/metadata/labels/cairn.dev~1drain" },
          { op: "remove", path: "/spec/taints/0" },
        ],
      },
      jsonPatch,
    );
    expect(removed.metadata?.labels?.["cairn.dev/drain"]).toBeUndefined();
    expect(removed.spec?.taints ?? []).toEqual([]);

    const failed = await apiError(
      h.core.patchNode(
        { name: "n1", body: [{ op: "test", path: "/metadata/labels/cairn.dev~1drain", value: "pending" }] },
        jsonPatch,
      ),
    );
    expect(failed.code).toBe(422);
    const missing = await apiError(
      h.core.patchNode({ name: "n1", body: [{ op: "remove", path: "/metadata/labels/nope" }] }, jsonPatch),
    );
    expect(missing.code).toBe(422);
  });

  it("answers a stale resourceVersion with 409 Conflict", async () => {
    h.sim.world.kube.registerNode("c1", agent("n1"));
    const before = await h.core.readNode({ name: "n1" });
    const staleRv = before.metadata!.resourceVersion!;
    await h.core.patchNode({ name: "n1", body: { metadata: { labels: { touched: "yes" } } } }, merge);

    const viaPatch = await apiError(
      h.core.patchNode(
        { name: "n1", body: { metadata: { resourceVersion: staleRv, labels: { again: "yes" } } } },
        merge,
      ),
    );
    expect(viaPatch.code).toBe(409);
    expect(viaPatch.status).toMatchObject({
      kind: "Status",
      status: "Failure",
      reason: "Conflict",
      code: 409,
      details: { name: "n1", kind: "nodes" },
      message:
        'Operation cannot be fulfilled on nodes "n1": the object has been modified; please apply your changes to the latest version and try again',
    });

    before.metadata!.labels = { ...before.metadata!.labels, replaced: "yes" };
    const viaPut = await apiError(h.core.replaceNode({ name: "n1", body: before }));
    expect(viaPut.code).toBe(409);

    // with the current resourceVersion the same update goes through
    const fresh = await h.core.readNode({ name: "n1" });
    fresh.metadata!.labels = { ...fresh.metadata!.labels, replaced: "yes" };
    const replaced = await h.core.replaceNode({ name: "n1", body: fresh });
    expect(replaced.metadata?.labels?.replaced).toBe("yes");
  });

  it("rejects an invalid label with 422 Invalid", async () => {
    h.sim.world.kube.registerNode("c1", agent("n1"));
    const err = await apiError(
      h.core.patchNode({ name: "n1", body: { metadata: { labels: { pool: "not valid!" } } } }, merge),
    );
    expect(err.code).toBe(422);
    expect(err.status?.reason).toBe("Invalid");
    expect(err.status?.message).toMatch(
      /^Node "n1" is invalid: metadata.labels: Invalid value: "not valid!"/,
    );
    expect(err.status?.details?.causes?.[0]).toMatchObject({
      reason: "FieldValueInvalid",
      field: "metadata.labels",
    });

    const effect = await apiError(
      h.core.patchNode(
        { name: "n1", body: { spec: { taints: [{ key: "k", effect: "Sometimes" }] } } },
        merge,
      ),
    );
    expect(effect.code).toBe(422);
    expect(effect.status?.details?.causes?.[0]?.field).toBe("spec.taints[0].effect");
  });

  it("answers a missing node with a 404 Status", async () => {
    const err = await apiError(h.core.readNode({ name: "ghost" }));
    expect(err.code).toBe(404);
    expect(err.status).toEqual({
      kind: "Status",
      apiVersion: "v1",
      metadata: {},
      status: "Failure",
      message: 'nodes "ghost" not found',
      reason: "NotFound",
      details: { name: "ghost", kind: "nodes" },
      code: 404,
    });
    expect((await apiError(h.core.patchNode({ name: "ghost", body: {} }, merge))).code).toBe(404);
    expect((await apiError(h.core.deleteNode({ name: "ghost" }))).code).toBe(404);
  });

  it("deletes a node; removeNode and re-registration work through the port", async () => {
    h.sim.world.kube.registerNode("c1", agent("n1"));
    h.sim.world.kube.registerNode("c1", agent("n2"));
    const status = await h.core.deleteNode({ name: "n1" });
    expect(status.status).toBe("Success");
    h.sim.world.kube.removeNode("c1", "n2");
    expect((await h.core.listNode()).items).toEqual([]);
    h.sim.world.kube.registerNode("c1", agent("n2"));
    expect((await h.core.listNode()).items.map((n) => n.metadata?.name)).toEqual(["n2"]);
  });

  it("a kubelet that stops: the node keeps its status for the grace period, then Ready=Unknown with the unreachable taints", async () => {
    h.sim.world.kube.registerNode("c1", agent("n1"));
    h.sim.world.kube.stopKubelet("c1", "n1");
    const ready = async () =>
      (await h.core.readNode({ name: "n1" })).status?.conditions?.find((c) => c.type === "Ready");
    h.sim.clock.advance(39_000);
    expect((await ready())?.status).toBe("True"); // within --node-monitor-grace-period (40 s)
    h.sim.clock.advance(2_000);
    expect(await ready()).toMatchObject({
      status: "Unknown",
      reason: "NodeStatusUnknown",
      message: "Kubelet stopped posting node status.",
    });
    const n = await h.core.readNode({ name: "n1" });
    expect(n.status?.conditions?.every((c) => c.status === "Unknown")).toBe(true);
    expect((n.spec?.taints ?? []).map((t) => `${t.key}:${t.effect}`).sort()).toEqual([
      "node.kubernetes.io/unreachable:NoExecute",
      "node.kubernetes.io/unreachable:NoSchedule",
    ]);
    // The kubelet comes back: Ready again, taints gone.
    h.sim.world.kube.registerNode("c1", agent("n1"));
    expect((await ready())?.status).toBe("True");
    expect((await h.core.readNode({ name: "n1" })).spec?.taints ?? []).toEqual([]);
  });

  it("the pods of a deleted node are removed by pod GC about a minute later, not at once", async () => {
    h.sim.world.kube.registerNode("c1", agent("n1"));
    await h.core.createNamespacedPod({
      namespace: "default",
      body: {
        metadata: { name: "orphan" },
        spec: { nodeName: "n1", containers: [{ name: "c", image: "nginx:1.27" }] },
      },
    });
    h.sim.world.kube.removeNode("c1", "n1");
    h.sim.clock.advance(30_000);
    expect((await h.core.readNamespacedPod({ name: "orphan", namespace: "default" })).spec?.nodeName).toBe(
      "n1",
    );
    h.sim.clock.advance(31_000);
    expect((await apiError(h.core.readNamespacedPod({ name: "orphan", namespace: "default" }))).code).toBe(
      404,
    );
  });

  it("rejects a wrong token with 401", async () => {
    const kc = new KubeConfig();
    kc.loadFromString(h.sim.world.kube.kubeconfig("c1").replace(/token: ".*"/, 'token: "wrong"'));
    const err = await apiError(kc.makeApiClient(CoreV1Api).listNode());
    expect(err.code).toBe(401);
    const log = h.sim.requests.list({ service: "kube", action: "list nodes" });
    expect(log.at(-1)).toMatchObject({ region: "c1", status: 401, error: "Unauthorized" });
  });

  it("answers 404 for a cluster the sim does not run", async () => {
    const kc = new KubeConfig();
    kc.loadFromString(h.sim.world.kube.kubeconfig("c1").replace("/k8s/c1", "/k8s/other"));
    expect((await apiError(kc.makeApiClient(CoreV1Api).listNode())).code).toBe(404);
  });

  it("injects kube-down (503), throttle (429 + Retry-After) and internal-error (500)", async () => {
    h.sim.world.kube.registerNode("c1", agent("n1"));
    h.sim.faults.add({ kind: "kube-down", service: "kube", count: 1, match: { clusterId: "c1" } });
    const down = await apiError(h.core.listNode());
    expect(down.code).toBe(503);
    expect(down.status?.reason).toBe("ServiceUnavailable");

    h.sim.faults.add({ kind: "throttle", service: "kube", action: "patch", count: 1, match: { node: "n1" } });
    await h.core.listNode(); // not a patch: goes through
    const throttled = await apiError(
      h.core.patchNode({ name: "n1", body: { metadata: { labels: { a: "b" } } } }, merge),
    );
    expect(throttled.code).toBe(429);
    expect(throttled.headers["retry-after"]).toBe("1");
    expect(throttled.status?.reason).toBe("TooManyRequests");

    h.sim.faults.add({ kind: "internal-error", service: "kube", action: "get", count: 1 });
    expect((await apiError(h.core.readNode({ name: "n1" }))).code).toBe(500);
    expect((await h.core.readNode({ name: "n1" })).metadata?.name).toBe("n1");

    // an outage window: every call fails until the rule's `until`
    h.sim.faults.add({ kind: "kube-down", service: "kube", rate: 1, until: h.sim.clock.now() + 60_000 });
    expect((await apiError(h.core.listNode())).code).toBe(503);
    h.sim.clock.advance(61_000);
    expect((await h.core.listNode()).items).toHaveLength(1);

    const log = h.sim.requests.list({ service: "kube" }).map((e) => `${e.action} ${e.status}`);
    expect(log).toContain("list nodes 503");
    expect(log).toContain("patch node 429");
    expect(log).toContain("get node 500");
  });

  it("lists a large cluster complete, gzipped for clients that accept it, and in pages", async () => {
    for (let i = 0; i < 300; i++)
      h.sim.world.kube.registerNode(
        "c1",
        agent(`node-${String(i).padStart(3, "0")}`, { labels: { i: String(i) } }),
      );
    const all = await h.core.listNode();
    expect(all.items).toHaveLength(300);
    expect(all.items.at(-1)?.metadata?.labels?.i).toBe("299");

    const { token } = h.sim.world.kube.ensureCluster("c1");
    // listNode above built the items: from this second list on they go gzipped; the first
    // list after a change goes plain
    const gzList = () =>
      fetch(`${h.sim.url}/k8s/c1/api/v1/nodes`, {
        headers: { authorization: `Bearer ${token}`, "accept-encoding": "gzip" },
      });
    expect((await gzList()).headers.get("content-encoding")).toBe("gzip");
    h.sim.world.kube.registerNode("c1", agent("node-299", { labels: { i: "299", changed: "yes" } }));
    expect((await gzList()).headers.get("content-encoding")).toBeNull();
    const res = await gzList();
    expect(res.headers.get("content-encoding")).toBe("gzip");
    const gzipped = (await res.json()) as { items: { metadata: { labels: Record<string, string> } }[] };
    expect(gzipped.items).toHaveLength(300);
    expect(gzipped.items.at(-1)?.metadata.labels.changed).toBe("yes");
    // list items carry no kind/apiVersion, as the real API sends them
    const raw = await fetch(`${h.sim.url}/k8s/c1/api/v1/nodes?limit=1`, {
      headers: { authorization: `Bearer ${token}` },
    });
    const rawList = (await raw.json()) as { kind: string; items: Record<string, unknown>[] };
    expect(rawList.kind).toBe("NodeList");
    expect(rawList.items[0]!.kind).toBeUndefined();

    const names: string[] = [];
    let cont: string | undefined;
    do {
      const page = await h.core.listNode({ limit: 120, ...(cont ? { _continue: cont } : {}) });
      names.push(...page.items.map((n) => n.metadata!.name!));
      cont = page.metadata?._continue;
      if (cont) expect(page.metadata?.remainingItemCount).toBeGreaterThan(0);
    } while (cont);
    expect(names).toEqual(all.items.map((n) => n.metadata!.name!));
  });

  it("offers admin actions and a compact state", async () => {
    const admin = (action: string, body: unknown) =>
      fetch(`${h.sim.adminUrl}/kube/${action}`, { method: "POST", body: JSON.stringify(body) }).then(
        async (r) => ({ status: r.status, body: await r.json() }),
      );
    expect(
      (
        await admin("register-node", {
          clusterId: "c1",
          node: { name: "n1", role: "server", labels: { a: "b" }, taints: [] },
        })
      ).status,
    ).toBe(200);
    expect((await admin("node-ready", { clusterId: "c1", node: "n1", ready: false })).status).toBe(200);
    expect(
      (await h.core.readNode({ name: "n1" })).status?.conditions?.find((c) => c.type === "Ready")?.status,
    ).toBe("False");
    expect((await admin("node-ready", { clusterId: "c1", node: "ghost", ready: false })).status).toBe(400);

    const state = (await (await fetch(`${h.sim.adminUrl}/state`)).json()) as {
      kube: { clusters: Record<string, { nodes: unknown[] }> };
    };
    expect(state.kube.clusters.c1?.nodes).toEqual([
      {
        name: "n1",
        ready: false,
        unschedulable: false,
        labels: expect.objectContaining({ a: "b", "node-role.kubernetes.io/control-plane": "true" }),
        taints: ["node.kubernetes.io/not-ready:NoSchedule", "node.kubernetes.io/not-ready:NoExecute"],
      },
    ]);
  });

  it("serves discovery and version", async () => {
    const version = await h.kc.makeApiClient(VersionApi).getCode();
    expect(version.gitVersion).toMatch(/\+k3s/);
    const res = await fetch(`${h.sim.url}/k8s/c1/api/v1`, {
      headers: { authorization: `Bearer ${h.sim.world.kube.ensureCluster("c1").token}` },
    });
    const body = (await res.json()) as { resources: { name: string }[] };
    expect(body.resources.map((r) => r.name)).toEqual(
      expect.arrayContaining(["nodes", "pods", "pods/eviction", "namespaces"]),
    );
  });
});
