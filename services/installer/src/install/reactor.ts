/**
 * The installer's process managers, on the shared reactor runtime (`startReactor`):
 * three durable consumers, one aggregate each.
 *
 *  - `installer-cluster` (evt.cluster.*): the provisioner's facts become install
 *    commands — the spec (plan), a slot's instance running (add a node), a slot going
 *    away, every instance running, the cluster deleting (the install stops), the cluster
 *    deleted (its secrets removed).
 *  - `installer-kube` (evt.kube.*): node-ops' facts — a node Ready, NotReady, gone.
 *  - `installer-reactor` (evt.install.*): the install's own decisions carried out on
 *    SSM — store the join token, wait for the SSM Agent, send a step, poll it, check the
 *    kubeconfig.
 *
 * The runtime hands each event over typed (narrowed by `type`) and settles a commit by
 * its one rule: a real failure wins over a wait, waits never count towards a dead letter.
 *
 * Never blocking: waiting (an agent not registered yet, a command still running) hands
 * the event back to JetStream with a delay (`RetryLaterError`) and looks again then; no
 * handler waits on a long step.
 *
 * Never re-sending: a step's command id is recorded (`install.step-sent`) and from then
 * on only polled. A send cut short by a crash, after SSM took the command but before it
 * was recorded, is found again by its comment (which names cluster, slot, step and
 * attempt) when the event comes back, and adopted instead of sent again.
 *
 * One trace per install (DESIGN §4): node-ops' facts arrive on the traces of its
 * watcher, so their reactions run in the install's lifecycle trace, with a span link to
 * the fact (see `inLifecycleTrace`).
 */
import { createHash, randomBytes } from "node:crypto";
import {
  type ClusterSpec,
  CommandBus,
  type CommandDataInput,
  type CommandHandler,
  catalogue,
  clusterSecretParameters,
  commandCausedBy,
  drainOutcome,
  EventStore,
  exponentialDelay,
  GroupCommit,
  type InstallCommand,
  type InstallEvent,
  type InstallStep,
  type Nats,
  poolOfSlot,
  proportionalPollDelay,
  type ReactingEvent,
  RetryLaterError,
  type RunnerLogger,
  type RunningConsumer,
  roleOfSlot,
  startReactor,
} from "@cairn/events";
import { inLifecycleTrace } from "../lifecycle-trace.ts";
import {
  type Invocation,
  isRemoteExecFailure,
  NotManagedError,
  type RemoteExec,
  RUNNING_STATUSES,
} from "../ports.ts";
import { stepScript } from "../scripts/steps.ts";
import {
  DEFAULT_INSTALL_POLICY,
  type InstallNode,
  type InstallPlan,
  type InstallPolicy,
  type InstallState,
} from "./decider.ts";
import { outputTail } from "./output.ts";
import { joinedCount } from "./state.ts";

export interface InstallReactorOptions {
  nats: Nats;
  handler: CommandHandler<InstallCommand, InstallEvent, InstallState>;
  remote: RemoteExec;
  policy?: InstallPolicy;
  logger?: RunnerLogger;
  /**
   * The shortest look again (default 1 s) and the longest (`maxPollMs`, default 15 s):
   * the bounds of a step's proportional polls, and of the exponential ones of other waits.
   */
  pollMs?: number;
  maxPollMs?: number;
  /**
   * When to take the first look at a step's command, by step: nothing can be seen
   * before it can have ended, so a poll then is wasted. Defaults:
   * {@link DEFAULT_FIRST_POLL_MS}. After it, `proportionalPollDelay` (@cairn/events).
   */
  firstPollMs?: Partial<Record<Wait, number>>;
  /**
   * How much faster than real time the cloud runs (the sim's time scale; 1 on AWS): the
   * default first looks, meant for real time, are divided by it.
   */
  timeScale?: number;
  /** SSM's own execution timeout is this many times the step's deadline: a backstop for when no installer watches. */
  executionTimeoutFactor?: number;
  /** Full step output goes to this S3 bucket (SSM cuts standard output at 24,000 characters). */
  outputBucket?: string;
  now?: () => Date;
  /** What `installer-reactor` may hold at once (the runner's `maxInHand`; tests make it small). */
  maxInHand?: number;
}

/** What the reactor waits for: a step's command, or a new instance's SSM Agent registering. */
export type Wait = InstallStep | "ssm-registration";

/**
 * When a wait is first looked at: 80% of a step's typical duration on AWS (a K3s
 * server install ~60 s, a join ~30 s). A faster run than that is rare; from there on
 * the polls come every 5% of the time waited (`proportionalPollDelay`), so a result is
 * seen at most ~5% late. Steps not named are looked at from the start. An SSM Agent
 * registers ~20 s after its instance runs, but that wait is counted from the node's
 * addition, which comes as late as the provisioner was in seeing the instance run: half of it.
 */
export const DEFAULT_FIRST_POLL_MS: Readonly<Partial<Record<Wait, number>>> = {
  "ssm-registration": 10_000,
  "k3s-server-init": 48_000,
  "k3s-server-join": 24_000,
  "k3s-agent-join": 24_000,
};

type Active = Exclude<InstallState, { status: "Absent" }>;
type ClusterFact = ReactingEvent<"cluster">;
type KubeFact = ReactingEvent<"kube">;
type InstallFact = ReactingEvent<"install">;
/** Any event the installer reacts to. */
type Cause = ClusterFact | KubeFact | InstallFact;
type InstallCommandType = InstallCommand["type"];

/** The cluster events `installer-cluster` acts on (others are acknowledged unread). */
const CLUSTER_FACTS = [
  "cluster.requested",
  "cluster.rollback-requested",
  "cluster.scale-failed",
  "cluster.pool-updated",
  "cluster.instance-running",
  "cluster.instance-termination-requested",
  "cluster.node-replacement-requested",
  "cluster.instances-ready",
  "cluster.deletion-requested",
  "cluster.deleted",
] as const satisfies readonly ClusterFact["type"][];

/** The kube events `installer-kube` acts on. */
const KUBE_FACTS = [
  "kube.api-unreachable",
  "kube.api-reachable",
  "kube.node-pressure-changed",
  "kube.node-ready",
  "kube.node-not-ready",
  "kube.node-removed",
] as const satisfies readonly KubeFact["type"][];

