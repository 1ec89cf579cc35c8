import type { KubeCommand, KubeEvent, ObservedNode, PressureCondition } from "@cairn/events";
import { deciderSpec } from "@cairn/events/testing";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { kubeDecider } from "./decider.ts";

const clusterId = "demo-1";
const spec = deciderSpec(kubeDecider, { type: "kube", id: clusterId });

const node = (name: string, o: Partial<ObservedNode> = {}): ObservedNode => ({
  node: name,
  role: "agent",
  labels: { "cairn.dev/pool": "workers", "cairn.dev/capacity-type": "spot" },
  taints: [],
  unschedulable: false,
  ready: true,
  pressure: [],
  ...o,
});
const observe = (n: ObservedNode): KubeCommand => ({ type: "kube.observe-node", data: { clusterId, ...n } });
const list = (...nodes: ObservedNode[]): KubeCommand => ({
  type: "kube.observe-node-list",
  data: { clusterId, nodes },
});
const removed = (name: string): KubeCommand => ({
  type: "kube.observe-node-removed",
  data: { clusterId, node: name },
});
const api = (reachable: boolean, reason?: string): KubeCommand => ({
  type: "kube.observe-api",
  data: { clusterId, reachable, ...(reason ? { reason } : {}) },
});

const A = "i-0aaa";
const B = "i-0bbb";
const registered = (name: string, o: Partial<ObservedNode> = {}): KubeEvent => {
  const n = node(name, o);
  return {
    type: "kube.node-registered",
    data: {
      node: name,
      ...(n.instanceId ? { instanceId: n.instanceId } : {}),
      role: n.role,
      ...(n.labels["cairn.dev/pool"] ? { pool: n.labels["cairn.dev/pool"] } : {}),
      ...(n.labels["cairn.dev/capacity-type"]
        ? { capacityType: n.labels["cairn.dev/capacity-type"] as "spot" | "on-demand" }
        : {}),
      labels: n.labels,
      taints: n.taints,
      unschedulable: n.unschedulable,
    },
  };
};
const ready = (name: string): KubeEvent => ({ type: "kube.node-ready", data: { node: name } });
const notReady = (name: string, reason: string): KubeEvent => ({
  type: "kube.node-not-ready",
  data: { node: name, reason },
});
const pressureChanged = (name: string, pressure: PressureCondition[]): KubeEvent => ({
  type: "kube.node-pressure-changed",
  data: { node: name, pressure },
});
const nodeRemoved = (name: string): KubeEvent => ({ type: "kube.node-removed", data: { node: name } });
const known = (name: string, o: Partial<ObservedNode> = {}) => [registered(name, o), ready(name)];

