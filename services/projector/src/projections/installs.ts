/**
 * The `installs` read model as a pure fold: `applyInstallEvent(row, event, sequence)`,
 * one row per cluster from its `install` aggregate (`evt.install.<clusterId>`). It
 * mirrors the installer's own state words and keeps, for people, the steps it sent
 * (SSM command ids, attempts, durations, output tails), the failing health checks and
 * the rolling upgrade's progress. Times are the events' (never the projector's clock),
 * so a replay builds the same rows as the live projection.
 */
import { type CairnEvent, type EventEnvelope, type InstallEvent, traceIdOf } from "@cairn/events";
import type { FoldOwned } from "./clusters.ts";

/** The installer's words for an install's state (its decider's `status`). */
export const INSTALL_STATES = [
  "Installing",
  "Ready",
  "Degraded",
  "Recovering",
  "Failed",
  "Removing",
  "Removed",
] as const;
export type InstallState = (typeof INSTALL_STATES)[number];

/** Where K3s is on one node slot. */
export const INSTALL_NODE_STATES = ["waiting", "online", "joined", "ready", "not-ready", "failed"] as const;
export type InstallNodeState = (typeof INSTALL_NODE_STATES)[number];

export interface InstallNode {
  readonly slot: number;
  readonly node: string;
  readonly instanceId: string;
  readonly role: "server" | "agent";
  readonly pool: string;
  readonly capacityType: "spot" | "on-demand";
  readonly state: InstallNodeState;
  /** The step under way on the node: `k3s-agent-join (attempt 2, step 1 of 1) sent`. */
  readonly step: {
    readonly name: string;
    readonly attempt: number;
    readonly number: number | null;
    readonly of: number | null;
    readonly status: "requested" | "sent";
  } | null;
  readonly reason: string | null;
  readonly upgrading: "draining" | "upgrading" | null;
}

/** One attempt of one step on one node: what SSM was asked and what came back. */
export interface InstallStepRecord {
  readonly step: string;
  readonly slot: number;
  readonly node: string | null;
  readonly attempt: number;
  readonly commandId: string | null;
  readonly status:
    | "requested"
    | "sent"
    | "Success"
    | "Failed"
    | "TimedOut"
    | "Cancelled"
    | "Undeliverable"
    | "Lost";
  readonly requestedAt: string | null;
  readonly sentAt: string | null;
  readonly endedAt: string | null;
  readonly durationMs: number | null;
  readonly outputTail: string | null;
  readonly reason: string | null;
  readonly willRetry: boolean | null;
}

export interface FailingCheck {
  readonly check: string;
  readonly node: string | null;
  readonly evidence: string;
  readonly remediation: string | null;
  /** Event time of the failure. */
  readonly since: string;
}

export interface UpgradeProgress {
  readonly from: string;
  readonly to: string;
  readonly batch: number;
  readonly nodes: number;
  /** Nodes upgraded so far. */
  readonly done: number;
  readonly current: string | null;
  readonly state: "running" | "done" | "failed";
  readonly reason: string | null;
}

export interface InstallRow {
  readonly clusterId: string;
  readonly state: InstallState;
  readonly k3sVersion: string;
  readonly servers: number;
  /** Slot number → the node's install state. */
  readonly nodes: Readonly<Record<string, InstallNode>>;
  /** The steps sent, oldest first; the last `MAX_STEPS` are kept. */
  readonly steps: readonly InstallStepRecord[];
  readonly failing: readonly FailingCheck[];
  readonly upgrade: UpgradeProgress | null;
  /** Instances the provisioner has running, once it said so (`install.instances-ready`). */
  readonly awaiting: number | null;
  /** Why the install (or a node of it) failed last, and what would fix it. */
  readonly failure: { readonly reason: string; readonly remediation: string | null } | null;
  readonly version: number;
  readonly traceId: string | null;
  readonly createdAt: string;
  readonly updatedAt: string;
  readonly lastEventType: string;
  readonly lastSequence: number;
}

/** Steps kept per install: health checks and restarts repeat for the cluster's life; the row stays bounded. */
export const MAX_STEPS = 200;

/** Copies of a whole node record or step list (for tests: a batch copies each install's once at most). */
export const installCopies = { count: 0 };

