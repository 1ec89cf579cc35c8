/** Hand-built events for the projector's tests. */
import { type AggregateRef, type CairnEvent, type ClusterSpec, clusterSpec, newId } from "@cairn/events";

export function aSpec(clusterId: string, overrides: Partial<ClusterSpec> = {}): ClusterSpec {
  return clusterSpec.parse({
    clusterId,
    name: clusterId,
    region: "eu-west-1",
    k3sVersion: "v1.31.4+k3s1",
    servers: { count: 1, instanceType: "t3.medium" },
    pools: [{ name: "workers", capacityType: "spot", instanceTypes: ["t3.large"], count: 2 }],
    ...overrides,
  });
}

/** A random W3C traceparent. */
export function aTraceparent(): string {
  const hex = (n: number) =>
    Array.from({ length: n }, () => Math.floor(Math.random() * 16).toString(16)).join("");
  return `00-${hex(32)}-${hex(16)}-01`;
}

export function anEnvelope(
  aggregate: AggregateRef,
  position: number,
  e: { type: string; data: unknown },
  meta: Partial<CairnEvent["meta"]> & { time?: string } = {},
): CairnEvent {
  const { time, ...rest } = meta;
  // A fixture stands for what the catalogue parsed: tests build it from any type and data.
  return {
    id: newId(),
    type: e.type,
    version: 1,
    aggregate,
    position,
    time: time ?? new Date(Date.UTC(2026, 0, 1, 0, 0, position)).toISOString(),
    data: e.data,
    meta: { causationId: `cause-${position}`, correlationId: "corr-1", actor: "alice", ...rest },
  } as CairnEvent;
}

export const cluster = (id: string): AggregateRef => ({ type: "cluster", id });

export const requested = (id: string, spec = aSpec(id)) => ({ type: "cluster.requested", data: { spec } });
export const scaleRequested = (pool: string, from: number, to: number) => ({
  type: "cluster.scale-requested",
  data: { pool, from, to },
});
export const rollbackRequested = (toVersion: number, spec: ClusterSpec) => ({
  type: "cluster.rollback-requested",
  data: { toVersion, spec },
});
export const deletionRequested = () => ({ type: "cluster.deletion-requested", data: {} });
export const rejected = (commandId: string, commandType: string, code: string, reason: string) => ({
  type: "cluster.rejected",
  data: { commandId, commandType, code, reason },
});
