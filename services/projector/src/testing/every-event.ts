/**
 * A cluster's life that uses every cluster event type the projector folds, plus the
 * rejections of every aggregate (the event index and the commands model take any
 * event): the log a replay must rebuild exactly.
 */
import {
  AGGREGATE_TYPES,
  type AggregateRef,
  type CairnEvent,
  catalogue,
  nodeAggregateId,
  nodeopLimitId,
} from "@cairn/events";
import {
  anEnvelope,
  aSpec,
  deletionRequested,
  rejected,
  requested,
  rollbackRequested,
  scaleRequested,
} from "./fixtures.ts";

type Commit = { readonly aggregate: AggregateRef; readonly events: { type: string; data: unknown }[] };

const placement = { instanceType: "t3.large", capacityType: "spot" as const };
const slot = (n: number) => ({ slot: n, pool: "workers", ordinal: n - 1000, role: "agent" as const });

/** The commits of one cluster `id`, in order; `k` varies the numbers between clusters. */
export function everyClusterEventCommits(id: string, k = 0): Commit[] {
  const c: AggregateRef = { type: "cluster", id };
  const spec = aSpec(id);
  const commit = (...events: { type: string; data: unknown }[]): Commit => ({ aggregate: c, events });
  return [
    commit(requested(id, spec)),
    commit({ type: "cluster.validation-started", data: {} }),
    commit(
      { type: "cluster.validated", data: { imageId: "ami-0ca1a00000000c0de", architecture: "x86_64" } },
      { type: "cluster.provisioning-started", data: { slots: [slot(1000), slot(1001)] } },
    ),
    commit(
      { type: "cluster.instance-launch-requested", data: { ...slot(1000), attempt: 1, placement } },
      { type: "cluster.instance-launch-requested", data: { ...slot(1001), attempt: 1, placement } },
    ),
    commit({
      type: "cluster.instance-launch-failed",
      data: {
        slot: 1001,
        attempt: 1,
        placement,
        code: "InsufficientInstanceCapacity",
        reason: "no spot",
        capacity: true,
      },
    }),
    commit({ type: "cluster.instance-launched", data: { slot: 1000, attempt: 1, instanceId: `i-${id}-a` } }),
    commit({ type: "cluster.instance-running", data: { slot: 1000, instanceId: `i-${id}-a` } }),
    commit({
      type: "cluster.failed",
      data: { reason: "slot 1001 has no capacity", remediation: "retry later" },
    }),
    commit({ type: "cluster.retry-requested", data: {} }),
    commit({ type: "cluster.instance-launched", data: { slot: 1001, attempt: 2, instanceId: `i-${id}-b` } }),
    commit({ type: "cluster.instance-running", data: { slot: 1001, instanceId: `i-${id}-b` } }),
    commit({ type: "cluster.instances-ready", data: { count: 2 } }),
    commit({ type: "cluster.ready", data: { nodes: 2, k3sVersion: spec.k3sVersion } }),
    commit({ type: "cluster.degraded", data: { reason: `node-ready on i-${id}-a: NotReady` } }),
    commit({ type: "cluster.recovering", data: { reason: `restart-k3s on i-${id}-a` } }),
    commit({
      type: "cluster.node-replacement-requested",
      data: { slot: 1000, instanceId: `i-${id}-a`, reason: "unhealthy" },
    }),
    commit({ type: "cluster.ready", data: { nodes: 2, k3sVersion: spec.k3sVersion } }),
    commit({ type: "cluster.k3s-upgraded", data: { from: spec.k3sVersion, to: "v1.32.0+k3s1" } }),
    commit({
      type: "cluster.pool-updated",
      data: { pool: "workers", labels: { tier: `t${k}` }, taints: [{ key: "gpu", effect: "NoSchedule" }] },
    }),
    commit(scaleRequested("workers", 2, 3 + (k % 3))),
    commit({ type: "cluster.scale-failed", data: { reason: "quota", spec } }),
    commit(rejected(`reject-${id}`, "cluster.scale", "conflict", "already scaling")),
    commit(rollbackRequested(1, spec)),
    commit({ type: "cluster.instance-termination-requested", data: { slot: 1001, instanceId: `i-${id}-b` } }),
    commit({ type: "cluster.instance-terminated", data: { slot: 1001 } }),
    commit(deletionRequested()),
    commit({ type: "cluster.deleted", data: { terminated: [`i-${id}-a`] } }),
  ];
}

