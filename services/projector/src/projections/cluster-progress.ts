/**
 * A cluster's progress as step X of Y over its whole build, not instances alone: an
 * instance running is a third of a node's way, since K3s still has to be installed on
 * it and the node has to become Ready (a Configuring cluster used to show 100 % for the
 * minutes K3s took). Pure: computed when the API reads the cluster, from its row and its
 * install row (the installer's steps), the same way for the live view, the list, the
 * live stream and a past view (`?at=`, whose install is folded from the log to the same
 * point).
 *
 * Each node the spec wants is three steps:
 *  1. its instance runs (`cluster.instance-running`);
 *  2. K3s on it: the first server initialised (`k3s-server-init`), another server joined
 *     (`k3s-server-join`), an agent joined (`k3s-agent-join`) — the install's node state
 *     `joined` or later;
 *  3. the node is Ready (`install.node-ready`).
 * So `total` = 3 × nodes, and `done` counts the steps behind each node. A node whose
 * instance is being replaced starts again at step 1 (its new instance does). The phases
 * are reported apart (`phases`), and `step` names the first one not finished.
 */
import { roleOfSlot } from "@cairn/events";
import type { ClusterProgress, ClusterRow } from "./clusters.ts";
import type { InstallRow } from "./installs.ts";

export interface Phase {
  readonly done: number;
  readonly total: number;
}

export interface LifecycleProgress {
  readonly operation: ClusterProgress["operation"];
  /** Steps behind the cluster: instances running + K3s initialised or joined + nodes Ready. */
  readonly done: number;
  /** Steps of the whole build: three per node the spec wants. */
  readonly total: number;
  readonly percent: number;
  /** For people: `5 of 9 steps: K3s 1 of 3 (the first server initialised)`. */
  readonly step: string;
  readonly phases: {
    readonly instances: Phase;
    /** The first server initialised, the others joined. */
    readonly servers: Phase;
    readonly agents: Phase;
    readonly ready: Phase;
  };
  /** Node counts, for a NODES column: Ready of wanted, and instances running. */
  readonly nodes: { readonly ready: number; readonly running: number; readonly wanted: number };
}

const JOINED = new Set(["joined", "ready", "not-ready"]);
const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? "" : "s"}`;

/**
 * @example lifecycleProgress(configuringRow, installWithServerInitialised)
 *   // { operation: "configuring", done: 4, total: 9, percent: 44 (99 at most until it ends),
 *   //   step: "4 of 9 steps: K3s: 0 of 2 agents joined", … }
 */
export function lifecycleProgress(
  row: Pick<ClusterRow, "state" | "spec" | "progress">,
  install: InstallRow | undefined,
): LifecycleProgress {
  const p = row.progress;
  const slots = Object.entries(p.nodes);
  if (p.operation === "deleting") {
    const leaving = slots.filter(([, s]) => s === "terminating").length;
    return {
      operation: p.operation,
      done: leaving,
      total: slots.length,
      percent: slots.length === 0 ? 0 : Math.floor((leaving * 100) / slots.length),
      step: `${plural(slots.length, "instance")} to terminate, ${leaving} terminating`,
      phases: {
        instances: { done: 0, total: 0 },
        servers: { done: 0, total: 0 },
        agents: { done: 0, total: 0 },
        ready: { done: 0, total: 0 },
      },
      nodes: { ready: 0, running: slots.filter(([, s]) => s === "running").length, wanted: 0 },
    };
  }
  const byslot = new Map(Object.values(install?.nodes ?? {}).map((n) => [n.slot, n]));
  const kept = slots.filter(([, s]) => s !== "terminating");
  const wanted =
    row.state === "Deleted"
      ? 0
      : row.spec.servers.count + (row.spec.pools ?? []).reduce((n, pool) => n + pool.count, 0);
  // The planned slots, then the ones the spec wants that are not planned yet (nothing done).
  const nodes = Math.max(wanted, kept.length);
  let running = 0;
  let joined = 0;
  let ready = 0;
  let serversJoined = 0;
  let agentsJoined = 0;
  let servers = 0;
  for (const [key, status] of kept) {
    const slot = Number(key);
    const n = byslot.get(slot);
    const role = n?.role ?? roleOfSlot(slot);
    if (role === "server") servers++;
    if (status !== "running") continue;
    running++;
    // The install's node is this instance's only while the slot runs (a replaced
    // instance's node stays in the install until the installer removes it).
    if (n && JOINED.has(n.state)) {
      joined++;
      if (role === "server") serversJoined++;
      else agentsJoined++;
    }
    if (n?.state === "ready") ready++;
  }
  // With the servers the spec wants but not planned yet; the rest are agents.
  servers = Math.min(nodes, row.state === "Deleted" ? servers : Math.max(servers, row.spec.servers.count));
  const agents = nodes - servers;
  const phases = {
    instances: { done: running, total: nodes },
    servers: { done: serversJoined, total: servers },
    agents: { done: agentsJoined, total: agents },
    ready: { done: ready, total: nodes },
  };
  const total = 3 * nodes;
  const done = running + joined + ready;
  const initDone =
    install?.steps.some((s) => s.step === "k3s-server-init" && s.status === "Success") ?? false;
  let now: string;
  if (running < nodes) now = `${running} of ${plural(nodes, "instance")} running`;
  else if (serversJoined < servers)
    now = initDone
      ? `K3s: ${serversJoined} of ${plural(servers, "server")} joined`
      : "K3s: initialising the first server";
  else if (agentsJoined < agents) now = `K3s: ${agentsJoined} of ${plural(agents, "agent")} joined`;
  else if (ready < nodes) now = `${ready} of ${plural(nodes, "node")} Ready`;
  else now = `${plural(nodes, "node")} Ready${p.operation === null ? "" : "; finishing"}`;
  // Every step done while the operation is still under way (the install's completion and the
  // cluster's Ready are commits of their own, a moment later): 99 %, never 100 % before Ready.
  const percent = total === 0 ? (p.operation === null ? 100 : 0) : Math.floor((done * 100) / total);
  return {
    operation: p.operation,
    done,
    total,
    percent: p.operation === null ? percent : Math.min(99, percent),
    step: total === 0 ? now : `${done} of ${total} steps: ${now}`,
    phases,
    nodes: { ready, running, wanted },
  };
}
