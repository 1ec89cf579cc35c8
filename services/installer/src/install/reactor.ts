/**
 * The installer's process managers. Three durable consumers, one filter subject each:
 *
 *  - `installer-cluster` (evt.cluster.*): the provisioner's facts become install
 *    commands — the spec (plan), a slot's instance running (add a node), a slot going
 *    away, every instance running, the cluster deleting.
 *  - `installer-kube` (evt.kube.*): node-ops' facts — a node Ready, NotReady, gone.
 *  - `installer-reactor` (evt.install.*): the install's own decisions carried out on
 *    SSM — store the join token, wait for the SSM Agent, send a step, poll it, check the
 *    kubeconfig, remove the secrets.
 *
 * Never blocking: waiting (an agent not registered yet, a command still running) hands
 * the event back to JetStream with a delay (`RetryLaterError`, from `pollMs` doubling
 * up to `maxPollMs`) and looks again then; no handler waits on a long step.
 *
 * Never re-sending: a step's command id is recorded (`install.step-sent`) and from then
 * on only polled. A send cut short by a crash, after SSM took the command but before it
 * was recorded, is found again by its comment (which names cluster, slot, step and
 * attempt) when the event comes back, and adopted instead of sent again.
 */
import { randomBytes } from "node:crypto";
import {
  type ClusterSpec,
  CommandBus,
  type CommandHandler,
  catalogue,
  clusterSecretParameters,
  commandCausedBy,
  derivedId,
  drainOutcome,
  EventStore,
  eventFilter,
  type InstallCommand,
  type InstallEvent,
  type InstallStep,
  type Nats,
  poolOfSlot,
  type RawEventEnvelope,
  RetryLaterError,
  type RunnerLogger,
  type RunningConsumer,
  roleOfSlot,
  Streams,
  startConsumer,
} from "@cairn/events";
import { isRemoteExecFailure, NotManagedError, type RemoteExec, RUNNING_STATUSES } from "../ports.ts";
import { stepScript } from "../scripts/steps.ts";
import { DEFAULT_INSTALL_POLICY, type InstallPolicy, type InstallState } from "./decider.ts";
import { outputTail } from "./output.ts";