describe("kube.observe-node", () => {
  it("first sight: registered (pool, capacity type, instance) and ready", () => {
    spec
      .given([])
      .when(observe(node(A, { instanceId: A, role: "server" })))
      .then([registered(A, { instanceId: A, role: "server" }), ready(A)]);
  });
  it("first sight of a NotReady node under pressure: registered, not-ready with the reason, pressure", () => {
    spec
      .given([])
      .when(
        observe(
          node(A, { ready: false, notReadyReason: "KubeletNotReady: PLEG", pressure: ["MemoryPressure"] }),
        ),
      )
      .then([registered(A), notReady(A, "KubeletNotReady: PLEG"), pressureChanged(A, ["MemoryPressure"])]);
  });
  it("a node without Cairn's labels is registered without pool or capacity type", () => {
    const r = spec.given([]).when(observe(node(A, { labels: { "cairn.dev/capacity-type": "weird" } })));
    r.then([
      {
        type: "kube.node-registered",
        data: {
          node: A,
          role: "agent",
          labels: { "cairn.dev/capacity-type": "weird" },
          taints: [],
          unschedulable: false,
        },
      },
      ready(A),
    ]);
  });
  it("the same observation again: nothing", () => {
    spec
      .given(known(A))
      .when(observe(node(A)))
      .then([]);
  });
  it("Ready flips: not-ready, then ready; a new reason while NotReady is no new fact", () => {
    spec
      .given(known(A))
      .when(observe(node(A, { ready: false, notReadyReason: "NodeStatusUnknown" })))
      .then([notReady(A, "NodeStatusUnknown")]);
    spec
      .given([...known(A), notReady(A, "NodeStatusUnknown")])
      .when(observe(node(A, { ready: false, notReadyReason: "KubeletNotReady" })))
      .then([]);
    spec
      .given([...known(A), notReady(A, "NodeStatusUnknown")])
      .when(observe(node(A)))
      .then([ready(A)]);
  });
  it("not Ready without a reason gets a default one", () => {
    spec
      .given(known(A))
      .when(observe(node(A, { ready: false })))
      .then([notReady(A, "the node's Ready condition is not True")]);
  });
  it("pressure set changes (order does not matter); back to none is a change too", () => {
    spec
      .given(known(A))
      .when(observe(node(A, { pressure: ["PIDPressure", "DiskPressure"] })))
      .then([pressureChanged(A, ["DiskPressure", "PIDPressure"])]);
    const under = [...known(A), pressureChanged(A, ["DiskPressure", "PIDPressure"])];
    spec
      .given(under)
      .when(observe(node(A, { pressure: ["DiskPressure", "PIDPressure"] })))
      .then([]);
    spec
      .given(under)
      .when(observe(node(A)))
      .then([pressureChanged(A, [])]);
  });
  it("labels, taints or unschedulable change: classification-changed with the new ones", () => {
    const taints = [{ key: "dedicated", value: "gpu", effect: "NoSchedule" as const }];
    const labels = { "cairn.dev/pool": "gpu" };
    spec
      .given(known(A))
      .when(observe(node(A, { labels, taints, unschedulable: true })))
      .then([
        {
          type: "kube.node-classification-changed",
          data: { node: A, labels, taints, unschedulable: true },
        },
      ]);
    spec
      .given(known(A, { taints }))
      .when(observe(node(A, { taints: [{ ...taints[0]! }] })))
      .then([]);
  });
});

describe("kube.observe-node-removed", () => {
  it("a known node: removed; an unknown (or already removed) one: nothing", () => {
    spec
      .given(known(A))
      .when(removed(A))
      .then([nodeRemoved(A)]);
    spec.given([]).when(removed(A)).then([]);
    spec
      .given([...known(A), nodeRemoved(A)])
      .when(removed(A))
      .then([]);
  });
  it("a node seen again after its removal registers again", () => {
    spec
      .given([...known(A), nodeRemoved(A)])
      .when(observe(node(A)))
      .then(known(A));
  });
  it("the state remembers which nodes left (the disruption limit's gone holders) until they come back", () => {
    expect(spec.given(known(A)).state.removed).toEqual([]);
    expect(spec.given([...known(A), ...known(B), nodeRemoved(B), nodeRemoved(A)]).state.removed).toEqual([
      A,
      B,
    ]);
    expect(spec.given([...known(A), nodeRemoved(A), ...known(A)]).state).toMatchObject({
      removed: [],
      nodes: { [A]: expect.anything() },
    });
  });
});

describe("kube.observe-node-list", () => {
  it("a full resync: registers the new, updates the changed, removes the missing", () => {
    spec
      .given([...known(A), ...known(B)])
      .when(list(node(A, { ready: false, notReadyReason: "KubeletNotReady" }), node("i-0ccc")))
      .then([notReady(A, "KubeletNotReady"), ...known("i-0ccc"), nodeRemoved(B)]);
  });
  it("an unchanged cluster: nothing", () => {
    spec
      .given([...known(A), ...known(B)])
      .when(list(node(B), node(A)))
      .then([]);
  });
  it("an empty list removes every known node", () => {
    spec
      .given([...known(A), ...known(B)])
      .when(list())
      .then([nodeRemoved(A), nodeRemoved(B)]);
  });
});

