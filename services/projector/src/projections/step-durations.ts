/**
 * The `step_durations` read model: how long each kind of step took, learnt from the
 * log as an exponentially weighted mean (recent clusters count most), and the ETA it
 * gives a cluster under way. Only event data and event times go in, so a replay
 * learns exactly what the live projection learnt; the clock enters at read time only
 * (`etaView`).
 */
import { type CairnEvent, roleOfSlot } from "@cairn/events";
import type { ClusterRow } from "./clusters.ts";
import type { InstallRow } from "./installs.ts";
import type { NodeRow } from "./nodes.ts";

/** What is measured, and between which events. */
export const STEP_KINDS = [
  /** `cluster.instance-launched` → `cluster.instance-running` of the same instance. */
  "instance-boot",
  /** `install.node-added` → `install.node-online`: the SSM Agent registers. */
  "ssm-registration",
  /** `install.step-succeeded.durationMs` of each K3s step. */
  "k3s-server-init",
  "k3s-server-join",
  "k3s-agent-join",
  "k3s-upgrade",
  "k3s-restart",
  /** The node's join step succeeded → `install.node-ready`. */
  "node-ready",
] as const;
export type StepKind = (typeof STEP_KINDS)[number];

/** Weight of the newest sample: 0.3 forgets an old regime in about ten samples. */
export const EWMA_ALPHA = 0.3;

/**
 * What an unlearnt step is assumed to take (ms): the simulator's and AWS's usual figures,
 * so the first cluster already gets an estimate. Replaced by the mean at the first sample.
 */
export const DEFAULT_DURATIONS_MS: Readonly<Record<StepKind, number>> = {
  "instance-boot": 40_000,
  "ssm-registration": 30_000,
  "k3s-server-init": 60_000,
  "k3s-server-join": 45_000,
  "k3s-agent-join": 30_000,
  "k3s-upgrade": 60_000,
  "k3s-restart": 15_000,
  "node-ready": 10_000,
};

export interface StepDurationRow {
  readonly kind: string;
  readonly samples: number;
  /** The weighted mean, whole milliseconds (rounded at each sample, so live and replay agree bit for bit). */
  readonly meanMs: number;
  readonly lastMs: number;
  readonly updatedAt: string;
  readonly lastSequence: number;
}

const since = (from: string | null, to: string) =>
  from === null ? undefined : Math.max(0, Date.parse(to) - Date.parse(from));

/**
 * The duration sample an event completes, given its node's row BEFORE the event.
 * @example sampleOf(installStepSucceeded({ step: "k3s-agent-join", durationMs: 2100 }), node)
 *   // { kind: "k3s-agent-join", ms: 2100 }
 */
const isStepKind = (s: string): s is StepKind => (STEP_KINDS as readonly string[]).includes(s);

export function sampleOf(
  event: CairnEvent,
  nodeBefore: NodeRow | undefined,
): { kind: StepKind; ms: number } | undefined {
  let ms: number | undefined;
  let kind: StepKind | undefined;
  switch (event.type) {
    case "cluster.instance-running":
      if (nodeBefore && nodeBefore.times.runningAt === null) {
        kind = "instance-boot";
        ms = since(nodeBefore.times.launchedAt, event.time);
      }
      break;
    case "install.node-online":
      if (nodeBefore && nodeBefore.times.onlineAt === null) {
        kind = "ssm-registration";
        ms = since(nodeBefore.times.addedAt, event.time);
      }
      break;
    case "install.step-succeeded":
      if (isStepKind(event.data.step)) {
        kind = event.data.step;
        ms = event.data.durationMs;
      }
      break;
    case "install.node-ready":
      if (nodeBefore && nodeBefore.times.readyAt === null) {
        kind = "node-ready";
        ms = since(nodeBefore.times.joinedAt, event.time);
      }
      break;
  }
  return kind !== undefined && ms !== undefined ? { kind, ms } : undefined;
}

/** The row after one more sample: mean ← mean + α(sample − mean), the first sample is the mean. */
export function addSample(
  row: StepDurationRow | undefined,
  sample: { kind: string; ms: number },
  time: string,
  sequence: number,
): StepDurationRow {
  const meanMs = row ? Math.round(row.meanMs + EWMA_ALPHA * (sample.ms - row.meanMs)) : Math.round(sample.ms);
  return {
    kind: sample.kind,
    samples: (row?.samples ?? 0) + 1,
    meanMs,
    lastMs: Math.round(sample.ms),
    updatedAt: time,
    lastSequence: sequence,
  };
}

/** The learnt mean of each kind, the default where nothing was learnt yet. */
export function meansOf(rows: Iterable<StepDurationRow>): Record<StepKind, number> {
  const out: Record<string, number> = { ...DEFAULT_DURATIONS_MS };
  for (const r of rows) if (r.samples > 0 && r.kind in out) out[r.kind] = r.meanMs;
  return out as Record<StepKind, number>;
}