/**
 * The row's nodes, to change: the batch's own (`owned`, see `FoldOwned`) in place, else a
 * copy the batch then owns. A copy per event was O(nodes) per event — O(nodes²) per install
 * — with slot numbers from 1000 up kept by V8 as a ~1,000-entry array whatever the count.
 */
function nodesToChange(row: InstallRow, owned: FoldOwned | undefined): Record<string, InstallNode> {
  if (owned?.has(row.nodes)) return row.nodes as Record<string, InstallNode>;
  installCopies.count++;
  const nodes: Record<string, InstallNode> = Object.assign({}, row.nodes);
  owned?.add(nodes);
  return nodes;
}

function setNode(
  row: InstallRow,
  slot: number,
  change: (n: InstallNode) => InstallNode,
  owned: FoldOwned | undefined,
): InstallRow["nodes"] {
  const n = row.nodes[String(slot)];
  if (!n) return row.nodes;
  const nodes = nodesToChange(row, owned);
  nodes[String(slot)] = change(n);
  return nodes;
}

/** The step record of (slot, step, attempt), changed; appended when absent. In place when `owned` holds the list. */
function setStep(
  steps: readonly InstallStepRecord[],
  key: { step: string; slot: number; attempt: number },
  change: (s: InstallStepRecord) => InstallStepRecord,
  owned: FoldOwned | undefined,
): InstallStepRecord[] {
  let i = -1;
  for (let k = steps.length - 1; k >= 0; k--) {
    const s = steps[k]!;
    if (s.step === key.step && s.slot === key.slot && s.attempt === key.attempt) {
      i = k;
      break;
    }
  }
  let out: InstallStepRecord[];
  if (owned?.has(steps)) out = steps as InstallStepRecord[];
  else {
    installCopies.count++;
    out = steps.slice();
    owned?.add(out);
  }
  if (i >= 0) {
    out[i] = change(out[i]!);
    return out;
  }
  const fresh: InstallStepRecord = {
    ...key,
    node: null,
    commandId: null,
    status: "requested",
    requestedAt: null,
    sentAt: null,
    endedAt: null,
    durationMs: null,
    outputTail: null,
    reason: null,
    willRetry: null,
  };
  out.push(change(fresh));
  if (out.length > MAX_STEPS) out.splice(0, out.length - MAX_STEPS);
  return out;
}

const nodeBySlot = (row: InstallRow, slot: number) => row.nodes[String(slot)]?.node ?? null;

/**
 * The install row after one more event of the cluster's `install` aggregate.
 *
 * - `install.planned` creates the row (Installing) or updates the version and server count;
 * - `install.node-added` / `node-removed` add and drop a slot (a node added to a Ready install
 *   makes it Installing, as in the installer);
 * - `step-requested` / `step-sent` / `step-succeeded` / `step-failed` fill the step records and
 *   the node's current step;
 * - `completed`, `degraded`, `remediation-requested`, `recovered`, `failed`, `removal-requested`,
 *   `secrets-removed` move the state;
 * - `check-failed` / `check-passed` keep the failing checks; `upgrade-*` and `node-upgrade*` the
 *   upgrade's progress.
 *
 * An event at or before the row's version is already folded in (the row comes back as is);
 * events before `install.planned` make no row.
 */