describe("kube.observe-api", () => {
  it("the first answer: reachable once", () => {
    spec
      .given([])
      .when(api(true))
      .then([{ type: "kube.api-reachable", data: {} }]);
    spec
      .given([{ type: "kube.api-reachable", data: {} }])
      .when(api(true))
      .then([]);
  });
  it("unreachable once per outage, with the reason; reachable again ends it", () => {
    const down: KubeEvent = { type: "kube.api-unreachable", data: { reason: "503 ServiceUnavailable" } };
    spec.given([]).when(api(false, "503 ServiceUnavailable")).then([down]);
    spec
      .given([{ type: "kube.api-reachable", data: {} }])
      .when(api(false, "503 ServiceUnavailable"))
      .then([down]);
    spec.given([down]).when(api(false, "ECONNREFUSED")).then([]);
    spec
      .given([down])
      .when(api(true))
      .then([{ type: "kube.api-reachable", data: {} }]);
    spec
      .given([{ type: "kube.api-reachable", data: {} }, down, { type: "kube.api-reachable", data: {} }])
      .when(api(false))
      .then([{ type: "kube.api-unreachable", data: { reason: "the API server did not answer" } }]);
  });
});

// ------------------------------------------------------------ properties: no spam

const label = fc.constantFrom("a", "b", "cairn.dev/pool", "cairn.dev/capacity-type");
const value = fc.constantFrom("", "x", "spot", "on-demand", "workers");
const observedNode = (name: fc.Arbitrary<string>) =>
  fc.record({
    node: name,
    instanceId: fc.option(fc.constantFrom("i-0aaa", "i-0bbb"), { nil: undefined }),
    role: fc.constantFrom("server" as const, "agent" as const),
    labels: fc.dictionary(label, value, { maxKeys: 4 }),
    taints: fc.uniqueArray(
      fc.record({
        key: fc.constantFrom("k1", "k2"),
        value: fc.option(fc.constantFrom("v"), { nil: undefined }),
        effect: fc.constantFrom("NoSchedule" as const, "NoExecute" as const),
      }),
      { maxLength: 3, selector: (t) => `${t.key}/${t.effect}` },
    ),
    unschedulable: fc.boolean(),
    ready: fc.boolean(),
    notReadyReason: fc.option(fc.constantFrom("KubeletNotReady", "NodeStatusUnknown"), { nil: undefined }),
    pressure: fc.uniqueArray(
      fc.constantFrom<PressureCondition>(
        "MemoryPressure",
        "DiskPressure",
        "PIDPressure",
        "NetworkUnavailable",
      ),
      { maxLength: 4 },
    ),
  }) as fc.Arbitrary<ObservedNode>;
const clean = (n: ObservedNode): ObservedNode =>
  JSON.parse(JSON.stringify(n)) as ObservedNode; /* drops undefined optionals, as JSON does on the wire */

const decide = (history: KubeEvent[], command: KubeCommand) => {
  const r = spec.given(history).when(command).decision;
  if (!Array.isArray(r)) throw new Error("unexpected rejection");
  return r as KubeEvent[];
};

describe("no spam (properties)", () => {
  it("observing the same node twice emits nothing the second time, whatever came before", () => {
    fc.assert(
      fc.property(
        fc.array(observedNode(fc.constantFrom(A, B)).map(clean), { maxLength: 5 }),
        observedNode(fc.constantFrom(A, B)).map(clean),
        (before, n) => {
          const history: KubeEvent[] = [];
          for (const b of before) history.push(...decide(history, observe(b)));
          history.push(...decide(history, observe(n)));
          expect(decide(history, observe(n))).toEqual([]);
        },
      ),
    );
  });
  it("a relist of what was just listed emits nothing", () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(observedNode(fc.constantFrom(A, B, "i-0ccc")).map(clean), {
          maxLength: 3,
          selector: (n) => n.node,
        }),
        fc.uniqueArray(observedNode(fc.constantFrom(A, B, "i-0ccc")).map(clean), {
          maxLength: 3,
          selector: (n) => n.node,
        }),
        (first, second) => {
          const history: KubeEvent[] = [];
          history.push(...decide(history, list(...first)));
          history.push(...decide(history, list(...second)));
          expect(decide(history, list(...second))).toEqual([]);
        },
      ),
    );
  });
  it("API observations: at most one fact per change of reachability", () => {
    fc.assert(
      fc.property(fc.array(fc.boolean(), { maxLength: 20 }), (seen) => {
        const history: KubeEvent[] = [];
        let changes = 0;
        let last: boolean | undefined;
        for (const r of seen) {
          if (r !== last) changes++;
          last = r;
          history.push(...decide(history, api(r, "down")));
        }
        expect(history).toHaveLength(changes);
      }),
    );
  });
});