/** Cluster states in which something is being built, so an ETA means something. */
const BUILDING = new Set(["Pending", "Validating", "Provisioning", "Configuring", "Scaling"]);

/**
 * What remains on the critical path of a cluster being built, in ms, from the moment of
 * its last event; undefined when it is not being built.
 *
 * Nodes proceed in parallel, so the remaining time is the longest of the nodes' remaining
 * paths. A node's path is boot → SSM registration → its K3s step → Ready, and a phase
 * already behind it counts zero. Servers joining and agents wait for the first server's
 * init, so until that init succeeded a joining node's path also starts after the
 * remaining init path. Slots the spec wants but the cluster has not planned yet count as
 * a whole path (boot to Ready).
 */
export function remainingMs(
  cluster: ClusterRow,
  install: InstallRow | undefined,
  means: Record<StepKind, number>,
): number | undefined {
  if (!BUILDING.has(cluster.state)) return undefined;
  const bySlot = new Map<number, InstallRow["nodes"][string]>();
  for (const n of Object.values(install?.nodes ?? {})) bySlot.set(n.slot, n);
  const initDone =
    install?.steps.some((s) => s.step === "k3s-server-init" && s.status === "Success") ?? false;
  const slots = Object.entries(cluster.progress.nodes).filter(([, s]) => s !== "terminating");
  const planned = new Set(slots.map(([k]) => Number(k)));
  for (const n of bySlot.values()) planned.add(n.slot);
  // The server that initialises the cluster: the installer's first server, else the lowest
  // server slot (the slot numbering says which slots are servers').
  const servers = [...planned].filter((x) => (bySlot.get(x)?.role ?? roleOfSlot(x)) === "server");
  const initSlot =
    [...bySlot.values()].filter((n) => n.role === "server").sort((a, b) => a.slot - b.slot)[0]?.slot ??
    servers.sort((a, b) => a - b)[0];

  const stepOf = (slot: number, role: "server" | "agent" | undefined): StepKind =>
    role === "agent"
      ? "k3s-agent-join"
      : initDone || (initSlot !== undefined && initSlot !== slot)
        ? "k3s-server-join"
        : "k3s-server-init";

  // [before the K3s step, the K3s step and after] of one node.
  const phases = (slot: number, status: string | undefined): [number, number, boolean] => {
    const n = bySlot.get(slot);
    const role = n?.role ?? roleOfSlot(slot);
    const step = stepOf(slot, role);
    const booted = status === "running" || n !== undefined;
    let before = 0;
    if (!booted) before += means["instance-boot"];
    if (!n || n.state === "waiting") before += means["ssm-registration"];
    const joined = n !== undefined && n.state !== "waiting" && n.state !== "online" && n.state !== "failed";
    const ready = n?.state === "ready";
    const after = (joined ? 0 : means[step]) + (ready ? 0 : means["node-ready"]);
    return [before, after, step !== "k3s-server-init" && !initDone];
  };

  const wanted = cluster.spec.servers.count + (cluster.spec.pools ?? []).reduce((a, p) => a + p.count, 0);

  // The first server's remaining path to an initialised cluster.
  let initPath = 0;
  if (!initDone) {
    const s = initSlot;
    if (s === undefined)
      initPath = means["instance-boot"] + means["ssm-registration"] + means["k3s-server-init"];
    else {
      const [before, after] = phases(s, cluster.progress.nodes[String(s)]);
      initPath = before + Math.max(0, after - means["node-ready"]);
    }
  }
  let longest = 0;
  for (const slot of planned) {
    const [before, after, waitsForInit] = phases(slot, cluster.progress.nodes[String(slot)]);
    const path = (waitsForInit ? Math.max(before, initPath) : before) + after;
    longest = Math.max(longest, path);
  }
  if (planned.size < wanted) {
    const full = means["instance-boot"] + means["ssm-registration"];
    const path = Math.max(full, initDone ? 0 : initPath) + means["k3s-agent-join"] + means["node-ready"];
    longest = Math.max(longest, path);
  }
  return longest;
}

/**
 * The ETA as the API shows it: `eta` = the cluster's last event time + the remaining
 * path (stable between events), `etaSeconds` = how far that is from `now` (never below 0).
 */
export function etaView(
  cluster: ClusterRow,
  install: InstallRow | undefined,
  durations: Iterable<StepDurationRow>,
  now: Date,
): { eta: string | null; etaSeconds: number | null } {
  const ms = remainingMs(cluster, install, meansOf(durations));
  if (ms === undefined) return { eta: null, etaSeconds: null };
  const eta = Date.parse(cluster.updatedAt) + ms;
  return {
    eta: new Date(eta).toISOString(),
    etaSeconds: Math.max(0, Math.ceil((eta - now.getTime()) / 1000)),
  };
}