export function applyInstallEvent(
  row: InstallRow | undefined,
  event: CairnEvent,
  sequence: number,
  /** A batch's fold: node records and step lists in it are changed in place (pure without). */
  owned?: FoldOwned,
): InstallRow | undefined {
  if (event.aggregate.type !== "install") {
    throw new Error(`applyInstallEvent got a ${event.aggregate.type} event (${event.type})`);
  }
  if (row && event.position <= row.version) return row;
  const touched = {
    version: event.position,
    // A refused command did nothing to the install: the row keeps the trace of what did.
    traceId:
      (event.type === "install.rejected" ? undefined : traceIdOf(event.meta.traceparent)) ??
      row?.traceId ??
      null,
    updatedAt: event.time,
    lastEventType: event.type,
    lastSequence: sequence,
  };
  // The catalogue parsed `data` against the type's schema: the cast only names it.
  const e = event as unknown as EventEnvelope<InstallEvent>;
  if (e.type === "install.planned") {
    const base: InstallRow = row ?? {
      clusterId: event.aggregate.id,
      state: "Installing",
      k3sVersion: e.data.k3sVersion,
      servers: e.data.servers,
      nodes: {},
      steps: [],
      failing: [],
      upgrade: null,
      awaiting: null,
      failure: null,
      createdAt: event.time,
      ...touched,
    };
    return { ...base, ...touched, k3sVersion: e.data.k3sVersion, servers: e.data.servers };
  }
  if (!row) return undefined;
  const r = { ...row, ...touched };
  switch (e.type) {
    case "install.node-added": {
      const d = e.data;
      const node: InstallNode = {
        slot: d.slot,
        node: d.node,
        instanceId: d.instanceId,
        role: d.role,
        pool: d.pool,
        capacityType: d.capacityType,
        state: "waiting",
        step: null,
        reason: null,
        upgrading: null,
      };
      return {
        ...r,
        state: row.state === "Ready" ? "Installing" : row.state,
        nodes: Object.assign(nodesToChange(row, owned), { [String(d.slot)]: node }),
      };
    }
    case "install.node-removed": {
      // Only the instance that went: a slot already holding its replacement keeps it.
      let nodes = row.nodes;
      if (row.nodes[String(e.data.slot)]?.instanceId === e.data.instanceId) {
        const changed = nodesToChange(row, owned);
        delete changed[String(e.data.slot)];
        nodes = changed;
      }
      return { ...r, nodes, failing: row.failing.filter((f) => f.node !== e.data.node) };
    }
    case "install.node-online":
      return { ...r, nodes: setNode(row, e.data.slot, (n) => ({ ...n, state: "online" }), owned) };
    case "install.step-requested": {
      const { step, slot, attempt, number, of, node } = e.data;
      return {
        ...r,
        nodes: setNode(
          row,
          slot,
          (n) => ({
            ...n,
            step: { name: step, attempt, number, of, status: "requested" },
          }),
          owned,
        ),
        steps: setStep(
          row.steps,
          { step, slot, attempt },
          (s) => ({ ...s, node, requestedAt: event.time }),
          owned,
        ),
      };
    }
    case "install.step-sent": {
      const { step, slot, attempt, commandId, sentAt } = e.data;
      return {
        ...r,
        nodes: setNode(row, slot, (n) => (n.step ? { ...n, step: { ...n.step, status: "sent" } } : n), owned),
        steps: setStep(
          row.steps,
          { step, slot, attempt },
          (s) => ({
            ...s,
            node: s.node ?? nodeBySlot(row, slot),
            commandId,
            sentAt,
            status: "sent",
          }),
          owned,
        ),
      };
    }
    case "install.step-succeeded": {
      const { step, slot, attempt, commandId, durationMs, outputTail } = e.data;
      const joins = step === "k3s-server-init" || step === "k3s-server-join" || step === "k3s-agent-join";
      return {
        ...r,
        nodes: setNode(
          row,
          slot,
          (n) => ({
            ...n,
            step: null,
            state: joins && (n.state === "waiting" || n.state === "online") ? "joined" : n.state,
          }),
          owned,
        ),
        steps: setStep(
          row.steps,
          { step, slot, attempt },
          (s) => ({
            ...s,
            node: s.node ?? nodeBySlot(row, slot),
            commandId,
            status: "Success",
            endedAt: event.time,
            durationMs,
            outputTail,
          }),
          owned,
        ),
      };
    }
    case "install.step-failed": {
      const { step, slot, attempt, commandId, status, reason, outputTail, willRetry } = e.data;
      return {
        ...r,
        nodes: setNode(row, slot, (n) => ({ ...n, step: null, reason }), owned),
        steps: setStep(
          row.steps,
          { step, slot, attempt },
          (s) => ({
            ...s,
            node: s.node ?? nodeBySlot(row, slot),
            commandId: commandId ?? s.commandId,
            status,
            endedAt: event.time,
            // How long the attempt ran, when it was sent at all (event times, so replay agrees).
            durationMs: s.sentAt ? Math.max(0, Date.parse(event.time) - Date.parse(s.sentAt)) : null,
            outputTail,
            reason,
            willRetry,
          }),
          owned,
        ),
      };
    }
    case "install.node-ready":
      return {
        ...r,
        nodes: setNode(row, e.data.slot, (n) => ({ ...n, state: "ready", reason: null }), owned),
      };
    case "install.node-not-ready":
      return {
        ...r,
        nodes: setNode(row, e.data.slot, (n) => ({ ...n, state: "not-ready", reason: e.data.reason }), owned),
      };
    case "install.node-failed":
      return {
        ...r,
        nodes: setNode(
          row,
          e.data.slot,
          (n) => ({
            ...n,
            state: "failed",
            step: null,
            reason: e.data.reason,
          }),
          owned,
        ),
        failure: { reason: e.data.reason, remediation: e.data.remediation },
      };
    case "install.instances-ready":
      return { ...r, awaiting: e.data.count };
    case "install.completed":
      return {
        ...r,
        state:
          row.failing.length === 0
            ? "Ready"
            : row.state === "Installing" || row.state === "Ready"
              ? "Degraded"
              : row.state,
        k3sVersion: e.data.k3sVersion,
        awaiting: null,
      };
    case "install.check-failed": {
      const { check, evidence, remediation } = e.data;
      const node = e.data.node ?? null;
      const failing = row.failing.filter((f) => !(f.check === check && f.node === node));
      return { ...r, failing: [...failing, { check, node, evidence, remediation, since: event.time }] };
    }
    case "install.check-passed": {
      const node = e.data.node ?? null;
      return { ...r, failing: row.failing.filter((f) => !(f.check === e.data.check && f.node === node)) };
    }
    case "install.degraded":
      return { ...r, state: "Degraded" };
    case "install.remediation-requested":
      return { ...r, state: "Recovering" };
    case "install.recovered":
      return { ...r, state: "Ready", failing: [] };
    case "install.failed":
      return { ...r, state: "Failed", failure: { reason: e.data.reason, remediation: e.data.remediation } };
    case "install.removal-requested":
      return { ...r, state: "Removing" };
    case "install.secrets-removed":
      return { ...r, state: "Removed" };
    case "install.upgrade-requested": {
      const { from, to, batch, nodes } = e.data;
      return {
        ...r,
        upgrade: { from, to, batch, nodes, done: 0, current: null, state: "running", reason: null },
      };
    }
    case "install.node-upgrade-started":
      return {
        ...r,
        nodes: setNode(row, e.data.slot, (n) => ({ ...n, upgrading: "draining" }), owned),
        upgrade: row.upgrade ? { ...row.upgrade, current: e.data.node } : null,
      };
    case "install.node-drained":
      return { ...r, nodes: setNode(row, e.data.slot, (n) => ({ ...n, upgrading: "upgrading" }), owned) };
    case "install.node-upgraded":
      return {
        ...r,
        nodes: setNode(row, e.data.slot, (n) => ({ ...n, upgrading: null }), owned),
        upgrade: row.upgrade ? { ...row.upgrade, done: row.upgrade.done + 1, current: null } : null,
      };
    case "install.upgraded":
      return {
        ...r,
        k3sVersion: e.data.to,
        upgrade: row.upgrade
          ? { ...row.upgrade, state: "done", current: null, done: e.data.nodes }
          : {
              from: e.data.from,
              to: e.data.to,
              batch: 1,
              nodes: e.data.nodes,
              done: e.data.nodes,
              current: null,
              state: "done",
              reason: null,
            },
      };
    case "install.upgrade-failed": {
      const nodes = Object.fromEntries(
        Object.entries(row.nodes).map(([k, n]) => [k, n.upgrading ? { ...n, upgrading: null } : n]),
      );
      return {
        ...r,
        nodes,
        upgrade: row.upgrade
          ? { ...row.upgrade, state: "failed", current: e.data.node, reason: e.data.reason }
          : null,
      };
    }
    default:
      // secrets-stored, kubeconfig-published, remediation-withheld, rejected and types to come.
      return r;
  }
}

/** Step X of Y of the install, for people: nodes Ready of nodes added. */
export function installProgress(row: InstallRow) {
  const nodes = Object.values(row.nodes);
  const total = Math.max(nodes.length, row.awaiting ?? 0);
  const ready = nodes.filter((n) => n.state === "ready").length;
  const joined = nodes.filter(
    (n) => n.state === "joined" || n.state === "ready" || n.state === "not-ready",
  ).length;
  const percent = row.state === "Ready" ? 100 : total === 0 ? 0 : Math.floor((ready * 100) / total);
  return { done: ready, joined, total, percent, step: `${ready} of ${total} nodes ready, ${joined} joined` };
}