export interface InstallReactorOptions {
  nats: Nats;
  handler: CommandHandler<InstallCommand, InstallEvent, InstallState>;
  remote: RemoteExec;
  policy?: InstallPolicy;
  logger?: RunnerLogger;
  /** First look again after this long (default 1 s), doubling up to `maxPollMs` (default 15 s). */
  pollMs?: number;
  maxPollMs?: number;
  /**
   * When to take the first look at a step's command, by step: nothing can be seen
   * before it can have ended, so a poll then is wasted. Defaults:
   * {@link DEFAULT_FIRST_POLL_MS}. After it, see {@link waitDelay}.
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
}

type Event = RawEventEnvelope & { sequence: number; deliveries: number };

/** What the reactor waits for: a step's command, or a new instance's SSM Agent registering. */
export type Wait = InstallStep | "ssm-registration";

/**
 * When a wait is first looked at: 80% of a step's typical duration on AWS (a K3s
 * server install ~60 s, a join ~30 s). A faster run than that is rare; from there on
 * the polls come every 5% of the time waited, so a result is seen at most ~5% late.
 * Steps not named are looked at from the start. An SSM Agent registers ~20 s after its
 * instance runs, but that wait is counted from the node's addition, which comes as late
 * as the provisioner was in seeing the instance run: half of it.
 */
export const DEFAULT_FIRST_POLL_MS: Readonly<Partial<Record<Wait, number>>> = {
  "ssm-registration": 10_000,
  "k3s-server-init": 48_000,
  "k3s-server-join": 24_000,
  "k3s-agent-join": 24_000,
};

/**
 * How long to wait before looking again at something that has been going for
 * `elapsedMs` and is expected to take at least `firstMs`: until the first look, then
 * 5% of the time waited so far (between `pollMs` and `maxPollMs`). Unlike a delay that
 * doubles with each look, the lateness stays proportional to the wait (≤ 5%), and a
 * long step is not looked at a dozen times before it can have ended.
 */
export function waitDelay(elapsedMs: number, firstMs: number, pollMs: number, maxPollMs: number): number {
  if (elapsedMs < firstMs) return firstMs - elapsedMs;
  return Math.min(maxPollMs, Math.max(pollMs, elapsedMs / 20));
}
type Active = Exclude<InstallState, { status: "Absent" }>;

/** The comment a step's command carries: how a send cut short by a crash is found again. */
export function stepComment(clusterId: string, slot: number, step: string, attempt: number): string {
  return `cairn ${step} slot=${slot} attempt=${attempt} cluster=${clusterId}`.slice(0, 100);
}

export async function startInstallReactor(o: InstallReactorOptions): Promise<{ stop(): Promise<void> }> {
  const policy = o.policy ?? DEFAULT_INSTALL_POLICY;
  const pollMs = o.pollMs ?? 1_000;
  const maxPollMs = o.maxPollMs ?? 15_000;
  const now = o.now ?? (() => new Date());
  const later = (deliveries: number, why: string) =>
    new RetryLaterError(Math.min(maxPollMs, pollMs * 2 ** Math.max(0, deliveries - 1)), why);
  const log = o.logger;
  const bus = new CommandBus({ js: o.nats.js, catalogue });
  const store = new EventStore({ js: o.nats.js, jsm: o.nats.jsm, catalogue });

  /** Asks node-ops for a node operation, idempotent by its id (named after the cause). */
  const nodeOp = async (cause: Event, type: "node.drain" | "node.uncordon", data: object) => {
    const id = derivedId(cause.id, type);
    await bus.send({
      id,
      type,
      data: { clusterId: cause.aggregate.id, ...data },
      meta: {
        actor: "installer",
        causationId: cause.id,
        ...(cause.meta.correlationId ? { correlationId: cause.meta.correlationId } : {}),
      },
    });
    return id;
  };

  const scale = o.timeScale ?? 1;
  const firstPoll: Partial<Record<Wait, number>> = {
    ...Object.fromEntries(Object.entries(DEFAULT_FIRST_POLL_MS).map(([wait, ms]) => [wait, ms / scale])),
    ...o.firstPollMs,
  };
  const since = (iso: string | undefined) => (iso ? Math.max(0, now().getTime() - Date.parse(iso)) : 0);

  /**
   * The cluster's last answer from DescribeInstanceInformation, reused for `pollMs`:
   * each waiting node's event comes back on its own, and without this a cluster of n
   * nodes would ask n times per look for the same answer.
   */
  const lastLook = new Map<string, { at: number; ids: ReadonlySet<string>; online: ReadonlySet<string> }>();
  const onlineOf = async (clusterId: string, region: string, nodes: readonly { instanceId: string }[]) => {
    const t = now().getTime();
    const seen = lastLook.get(clusterId);
    if (seen && t - seen.at < pollMs && nodes.every((x) => seen.ids.has(x.instanceId))) return seen.online;
    const ids = nodes.map((x) => x.instanceId);
    const online = await o.remote.onlineInstances(region, ids);
    // Nobody left to wait for: nothing worth keeping.
    if (ids.every((id) => online.has(id))) lastLook.delete(clusterId);
    else lastLook.set(clusterId, { at: t, ids: new Set(ids), online });
    return online;
  };

  /** Decides an internal command on the install, named after its cause. */
  const record = async (
    cause: Event,
    type: InstallCommand["type"],
    data: object,
    opts: { key?: string; sameAggregate?: boolean } = {},
  ) => {
    const command = commandCausedBy(
      cause,
      type,
      { clusterId: cause.aggregate.id, ...data },
      { actor: "installer", key: opts.key ?? "" },
    );
    // A cause on another aggregate's subject says nothing of this one's sequence.
    return await o.handler.handle(command, opts.sameAggregate ? { atLeastSequence: cause.sequence } : {});
  };

  const read = async (clusterId: string, atLeastSequence?: number): Promise<InstallState> =>
    (
      await o.handler.read(
        { type: "install", id: clusterId },
        atLeastSequence !== undefined ? { atLeastSequence } : {},
      )
    ).state;

  // --- the provisioner's facts ------------------------------------------------------
  const onCluster = async (e: Event) => {
    const d = e.data as Record<string, unknown>;
    switch (e.type) {
      case "cluster.requested":
      case "cluster.rollback-requested":
      case "cluster.scale-failed":
        return record(e, "install.plan", planOf(d.spec as ClusterSpec));
      case "cluster.pool-updated": {
        const state = await read(e.aggregate.id);
        if (state.status === "Absent") return;
        const pools = state.plan.pools.map((p) =>
          p.name === d.pool ? { ...p, labels: d.labels, taints: d.taints } : p,
        );
        return record(e, "install.plan", { ...state.plan, pools });
      }
      case "cluster.instance-running": {
        const slot = d.slot as number;
        const state = await read(e.aggregate.id);
        if (state.status === "Absent") return;
        // Events recorded before they carried role and pool: the slot's number says.
        const pool = (d.pool as string | undefined) ?? poolOfSlot(state.plan, slot) ?? "unknown";
        const role = (d.role as string | undefined) ?? roleOfSlot(slot);
        const capacityType =
          (d.capacityType as string | undefined) ??
          (role === "server"
            ? "on-demand"
            : (state.plan.pools.find((p) => p.name === pool)?.capacityType ?? "on-demand"));
        return record(e, "install.add-node", {
          slot,
          instanceId: d.instanceId,
          role,
          pool,
          capacityType,
          ...(d.privateIp ? { privateIp: d.privateIp } : {}),
        });
      }
      case "cluster.instance-termination-requested":
      case "cluster.node-replacement-requested":
        return record(e, "install.remove-node", { slot: d.slot });
      case "cluster.instances-ready":
        return record(e, "install.record-instances-ready", { count: d.count });
      case "cluster.deletion-requested":
        return record(e, "install.remove", {});
      default:
        return;
    }
  };

  // --- node-ops' facts --------------------------------------------------------------
  const onKube = async (e: Event) => {
    const d = e.data as { node?: string; reason?: string; pressure?: string[] };
    // Cluster-wide and pressure facts are health checks; readiness is the node's state.
    if (e.type === "kube.api-unreachable" || e.type === "kube.api-reachable")
      return record(e, "install.record-check", {
        check: "api-reachable",
        ok: e.type === "kube.api-reachable",
        ...(d.reason ? { evidence: d.reason.slice(0, 2_000) } : {}),
      });
    if (e.type === "kube.node-pressure-changed" && d.node)
      return record(e, "install.record-check", {
        check: "no-pressure",
        node: d.node,
        ok: (d.pressure ?? []).length === 0,
        evidence: `the node reports ${(d.pressure ?? []).join(", ")}`,
      });
    const state =
      e.type === "kube.node-ready"
        ? "ready"
        : e.type === "kube.node-not-ready"
          ? "not-ready"
          : e.type === "kube.node-removed"
            ? "removed"
            : undefined;
    if (!state || !d.node) return;
    return record(e, "install.record-node-state", {
      node: d.node,
      state,
      ...(d.reason ? { reason: d.reason } : {}),
    });
  };

  // --- the install's own decisions, carried out on SSM ------------------------------
  const onInstall = async (e: Event) => {
    const clusterId = e.aggregate.id;
    const state = await read(clusterId, e.sequence);
    if (state.status === "Absent") return;
    const region = state.plan.region;
    const d = e.data as Record<string, unknown>;
    switch (e.type) {
      case "install.planned": {
        if (state.secrets || state.status !== "Installing") return;
        const { token } = clusterSecretParameters(clusterId);
        // A token made here and stored at once; only the parameter's name goes on.
        const created = await o.remote.putSecretIfAbsent(region, token, randomBytes(32).toString("hex"));
        log?.info({ cluster: clusterId, parameter: token, created }, "join token stored");
        return record(e, "install.record-secrets", { parameters: [token] }, { sameAggregate: true });
      }

      case "install.node-added": {
        const slot = d.slot as number;
        const n = state.nodes[slot];
        if (!n || n.instanceId !== d.instanceId || n.failed || (n.joined && n.ready)) return;
        if (state.status === "Failed" || state.status === "Removing" || state.status === "Removed") return;
        if (Date.parse(n.joinDeadline) <= now().getTime()) {
          return record(e, "install.check-deadlines", {}, { sameAggregate: true, key: n.joinDeadline });
        }
        const waited = since(e.time);
        const firstLook = firstPoll["ssm-registration"] ?? 0;
        if (!n.online && waited < firstLook)
          throw new RetryLaterError(
            firstLook - waited,
            `${n.instanceId}'s SSM Agent cannot have registered yet`,
          );
        if (!n.online) {
          // One
          // DescribeInstanceInformation asks for every node of the cluster still waiting
          // for its agent: whichever node's wait comes back first records them all, so a
          // large cluster costs one call per look, not one per node, and the other waits
          // find their node online.
          const waiting = Object.values(state.nodes).filter((x) => !x.online && !x.failed);
          const online = await onlineOf(clusterId, region, waiting);
          for (const x of waiting) {
            if (!online.has(x.instanceId)) continue;
            // This node's own record keeps the id it always had; the others are keyed by slot.
            await record(
              e,
              "install.record-online",
              { slot: x.slot, instanceId: x.instanceId },
              { sameAggregate: true, ...(x.slot === slot ? {} : { key: `slot=${x.slot}` }) },
            );
          }
          if (!online.has(n.instanceId))
            throw new RetryLaterError(
              waitDelay(waited, firstLook, pollMs, maxPollMs),
              `${n.instanceId}'s SSM Agent has not registered yet`,
            );
        }
        // Online: its step's own events carry it on; this one only has to come back at
        // the node's deadline, to give up on it if it is not a Ready node by then.
        throw new RetryLaterError(
          Math.max(pollMs, Date.parse(n.joinDeadline) - now().getTime()),
          `node ${n.node} is not a Ready node yet`,
        );
      }

      case "install.step-requested":
        return send(e, state);

      case "install.step-sent":
        return poll(e, state);

      case "install.node-upgrade-started": {
        const { node, to } = d as { node: string; to: string };
        const n = Object.values(state.nodes).find((x) => x.node === node);
        if (n?.upgrading !== "draining") return;
        const drainId = await nodeOp(e, "node.drain", { node, reason: `K3s upgrade to ${to}` });
        // node-ops' answer is on the node's own subject: the drain's outcome, or a refusal.
        const outcome = await drainOutcome(store, clusterId, node, drainId);
        if (outcome.status === "pending") throw later(e.deliveries, `waiting for node-ops to drain ${node}`);
        return record(
          e,
          "install.record-upgrade-progress",
          outcome.status === "drained"
            ? { node, phase: "drained" }
            : { node, phase: "drain-failed", reason: outcome.reason },
          { sameAggregate: true },
        );
      }

      case "install.node-upgraded":
        await nodeOp(e, "node.uncordon", { node: d.node, reason: `K3s upgraded to ${d.k3sVersion}` });
        return;

      case "install.step-succeeded": {
        if (d.step === "k3s-upgrade") {
          const n = state.nodes[d.slot as number];
          if (n?.upgrading !== "verifying") return;
          // Verified when node-ops reports it Ready after the restart the upgrade made.
          if (!n.ready) throw later(e.deliveries, `waiting for ${n.node} to be Ready after its upgrade`);
          return record(
            e,
            "install.record-upgrade-progress",
            { node: n.node, phase: "verified" },
            { sameAggregate: true },
          );
        }
        if (d.step !== "k3s-server-init" || state.kubeconfig) return;
        const { kubeconfig } = clusterSecretParameters(clusterId);
        const version = await o.remote.parameterVersion(region, kubeconfig);
        if (version === undefined)
          throw later(e.deliveries, `kubeconfig parameter ${kubeconfig} not there yet`);
        return record(
          e,
          "install.record-kubeconfig",
          { parameter: kubeconfig, version },
          { sameAggregate: true },
        );
      }

      case "install.remediation-requested": {
        // The rung's grace: its step must have ended and the node had time to pass its
        // checks; then the ladder looks again (a passing node has already left it).
        const { node, action, attempt } = d as { node: string; action: string; attempt: number };
        if (action === "replace") return;
        const n = Object.values(state.nodes).find((x) => x.node === node);
        if (!n?.remedy || n.remedy.action !== action || n.remedy.attempt !== attempt) return;
        const graceOver = Date.parse(e.time) + policy.remediationGraceMs <= now().getTime();
        if (n.step || !graceOver)
          throw later(e.deliveries, `${action} on ${node}: waiting for its grace period`);
        return record(e, "install.check-remediation", { node, action, attempt }, { sameAggregate: true });
      }

      case "install.removal-requested": {
        const { token, kubeconfig } = clusterSecretParameters(clusterId);
        await o.remote.deleteParameters(region, [token, kubeconfig]);
        log?.info({ cluster: clusterId, parameters: [token, kubeconfig] }, "cluster secrets removed");
        return record(
          e,
          "install.record-secrets-removed",
          { parameters: [token, kubeconfig] },
          { sameAggregate: true },
        );
      }

      default:
        return;
    }
  };

  const send = async (e: Event, state: Active) => {
    const clusterId = e.aggregate.id;
    const d = e.data as { step: string; slot: number; attempt: number; number: number; of: number };
    const n = state.nodes[d.slot];
    if (!n?.step || n.step.name !== d.step || n.step.attempt !== d.attempt || n.step.status !== "requested")
      return;
    if (state.status === "Removing" || state.status === "Removed") return;
    const step = n.step.name;
    const comment = stepComment(clusterId, n.slot, step, n.step.attempt);
    const requestedAt = new Date(e.time);
    // Came back (a crash, a lost ack): SSM may have the command already.
    let commandId =
      e.deliveries > 1
        ? await o.remote.findSent(state.plan.region, n.instanceId, comment, requestedAt)
        : undefined;
    const adopted = commandId !== undefined;
    if (!commandId) {
      const { token, kubeconfig } = clusterSecretParameters(clusterId);
      const pool = state.plan.pools.find((p) => p.name === n.pool);
      const first = state.initialisedBy !== undefined ? state.nodes[state.initialisedBy] : undefined;
      const serverHost = first?.privateIp ?? first?.node;
      try {
        commandId = await o.remote.send(state.plan.region, {
          instanceId: n.instanceId,
          comment,
          executionTimeoutSeconds: Math.ceil(
            (policy.stepTimeoutMs[step] * (o.executionTimeoutFactor ?? 2)) / 1000,
          ),
          commands: stepScript({
            step,
            clusterId,
            region: state.plan.region,
            node: n.node,
            role: n.role,
            k3sVersion: state.plan.k3sVersion,
            labels: {
              ...(pool?.labels ?? {}),
              "cairn.dev/pool": n.pool,
              "cairn.dev/capacity-type": n.capacityType,
            },
            taints: pool?.taints ?? [],
            tokenParameter: token,
            kubeconfigParameter: kubeconfig,
            ...(serverHost ? { serverUrl: `https://${serverHost}:6443` } : {}),
            ha: state.plan.servers > 1,
          }),
          ...(o.outputBucket
            ? {
                outputS3: {
                  bucket: o.outputBucket,
                  keyPrefix: `cairn/${clusterId}/${n.slot}/${step}/${n.step.attempt}`,
                },
              }
            : {}),
        });
      } catch (err) {
        if (err instanceof NotManagedError) {
          if (Date.parse(n.joinDeadline) <= now().getTime())
            return record(e, "install.check-deadlines", {}, { sameAggregate: true, key: n.joinDeadline });
          throw later(e.deliveries, `${n.instanceId} is not a managed instance yet`);
        }
        if (isRemoteExecFailure(err) && !err.transient) {
          return record(
            e,
            "install.record-step-result",
            {
              slot: n.slot,
              step,
              attempt: n.step.attempt,
              status: "Failed",
              outputTail: "",
              reason: err.message,
              permanent: true,
            },
            { sameAggregate: true },
          );
        }
        throw err;
      }
    }
    log?.info(
      { cluster: clusterId, node: n.node, step, attempt: n.step.attempt, commandId, adopted },
      `step ${d.number}/${d.of} ${step}`,
    );
    return record(
      e,
      "install.record-step-sent",
      {
        slot: n.slot,
        step,
        attempt: n.step.attempt,
        commandId,
        sentAt: (adopted ? requestedAt : now()).toISOString(),
      },
      { sameAggregate: true },
    );
  };

  const poll = async (e: Event, state: Active) => {
    const clusterId = e.aggregate.id;
    const d = e.data as { slot: number; commandId: string };
    const n = state.nodes[d.slot];
    const s = n?.step;
    if (!n || !s || s.status !== "sent" || s.commandId !== d.commandId) return;
    const region = state.plan.region;
    const result = (data: object) =>
      record(
        e,
        "install.record-step-result",
        { slot: n.slot, step: s.name, attempt: s.attempt, commandId: s.commandId, ...data },
        { sameAggregate: true },
      );
    const toDeadline = s.deadline !== undefined ? Date.parse(s.deadline) - now().getTime() : Infinity;
    const late = toDeadline <= 0;
    const sent = since(s.sentAt ?? e.time);
    const first = firstPoll[s.name] ?? 0;
    // Back at the deadline at the latest, to cancel a step that hangs.
    const wait = (why: string) =>
      new RetryLaterError(Math.max(1, Math.min(toDeadline, waitDelay(sent, first, pollMs, maxPollMs))), why);
    // Too early to have ended: not worth a call to SSM.
    if (!late && sent < first) throw wait(`${s.name} on ${n.node} cannot have ended yet`);
    const inv = await o.remote.invocation(region, d.commandId, n.instanceId);
    if (!inv || RUNNING_STATUSES.has(inv.status)) {
      if (!late) throw wait(`${s.name} on ${n.node} is ${inv?.status ?? "not known to SSM yet"}`);
      // Past the deadline: cancel the old command before any new attempt is sent.
      if (inv) await o.remote.cancel(region, d.commandId, n.instanceId);
      log?.warn(
        { cluster: clusterId, node: n.node, step: s.name, attempt: s.attempt, commandId: d.commandId },
        `step ${s.name} passed its deadline; cancelled`,
      );
      return result({
        status: inv ? "TimedOut" : "Lost",
        outputTail: inv ? outputTail(inv.stdout, inv.stderr) : "",
        reason: inv
          ? `${s.name} was still ${inv.status} at its deadline (${s.deadline}); the command was cancelled`
          : `SSM never knew command ${d.commandId}`,
        durationMs: Math.max(0, now().getTime() - Date.parse(s.sentAt ?? e.time)),
      });
    }
    const started = inv.startedAt ? Date.parse(inv.startedAt) : Date.parse(s.sentAt ?? e.time);
    const ended = inv.endedAt ? Date.parse(inv.endedAt) : now().getTime();
    const durationMs = Math.max(0, Math.round(ended - started));
    const status = inv.status === "Success" ? "Success" : normaliseStatus(inv.status);
    log?.info(
      { cluster: clusterId, node: n.node, step: s.name, attempt: s.attempt, status, durationMs },
      // Step X/Y as the install stands: this one is the next after those done.
      `step ${state.stepsDone + 1}/${Math.max(1, Object.values(state.nodes).filter((x) => !x.failed).length)} ${s.name} ${status === "Success" ? "done" : status} in ${durationMs} ms`,
    );
    return result({
      status,
      durationMs,
      outputTail: outputTail(inv.stdout, inv.stderr),
      ...(status !== "Success" ? { reason: `${s.name} ended ${inv.status}` } : {}),
    });
  };

  const consumer = (
    durable: string,
    aggregate: string,
    concurrency: number,
    handle: (e: Event) => Promise<unknown>,
  ) =>
    startConsumer({
      js: o.nats.js,
      jsm: o.nats.jsm,
      stream: Streams.events,
      durable,
      filterSubject: eventFilter(aggregate),
      concurrency,
      ...(o.logger ? { logger: o.logger } : {}),
      handle: async (msg) => {
        const commit = catalogue.parseCommit(msg.json());
        // A commit's events concern different nodes and every step is idempotent, so
        // they run together; if one must wait, the commit comes back and the others
        // find their work done.
        const results = await Promise.allSettled(
          commit.events.map((ev) => handle({ ...ev, sequence: msg.seq, deliveries: msg.info.deliveryCount })),
        );
        const failures = results.filter((r): r is PromiseRejectedResult => r.status === "rejected");
        if (failures.length === 0) return;
        // Real failures first: a wait must not hide one from the retry count.
        const real = failures.find((f) => !(f.reason instanceof RetryLaterError));
        if (real) throw real.reason;
        const delays = failures.map((f) => (f.reason as RetryLaterError).delayMs);
        throw new RetryLaterError(
          Math.min(...delays),
          (failures[0]?.reason as Error | undefined)?.message ?? "waiting",
        );
      },
    });

  const running: RunningConsumer[] = [];
  running.push(await consumer("installer-cluster", "cluster", 32, onCluster));
  running.push(await consumer("installer-kube", "kube", 32, onKube));
  // Each wait is its own message, so this one needs room for many in hand at once.
  running.push(await consumer("installer-reactor", "install", 64, onInstall));
  return {
    stop: async () => {
      for (const r of running.reverse()) await r.stop();
    },
  };
}

/** The install's plan from a cluster spec. No AMI named: the pre-built Cairn AMI (K3s inside). */
export function planOf(spec: ClusterSpec) {
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

function normaliseStatus(s: string): "Failed" | "TimedOut" | "Cancelled" | "Undeliverable" {
  if (s === "TimedOut" || s === "Cancelled" || s === "Undeliverable") return s;
  if (s === "DeliveryTimedOut" || s === "ExecutionTimedOut") return "TimedOut";
  return "Failed";
}
