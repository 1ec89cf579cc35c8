/**
 * The session workload process manager: each attempt the decider opens is carried out on
 * the cluster's Kubernetes API through the `SessionWorkloads` port and its outcome
 * recorded as an internal command naming the attempt (so a superseded attempt's late
 * record changes nothing, and a redelivered event decides nothing twice):
 *
 *  - `workload.starting` → a first start (attempt 1): the claim and Deployment created or
 *    adopted (two calls; the namespace once per cluster and process); a later one: the
 *    Deployment scaled to one replica if it is there (a wake: one call before the pod is on
 *    its way), else the namespace, claim and Deployment created or adopted → `record-started`;
 *  - `workload.started`  → look at the pods (one list; the Deployment read only while no
 *    live pod is there) until one is Ready → `record-running { node, pod }`;
 *    Unschedulable past `unschedulableGraceMs`, an image that cannot be pulled, or no
 *    Ready pod within `startTimeoutMs` → `record-failure` with the reason and a remedy;
 *  - `workload.stopping` → scale to zero, look until no pod is left → `record-stopped`;
 *  - `workload.deleting` → delete the Deployment (and the claim), look until gone → `record-deleted`
 *    (also with nothing there, and when the cluster itself is gone).
 *
 * Nothing blocks: work not done yet is `RetryLaterError` with a proportional poll, so
 * JetStream is the timer and a killed process's look comes back within seconds. While it
 * waits, the look leaves a waiter on the cluster's session pod watch
 * (session-pod-watch.ts): the change that ends the wait (the pod Ready, the last pod
 * gone) makes it look again at once, so the outcome is recorded within milliseconds of
 * it rather than at the next poll. The poll stays the net: a waiter lost with its process,
 * or a watch that cannot be opened, costs a poll's delay, never an outcome.
 */
import {
  type CommandDataInput,
  type CommandHandler,
  type CommandType,
  commandCausedBy,
  isPermanent,
  type Nats,
  PermanentError,
  proportionalPollDelay,
  type ReactingEvent,
  RetryLaterError,
  type RunnerLogger,
  type RunningConsumer,
  remediationOf,
  startReactor,
  type WorkloadCommand,
  type WorkloadEvent,
} from "@cairn/events";
import { isPermanentFailure } from "../ports.ts";
import type { SessionPodWatch } from "./session-pod-watch.ts";
import type { SessionPod, SessionWorkloads } from "./session-port.ts";
import type { WorkloadState } from "./workload.decider.ts";

export interface SessionReactorOptions {
  nats: Nats;
  handler: CommandHandler<WorkloadCommand, WorkloadEvent, WorkloadState>;
  workloads: SessionWorkloads;
  logger?: RunnerLogger;
  /** Polls of work under way: not before `firstMs`, then 5 % of the time waited within [minMs, maxMs]. */
  poll?: { firstMs?: number; minMs?: number; maxMs?: number };
  /** A pod Unschedulable this long after its start is a failure (default 30 s: room may free up). */
  unschedulableGraceMs?: number;
  /** No Ready pod this long after its start is a failure (default 10 min). */
  startTimeoutMs?: number;
  /** Where a look that must wait leaves a waiter (absent: the polls alone). */
  podWatch?: SessionPodWatch;
}

/** A waiter outlives the poll it stands beside by this much, so the redelivery finds it (and replaces it). */
const WAITER_SLACK_MS = 30_000;

/** What a wait for a start ends on: a Ready pod, or one whose image cannot be pulled (a failure to record). */
const startSettled = (pods: readonly SessionPod[]) =>
  pods.some((p) => p.state === "ready" || p.state === "image");
/** What a wait for a stop ends on: no pod left. */
const stopSettled = (pods: readonly SessionPod[]) => pods.length === 0;

type Event = ReactingEvent<"workload">;

/** Permanent failures of the cluster's API (refused, no kubeconfig, no such cluster). */
const clusterFailure = (err: unknown) => isPermanent(err) || isPermanentFailure(err);