describe("kube.observe-nodes (the watch's changes that queued while one was recorded)", () => {
  const many = (...nodes: ObservedNode[]): KubeCommand => ({
    type: "kube.observe-nodes",
    data: { clusterId, nodes },
  });
  it("given nothing known, when two nodes are seen in one record, then each is registered and ready, as two observe-node would", () => {
    spec
      .given([])
      .when(many(node(A), node(B)))
      .then([registered(A), ready(A), registered(B), ready(B)]);
  });
  it("the same node twice, NotReady then Ready: each change decided on the one before it", () => {
    spec
      .given(known(A))
      .when(many(node(A, { ready: false, notReadyReason: "KubeletNotReady" }), node(A)))
      .then([notReady(A, "KubeletNotReady"), ready(A)]);
  });
  it("is not a full list: a known node it does not name stays", () => {
    spec
      .given([...known(A), ...known(B)])
      .when(many(node(A)))
      .then([]);
  });
});

describe("evolveAll (a commit, or a history, folded with one copy of the node table)", () => {
  it("folds exactly as evolve one event at a time, and never changes the state it starts from", () => {
    const deepFreeze = <T>(x: T): T => {
      if (x && typeof x === "object" && !Object.isFrozen(x)) {
        Object.freeze(x);
        for (const v of Object.values(x)) deepFreeze(v);
      }
      return x;
    };
    const names = ["i-01", "i-02", "i-03", "i-04"];
    const anObservation = fc.record({
      node: fc.constantFrom(...names),
      ready: fc.boolean(),
      unschedulable: fc.boolean(),
      pool: fc.constantFrom("workers", "gpu"),
      pressure: fc.subarray(["MemoryPressure", "DiskPressure"] as PressureCondition[]),
    });
    const aCommand = fc.oneof(
      fc.array(anObservation, { minLength: 1, maxLength: 6 }).map(
        (os): KubeCommand => ({
          type: "kube.observe-nodes",
          data: {
            clusterId,
            nodes: os.map((o) =>
              node(o.node, {
                ready: o.ready,
                unschedulable: o.unschedulable,
                labels: { "cairn.dev/pool": o.pool },
                pressure: o.pressure,
                ...(o.ready ? {} : { notReadyReason: "KubeletNotReady" }),
              }),
            ),
          },
        }),
      ),
      fc.constantFrom(...names).map((n) => removed(n)),
      fc.boolean().map((r) => api(r, "no route")),
      fc.subarray(names).map((ns) => list(...ns.map((n) => node(n)))),
    );
    const evolveAll = kubeDecider.evolveAll!;
    const envelope = (e: KubeEvent, position: number) =>
      ({ ...e, position, aggregate: { type: "kube", id: clusterId } }) as never;
    fc.assert(
      fc.property(fc.array(aCommand, { maxLength: 30 }), (commands) => {
        let state = kubeDecider.initialState();
        const history: never[] = [];
        for (const c of commands) {
          const decision = kubeDecider.decide({ ...c, id: "c", meta: {} } as never, state, {
            now: new Date(0),
            version: history.length,
          });
          if (!Array.isArray(decision) || decision.length === 0) continue;
          const commit = decision.map((e) => envelope(e, history.length + 1));
          history.push(...commit);
          const before = JSON.stringify(deepFreeze(state));
          const one = commit.reduce((s, e) => kubeDecider.evolve(s, e), state);
          const all = evolveAll(state, commit);
          expect(all).toEqual(one);
          // A frozen state: a write into its node table would have thrown.
          expect(JSON.stringify(state)).toBe(before);
          state = all;
        }
        expect(evolveAll(kubeDecider.initialState(), history)).toEqual(state);
      }),
      { numRuns: 300 },
    );
  });
});
