/** The nodes table (`cairn node list`, `cairn cluster describe`): kubectl's columns and more. */
import { age } from "../durations.ts";

/** A node as the API shows it (`GET /nodes`, `/clusters/:id/nodes`): the fields the tables read. */
export interface NodeRow {
  readonly clusterId: string;
  readonly node: string;
  readonly pool: string | null;
  readonly role: string | null;
  readonly capacityType: string | null;
  readonly instanceId: string | null;
  readonly instance: string | null;
  readonly k3s: string;
  readonly kube: { readonly ready: boolean | null; readonly unschedulable: boolean };
  readonly cordon: { readonly by: string; readonly reason: string } | null;
  readonly gone: { readonly reason: string } | null;
  readonly createdAt: string;
}

export const NODE_HEADERS = [
  "NAME",
  "ROLE",
  "POOL",
  "CAPACITY",
  "INSTANCE",
  "K3S",
  "READY",
  "SCHEDULING",
  "AGE",
];
export function nodeCells(n: NodeRow, now: Date): string[] {
  return [
    n.node,
    n.role ?? "<none>",
    n.pool ?? "<none>",
    n.capacityType ?? "<none>",
    n.instanceId ? `${n.instanceId} (${n.instance ?? "?"})` : "<none>",
    n.k3s,
    n.kube.ready === null ? "Unknown" : n.kube.ready ? "True" : "False",
    n.kube.unschedulable || n.cordon
      ? `Disabled${n.cordon ? ` (${n.cordon.by}: ${n.cordon.reason})` : ""}`
      : "Enabled",
    age(n.createdAt, now),
  ];
}
