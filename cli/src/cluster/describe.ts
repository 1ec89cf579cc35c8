/** `cairn cluster describe`: kubectl describe's layout — `Key:  value` lines, then sections. */
import { age } from "../durations.ts";
import { NODE_HEADERS, type NodeRow, nodeCells } from "../node/table.ts";
import { renderTable } from "../table.ts";
import { type ClusterView, progressText } from "./view.ts";

/** An event of the cluster's history (`GET /clusters/:id/history`). */
export interface HistoryItem {
  readonly version: number;
  readonly time: string;
  readonly type: string;
  readonly actor: string;
  readonly traceId: string | null;
}

export function describeCluster(
  c: ClusterView,
  nodes: readonly NodeRow[],
  history: readonly HistoryItem[],
  now = new Date(),
): string {
  const kv = (pairs: [string, string][]) => {
    const w = Math.max(...pairs.map(([k]) => k.length)) + 2;
    return pairs.map(([k, v]) => `${`${k}:`.padEnd(w)}${v}`).join("\n");
  };
  const indent = (text: string) =>
    text
      .trimEnd()
      .split("\n")
      .map((l) => `  ${l}`)
      .join("\n");
  const sections = [
    kv([
      ["Name", c.id],
      ["State", c.state],
      ...(c.health ? [["Health", c.health] as [string, string]] : []),
      ["Region", c.region],
      ["K3s", c.spec.k3sVersion ?? "<none>"],
      ["Servers", c.spec.servers ? `${c.spec.servers.count} × ${c.spec.servers.instanceType}` : "<none>"],
      [
        "Progress",
        c.progress.operation === null ? c.progress.step : `${progressText(c)} (${c.progress.operation})`,
      ],
      ["Sessions", c.sessions ? `${c.sessions.live} live, ${c.sessions.total} in all` : "-"],
      ["Version", String(c.version)],
      ["Created", `${c.createdAt} (${age(c.createdAt, now)} ago)`],
      ["Trace", c.jaegerUrl ?? c.traceId ?? "<none>"],
    ]),
  ];
  if (c.failure)
    sections.push(
      `Failure:\n  ${c.failure.reason}${c.failure.remediation ? `\n  Remediation: ${c.failure.remediation}` : ""}`,
    );
  if (c.conditions?.length)
    sections.push(
      `Conditions:\n${indent(
        renderTable(
          ["TYPE", "STATUS", "SINCE", "REASON", "MESSAGE"],
          c.conditions.map((k) => [
            k.type,
            k.status,
            k.lastTransitionTime ? age(k.lastTransitionTime, now) : "",
            k.reason ?? "",
            k.message ?? "",
          ]),
        ),
      )}`,
    );
  const pools = c.spec.pools ?? [];
  sections.push(
    `Pools:${
      pools.length === 0
        ? " <none>"
        : `\n${indent(
            renderTable(
              ["NAME", "COUNT", "CAPACITY", "INSTANCE TYPES"],
              pools.map((p) => [p.name, String(p.count), p.capacityType, p.instanceTypes.join(",")]),
            ),
          )}`
    }`,
  );
  const live = nodes.filter((n) => !n.gone);
  sections.push(
    `Nodes:${
      live.length === 0
        ? " <none>"
        : `\n${indent(
            renderTable(
              NODE_HEADERS,
              live.map((n) => nodeCells(n, now)),
            ),
          )}`
    }`,
  );
  const recent = history.slice(-10);
  sections.push(
    `Events (last ${recent.length} of ${history.length}):${
      recent.length === 0
        ? " <none>"
        : `\n${indent(
            renderTable(
              ["AGE", "EVENT", "ACTOR"],
              recent.map((e) => [age(e.time, now), e.type, e.actor]),
            ),
          )}`
    }`,
  );
  return `${sections.join("\n")}\n`;
}