/** One rejection on each aggregate type (every aggregate's `<type>.rejected` event). */
export function rejectionOfEveryAggregate(suffix: string): Commit[] {
  return AGGREGATE_TYPES.map((type) => ({
    aggregate: { type, id: `${type}-${suffix}` },
    events: [
      {
        ...rejected(`cmd-${type}-${suffix}`, `${type}.whatever`, "invalid", "fixture"),
        type: `${type}.rejected`,
      },
    ],
  }));
}

const T = (s: number) => new Date(Date.UTC(2026, 10, 22, 8, 0, s)).toISOString();
const ev = (type: string, data: unknown) => ({ type, data });

/**
 * The install, kube and nodeop commits of cluster `id`: a K3s install on a server
 * (slot 0) and two agents (slots 1000, 1001, the instances of `everyClusterEventCommits`),
 * health checks, a recovery, a rolling upgrade, and node operations (cordon, uncordon,
 * drain with the disruption limit, classification, a spot interruption) — every event
 * type of those aggregates but their rejections (`rejectionOfEveryAggregate` has those).
 */
export function everyNodeEventCommits(id: string, k = 0): Commit[] {
  const install: AggregateRef = { type: "install", id };
  const kube: AggregateRef = { type: "kube", id };
  const s = `i-${id}-s`;
  const a = `i-${id}-a`;
  const b = `i-${id}-b`;
  const node = (n: string): AggregateRef => ({ type: "nodeop", id: nodeAggregateId(id, n) });
  const ledger: AggregateRef = { type: "nodeop", id: nodeopLimitId(id) };
  const i = (...events: { type: string; data: unknown }[]): Commit => ({ aggregate: install, events });
  const kc = (...events: { type: string; data: unknown }[]): Commit => ({ aggregate: kube, events });
  const on = (agg: AggregateRef, ...events: { type: string; data: unknown }[]): Commit => ({
    aggregate: agg,
    events,
  });
  const pool = { name: "workers", capacityType: "spot", labels: { tier: `t${k}` }, taints: [] };
  const added = (slot: number, instanceId: string, role: "server" | "agent") =>
    ev("install.node-added", {
      slot,
      instanceId,
      node: instanceId,
      role,
      pool: role === "server" ? "servers" : "workers",
      capacityType: role === "server" ? "on-demand" : "spot",
      privateIp: `10.0.${k % 250}.${slot % 250}`,
      joinDeadline: T(600),
    });
  const step = (slot: number, instanceId: string, name: string, attempt: number, cmd: string) => [
    ev("install.step-requested", {
      step: name,
      slot,
      instanceId,
      node: instanceId,
      attempt,
      number: 1,
      of: 1,
    }),
    ev("install.step-sent", {
      step: name,
      slot,
      instanceId,
      attempt,
      commandId: cmd,
      sentAt: T(10 + (slot % 7)),
      deadline: T(900),
    }),
  ];
  const succeeded = (
    slot: number,
    instanceId: string,
    name: string,
    attempt: number,
    cmd: string,
    ms: number,
  ) =>
    ev("install.step-succeeded", {
      step: name,
      slot,
      instanceId,
      attempt,
      commandId: cmd,
      durationMs: ms,
      outputTail: `${name} ok`,
    });
  const labels = { "cairn.dev/pool": "workers", "cairn.dev/capacity-type": "spot" };
  const batch = "9.0";
  const inBatch = ({ type, data }: { type: string; data: unknown }) => ({
    type,
    data: Object.assign({}, data, { batch }),
  });
  return [
    i(
      ev("install.planned", {
        region: "eu-west-1",
        k3sVersion: "v1.31.4+k3s1",
        prebuiltAmi: false,
        servers: 1,
        pools: [pool],
      }),
    ),
    i(ev("install.secrets-stored", { parameters: [`/cairn/${id}/token`] })),
    i(added(0, s, "server")),
    i(added(1000, a, "agent"), added(1001, b, "agent")),
    i(ev("install.node-online", { slot: 0, instanceId: s })),
    i(...step(0, s, "k3s-server-init", 1, `cmd-${id}-1`)),
    i(succeeded(0, s, "k3s-server-init", 1, `cmd-${id}-1`, 40_000 + k * 1000)),
    i(ev("install.kubeconfig-published", { parameter: `/cairn/${id}/kubeconfig`, version: 1 })),
    i(
      ev("install.node-online", { slot: 1000, instanceId: a }),
      ev("install.node-online", { slot: 1001, instanceId: b }),
    ),
    i(...step(1000, a, "k3s-agent-join", 1, `cmd-${id}-2`)),
    i(
      ev("install.step-failed", {
        step: "k3s-agent-join",
        slot: 1000,
        instanceId: a,
        attempt: 1,
        commandId: `cmd-${id}-2`,
        status: "TimedOut",
        reason: "no answer",
        outputTail: "…",
        willRetry: true,
      }),
    ),
    // The retry of 1000 and the first join of 1001 go out as one batch (one SSM command).
    i(
      inBatch(step(1000, a, "k3s-agent-join", 2, `cmd-${id}-3`)[0]!),
      inBatch(step(1001, b, "k3s-agent-join", 1, `cmd-${id}-3`)[0]!),
      ev("install.batch-requested", {
        batch,
        step: "k3s-agent-join",
        slots: [1000, 1001],
        instanceIds: [a, b],
      }),
    ),
    i(
      inBatch(step(1000, a, "k3s-agent-join", 2, `cmd-${id}-3`)[1]!),
      inBatch(step(1001, b, "k3s-agent-join", 1, `cmd-${id}-3`)[1]!),
      ev("install.batch-sent", {
        batch,
        step: "k3s-agent-join",
        commandId: `cmd-${id}-3`,
        slots: [1000, 1001],
        sentAt: T(12),
        deadline: T(900),
      }),
    ),
    i(succeeded(1000, a, "k3s-agent-join", 2, `cmd-${id}-3`, 20_000 + k * 500)),
    i(succeeded(1001, b, "k3s-agent-join", 1, `cmd-${id}-3`, 25_000)),
    kc(
      ev("kube.api-reachable", {}),
      ev("kube.node-registered", { node: s, instanceId: s, role: "server", labels: {}, taints: [] }),
      ev("kube.node-registered", {
        node: a,
        instanceId: a,
        role: "agent",
        pool: "workers",
        capacityType: "spot",
        labels,
        taints: [],
        unschedulable: false,
      }),
      ev("kube.node-registered", { node: b, role: "agent", labels, taints: [] }),
    ),
    kc(
      ev("kube.node-ready", { node: s }),
      ev("kube.node-ready", { node: a }),
      ev("kube.node-ready", { node: b }),
    ),
    i(
      ev("install.node-ready", { slot: 0, node: s }),
      ev("install.node-ready", { slot: 1000, node: a }),
      ev("install.node-ready", { slot: 1001, node: b }),
    ),
    i(ev("install.instances-ready", { count: 3 })),
    i(ev("install.completed", { nodes: 3, k3sVersion: "v1.31.4+k3s1" })),
    kc(ev("kube.node-not-ready", { node: a, reason: "KubeletNotReady" })),
    kc(ev("kube.node-pressure-changed", { node: a, pressure: ["MemoryPressure"] })),
    i(ev("install.node-not-ready", { slot: 1000, node: a, reason: "KubeletNotReady" })),
    i(
      ev("install.check-failed", {
        check: "node-ready",
        node: a,
        evidence: "NotReady for 2m",
        remediation: "restart k3s",
      }),
    ),
    i(
      ev("install.degraded", {
        failing: [{ check: "node-ready", node: a, evidence: "NotReady for 2m" }],
        remediation: "restart k3s",
      }),
    ),
    i(ev("install.remediation-withheld", { unhealthy: 1, of: 2, reason: "over 40% unhealthy" })),
    i(
      ev("install.remediation-requested", {
        slot: 1000,
        node: a,
        action: "restart-k3s",
        attempt: 1,
        reason: "NotReady",
      }),
    ),
    i(...step(1000, a, "k3s-restart", 1, `cmd-${id}-5`)),
    i(succeeded(1000, a, "k3s-restart", 1, `cmd-${id}-5`, 5_000)),
    kc(ev("kube.node-ready", { node: a }), ev("kube.node-pressure-changed", { node: a, pressure: [] })),
    i(
      ev("install.node-ready", { slot: 1000, node: a }),
      ev("install.check-passed", { check: "node-ready", node: a }),
    ),
    i(ev("install.recovered", {})),
    // Node operations: a cordon and an uncordon on a, a drain of b held by the limit.
    on(
      node(a),
      ev("nodeop.cordon-requested", { clusterId: id, node: a, reason: "maintenance", by: "alice" }),
    ),
    on(
      ledger,
      ev("nodeop.disruption-admitted", { clusterId: id, node: a, limit: 1, forced: false, holders: [a] }),
    ),
    on(node(a), ev("nodeop.cordoned", { clusterId: id, node: a, reason: "maintenance", by: "alice" })),
    kc(ev("kube.node-classification-changed", { node: a, labels, taints: [], unschedulable: true })),
    on(
      node(b),
      ev("nodeop.drain-requested", {
        clusterId: id,
        node: b,
        reason: "rebalance",
        by: "bob",
        deadline: T(1200),
      }),
    ),
    on(
      ledger,
      ev("nodeop.waiting", { clusterId: id, node: b, operation: "drain", limit: 1, waitingFor: [a] }),
    ),
    on(
      node(a),
      ev("nodeop.uncordon-requested", { clusterId: id, node: a, reason: "done", by: "alice", forced: false }),
    ),
    on(node(a), ev("nodeop.uncordoned", { clusterId: id, node: a, by: "alice" })),
    on(ledger, ev("nodeop.disruption-released", { clusterId: id, node: a })),
    on(
      ledger,
      ev("nodeop.disruption-admitted", { clusterId: id, node: b, limit: 1, forced: false, holders: [b] }),
    ),
    on(node(b), ev("nodeop.cordoned", { clusterId: id, node: b, reason: "rebalance", by: "bob" })),
    on(
      node(b),
      ev("nodeop.drain-progress", {
        clusterId: id,
        node: b,
        evicted: 3,
        remaining: 2,
        blockedBy: ["web-pdb"],
      }),
    ),
    on(
      node(b),
      ev("nodeop.drain-failed", {
        clusterId: id,
        node: b,
        reason: "timed out",
        blocking: [{ pod: "web-1", pdb: "web-pdb" }],
        remediation: "raise the PDB's budget",
        leftCordoned: true,
      }),
    ),
    on(node(b), ev("nodeop.drain-requested", { clusterId: id, node: b, reason: "again", by: "bob" })),
    on(node(b), ev("nodeop.drained", { clusterId: id, node: b, by: "bob", evicted: 5 })),
    on(node(s), ev("nodeop.cordon-requested", { clusterId: id, node: s, reason: "try", by: "carol" })),
    on(node(s), ev("nodeop.failed", { clusterId: id, node: s, operation: "cordon", reason: "API down" })),
    on(
      node(a),
      ev("nodeop.classification-requested", {
        clusterId: id,
        node: a,
        operation: "label",
        by: "alice",
        reason: "gpu",
        change: { setLabels: { gpu: "yes" }, removeLabels: [], addTaints: [], removeTaints: [] },
      }),
    ),
    on(
      node(a),
      ev("nodeop.classification-applied", { clusterId: id, node: a, operation: "label", by: "alice" }),
    ),
    on(
      node(a),
      ev("nodeop.classification-requested", {
        clusterId: id,
        node: a,
        operation: "taint",
        by: "alice",
        reason: "gpu",
        change: {
          setLabels: {},
          removeLabels: [],
          addTaints: [{ key: "gpu", effect: "NoSchedule" }],
          removeTaints: [],
        },
      }),
    ),
    on(
      node(a),
      ev("nodeop.classification-failed", { clusterId: id, node: a, operation: "taint", reason: "conflict" }),
    ),
    // A rolling upgrade that stops at the second node.
    i(ev("install.upgrade-requested", { from: "v1.31.4+k3s1", to: "v1.32.0+k3s1", nodes: 3, batch: 1 })),
    i(ev("install.node-upgrade-started", { slot: 0, node: s, to: "v1.32.0+k3s1", number: 1, of: 3 })),
    i(ev("install.node-drained", { slot: 0, node: s })),
    i(...step(0, s, "k3s-upgrade", 1, `cmd-${id}-6`)),
    i(succeeded(0, s, "k3s-upgrade", 1, `cmd-${id}-6`, 30_000)),
    i(ev("install.node-upgraded", { slot: 0, node: s, k3sVersion: "v1.32.0+k3s1" })),
    i(ev("install.node-upgrade-started", { slot: 1000, node: a, to: "v1.32.0+k3s1", number: 2, of: 3 })),
    i(
      ev("install.upgrade-failed", {
        slot: 1000,
        node: a,
        reason: "drain failed",
        remediation: "see nodeops",
      }),
    ),
    i(ev("install.upgrade-requested", { from: "v1.31.4+k3s1", to: "v1.32.0+k3s1", nodes: 3, batch: 3 })),
    i(ev("install.upgraded", { from: "v1.31.4+k3s1", to: "v1.32.0+k3s1", nodes: 3 })),
    // A spot interruption takes b; a scale-down removes it from the install.
    on(
      node(b),
      ev("nodeop.interruption-noticed", {
        clusterId: id,
        node: b,
        // The notice names the EC2 id as AWS writes it; the node is found by its name.
        instanceId: "i-0123456789abcdef0",
        region: "eu-west-1",
        noticeId: `notice-${id}`,
        noticeTime: T(1300),
        terminationTime: T(1420),
      }),
    ),
    on(node(b), ev("nodeop.node-deleted", { clusterId: id, node: b, reason: "reclaimed" })),
    kc(ev("kube.node-removed", { node: b })),
    i(ev("install.node-removed", { slot: 1001, instanceId: b, node: b })),
    i(
      ev("install.node-failed", {
        slot: 1000,
        instanceId: a,
        node: a,
        reason: "deadline passed",
        remediation: "replace",
      }),
    ),
    kc(ev("kube.api-unreachable", { reason: "connection refused" })),
    i(
      ev("install.failed", {
        step: "k3s-server-join",
        reason: "no server left",
        remediation: "retry the cluster",
      }),
    ),
    i(ev("install.removal-requested", {})),
    i(ev("install.secrets-removed", { parameters: [`/cairn/${id}/token`, `/cairn/${id}/kubeconfig`] })),
  ];
}

