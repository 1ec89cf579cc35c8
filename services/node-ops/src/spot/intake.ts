/**
 * Spot interruption intake. On AWS the two-minute warning ("EC2 Spot Instance
 * Interruption Warning") reaches Cairn through an EventBridge rule into an SQS queue
 * (default `cairn-spot-interruptions`) in each region. One loop per region with live
 * clusters long-polls that queue (the `NoticeQueue` port; adapters/sqs.ts) and, per message:
 *  1. reads the EventBridge event (zod); anything else is deleted with a warning;
 *  2. finds the node: the instance's cluster from the log (`cluster.instance-running`),
 *     the node named after the instance; an instance of no live Cairn cluster is
 *     deleted with a note;
 *  3. records `node.record-interruption` (command id derived from the event id, so a
 *     message received twice records once), which drains the node at once;
 *  4. deletes the message, only after the record: a crash between the two leaves the
 *     message to come back after its visibility timeout, and recording it again changes
 *     nothing.
 * Failures are classified as everywhere in Cairn (`settlementOf`): a message whose
 * record failed for good (permanent: it never can be) is logged with the reason and
 * deleted; a transient failure leaves it to come back after its visibility timeout and
 * backs the region's poll off (full jitter). A receive that fails for good (a missing
 * queue, no permission) is looked at again at the backoff's cap, not hammered.
 * Only the holder of the `node-ops.spot-intake` lease polls, so a notice is taken once.
 * The cluster directory is built once (at the first election) and kept up to date while
 * the process lives, so a lease that comes back does not read the log again.
 */

import { hostname } from "node:os";
import {
  catalogue,
  combineSettlements,
  derivedId,
  describeError,
  fullJitterBackoff,
  isPermanent,
  type Nats,
  newId,
  PermanentError,
  type RunnerLogger,
  type Settlement,
  settlementOf,
} from "@cairn/events";
import { acquireLeadership, type LeaderLease, type Resilience } from "@cairn/service";
import { z } from "zod";
import { createSqsNoticeQueue, type SqsNoticeQueueOptions } from "../adapters/sqs.ts";
import { SqsQueueMissing } from "../adapters/sqs-errors.ts";
import type { NodeopHandler } from "../nodeop/cluster-nodes-probe.ts";
import type { NoticeQueue, QueuedNotice, Workloads } from "../ports.ts";
import { type PlacementLoop, startPlacementLoop } from "../workload/placement-reactor.ts";
import { type ClusterDirectory, startClusterDirectory } from "./cluster-directory.ts";

export const SPOT_INTAKE_LEASE = "node-ops.spot-intake";
export const DEFAULT_INTERRUPTION_QUEUE = "cairn-spot-interruptions";
/** AWS gives a spot instance two minutes between the warning and the reclaim. */
export const SPOT_NOTICE_SECONDS = 120;

export interface SpotIntakeOptions {
  nats: Nats;
  handler: NodeopHandler;
  logger?: RunnerLogger;
  /** SQS client settings (endpoint, credentials); absent: as the SDK reads the environment (`AWS_ENDPOINT_URL_SQS`, …). */
  sqs?: SqsNoticeQueueOptions["sqs"];
  /** The queue; default: SQS (adapters/sqs.ts) with the options here. */
  queue?: NoticeQueue;
  /** Breakers and bulkheads of the default queue, shared with the process's other adapters. */
  resilience?: Resilience;
  /** The queue's name in every region (default `cairn-spot-interruptions`). */
  queueName?: string;
  /** Long-poll length (default 20 s, SQS's maximum). */
  waitTimeSeconds?: number;
  /** How long a received message stays hidden before it comes back if not deleted (default 30 s). */
  visibilityTimeoutSeconds?: number;
  leaseTtlMs?: number;
  /** Spot/on-demand placement of opted-in Deployments, run under the same lease; absent: off. */
  placement?: { workloads?: Workloads; intervalMs?: number; cooldownMs?: number };
}

export interface SpotIntake {
  /** The regions this process polls now (none unless it holds the lease). */
  regions(): string[];
  /** One placement pass now (when placement is on and this process leads). */
  reconcilePlacement(): Promise<void>;
  stop(): Promise<void>;
}

/** Between failed polls of a region: full jitter from 500 ms, up to 30 s. */
const POLL_BACKOFF = { baseMs: 500, capMs: 30_000 };