/** The comment a batch's command carries: how a send cut short by a crash is found again. */
export function batchComment(clusterId: string, step: string, batch: string): string {
  return `cairn ${step} batch=${batch} cluster=${clusterId}`.slice(0, 100);
}

/** The comment a step's command carries: how a send cut short by a crash is found again. */
export function stepComment(clusterId: string, slot: number, step: string, attempt: number): string {
  return `cairn ${step} slot=${slot} attempt=${attempt} cluster=${clusterId}`.slice(0, 100);
}

export async function startInstallReactor(o: InstallReactorOptions): Promise<{ stop(): Promise<void> }> {
  const policy = o.policy ?? DEFAULT_INSTALL_POLICY;
  const pollMs = o.pollMs ?? 1_000;
  const maxPollMs = o.maxPollMs ?? 15_000;
  const now = o.now ?? (() => new Date());
  /** A wait with nothing to measure it by: look again sooner first, then less often. */
  const later = (e: Cause, why: string) =>
    new RetryLaterError(exponentialDelay(e.deliveries, { baseMs: pollMs, capMs: maxPollMs }), why);
  /** A wait for something expected to take `firstMs`, going for `elapsedMs`. */
  const proportional = (elapsedMs: number, firstMs: number) =>
    proportionalPollDelay(elapsedMs, { firstMs, minMs: pollMs, maxMs: maxPollMs });
  const log = o.logger;
  const bus = new CommandBus({ js: o.nats.js, catalogue });
  const store = new EventStore({ js: o.nats.js, jsm: o.nats.jsm, catalogue });

  const scale = o.timeScale ?? 1;
  const firstPoll: Partial<Record<Wait, number>> = {
    ...Object.fromEntries(Object.entries(DEFAULT_FIRST_POLL_MS).map(([wait, ms]) => [wait, ms / scale])),
    ...o.firstPollMs,
  };
  const since = (iso: string | undefined) => (iso ? Math.max(0, now().getTime() - Date.parse(iso)) : 0);

  /**
   * The cluster's last answer from DescribeInstanceInformation, reused for `pollMs`:
   * each waiting node's event comes back on its own, and without this a cluster of n
   * nodes would ask n times per look for the same answer. (Only a saving: a replica
   * without it asks SSM itself.)
   */
  const lastLook = new Map<string, { at: number; ids: ReadonlySet<string>; online: ReadonlySet<string> }>();
  /**
   * The cluster's look under way, if any: the waits of a few hundred nodes come back
   * around the same time, and each starting its own look would queue them all behind
   * SSM's bulkhead of 3 — and a step's poll behind them (bench/install at 200 nodes: ~700
   * calls, the server's install seen seconds late). One look at a time per cluster; a wait
   * that finds one under way takes its answer when it covers its node.
   */
  const looking = new Map<string, { ids: ReadonlySet<string>; answer: Promise<ReadonlySet<string>> }>();
  const onlineOf = async (
    clusterId: string,
    region: string,
    nodes: readonly { instanceId: string }[],
  ): Promise<ReadonlySet<string>> => {
    const t = now().getTime();
    const seen = lastLook.get(clusterId);
    if (seen && t - seen.at < pollMs && nodes.every((x) => seen.ids.has(x.instanceId))) return seen.online;
    const under = looking.get(clusterId);
    if (under) {
      const online = await under.answer.catch(() => undefined);
      if (online && nodes.every((x) => under.ids.has(x.instanceId))) return online;
      if (looking.has(clusterId)) return await onlineOf(clusterId, region, nodes);
    }
    const ids = nodes.map((x) => x.instanceId);
    const answer = o.remote.onlineInstances(region, ids);
    looking.set(clusterId, { ids: new Set(ids), answer });
    try {
      const online = await answer;
      // Nobody left to wait for: nothing worth keeping.
      if (ids.every((id) => online.has(id))) lastLook.delete(clusterId);
      else lastLook.set(clusterId, { at: now().getTime(), ids: new Set(ids), online });
      return online;
    } finally {
      if (looking.get(clusterId)?.answer === answer) looking.delete(clusterId);
    }
  };

  /** Per cluster, the instances whose `install.record-online` is queued in a flush not yet done. */
  const onlineQueued = new Map<string, Set<string>>();

  /** Asks node-ops for a node operation, idempotent by its id (named after the cause). */
  const nodeOp = async <T extends "node.drain" | "node.uncordon">(
    cause: InstallFact,
    type: T,
    data: CommandDataInput<T>,
  ) => {
    const { command } = commandCausedBy(cause, type, data, { actor: "installer" });
    await bus.send(command);
    return command.id;
  };

  /**
   * Decides an internal command on the install, named after its cause (and `key`, when
   * one cause leads to several of a type). A cause on the install's own subject is
   * decided on a state at least as fresh as it; a cause on another aggregate's subject
   * says nothing of the install's sequence, and the handler reads fresh.
   */
  const record = async <T extends InstallCommandType>(
    cause: Cause,
    type: T,
    data: CommandDataInput<T>,
    key = "",
  ) => {
    // (The empty key keeps the ids commands had before keys were optional.)
    const command = commandCausedBy(cause, type, data, { actor: "installer", key });
    return await o.handler.handle(
      command,
      cause.aggregate.type === "install" ? { atLeastSequence: cause.sequence } : {},
    );
  };

  type Batchable =
    | "install.add-node"
    | "install.record-online"
    | "install.record-step-sent"
    | "install.record-step-result"
    | "install.record-node-state";
  type BatchRecord = { [T in Batchable]: { type: T; data: CommandDataInput<T> } }[Batchable];
  /**
   * The per-node records (a node added, online, its step sent, its step's result) of one
   * install go out together (GroupCommit): one `install.record-many` per flush, decided
   * record by record in order, where there were as many appends in a row as nodes. Each
   * of those decisions is idempotent by the install's state, so a redelivered cause (in
   * another batch, under another command id) records nothing twice. Resolves with the
   * install as the log has it just after.
   */
  const flushRecords = async (clusterId: string, items: readonly { cause: Cause; record: BatchRecord }[]) => {
    const installCauses = items.flatMap((i) =>
      i.cause.aggregate.type === "install" ? [i.cause.sequence] : [],
    );
    const opts = installCauses.length > 0 ? { atLeastSequence: Math.max(...installCauses) } : {};
    // The freshest install this flush knows of: its causes' and its own commits. Every
    // record is decided on a state the handler checked against the log (a decision that
    // appends nothing looks at the subject's last sequence first), so the state at least as
    // fresh as these is the install just after the flush, without another look at the log
    // (a look at each flush was one more round trip per group commit on the install's path).
    let seen = opts.atLeastSequence ?? 0;
    let known = true;
    for (let i = 0; i < items.length; i += MAX_BATCH) {
      const chunk = items.slice(i, i + MAX_BATCH);
      const records = chunk.map((x) => x.record);
      const command = commandCausedBy(
        chunk[0]!.cause,
        "install.record-many",
        { clusterId, records } as CommandDataInput<"install.record-many">,
        { actor: "installer", key: batchKey(records) },
      );
      const outcome = await o.handler.handle(command, opts);
      if (outcome.status === "accepted" || outcome.status === "rejected")
        seen = Math.max(seen, outcome.sequence);
      // A duplicate's commit is another flush's (or replica's): read as the log has it.
      else if (outcome.status === "duplicate") known = false;
    }
    return (await read(clusterId, known && seen > 0 ? seen : undefined)).state;
  };
  const batches = new GroupCommit<{ cause: Cause; record: BatchRecord }, InstallState>(flushRecords, {
    gather: "turn",
  });
  /**
   * node-ops' facts have their own group commits: their reactions run in the install's
   * lifecycle trace, and a commit is recorded in the trace of the reaction that flushes it,
   * so facts mixed with a later command's records (a scale's) would land in its trace.
   */
  const facts = new GroupCommit<{ cause: Cause; record: BatchRecord }, InstallState>(flushRecords, {
    gather: "turn",
  });
  const batched = async <T extends Batchable>(cause: Cause, type: T, data: CommandDataInput<T>) =>
    // TypeScript cannot correlate a generic T's type and data with the union's members (the
    // pair is checked at T's call); install.record-many's schema parses each record again.
    await (type === "install.record-node-state" ? facts : batches).add(cause.aggregate.id, {
      cause,
      record: { type, data } as BatchRecord,
    });

  /** The install; pass the sequence of an install event to read at least that fresh. */
  const read = async (clusterId: string, atLeastSequence?: number) =>
    await o.handler.read(
      { type: "install", id: clusterId },
      atLeastSequence !== undefined ? { atLeastSequence } : {},
    );

  // --- the provisioner's facts ------------------------------------------------------
  const onCluster = async (e: ClusterFact): Promise<void> => {
    const clusterId = e.aggregate.id;
    switch (e.type) {
      case "cluster.requested":
      case "cluster.rollback-requested":
      case "cluster.scale-failed":
        await record(e, "install.plan", { clusterId, ...planOf(e.data.spec) });
        return;
      case "cluster.pool-updated": {
        const { state } = await read(clusterId);
        if (state.status === "Absent") return;
        const { pool, labels, taints } = e.data;
        const pools = state.plan.pools.map((p) => (p.name === pool ? { ...p, labels, taints } : p));
        await record(e, "install.plan", { clusterId, ...planData(state.plan), pools });
        return;
      }
      case "cluster.instance-running": {
        const { slot, instanceId, privateIp } = e.data;
        const { state } = await read(clusterId);
        if (state.status === "Absent") return;
        // Events recorded before they carried role and pool: the slot's number says.
        const pool = e.data.pool ?? poolOfSlot(state.plan, slot) ?? "unknown";
        const role = e.data.role ?? roleOfSlot(slot);
        const capacityType =
          e.data.capacityType ??
          (role === "server"
            ? "on-demand"
            : (state.plan.pools.find((p) => p.name === pool)?.capacityType ?? "on-demand"));
        await batched(e, "install.add-node", {
          clusterId,
          slot,
          instanceId,
          role,
          pool,
          capacityType,
          ...(privateIp ? { privateIp } : {}),
        });
        return;
      }
      case "cluster.instance-termination-requested":
      case "cluster.node-replacement-requested": {
        // Named by instance: the slot's next instance may be added already (this event
        // came late, or to the other replica first) and must not go with it.
        const { slot, instanceId } = e.data;
        await record(e, "install.remove-node", { clusterId, slot, ...(instanceId ? { instanceId } : {}) });
        return;
      }
      case "cluster.instances-ready":
        await record(e, "install.record-instances-ready", { clusterId, count: e.data.count });
        return;
      case "cluster.deletion-requested":
        await record(e, "install.remove", { clusterId });
        return;
      case "cluster.deleted": {
        // The secrets go with the last instance, not with the delete's start: while the
        // cluster's sessions are ended (before its instances are terminated) node-ops
        // still reads the kubeconfig to delete their workloads (docs/sessions.md).
        const { state } = await read(clusterId);
        if (state.status === "Absent" || state.status === "Removed") return;
        const { token, kubeconfig } = clusterSecretParameters(clusterId);
        await o.remote.deleteParameters(state.plan.region, [token, kubeconfig]);
        log?.info({ cluster: clusterId, parameters: [token, kubeconfig] }, "cluster secrets removed");
        await record(e, "install.record-secrets-removed", { clusterId, parameters: [token, kubeconfig] });
        return;
      }
      default:
        return;
    }
  };

  // --- node-ops' facts --------------------------------------------------------------
  /**
   * A fact about a node belongs to the install's lifecycle, not to node-ops' watcher
   * that saw it: the install's events it causes continue the install's trace (the
   * cluster's creating trace), with a span link to the fact's.
   */
  const onKube = async (e: KubeFact): Promise<void> => {
    await inLifecycleTrace(await lifecycleOf(e.aggregate.id), e, () => recordKube(e));
  };

  /**
   * The install's lifecycle traceparent (its first event's). It never changes once there,
   * so a cached install serves; only one not known to have begun is read fresh. An install
   * known to have begun without one (tracing off: the bench, a deployment without
   * telemetry) has none to find: no look at the log for it. (A look per fact split each
   * kube commit's facts into two install commits, the first fact alone and the rest after
   * the next shared look: `install-ready-facts.int.spec.ts`.)
   */
  const lifecycleOf = async (clusterId: string) => {
    const cached = await read(clusterId, 0);
    if (cached.lifecycleTraceparent !== undefined || cached.lastSequence > 0)
      return cached.lifecycleTraceparent;
    return (await read(clusterId)).lifecycleTraceparent;
  };

  const recordKube = async (e: KubeFact): Promise<void> => {
    const clusterId = e.aggregate.id;
    switch (e.type) {
      // Cluster-wide and pressure facts are health checks; readiness is the node's state.
      case "kube.api-unreachable":
        await record(e, "install.record-check", {
          clusterId,
          check: "api-reachable",
          ok: false,
          ...(e.data.reason ? { evidence: e.data.reason.slice(0, 2_000) } : {}),
        });
        return;
      case "kube.api-reachable":
        await record(e, "install.record-check", { clusterId, check: "api-reachable", ok: true });
        return;
      case "kube.node-pressure-changed":
        await record(e, "install.record-check", {
          clusterId,
          check: "no-pressure",
          node: e.data.node,
          ok: e.data.pressure.length === 0,
          evidence: `the node reports ${e.data.pressure.join(", ")}`,
        });
        return;
      // In group commits (a cluster's nodes turn Ready together): each fact carries its
      // position in the cluster's kube history (unique per event, also within one commit of
      // kube.observe-nodes), so a redelivered or overtaken one changes nothing.
      case "kube.node-ready":
        await batched(e, "install.record-node-state", {
          clusterId,
          node: e.data.node,
          state: "ready",
          factSequence: e.position,
        });
        return;
      case "kube.node-not-ready":
        await batched(e, "install.record-node-state", {
          clusterId,
          node: e.data.node,
          state: "not-ready",
          ...(e.data.reason ? { reason: e.data.reason } : {}),
          factSequence: e.position,
        });
        return;
      case "kube.node-removed":
        await batched(e, "install.record-node-state", {
          clusterId,
          node: e.data.node,
          state: "removed",
          factSequence: e.position,
        });
        return;
      default:
        return;
    }
  };

  // --- the install's own decisions, carried out on SSM ------------------------------
  const onInstall = async (e: InstallFact): Promise<void> => {
    const clusterId = e.aggregate.id;
    const { state } = await read(clusterId, e.sequence);
    if (state.status === "Absent") return;
    const region = state.plan.region;
    switch (e.type) {
      case "install.planned": {
        if (state.secrets || state.status !== "Installing") return;
        const { token } = clusterSecretParameters(clusterId);
        // A token made here and stored at once; only the parameter's name goes on.
        const created = await o.remote.putSecretIfAbsent(region, token, randomBytes(32).toString("hex"));
        log?.info({ cluster: clusterId, parameter: token, created }, "join token stored");
        await record(e, "install.record-secrets", { clusterId, parameters: [token] });
        return;
      }

      case "install.node-added":
        return await waitForNode(e, state);

      case "install.step-requested":
        // A batch's member goes out with its batch (install.batch-requested).
        if (e.data.batch !== undefined) return;
        return await send(e, state);

      case "install.batch-requested":
        return await sendBatch(e, state);

      case "install.step-sent":
        // A batch's member is polled with its batch (install.batch-sent).
        if (e.data.batch !== undefined) return;
        return await poll(e, state);

      case "install.batch-sent":
        return await pollBatch(e, state);

      case "install.step-failed": {
        // A step forgotten because its node went away (decideRemoveNode): cancel its command.
        const { commandId, instanceId, slot, status, step } = e.data;
        if (status !== "Cancelled" || !commandId || state.nodes[slot]?.instanceId === instanceId) return;
        return await cancelForgotten(clusterId, region, commandId, instanceId, step);
      }

      case "install.node-upgrade-started": {
        const { node, to } = e.data;
        const n = Object.values(state.nodes).find((x) => x.node === node);
        if (n?.upgrading !== "draining") return;
        const drainId = await nodeOp(e, "node.drain", { clusterId, node, reason: `K3s upgrade to ${to}` });
        // node-ops' answer is on the node's own subject: the drain's outcome, or a refusal.
        const outcome = await drainOutcome(store, clusterId, node, drainId);
        if (outcome.status === "pending") throw later(e, `waiting for node-ops to drain ${node}`);
        await record(
          e,
          "install.record-upgrade-progress",
          outcome.status === "drained"
            ? { clusterId, node, phase: "drained" }
            : { clusterId, node, phase: "drain-failed", reason: outcome.reason },
        );
        return;
      }

      case "install.node-upgraded":
        await nodeOp(e, "node.uncordon", {
          clusterId,
          node: e.data.node,
          reason: `K3s upgraded to ${e.data.k3sVersion}`,
        });
        return;

      case "install.step-succeeded": {
        if (e.data.step === "k3s-upgrade") {
          const n = state.nodes[e.data.slot];
          if (n?.upgrading !== "verifying") return;
          // Verified when node-ops reports it Ready after the restart the upgrade made.
          if (!n.ready) throw later(e, `waiting for ${n.node} to be Ready after its upgrade`);
          await record(e, "install.record-upgrade-progress", { clusterId, node: n.node, phase: "verified" });
          return;
        }
        if (e.data.step !== "k3s-server-init" || state.kubeconfig) return;
        const { kubeconfig } = clusterSecretParameters(clusterId);
        const version = await o.remote.parameterVersion(region, kubeconfig);
        if (version === undefined) throw later(e, `kubeconfig parameter ${kubeconfig} not there yet`);
        await record(e, "install.record-kubeconfig", { clusterId, parameter: kubeconfig, version });
        return;
      }

      case "install.remediation-requested": {
        // The rung's grace: its step must have ended and the node had time to pass its
        // checks; then the ladder looks again (a passing node has already left it).
        const { node, action, attempt } = e.data;
        if (action === "replace") return;
        const n = Object.values(state.nodes).find((x) => x.node === node);
        if (!n?.remedy || n.remedy.action !== action || n.remedy.attempt !== attempt) return;
        const graceOver = Date.parse(e.time) + policy.remediationGraceMs <= now().getTime();
        if (n.step || !graceOver) throw later(e, `${action} on ${node}: waiting for its grace period`);
        await record(e, "install.check-remediation", { clusterId, node, action, attempt });
        return;
      }

      default:
        return;
    }
  };

  /** A node added: wait for its SSM Agent, then only for its join deadline. */
  const waitForNode = async (e: InstallFact & { type: "install.node-added" }, state: Active) => {
    const clusterId = e.aggregate.id;
    const region = state.plan.region;
    const slot = e.data.slot;
    const n = state.nodes[slot];
    if (!n || n.instanceId !== e.data.instanceId || n.failed || (n.joined && n.ready)) return;
    if (state.status === "Failed" || state.status === "Removing" || state.status === "Removed") return;
    if (Date.parse(n.joinDeadline) <= now().getTime()) {
      await record(e, "install.check-deadlines", { clusterId }, n.joinDeadline);
      return;
    }
    const waited = since(e.time);
    const firstLook = firstPoll["ssm-registration"] ?? 0;
    if (!n.online && waited < firstLook)
      throw new RetryLaterError(firstLook - waited, `${n.instanceId}'s SSM Agent cannot have registered yet`);
    if (!n.online) {
      // One DescribeInstanceInformation asks for every node of the cluster still waiting
      // for its agent: whichever node's wait comes back first records them all, so a
      // large cluster costs one call per look, not one per node, and the other waits
      // find their node online.
      const waiting = Object.values(state.nodes).filter((x) => !x.online && !x.failed);
      const online = await onlineOf(clusterId, region, waiting);
      // All in one commit (with what the other nodes' waits saw meanwhile). A node whose
      // record-online another wait has queued already (not flushed yet) is left to it: each
      // of n waits that find the cluster's agents online would otherwise queue all n records
      // — at 500 nodes ~45,000 records of one flush, 450 decisions that changed nothing, each
      // followed by a look at the install's last commit (bench/install, "online → init sent").
      // Only a saving: a flush that fails clears its nodes, and their own waits come back.
      const queued = onlineQueued.get(clusterId) ?? new Set<string>();
      onlineQueued.set(clusterId, queued);
      const mine = waiting.filter((x) => online.has(x.instanceId) && !queued.has(x.instanceId));
      for (const x of mine) queued.add(x.instanceId);
      try {
        await Promise.all(
          mine.map((x) =>
            batched(e, "install.record-online", { clusterId, slot: x.slot, instanceId: x.instanceId }),
          ),
        );
      } finally {
        // Flushed (the handler's cached install has them online) or failed (their waits retry).
        for (const x of mine) queued.delete(x.instanceId);
        if (queued.size === 0 && onlineQueued.get(clusterId) === queued) onlineQueued.delete(clusterId);
      }
      if (!online.has(n.instanceId))
        throw new RetryLaterError(
          proportional(waited, firstLook),
          `${n.instanceId}'s SSM Agent has not registered yet`,
        );
    }
    // Online: its step's own events carry it on; this one only has to come back at
    // the node's deadline, to give up on it if it is not a Ready node by then.
    throw new RetryLaterError(
      Math.max(pollMs, Date.parse(n.joinDeadline) - now().getTime()),
      `node ${n.node} is not a Ready node yet`,
    );
  };

  /** The step's script for `n`, or (without `n`: a batch) for any node of `like`'s pool, named on the instance. */
  const scriptFor = (
    clusterId: string,
    state: Active,
    like: InstallNode,
    step: InstallStep,
    own: boolean,
  ) => {
    const { token, kubeconfig } = clusterSecretParameters(clusterId);
    const pool = state.plan.pools.find((p) => p.name === like.pool);
    const first = state.initialisedBy !== undefined ? state.nodes[state.initialisedBy] : undefined;
    const serverHost = first?.privateIp ?? first?.node;
    return stepScript({
      step,
      clusterId,
      region: state.plan.region,
      ...(own ? { node: like.node } : {}),
      role: like.role,
      k3sVersion: state.plan.k3sVersion,
      labels: {
        ...(pool?.labels ?? {}),
        "cairn.dev/pool": like.pool,
        "cairn.dev/capacity-type": like.capacityType,
      },
      taints: pool?.taints ?? [],
      tokenParameter: token,
      kubeconfigParameter: kubeconfig,
      ...(serverHost ? { serverUrl: `https://${serverHost}:6443` } : {}),
      ha: state.plan.servers > 1,
    });
  };
  const executionTimeoutSeconds = (step: InstallStep) =>
    Math.ceil((policy.stepTimeoutMs[step] * (o.executionTimeoutFactor ?? 2)) / 1000);

  const send = async (e: InstallFact & { type: "install.step-requested" }, state: Active) => {
    const clusterId = e.aggregate.id;
    const d = e.data;
    const n = state.nodes[d.slot];
    if (!n?.step || n.step.name !== d.step || n.step.attempt !== d.attempt || n.step.status !== "requested")
      return;
    if (state.status === "Removing" || state.status === "Removed") return;
    const step = n.step.name;
    const attempt = n.step.attempt;
    const comment = stepComment(clusterId, n.slot, step, attempt);
    const requestedAt = new Date(e.time);
    // Came back (a crash, a lost ack): SSM may have the command already.
    let commandId =
      e.deliveries > 1
        ? await o.remote.findSent(state.plan.region, n.instanceId, comment, requestedAt)
        : undefined;
    const adopted = commandId !== undefined;
    if (!commandId) {
      try {
        commandId = await o.remote.send(state.plan.region, {
          instanceId: n.instanceId,
          comment,
          executionTimeoutSeconds: executionTimeoutSeconds(step),
          commands: scriptFor(clusterId, state, n, step, true),
          ...(o.outputBucket
            ? {
                outputS3: {
                  bucket: o.outputBucket,
                  keyPrefix: `cairn/${clusterId}/${n.slot}/${step}/${attempt}`,
                },
              }
            : {}),
        });
      } catch (err) {
        if (err instanceof NotManagedError) {
          if (Date.parse(n.joinDeadline) <= now().getTime()) {
            await record(e, "install.check-deadlines", { clusterId }, n.joinDeadline);
            return;
          }
          throw later(e, `${n.instanceId} is not a managed instance yet`);
        }
        // A refusal no retry will cure is the step's result; anything else is retried.
        if (isRemoteExecFailure(err) && !err.transient) {
          await record(e, "install.record-step-result", {
            clusterId,
            slot: n.slot,
            step,
            attempt,
            status: "Failed",
            outputTail: "",
            reason: err.message,
            permanent: true,
          });
          return;
        }
        throw err;
      }
    }
    log?.info(
      { cluster: clusterId, node: n.node, step, attempt, commandId, adopted },
      `step ${d.number}/${d.of} ${step}`,
    );
    const after = await batched(e, "install.record-step-sent", {
      clusterId,
      slot: n.slot,
      step,
      attempt,
      commandId,
      sentAt: (adopted ? requestedAt : now()).toISOString(),
    });
    // Not the command on record for its step: the node went away (its step forgotten)
    // between SSM taking the command and this record, or another send of the step was
    // recorded first. Nothing will poll this one; cancel it rather than let it run on.
    // (Read just after the record: a step that has moved on since ended its command.)
    const mine = after.status === "Absent" ? undefined : after.nodes[n.slot];
    const onRecord =
      mine?.instanceId === n.instanceId &&
      (!mine.step ||
        mine.step.name !== step ||
        mine.step.attempt !== attempt ||
        mine.step.commandId === commandId);
    if (!onRecord) await cancelForgotten(clusterId, state.plan.region, commandId, n.instanceId, step);
  };

  /** Cancels a step's command nobody waits for any more; best effort (the instance may be gone). */
  const cancelForgotten = async (
    clusterId: string,
    region: string,
    commandId: string,
    instanceId: string | readonly string[],
    step: string,
  ) => {
    try {
      await o.remote.cancel(region, commandId, instanceId);
      log?.info(
        { cluster: clusterId, step, commandId, instanceId },
        `step ${step} forgotten: command cancelled`,
      );
    } catch (err) {
      // A terminated instance has nothing left to cancel.
      log?.info(
        { cluster: clusterId, step, commandId, instanceId, err: (err as Error).message },
        `step ${step} forgotten: its command could not be cancelled`,
      );
    }
  };

  const poll = async (e: InstallFact & { type: "install.step-sent" }, state: Active) => {
    const clusterId = e.aggregate.id;
    const { slot, commandId } = e.data;
    const n = state.nodes[slot];
    const s = n?.step;
    if (!n || !s || s.status !== "sent" || s.commandId !== commandId) return;
    const region = state.plan.region;
    const result = (
      data: Omit<CommandDataInput<"install.record-step-result">, "clusterId" | "slot" | "step" | "attempt">,
    ) =>
      batched(e, "install.record-step-result", {
        clusterId,
        slot: n.slot,
        step: s.name,
        attempt: s.attempt,
        commandId,
        ...data,
      });
    const toDeadline = s.deadline !== undefined ? Date.parse(s.deadline) - now().getTime() : Infinity;
    const late = toDeadline <= 0;
    const sent = since(s.sentAt ?? e.time);
    const first = firstPoll[s.name] ?? 0;
    // Back at the deadline at the latest, to cancel a step that hangs.
    const wait = (why: string) =>
      new RetryLaterError(Math.max(1, Math.min(toDeadline, proportional(sent, first))), why);
    // Too early to have ended: not worth a call to SSM.
    if (!late && sent < first) throw wait(`${s.name} on ${n.node} cannot have ended yet`);
    const inv = await o.remote.invocation(region, commandId, n.instanceId);
    if (!inv || RUNNING_STATUSES.has(inv.status)) {
      if (!late) throw wait(`${s.name} on ${n.node} is ${inv?.status ?? "not known to SSM yet"}`);
      // Past the deadline: cancel the old command before any new attempt is sent.
      if (inv) await o.remote.cancel(region, commandId, n.instanceId);
      log?.warn(
        { cluster: clusterId, node: n.node, step: s.name, attempt: s.attempt, commandId },
        `step ${s.name} passed its deadline; cancelled`,
      );
      await result({
        status: inv ? "TimedOut" : "Lost",
        outputTail: inv ? outputTail(inv.stdout, inv.stderr) : "",
        reason: inv
          ? `${s.name} was still ${inv.status} at its deadline (${s.deadline}); the command was cancelled`
          : `SSM never knew command ${commandId}`,
        durationMs: Math.max(0, now().getTime() - Date.parse(s.sentAt ?? e.time)),
      });
      return;
    }
    const started = inv.startedAt ? Date.parse(inv.startedAt) : Date.parse(s.sentAt ?? e.time);
    const ended = inv.endedAt ? Date.parse(inv.endedAt) : now().getTime();
    const durationMs = Math.max(0, Math.round(ended - started));
    const status = inv.status === "Success" ? "Success" : normaliseStatus(inv.status);
    log?.info(
      { cluster: clusterId, node: n.node, step: s.name, attempt: s.attempt, status, durationMs },
      // Step X/Y as the install stands: this one is the next after those done.
      `step ${Math.min(joinedCount(state.nodes) + 1, Math.max(1, Object.values(state.nodes).filter((x) => !x.failed).length))}/${Math.max(1, Object.values(state.nodes).filter((x) => !x.failed).length)} ${s.name} ${status === "Success" ? "done" : status} in ${durationMs} ms`,
    );
    await result({
      status,
      durationMs,
      outputTail: outputTail(inv.stdout, inv.stderr),
      ...(status !== "Success" ? { reason: `${s.name} ended ${inv.status}` } : {}),
    });
  };

  /**
   * A batch's one command (install.batch-requested): the batch's nodes still waiting for
   * it, in one SendCommand. Never sent twice: a redelivered request first looks for the
   * command by its comment (naming cluster, step and batch) on the first waiting node and
   * adopts the instances it names (ListCommands). SSM refuses a whole command when one of
   * its instances is not managed: the managed ones go now, the rest when this event comes
   * back (or their join deadline gives up on them).
   */
  const sendBatch = async (e: InstallFact & { type: "install.batch-requested" }, state: Active) => {
    const clusterId = e.aggregate.id;
    const region = state.plan.region;
    const { batch, step } = e.data;
    if (state.status === "Removing" || state.status === "Removed") return;
    /** The batch's nodes whose step is still requested (a node only ever leaves this set). */
    const waiting = (s: InstallState) =>
      s.status === "Absent"
        ? []
        : e.data.slots.flatMap((slot) => {
            const n = s.nodes[slot];
            return n?.step?.batch === batch && n.step.status === "requested" && n.step.name === step
              ? [n]
              : [];
          });
    const members = waiting(state);
    const lead = members[0];
    if (!lead) return;
    const comment = batchComment(clusterId, step, batch);
    const requestedAt = new Date(e.time);
    let sent: { commandId: string; instanceIds: readonly string[]; adopted: boolean } | undefined;
    if (e.deliveries > 1) {
      const found = await o.remote.findSent(region, lead.instanceId, comment, requestedAt);
      const targets = found ? await o.remote.commandTargets(region, found) : undefined;
      if (found && targets) sent = { commandId: found, instanceIds: targets, adopted: true };
    }
    const sendTo = async (nodes: readonly InstallNode[]) => ({
      commandId: await o.remote.sendBatch(region, {
        instanceIds: nodes.map((n) => n.instanceId),
        comment,
        executionTimeoutSeconds: executionTimeoutSeconds(step),
        commands: scriptFor(clusterId, state, lead, step, false),
        ...(o.outputBucket
          ? { outputS3: { bucket: o.outputBucket, keyPrefix: `cairn/${clusterId}/batch-${batch}/${step}` } }
          : {}),
      }),
      instanceIds: nodes.map((n) => n.instanceId),
      adopted: false,
    });
    /** Members whose join deadline passed are given up on; the others are waited for. */
    const notManagedYet = async (why: string) => {
      const deadline = members.map((n) => n.joinDeadline).sort()[0]!;
      if (Date.parse(deadline) <= now().getTime()) {
        await record(e, "install.check-deadlines", { clusterId }, deadline);
        if (waiting((await read(clusterId)).state).length === 0) return;
      }
      throw later(e, why);
    };
    if (!sent) {
      try {
        sent = await sendTo(members);
      } catch (err) {
        if (err instanceof NotManagedError) {
          const online = await o.remote.onlineInstances(
            region,
            members.map((n) => n.instanceId),
          );
          const ready = members.filter((n) => online.has(n.instanceId));
          if (ready.length === 0 || ready.length === members.length)
            return await notManagedYet(`batch ${batch}: its instances are not all managed yet`);
          try {
            sent = await sendTo(ready);
          } catch (again) {
            if (again instanceof NotManagedError)
              return await notManagedYet(`batch ${batch}: its instances are not all managed yet`);
            throw again;
          }
        } else if (isRemoteExecFailure(err) && !err.transient) {
          // A refusal no retry will cure is every member's result.
          await Promise.all(
            members.map((n) =>
              batched(e, "install.record-step-result", {
                clusterId,
                slot: n.slot,
                step,
                attempt: n.step?.attempt ?? 1,
                status: "Failed",
                outputTail: "",
                reason: err.message,
                permanent: true,
              }),
            ),
          );
          return;
        } else throw err;
      }
    }
    const { commandId, instanceIds, adopted } = sent;
    log?.info(
      { cluster: clusterId, step, batch, commandId, adopted, nodes: instanceIds.length },
      `step ${step} batch ${batch} on ${instanceIds.length} nodes`,
    );
    await record(
      e,
      "install.record-batch-sent",
      {
        clusterId,
        batch,
        commandId,
        sentAt: (adopted ? requestedAt : now()).toISOString(),
        instanceIds: [...instanceIds],
      },
      commandId,
    );
    const { state: after } = await read(clusterId);
    // Named by the command but not on record with it (the node went away, or another send
    // was recorded first): nothing will poll those invocations; cancel them.
    const named = new Set(instanceIds);
    const forgotten = members.filter((n) => {
      if (!named.has(n.instanceId)) return false;
      const mine = after.status === "Absent" ? undefined : after.nodes[n.slot];
      const onRecord =
        mine?.instanceId === n.instanceId &&
        (!mine.step ||
          mine.step.name !== step ||
          mine.step.attempt !== n.step?.attempt ||
          mine.step.commandId === commandId);
      return !onRecord;
    });
    if (forgotten.length > 0)
      await cancelForgotten(
        clusterId,
        region,
        commandId,
        forgotten.map((n) => n.instanceId),
        step,
      );
    // Members the command could not name (not managed yet) come back with this event.
    if (waiting(after).length > 0)
      await notManagedYet(`batch ${batch}: some of its instances are not managed yet`);
  };

  /** A batch member's result, in the install's group commit. */
  const batchResult = (
    e: InstallFact & { type: "install.batch-sent" },
    commandId: string,
    n: InstallNode,
    data: Omit<CommandDataInput<"install.record-step-result">, "clusterId" | "slot" | "step" | "attempt">,
  ) =>
    batched(e, "install.record-step-result", {
      clusterId: e.aggregate.id,
      slot: n.slot,
      step: e.data.step,
      attempt: n.step?.attempt ?? 1,
      commandId,
      ...data,
    });

  /**
   * Records the members of a batch command whose invocation ended (a failure with its full
   * output from its own GetCommandInvocation); the others are left as they are. Idempotent by
   * the install's state: a member recorded already (by an earlier poll, or a replica's)
   * records nothing.
   */
  const recordEnded = async (
    e: InstallFact & { type: "install.batch-sent" },
    state: Active,
    commandId: string,
    sentAt: string,
    members: readonly InstallNode[],
    invocations: ReadonlyMap<string, Invocation>,
    nodes: number,
  ) => {
    const clusterId = e.aggregate.id;
    const region = state.plan.region;
    const step = e.data.step;
    await Promise.all(
      members.map(async (n) => {
        let inv = invocations.get(n.instanceId);
        if (!inv || RUNNING_STATUSES.has(inv.status)) return;
        // The list shows the plugin's first 2,500 characters; a failure's tail is worth the full output.
        if (inv.status !== "Success") {
          const full = await o.remote.invocation(region, commandId, n.instanceId);
          if (full) inv = { ...inv, stdout: full.stdout, stderr: full.stderr };
        }
        const started = inv.startedAt ? Date.parse(inv.startedAt) : Date.parse(sentAt);
        const ended = inv.endedAt ? Date.parse(inv.endedAt) : now().getTime();
        const durationMs = Math.max(0, Math.round(ended - started));
        const status = inv.status === "Success" ? "Success" : normaliseStatus(inv.status);
        log?.info(
          { cluster: clusterId, node: n.node, step, attempt: n.step?.attempt, status, durationMs, commandId },
          `step ${Math.min(joinedCount(state.nodes) + 1, Math.max(1, nodes))}/${Math.max(1, nodes)} ${step} ${status === "Success" ? "done" : status} in ${durationMs} ms`,
        );
        await batchResult(e, commandId, n, {
          status,
          durationMs,
          outputTail: outputTail(inv.stdout, inv.stderr),
          ...(status !== "Success" ? { reason: `${step} ended ${inv.status}` } : {}),
        });
      }),
    );
  };

  /**
   * A batch's command (install.batch-sent): every invocation in one ListCommandInvocations
   * (by command id, with details; paginated), each ended one recorded as its node's result
   * (a failure's full output from its own GetCommandInvocation), the others waited for.
   * One node failing fails no other; its retry is its own new request. Past the deadline,
   * the invocations still running are cancelled in one CancelCommand and recorded timed out.
   */
  const pollBatch = async (e: InstallFact & { type: "install.batch-sent" }, state: Active) => {
    const clusterId = e.aggregate.id;
    const region = state.plan.region;
    const { commandId, step } = e.data;
    const members = e.data.slots.flatMap((slot) => {
      const n = state.nodes[slot];
      return n?.step?.status === "sent" && n.step.commandId === commandId ? [n] : [];
    });
    if (members.length === 0) return;
    const toDeadline = Date.parse(e.data.deadline) - now().getTime();
    const late = toDeadline <= 0;
    const sent = since(e.data.sentAt);
    const first = firstPoll[step] ?? 0;
    const wait = (why: string) =>
      new RetryLaterError(Math.max(1, Math.min(toDeadline, proportional(sent, first))), why);
    if (!late && sent < first) throw wait(`${step} batch ${e.data.batch} cannot have ended yet`);
    // Only this batch's invocations: its poll runs on a chain of its own (installer-reactor's
    // `ownChain`), not after the install's other commits, so the batches in flight are polled
    // side by side and their results go out together in the install's group commits.
    const invocations = await o.remote.invocations(region, commandId);
    const running = members.filter((n) => {
      const inv = invocations.get(n.instanceId);
      return !inv || RUNNING_STATUSES.has(inv.status);
    });
    const nodes = Object.values(state.nodes).filter((x) => !x.failed).length;
    await recordEnded(e, state, commandId, e.data.sentAt, members, invocations, nodes);
    if (running.length === 0) return;
    if (!late) throw wait(`${running.length} of batch ${e.data.batch}'s ${step} still running`);
    // Past the deadline: the ones still running are cancelled (one call) before any new attempt.
    const known = running.filter((n) => invocations.has(n.instanceId));
    if (known.length > 0)
      await o.remote.cancel(
        region,
        commandId,
        known.map((n) => n.instanceId),
      );
    log?.warn(
      { cluster: clusterId, step, batch: e.data.batch, commandId, nodes: running.map((n) => n.node) },
      `step ${step} passed its deadline on ${running.length} nodes; cancelled`,
    );
    await Promise.all(
      running.map((n) => {
        const inv = invocations.get(n.instanceId);
        return batchResult(e, commandId, n, {
          status: inv ? "TimedOut" : "Lost",
          outputTail: inv ? outputTail(inv.stdout, inv.stderr) : "",
          reason: inv
            ? `${step} was still ${inv.status} at its deadline (${e.data.deadline}); the command was cancelled`
            : `SSM never knew command ${commandId} on ${n.instanceId}`,
          durationMs: Math.max(0, now().getTime() - Date.parse(e.data.sentAt)),
        });
      }),
    );
  };

  const logger = o.logger ? { logger: o.logger } : {};
  const running: RunningConsumer[] = [];
  running.push(
    await startReactor({
      nats: o.nats,
      name: "installer-cluster",
      aggregate: "cluster",
      types: CLUSTER_FACTS,
      concurrency: 32,
      ...logger,
      react: onCluster,
    }),
  );
  running.push(
    await startReactor({
      nats: o.nats,
      name: "installer-kube",
      aggregate: "kube",
      types: KUBE_FACTS,
      concurrency: 32,
      ...logger,
      react: onKube,
    }),
  );
  // Each wait is its own message, so this one needs room for many in hand at once. A
  // commit's events concern different nodes and every step is idempotent: they run
  // together (the runtime's default), and one that waits brings the commit back.
  // A batch's send (its members' step-sent and its batch-sent, one commit) runs on a chain of
  // its own: its poll only looks at SSM and records its members' results, idempotent by the
  // install's state on a state at least as fresh as its commit, so it need not wait for the
  // install's earlier commits, nor hold the later ones (another batch's poll, node-ops' Ready
  // records) while it lists and records.
  running.push(
    await startReactor({
      nats: o.nats,
      name: "installer-reactor",
      aggregate: "install",
      concurrency: 64,
      ownChain: isBatchSend,
      ...(o.maxInHand !== undefined ? { maxInHand: o.maxInHand } : {}),
      ...logger,
      react: onInstall,
    }),
  );
  return {
    stop: async () => {
      for (const r of running.reverse()) await r.stop();
    },
  };
}