/**
 * Two sessions on cluster `id`, with their quota ledger and workloads: every session and
 * workload event type but the rejections. `<id>-s1` goes the whole way (admitted,
 * Running, idled and hibernated, woken by a connect, a wake asked while stopping, moved
 * by a drain, terminated); `<id>-s2` is refused over quota and fails.
 */
export function everySessionEventCommits(id: string, k = 0): Commit[] {
  const s1 = `${id}-s1`;
  const s2 = `${id}-s2`;
  const user = `user-${k % 3}`;
  const session = (sid: string): AggregateRef => ({ type: "session", id: sid });
  const ledger: AggregateRef = { type: "session", id: `${user}=_quota` };
  const workload: AggregateRef = { type: "workload", id: s1 };
  const template = { image: "ghcr.io/cairn/ide:1", cpu: "1", memory: "2Gi", storage: "10Gi" };
  const one = { sessions: 1, cpuMillis: 1000, memoryBytes: 2 ** 31 };
  const none = { sessions: 0, cpuMillis: 0, memoryBytes: 0 };
  const key = { sessionId: s1, clusterId: id };
  const at = (sid: string, ...events: { type: string; data: unknown }[]): Commit => ({
    aggregate: session(sid),
    events,
  });
  const requestedOf = (sid: string) =>
    ev("session.requested", {
      sessionId: sid,
      user,
      clusterId: id,
      template,
      idleTimeoutSeconds: 1800 + k,
      maxLifetimeSeconds: 86_400,
      cause: "user",
    });
  const limits = { sessions: 1 };
  return [
    at(s1, requestedOf(s1)),
    {
      aggregate: ledger,
      events: [
        ev("session.quota-taken", {
          scope: "user",
          owner: user,
          sessionId: s1,
          cpuMillis: 1000,
          memoryBytes: 2 ** 31,
          limits,
          usage: one,
        }),
      ],
    },
    at(s1, ev("session.admitted", { sessionId: s1, groups: [], cause: "user" })),
    {
      aggregate: workload,
      events: [
        ev("workload.starting", { ...key, user, template, attempt: 1 }),
        ev("workload.started", { ...key, deployment: `s-${s1}`, volumeClaim: `v-${s1}` }),
      ],
    },
    {
      aggregate: workload,
      events: [ev("workload.running", { ...key, node: `i-${id}-a`, pod: `p-${s1}-1` })],
    },
    at(s1, ev("session.running", { sessionId: s1, node: `i-${id}-a`, pod: `p-${s1}-1`, cause: "user" })),
    at(
      s1,
      ev("session.idled", {
        sessionId: s1,
        lastActivityAt: T(k % 30),
        idleTimeoutSeconds: 1800 + k,
        graceSeconds: 60,
      }),
      ev("session.hibernating", { sessionId: s1, cause: "idle" }),
    ),
    at(s1, ev("session.wake-requested", { sessionId: s1, cause: "connection" })),
    {
      aggregate: workload,
      events: [ev("workload.stopping", { ...key, attempt: 2 }), ev("workload.stopped", key)],
    },
    at(
      s1,
      ev("session.hibernated", { sessionId: s1, cause: "idle" }),
      ev("session.waking", { sessionId: s1, cause: "connection", requestedAt: T(40 + (k % 10)) }),
    ),
    at(
      s1,
      ev("session.running", {
        sessionId: s1,
        node: `i-${id}-b`,
        pod: `p-${s1}-2`,
        wakeLatencyMs: 1200 + k,
        cause: "connection",
      }),
    ),
    {
      aggregate: workload,
      events: [
        ev("workload.moved", {
          ...key,
          fromNode: `i-${id}-b`,
          toNode: `i-${id}-a`,
          pod: `p-${s1}-3`,
          reason: "drain",
        }),
      ],
    },
    at(
      s1,
      ev("session.moved", { sessionId: s1, fromNode: `i-${id}-b`, toNode: `i-${id}-a`, reason: "drain" }),
    ),
    at(s1, ev("session.terminating", { sessionId: s1, cause: "user" })),
    {
      aggregate: workload,
      events: [
        ev("workload.deleting", { ...key, releaseVolume: true, attempt: 4 }),
        ev("workload.deleted", { ...key, volumeReleased: true }),
      ],
    },
    at(s1, ev("session.terminated", { sessionId: s1, cause: "user", volumeReleased: true })),
    {
      aggregate: ledger,
      events: [
        ev("session.quota-released", {
          scope: "user",
          owner: user,
          sessionId: s1,
          reason: "terminated",
          usage: none,
        }),
      ],
    },
    at(s2, requestedOf(s2)),
    at(
      s2,
      ev("session.rejected", {
        commandId: `create-${s2}`,
        commandType: "session.create",
        code: "over-quota",
        reason: `over quota: user ${user} has 1 live session(s) and the limit is 1`,
        quota: {
          scope: "user",
          owner: user,
          dimension: "sessions",
          limit: 1,
          usage: one,
          requested: one,
        },
      }),
      ev("session.failed", {
        sessionId: s2,
        cause: "quota",
        reason: `over quota: user ${user} has 1 live session(s) and the limit is 1`,
        from: "Pending",
      }),
    ),
    {
      aggregate: { type: "workload", id: s2 },
      events: [
        ev("workload.failed", {
          sessionId: s2,
          clusterId: id,
          operation: "start",
          kind: "no-capacity",
          reason: "0/3 nodes are available: 3 Insufficient cpu.",
          remediation: "add nodes",
        }),
      ],
    },
  ];
}

/**
 * Every cluster event and every aggregate's rejection as a writer appends them: commit
 * bodies whose data the catalogue checked (and so normalised), each envelope's meta from
 * `meta(i)` (`i` the commit's index), for the specs that hold a parse against another.
 */
export function everyEventAsAppended(meta: (i: number) => Partial<CairnEvent["meta"]>) {
  return [...everyClusterEventCommits("c1", 1), ...rejectionOfEveryAggregate("x")].map((c, i) => ({
    commitId: `commit-${i}`,
    aggregate: c.aggregate,
    events: c.events.map((e, j) =>
      anEnvelope(
        c.aggregate,
        i * 3 + j + 1,
        { type: e.type, data: catalogue.checkEventData(e.type, e.data) },
        meta(i),
      ),
    ),
  }));
}