export async function startSessionWorkloadReactor(o: SessionReactorOptions): Promise<RunningConsumer> {
  const w = o.workloads;
  const pollOpts = {
    firstMs: o.poll?.firstMs ?? 1_000,
    minMs: o.poll?.minMs ?? 500,
    maxMs: o.poll?.maxMs ?? 10_000,
  };
  const grace = o.unschedulableGraceMs ?? 30_000;
  const startTimeout = o.startTimeoutMs ?? 600_000;
  const later = (e: Event, why: string) =>
    new RetryLaterError(proportionalPollDelay(Date.now() - Date.parse(e.time), pollOpts), why);

  const record = <T extends CommandType>(e: Event, type: T, data: CommandDataInput<T>) =>
    o.handler.handle(commandCausedBy(e, type, data, { actor: "node-ops" }), {
      atLeastSequence: e.sequence,
    });

  /** The attempt in force, if it is still in `phase` (else the event was superseded: nothing to do). */
  const current = async (e: Event, ...phases: WorkloadState["phase"][]) => {
    const { state } = await o.handler.read(e.aggregate, { atLeastSequence: e.sequence });
    return phases.includes(state.phase) ? state : undefined;
  };

  const fail = (
    e: Event,
    s: WorkloadState,
    operation: "start" | "stop" | "delete",
    kind: "no-capacity" | "image" | "cluster" | "other",
    reason: string,
    remediation?: string,
  ) => {
    o.logger?.warn(
      { session: e.aggregate.id, cluster: s.clusterId, operation, kind, reason },
      "session workload failed",
    );
    const clusterId = s.clusterId;
    // Every attempt names its cluster (the decider records it): without one there is nothing to say.
    if (!clusterId) throw new PermanentError(`workload ${e.aggregate.id} has no cluster`);
    return record(e, "workload.record-failure", {
      sessionId: e.aggregate.id,
      clusterId,
      attempt: s.attempt,
      operation,
      kind,
      reason,
      ...(remediation ? { remediation } : {}),
    });
  };

  const start = async (e: Event) => {
    const s = await current(e, "Starting");
    if (!s?.template || !s.user || !s.clusterId) return;
    try {
      // Attempt 1 is the workload's first start (every attempt is numbered, and none came
      // before it): nothing is there yet but what an earlier delivery of it made.
      await w.ensure(
        { clusterId: s.clusterId, sessionId: e.aggregate.id, user: s.user, template: s.template },
        { first: s.attempt === 1 },
      );
    } catch (err) {
      if (!clusterFailure(err)) throw err;
      await fail(
        e,
        s,
        "start",
        isInvalid(err) ? "other" : "cluster",
        (err as Error).message,
        remediationOf(err),
      );
      return;
    }
    const n = w.names(e.aggregate.id);
    await record(e, "workload.record-started", {
      sessionId: e.aggregate.id,
      clusterId: s.clusterId,
      attempt: s.attempt,
      deployment: n.deployment,
      volumeClaim: n.volumeClaim,
    });
  };

  /**
   * Leaves a waiter on the cluster's session pods (when there is a pod watch), then
   * hands the event back for the poll: the waiter's `act` is the same look, run at once
   * when the watch sees the awaited change.
   */
  const waitOn = (
    e: Event,
    clusterId: string,
    settled: (pods: readonly SessionPod[]) => boolean,
    look: (e: Event) => Promise<"done" | "waiting">,
    why: string,
  ): never => {
    const retry = later(e, why);
    o.podWatch?.wait(
      clusterId,
      e.id,
      {
        session: w.names(e.aggregate.id).label,
        reached: settled,
        act: async () => (await look(e)) === "done",
      },
      retry.delayMs + WAITER_SLACK_MS,
    );
    throw retry;
  };

  /** One look at a start under way; records its outcome when there is one. */
  const lookAtStart = async (e: Event): Promise<"done" | "waiting"> => {
    const s = await current(e, "Started");
    if (!s?.clusterId || !s.template) return "done";
    const key = { sessionId: e.aggregate.id, clusterId: s.clusterId, attempt: s.attempt };
    // The pods first (one call): a Ready one, or one that says why it cannot be, decides
    // without the Deployment; the Deployment is read only while no live pod is there.
    let pods: readonly SessionPod[];
    try {
      pods = await w.pods(s.clusterId, e.aggregate.id);
    } catch (err) {
      if (!clusterFailure(err)) throw err;
      await fail(e, s, "start", "cluster", (err as Error).message, remediationOf(err));
      return "done";
    }
    const elapsed = Date.now() - Date.parse(e.time);
    const live = pods.filter((p) => p.state !== "terminating");
    const ready = live.find((p) => p.state === "ready");
    if (ready?.state === "ready") {
      await record(e, "workload.record-running", { ...key, node: ready.node, pod: ready.name });
      return "done";
    }
    const image = live.find((p) => p.state === "image");
    if (image?.state === "image") {
      await fail(
        e,
        s,
        "start",
        "image",
        `the image ${s.template.image} cannot be pulled (${image.reason}): ${image.message}`,
        "check the image name and tag in the session template, and that the cluster may pull from its registry",
      );
      return "done";
    }
    const unschedulable = live.find((p) => p.state === "unschedulable");
    if (unschedulable?.state === "unschedulable" && elapsed >= grace) {
      await fail(
        e,
        s,
        "start",
        "no-capacity",
        `no node of cluster ${s.clusterId} has room for the session (${s.template.cpu} CPU, ${s.template.memory} memory): ${unschedulable.message}`,
        `add nodes (or larger ones) to cluster ${s.clusterId}, end other sessions there, or ask for less CPU or memory`,
      );
      return "done";
    }
    if (elapsed >= startTimeout) {
      await fail(
        e,
        s,
        "start",
        "other",
        `the session's pod was not Ready within ${Math.round(startTimeout / 1000)} s`,
        `look at the pod in namespace cairn-sessions of cluster ${s.clusterId} (kubectl describe pod)`,
      );
      return "done";
    }
    // The Deployment gone under us (deleted by hand: its pods go with it, so only when no
    // live pod is left): put it back, as a start would.
    let there: boolean;
    try {
      there = live.length > 0 || (await w.hasDeployment(s.clusterId, e.aggregate.id));
    } catch (err) {
      if (!clusterFailure(err)) throw err;
      await fail(e, s, "start", "cluster", (err as Error).message, remediationOf(err));
      return "done";
    }
    if (!there)
      await w.ensure({
        clusterId: s.clusterId,
        sessionId: e.aggregate.id,
        user: s.user!,
        template: s.template,
      });
    return "waiting";
  };

  const awaitReady = async (e: Event) => {
    if ((await lookAtStart(e)) === "done") return;
    const { state } = await o.handler.read(e.aggregate, { atLeastSequence: e.sequence });
    waitOn(
      e,
      state.clusterId!,
      startSettled,
      lookAtStart,
      `session ${e.aggregate.id}: its pod is not Ready yet`,
    );
  };

  /** One look at a stop under way: no pod left → recorded. */
  const lookAtStop = async (e: Event): Promise<"done" | "waiting"> => {
    const s = await current(e, "Stopping");
    if (!s?.clusterId) return "done";
    const key = { sessionId: e.aggregate.id, clusterId: s.clusterId, attempt: s.attempt };
    try {
      const look = await w.look(s.clusterId, e.aggregate.id);
      if (look.pods.length > 0) return "waiting";
    } catch (err) {
      if (!clusterFailure(err)) throw err;
      await fail(e, s, "stop", "cluster", (err as Error).message, remediationOf(err));
      return "done";
    }
    await record(e, "workload.record-stopped", key);
    return "done";
  };

  const stop = async (e: Event) => {
    const s = await current(e, "Stopping");
    if (!s?.clusterId) return;
    try {
      // Idempotent: a redelivery scales to zero again (someone may have scaled it up by hand).
      await w.scale(s.clusterId, e.aggregate.id, 0);
    } catch (err) {
      if (!clusterFailure(err)) throw err;
      await fail(e, s, "stop", "cluster", (err as Error).message, remediationOf(err));
      return;
    }
    if ((await lookAtStop(e)) === "done") return;
    waitOn(e, s.clusterId, stopSettled, lookAtStop, `session ${e.aggregate.id}: its pod is still there`);
  };

  const remove = async (e: Event) => {
    const s = await current(e, "Deleting");
    if (!s?.clusterId) return;
    const releaseVolume = s.releaseVolume === true;
    const key = { sessionId: e.aggregate.id, clusterId: s.clusterId, attempt: s.attempt };
    try {
      await w.remove(s.clusterId, e.aggregate.id, releaseVolume);
      const look = await w.look(s.clusterId, e.aggregate.id);
      const left = look.deployment || look.pods.length > 0 || (releaseVolume && look.volumeClaim);
      if (left) throw later(e, `session ${e.aggregate.id}: its objects are still going`);
    } catch (err) {
      if (!clusterFailure(err)) throw err;
      // The cluster is gone (or refuses us for good): what was in it is gone with it, or
      // will be; a session must not stay Terminating for it.
      o.logger?.warn(
        { session: e.aggregate.id, cluster: s.clusterId, reason: (err as Error).message },
        "session workload: the cluster cannot be reached for good; recorded deleted",
      );
    }
    await record(e, "workload.record-deleted", { ...key, volumeReleased: releaseVolume });
  };

  return await startReactor({
    nats: o.nats,
    name: "node-ops-session-workloads",
    aggregate: "workload",
    types: ["workload.starting", "workload.started", "workload.stopping", "workload.deleting"],
    ...(o.logger ? { logger: o.logger } : {}),
    react: async (e) => {
      switch (e.type) {
        case "workload.starting":
          return await start(e);
        case "workload.started":
          return await awaitReady(e);
        case "workload.stopping":
          return await stop(e);
        case "workload.deleting":
          return await remove(e);
        default:
          return;
      }
    },
  });
}

const isInvalid = (err: unknown) => (err as { name?: string })?.name === "SessionObjectInvalid";