/** The install's plan from a cluster spec. No AMI named: the pre-built Cairn AMI (K3s inside). */
export function planOf(spec: Pick<ClusterSpec, "region" | "k3sVersion" | "ami" | "servers" | "pools">) {
  return {
    region: spec.region,
    k3sVersion: spec.k3sVersion,
    prebuiltAmi: spec.ami === undefined,
    servers: spec.servers.count,
    serverInstanceType: spec.servers.instanceType,
    pools: spec.pools.map((p) => ({
      name: p.name,
      capacityType: p.capacityType,
      labels: p.labels ?? {},
      taints: p.taints ?? [],
    })),
  };
}

/** A plan as `install.plan` takes it again (a copy: the state's is read-only). */
function planData(plan: InstallPlan) {
  return {
    region: plan.region,
    k3sVersion: plan.k3sVersion,
    prebuiltAmi: plan.prebuiltAmi,
    servers: plan.servers,
    ...(plan.serverInstanceType !== undefined ? { serverInstanceType: plan.serverInstanceType } : {}),
    pools: plan.pools.map((p) => ({ ...p, labels: { ...p.labels }, taints: [...p.taints] })),
  };
}

function normaliseStatus(s: string): "Failed" | "TimedOut" | "Cancelled" | "Undeliverable" {
  if (s === "TimedOut" || s === "Cancelled" || s === "Undeliverable") return s;
  if (s === "DeliveryTimedOut" || s === "ExecutionTimedOut") return "TimedOut";
  return "Failed";
}

/** A commit that is one batch's send record: its members' `install.step-sent` and its `install.batch-sent`. */
export function isBatchSend(eventTypes: readonly string[]): boolean {
  return (
    eventTypes.includes("install.batch-sent") &&
    eventTypes.every((t) => t === "install.batch-sent" || t === "install.step-sent")
  );
}

/** Records per `install.record-many` (the catalogue allows 1,000): a commit of their events, each step's output tail up to 4 KB, stays far below NATS's 1 MB. */
const MAX_BATCH = 100;

/** A short, deterministic key naming a batch's records: its command id follows from it. */
function batchKey(records: readonly object[]): string {
  return createHash("sha256").update(JSON.stringify(records)).digest("hex").slice(0, 32);
}