/** The EventBridge event, as much of it as Cairn reads. */
const interruptionWarning = z.object({
  id: z.string().min(1).max(128),
  "detail-type": z.literal("EC2 Spot Instance Interruption Warning"),
  time: z.string().datetime(),
  region: z.string().min(1),
  detail: z.object({ "instance-id": z.string().min(1), "instance-action": z.string() }),
});

export async function startSpotIntake(o: SpotIntakeOptions): Promise<SpotIntake> {
  const queue =
    o.queue ??
    createSqsNoticeQueue({
      queueName: o.queueName ?? DEFAULT_INTERRUPTION_QUEUE,
      ...(o.sqs ? { sqs: o.sqs } : {}),
      ...(o.resilience ? { resilience: o.resilience } : {}),
      ...(o.logger ? { logger: o.logger } : {}),
      ...(o.waitTimeSeconds !== undefined ? { waitTimeSeconds: o.waitTimeSeconds } : {}),
      ...(o.visibilityTimeoutSeconds !== undefined
        ? { visibilityTimeoutSeconds: o.visibilityTimeoutSeconds }
        : {}),
    });
  const queueName = queue.name;
  // Capped exponential backoff with full jitter between failed polls (a permanent failure waits the cap).
  const backoff = fullJitterBackoff(POLL_BACKOFF.baseMs, POLL_BACKOFF.capMs);
  /** Built at the first election, kept (and followed) until stop: a new lease reads nothing again. */
  let directory: Promise<ClusterDirectory> | undefined;
  /** The regions' loops of the lease in hand, told when the set of regions changes. */
  let current: ((regions: string[]) => void) | undefined;
  /** Between election and deposition (a start still reading the log checks it before it polls). */
  let leading = false;
  let active:
    | {
        directory: ClusterDirectory;
        abort: AbortController;
        loops: Map<string, Promise<void>>;
        placement?: PlacementLoop;
      }
    | undefined;

  const sleep = (ms: number, signal: AbortSignal) =>
    new Promise<void>((resolve) => {
      const t = setTimeout(resolve, ms);
      signal.addEventListener("abort", () => {
        clearTimeout(t);
        resolve();
      });
    });

  /** One message: record the interruption, then delete it (see the steps above). */
  const take = async (region: string, m: QueuedNotice, directory: ClusterDirectory, signal: AbortSignal) => {
    const remove = () => queue.delete(region, m, signal);
    let event: z.infer<typeof interruptionWarning>;
    try {
      event = interruptionWarning.parse(JSON.parse(m.body));
    } catch {
      o.logger?.warn(
        { region, queue: queueName, messageId: m.messageId },
        "not a spot interruption warning: deleted",
      );
      await remove();
      return;
    }
    const instanceId = event.detail["instance-id"];
    const owner = directory.clusterOf(instanceId);
    if (!owner) {
      o.logger?.info(
        { region, instanceId },
        "spot interruption of an instance of no live Cairn cluster: deleted",
      );
      await remove();
      return;
    }
    const noticeTime = new Date(Date.parse(event.time)).toISOString();
    const terminationTime = new Date(Date.parse(event.time) + SPOT_NOTICE_SECONDS * 1000).toISOString();
    const parsed = catalogue.parseCommand({
      id: derivedId(event.id, "node.record-interruption"),
      type: "node.record-interruption",
      data: {
        clusterId: owner.clusterId,
        node: instanceId,
        instanceId,
        region: event.region,
        noticeId: event.id,
        noticeTime,
        terminationTime,
      },
      // The notice comes from outside (SQS, no trace): what it starts links to the cluster's lifecycle.
      meta: { actor: "node-ops", ...(owner.traceparent ? { links: [owner.traceparent] } : {}) },
    });
    if (!parsed.ok)
      throw new PermanentError(`unusable spot interruption warning: ${parsed.error.message}`, {
        remediation: "check the EventBridge rule that feeds the queue",
      });
    await o.handler.handle(parsed.value);
    o.logger?.info(
      { cluster: owner.clusterId, node: instanceId, terminationTime },
      "spot interruption noticed",
    );
    await remove();
  };

  /**
   * Takes one message and settles it by the shared rule: done (deleted by `take`),
   * permanent (it can never be recorded: logged and deleted), transient (left to come
   * back after its visibility timeout).
   */
  const settle = async (
    region: string,
    m: QueuedNotice,
    directory: ClusterDirectory,
    signal: AbortSignal,
  ): Promise<Settlement> => {
    const outcome = await take(region, m, directory, signal).then(
      () => settlementOf(),
      (err: unknown) => settlementOf(err),
    );
    if (outcome.kind === "permanent") {
      o.logger?.error(
        { region, queue: queueName, messageId: m.messageId, err: describeError(outcome.error) },
        "spot interruption message cannot be recorded: deleted",
      );
      await queue.delete(region, m, signal).catch(() => {});
    }
    return outcome;
  };

  /** Long-polls one region's queue while the region has live clusters and we lead. */
  const poll = async (region: string, directory: ClusterDirectory, signal: AbortSignal) => {
    let failures = 0;
    const pause = async (err: unknown, what: string) => {
      // Retrying soon cannot cure a permanent failure (a missing queue): the cap at once.
      const delay = isPermanent(err) ? POLL_BACKOFF.capMs : backoff(++failures);
      const missing = err instanceof SqsQueueMissing;
      o.logger?.warn(
        { region, queue: queueName, err: describeError(err), retryInMs: Math.round(delay) },
        missing
          ? "the spot interruption queue does not exist (create it, with the EventBridge rule that feeds it)"
          : what,
      );
      await sleep(delay, signal);
    };
    while (!signal.aborted && directory.regions().includes(region)) {
      let messages: readonly QueuedNotice[];
      try {
        messages = await queue.receive(region, signal);
      } catch (err) {
        if (signal.aborted) return;
        await pause(err, "spot interruption intake failed");
        continue;
      }
      // The messages are of different nodes: taken side by side, settled by one rule.
      const outcome = combineSettlements(
        await Promise.all(messages.map((m) => settle(region, m, directory, signal))),
      );
      if (signal.aborted) return;
      if (outcome.kind === "transient")
        await pause(outcome.error, "a spot interruption could not be recorded");
      else failures = 0;
    }
  };

  const start = async () => {
    if (active) return;
    const abort = new AbortController();
    const loops = new Map<string, Promise<void>>();
    directory ??= startClusterDirectory({
      nats: o.nats,
      ...(o.logger ? { logger: o.logger } : {}),
      // Polling waits for the history: an instance it names must be known by then.
      onRegions: (r) => void current?.(r),
    }).catch((err: unknown) => {
      directory = undefined; // read again at the next election
      throw err;
    });
    const dir: ClusterDirectory = await directory;
    if (!leading || active) return; // deposed (or started twice) while reading the log
    const ensureLoops = (regions: string[]) => {
      if (abort.signal.aborted) return;
      for (const r of regions) {
        if (loops.has(r)) continue;
        const p = poll(r, dir, abort.signal).finally(() => loops.delete(r));
        loops.set(r, p);
      }
    };
    current = (r) => void dir.caughtUp.then(() => ensureLoops(r));
    const workloads = o.placement?.workloads;
    const placement = workloads
      ? startPlacementLoop({
          workloads,
          clusters: () => dir.clusters(),
          ...(o.logger ? { logger: o.logger } : {}),
          ...(o.placement?.intervalMs !== undefined ? { intervalMs: o.placement.intervalMs } : {}),
          ...(o.placement?.cooldownMs !== undefined ? { cooldownMs: o.placement.cooldownMs } : {}),
        })
      : undefined;
    active = { directory: dir, abort, loops, ...(placement ? { placement } : {}) };
    await dir.caughtUp;
    ensureLoops(dir.regions());
  };
  const end = async () => {
    leading = false;
    const a = active;
    active = undefined;
    current = undefined;
    if (!a) return;
    a.abort.abort();
    await a.placement?.stop();
    await Promise.allSettled([...a.loops.values()]);
  };

  const lease: LeaderLease = await acquireLeadership({
    nc: o.nats.nc,
    name: SPOT_INTAKE_LEASE,
    holder: `${hostname()}-${process.pid}-${newId()}`,
    ...(o.leaseTtlMs !== undefined ? { ttlMs: o.leaseTtlMs } : {}),
    onElected: () => {
      leading = true;
      return start().catch((err) => o.logger?.error({ err: String(err) }, "spot intake could not start"));
    },
    onDeposed: end,
  });

  return {
    regions: () => (active ? [...active.loops.keys()].sort() : []),
    reconcilePlacement: async () => {
      await active?.placement?.reconcile();
    },
    stop: async () => {
      await lease.release();
      await end();
      const d = directory;
      directory = undefined;
      await (await d?.catch(() => undefined))?.stop();
      queue.close();
    },
  };
}
