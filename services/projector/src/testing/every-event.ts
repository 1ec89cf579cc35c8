/**
 * A cluster's life that uses every cluster event type the projector folds, plus the
 * rejections of every aggregate (the event index and the commands model take any
 * event): the log a replay must rebuild exactly.
 */
import { AGGREGATE_TYPES, type AggregateRef } from "@cairn/events";
import {
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
    events: [rejected(`cmd-${type}-${suffix}`, `${type}.whatever`, "invalid", "fixture")],
  }));
}
