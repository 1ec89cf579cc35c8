/**
 * The cluster's process manager: on each of the provisioner's own cluster events it
 * calls EC2 through the `Compute` port, then records what happened as an internal
 * command decided by the same aggregate. Every step is idempotent and checks the
 * aggregate first, returning early when the work is already done:
 *  - a launch is one RunInstances for a batch of consecutive slots, keyed by
 *    `launchBatchToken(cluster, first slot, attempt, count)` (a batch of one: the slot's
 *    `launchToken`), so a crash between RunInstances and its record, a redelivery or the
 *    other replica never makes a second instance: EC2 answers the same ones, and each
 *    slot's is the one at its AmiLaunchIndex;
 *  - the command it sends is named after the event that caused it (`derivedId`), so a
 *    redelivered event records nothing twice;
 *  - waiting (an instance booting, terminating) never blocks: the event is handed back
 *    to JetStream with a delay (`RetryLaterError`) and looked at again then.
 */

import { createHash } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import {
  CLUSTER_REMEDIATIONS,
  type ClusterCommand,
  type ClusterEvent,
  type CommandDataInput,
  type CommandType,
  commandCausedBy,
  GroupCommit,
  isCairnError,
  type Nats,
  proportionalPollDelay,
  type ReactingEvent,
  RetryLaterError,
  type RunnerLogger,
  type RunningConsumer,
  remediationOf,
  startReactor,
} from "@cairn/events";
import {
  architectureOf,
  type ClusterSessions,
  type Compute,
  type ImageInfo,
  type InstanceInfo,
  type InstanceState,
  isCapacityFailure,
  isComputeFailure,
  type LaunchBatchRequest,
  LIVE_STATES,
  launchBatchToken,
} from "../ports.ts";
import type { ClusterHandler } from "../provisioner.ts";
import { type ClusterState, describeSessions, type Slot } from "./decider.ts";
import { drainFirst } from "./drain-first.ts";
import { batchOf } from "./launch-batches.ts";

/** The image when a spec names none: the region's pre-built Cairn AMI. */
export const DEFAULT_CAIRN_AMI = "ami-0ca1a00000000c0de";

/**
 * What is wrong with launching `instanceTypes` from this image in the region, with the
 * fix; undefined when nothing is. Pure.
 */
export function validationProblem(
  region: string,
  imageId: string,
  image: ImageInfo | undefined,
  instanceTypes: readonly string[],
): { reason: string; remediation: string } | undefined {
  if (!image)
    return {
      reason: `the AMI ${imageId} does not exist in ${region}`,
      remediation: `build or copy the Cairn AMI into ${region}, or set \`ami\` in the spec to an image that exists there`,
    };
  if (image.state !== "available")
    return {
      reason: `the AMI ${imageId} is ${image.state} in ${region}, not available`,
      remediation: "wait until the image is available, or use another one",
    };
  const misfits = [...new Set(instanceTypes)].filter((t) => architectureOf(t) !== image.architecture);
  if (misfits.length > 0)
    return {
      reason: `the AMI ${imageId} is ${image.architecture}, but ${misfits.join(", ")} ${misfits.length > 1 ? "are" : "is"} ${architectureOf(misfits[0] ?? "")}`,
      remediation: `use ${image.architecture} instance types, or an AMI built for ${architectureOf(misfits[0] ?? "")}`,
    };
  return undefined;
}

export interface ClusterReactorOptions {
  nats: Nats;
  handler: ClusterHandler;
  compute: Compute;
  /** The sessions on a cluster: a delete waits for them to end before it terminates instances. */
  sessions: ClusterSessions;
  /** How long a delete waits for its sessions to end (ms); default {@link SESSIONS_END_TIMEOUT_MS}. */
  sessionsEndTimeoutMs?: number;
  logger?: RunnerLogger;
  /** How soon to look again at work that is not done yet (a drain, a termination); doubles up to `maxPollMs`. */
  pollMs?: number;
  maxPollMs?: number;
  /**
   * The first look at a launched instance: none can be running sooner, so a look then
   * is wasted. After it, every 5% of the time waited (between `pollMs` and
   * `maxPollMs`: `proportionalPollDelay`), so a boot is seen at most ~5% late. Default 0
   * (look at once, as tests on a sim without latencies want); on AWS `main.ts` gives
   * {@link FIRST_BOOT_POLL_MS}.
   */
  firstBootPollMs?: number;
  defaultAmi?: string;
}

/** EC2 instances seldom leave `pending` in under 10 s (typically 10–30 s). */
export const FIRST_BOOT_POLL_MS = 10_000;

/**
 * How long a cluster's delete waits for its sessions to end (their workloads deleted
 * through the cluster's Kubernetes API, which needs the nodes) before it terminates the
 * instances anyway: a session stuck Terminating must not keep a cluster forever. Ending
 * a session takes its pod's termination grace (30 s by default) and a volume's release;
 * five minutes covers slow ones with room.
 */
export const SESSIONS_END_TIMEOUT_MS = 5 * 60_000;

/** The cluster events the reactor acts on; the others are acknowledged unread. */
export const CLUSTER_EVENTS_REACTED_TO = [
  "cluster.requested",
  "cluster.retry-requested",
  "cluster.validation-started",
  "cluster.instance-launch-requested",
  "cluster.instance-launched",
  "cluster.instances-ready",
  "cluster.instance-termination-requested",
  "cluster.node-replacement-requested",
  "cluster.deletion-requested",
] as const satisfies readonly ClusterEvent["type"][];

/** The events the boot polls' own durable (`provisioner-boot`) acts on; the main one acts on the others. */
export const BOOT_EVENTS: readonly (typeof CLUSTER_EVENTS_REACTED_TO)[number][] = [
  "cluster.instance-launched",
];

type Event = ReactingEvent<"cluster">;
/** The internal commands the reactor records outcomes with. */
type ClusterCommandType = ClusterCommand["type"] & CommandType;

export async function startClusterReactor(o: ClusterReactorOptions): Promise<RunningConsumer> {
  const pollMs = o.pollMs ?? 1_000;
  const maxPollMs = o.maxPollMs ?? 15_000;
  const sessionsEndTimeoutMs = o.sessionsEndTimeoutMs ?? SESSIONS_END_TIMEOUT_MS;
  /**
   * Work still under way elsewhere (a drain, terminations), asked for by `e`: look again
   * after 5 % of the time waited so far (within [pollMs, maxPollMs]), so its end is seen
   * at most ~5 % late — however many looks a slow drain took, or a restart cost.
   */
  const later = (e: Event, why: string) =>
    new RetryLaterError(
      proportionalPollDelay(Math.max(0, Date.now() - Date.parse(e.time)), {
        firstMs: 0,
        minMs: pollMs,
        maxMs: maxPollMs,
      }),
      why,
    );
  const bootPolls = { firstMs: o.firstBootPollMs ?? 0, minMs: pollMs, maxMs: maxPollMs };
  const drains = drainFirst(o.nats);

  /**
   * What the cluster's boot polls have seen, shared by every launched slot's event (each
   * comes back on its own, and without this a cluster of n instances would ask n times
   * per look for the same answer). Per process: a replica asks on its own, which costs a
   * call, never a wrong answer.
   * - `seen`: the last look's answer, reused for `pollMs` — also for instances launched
   *   since: one launched a moment ago cannot be running, and absent reads as not running
   *   yet, so it is looked at again after `pollMs`;
   * - `look`: the look in flight: the events that come meanwhile wait for it instead of
   *   each asking again (500 events of one launch commit, handled together, all missed
   *   the cache while the first look was on its way: 1,116 DescribeInstances for one
   *   500-node cluster, each parsing hundreds of instances);
   * - `running`: instances seen running, not asked for again: until their record is
   *   appended (group commit) the log still shows them launched, and a look at a
   *   500-node cluster that had just booted parsed all 500 at every poll.
   */
  const looks = new Map<
    string,
    {
      at: number;
      used: number;
      seen: Map<string, Seen>;
      running: Map<string, Seen>;
      /** Instances handed to `runnings` already (their record is on its way). */
      queued: Set<string>;
      /**
       * Instances seen running and not handed over yet: what the next event takes, so a
       * commit's 500 events hand each instance over once between them, without each event
       * going through every launched slot (that was O(n²) per commit).
       */
      fresh: Map<string, Seen>;
      look?: Promise<void>;
    }
  >();
  /**
   * One look at booting instances: their states by DescribeInstanceStatus (`states`: an
   * id and a state each, pending ones left out), and the whole instance by
   * DescribeInstances only for the few that need more: one that went down before it ran
   * (why: its state reason) and one whose launch did not answer its private IP (recorded
   * before launches carried it). A running instance's address is its launch's.
   */
  const lookAt = async (
    region: string,
    ids: readonly string[],
    privateIpOf: (instanceId: string) => string | undefined,
  ) => {
    const states = await o.compute.states(region, ids, { states: NOT_PENDING });
    const more = states
      .filter((i) => i.state !== "running" || privateIpOf(i.instanceId) === undefined)
      .map((i) => i.instanceId);
    const details = new Map<string, Seen>();
    if (more.length > 0) for (const i of await o.compute.describe(region, more)) details.set(i.instanceId, i);
    return states.map((i): Seen => {
      const detail = details.get(i.instanceId);
      if (detail) return detail;
      const privateIp = privateIpOf(i.instanceId);
      return { ...i, ...(privateIp ? { privateIpAddress: privateIp } : {}) };
    });
  };

  /**
   * Instances this process holds a RunInstances answer for whose launch record has not
   * landed yet, per cluster (id → the address the answer gave). The boot polls look at
   * them too, from the answer on: at 500 nodes the record came 100–400 ms after the answer
   * (the SDK parsing the other answers, the group commit's append), and the instances were
   * often running by then, so the first look after the record only found out what could
   * have been known. Nothing is recorded from such a look: an instance seen running waits
   * in the cluster's `looks` until an event whose state shows its slot launched with it
   * takes it (`take`), exactly as one seen by that event's own look would. The record
   * stays the only shared fact: another replica, or this one after a restart, simply has
   * no such answer and looks after the record, as before. An entry goes when the record
   * settles (landed, refused or failed).
   */
  const unrecorded = new Map<string, Map<string, { privateIp: string | undefined; since: number }>>();
  /** Clusters whose unrecorded launches are being looked at (one poller a cluster). */
  const earlyPollers = new Set<string>();
  let stopped = false;
  const watchUnrecorded = (
    clusterId: string,
    region: string,
    instances: readonly InstanceInfo[],
    recorded: Promise<unknown>,
  ) => {
    let m = unrecorded.get(clusterId);
    if (!m) {
      m = new Map();
      unrecorded.set(clusterId, m);
    }
    const since = Date.now();
    for (const i of instances) m.set(i.instanceId, { privateIp: i.privateIpAddress, since });
    const mine = m;
    void recorded
      .catch(() => {})
      .finally(() => {
        for (const i of instances) mine.delete(i.instanceId);
        if (mine.size === 0 && unrecorded.get(clusterId) === mine) unrecorded.delete(clusterId);
      });
    if (earlyPollers.has(clusterId)) return;
    earlyPollers.add(clusterId);
    void pollUnrecorded(clusterId, region).finally(() => earlyPollers.delete(clusterId));
  };
  /**
   * Looks at a cluster's unrecorded launches at the boot polls' pace (from the oldest
   * answer: not before `firstBootPollMs`, then every 5 % of the time waited) until every
   * one is recorded or seen running. A failed look is left to the events' own looks.
   */
  const pollUnrecorded = async (clusterId: string, region: string) => {
    for (;;) {
      const before = unrecorded.get(clusterId);
      if (stopped || !before) return;
      let oldest = Number.POSITIVE_INFINITY;
      for (const u of before.values()) oldest = Math.min(oldest, u.since);
      // Unref'd: a poller never keeps the process alive (stop() ends it at its next turn).
      await sleep(proportionalPollDelay(Math.max(0, Date.now() - oldest), bootPolls), undefined, {
        ref: false,
      });
      const m = unrecorded.get(clusterId);
      if (stopped || !m) return;
      const l = looks.get(clusterId);
      if (l && [...m.keys()].every((id) => l.running.has(id))) return;
      try {
        await describeLaunched(clusterId, region, undefined);
      } catch (err) {
        o.logger?.info(
          { cluster: clusterId, err },
          "an early boot look failed; the launches' events will look",
        );
      }
    }
  };

  /**
   * One look (or the one in flight, or the last one if under `pollMs` old) at the
   * cluster's booting instances: the slots `launched` shows (an event's state), and the
   * launches this process holds an answer for and has not recorded yet (`unrecorded`).
   * Without `launched` (the early poller) nothing is forgotten: what an event's state no
   * longer shows launched is forgotten only by an event's look.
   */
  const describeLaunched = async (clusterId: string, region: string, launched: LaunchedSlots | undefined) => {
    const early = unrecorded.get(clusterId);
    const ids = launched?.ids ?? [];
    const t = Date.now();
    // Forget clusters nobody asked about for a while (at rest, deleted).
    for (const [id, l] of looks) if (t - l.used > LOOK_TTL_MS) looks.delete(id);
    let l = looks.get(clusterId);
    if (!l) {
      l = { at: 0, used: t, seen: new Map(), running: new Map(), queued: new Set(), fresh: new Map() };
      looks.set(clusterId, l);
    }
    l.used = t;
    const entry = l;
    if (entry.look) await entry.look;
    else if (t - entry.at >= pollMs) {
      // Once per look (not per event: a 500-event commit made that 250,000 steps): only
      // the slots still launched matter, and the launches not recorded yet; one recorded
      // running since is not asked about.
      const wanted = new Set(ids);
      if (early) for (const id of early.keys()) wanted.add(id);
      if (launched) {
        for (const id of entry.running.keys()) if (!wanted.has(id)) entry.running.delete(id);
        for (const id of entry.queued) if (!wanted.has(id)) entry.queued.delete(id);
        for (const id of entry.fresh.keys()) if (!wanted.has(id)) entry.fresh.delete(id);
      }
      const ask = [...wanted].filter((id) => !entry.running.has(id));
      if (ask.length > 0) {
        // Pending ones are left out of the answer (absent reads as not running yet, as an
        // instance EC2 does not show yet does): a look parses each instance about once,
        // when it has left pending, instead of every booting instance at every look.
        // Each address as known now: an unrecorded launch's entry goes when its record
        // settles, which may be while this look is on its way (its answer would then lack
        // the address, and cost a DescribeInstances of every such instance).
        const ips = new Map<string, string | undefined>();
        for (const id of ask)
          ips.set(id, launched?.byInstance.get(id)?.privateIp ?? early?.get(id)?.privateIp);
        entry.look = lookAt(region, ask, (id) => ips.get(id))
          .then((found) => {
            entry.seen = new Map(found.map((i) => [i.instanceId, i]));
            for (const i of found) {
              if (i.state !== "running") continue;
              entry.running.set(i.instanceId, i);
              if (!entry.queued.has(i.instanceId)) entry.fresh.set(i.instanceId, i);
            }
            entry.at = Date.now();
          })
          .finally(() => {
            entry.look = undefined;
          });
        await entry.look;
      }
    }
    return {
      get: (id: string) => entry.running.get(id) ?? entry.seen.get(id),
      /**
       * Hands over the instances seen running that nobody handed over yet and that `slots`
       * (this event's state) shows launched with them: each once, whichever event asks
       * first. Those the state does not show (launched in a commit after it) stay for
       * another event.
       */
      take: (slots: ReadonlyMap<string, Slot>): { slot: Slot; instance: Seen }[] => {
        const out: { slot: Slot; instance: Seen }[] = [];
        for (const [id, instance] of entry.fresh) {
          const slot = slots.get(id);
          if (!slot) continue;
          entry.fresh.delete(id);
          entry.queued.add(id);
          out.push({ slot, instance });
        }
        return out;
      },
    };
  };

  /**
   * Decides an internal command on the cluster, named after its cause (and `key` when one
   * cause records several of a type), on a state at least as fresh as the cause.
   */
  const record = async <T extends ClusterCommandType>(
    cause: Event,
    type: T,
    data: CommandDataInput<T>,
    key?: string,
  ) => {
    const command = commandCausedBy(cause, type, data, {
      actor: "provisioner",
      ...(key !== undefined ? { key } : {}),
    });
    return await o.handler.handle(command, { atLeastSequence: cause.sequence });
  };

  /**
   * Records launches in batches (see GroupCommit): one `cluster.record-launches` per
   * flush, caused by the first item's event and keyed by the slots it names (a replay
   * of the same batch is a duplicate; another batch of the same slots decides nothing).
   * An item is one RunInstances answer, every member it launched (`runBatch`), so an
   * answer is never split over two commits: added member by member, the first went out
   * alone and the other 99 waited a whole append for it. Resolves with the cluster's
   * state as the log has it just after.
   */
  const launches = new GroupCommit<{ cause: Event; launches: LaunchRecord[] }, ClusterState>(
    async (clusterId, items) => {
      const ref = { type: "cluster" as const, id: clusterId };
      const atLeastSequence = Math.max(...items.map((i) => i.cause.sequence));
      for (const list of chunks(
        items.flatMap((i) => i.launches),
        MAX_BATCH,
      )) {
        await o.handler.handle(
          commandCausedBy(
            items[0]!.cause,
            "cluster.record-launches",
            { clusterId, launches: list },
            {
              actor: "provisioner",
              key: batchKey(list.map((l) => `${l.slot}/${l.attempt}/${l.instanceId}`)),
            },
          ),
          { atLeastSequence },
        );
      }
      return (await o.handler.read(ref)).state;
    },
  );
  /**
   * Records running instances in batches: those the cached state (as fresh as every
   * cause) still shows launched, so the many events of one launch commit that saw the
   * same DescribeInstances answer append once, not once each.
   */
  const runnings = new GroupCommit<
    {
      cause: Event;
      instances: CommandDataInput<"cluster.record-running-instances">["instances"];
    },
    void
  >(async (clusterId, items) => {
    const ref = { type: "cluster" as const, id: clusterId };
    const atLeastSequence = Math.max(...items.map((i) => i.cause.sequence));
    const { state } = await o.handler.read(ref, { atLeastSequence });
    if (state.status === "Absent") return;
    const wanted = new Map<number, (typeof items)[number]["instances"][number]>();
    for (const i of items.flatMap((x) => x.instances)) {
      const s = state.slots[i.slot];
      if (s?.status === "launched" && s.instanceId === i.instanceId) wanted.set(i.slot, i);
    }
    for (const list of chunks([...wanted.values()], MAX_BATCH)) {
      await o.handler.handle(
        commandCausedBy(
          items[0]!.cause,
          "cluster.record-running-instances",
          { clusterId, instances: list },
          {
            actor: "provisioner",
            key: batchKey(list.map((l) => `${l.slot}/${l.instanceId}`)),
          },
        ),
        { atLeastSequence },
      );
    }
  });

  /**
   * One RunInstances per batch however many of its members ask at once (the events of a
   * launch commit are handled together, and each member's would otherwise make the call),
   * and its failures recorded once for the whole batch:
   * 1. the call, idempotent by the batch's token;
   * 2. refused for good (no capacity for any, a missing image…): every member's failure
   *    in one `cluster.record-launch-failures`, so their next placements are decided, and
   *    batched into calls, together (resolves undefined);
   * 3. launched in part (capacity short: EC2 launches the most it can above MinCount 1):
   *    the members at the missing positions fail as capacity failures, in one command;
   * 4. every launched member's record, in one item of the launches group commit (one
   *    commit per answer, or fewer when answers meet);
   * 5. resolves with the instances, by AmiLaunchIndex, and that record.
   * The records are decided on the cluster's state, so a member no longer launching at
   * that attempt records nothing, and a repeat (a redelivery, the other replica) records
   * nothing twice. Per process while in flight: a later ask calls again with the same
   * token and gets the same instances.
   */
  const inFlight = new Map<string, Promise<LaunchedBatch | undefined>>();
  const launchBatch = (
    cause: Event,
    batch: Omit<LaunchBatchRequest, "clientToken">,
  ): Promise<LaunchedBatch | undefined> => {
    // The token is a function of exactly these (`launchBatchToken`), hashed once per call
    // rather than once per member's event (500 SHA-256s per launch commit).
    const key = `${batch.region}/${batch.clusterId}/${batch.slot}/${batch.attempt}/${batch.count}`;
    let call = inFlight.get(key);
    if (!call) {
      const req = {
        ...batch,
        clientToken: launchBatchToken(batch.clusterId, batch.slot, batch.attempt, batch.count),
      };
      call = runBatch(cause, req).finally(() => inFlight.delete(key));
      inFlight.set(key, call);
    }
    return call;
  };
  const runBatch = async (cause: Event, req: LaunchBatchRequest): Promise<LaunchedBatch | undefined> => {
    const members = Array.from({ length: req.count }, (_, k) => ({
      slot: req.slot + k,
      attempt: req.attempt,
    }));
    const recordFailures = (
      failures: CommandDataInput<"cluster.record-launch-failures">["failures"],
    ): Promise<unknown> =>
      o.handler.handle(
        commandCausedBy(
          cause,
          "cluster.record-launch-failures",
          { clusterId: req.clusterId, failures },
          {
            actor: "provisioner",
            key: batchKey([req.clientToken, ...failures.map((f) => `${f.slot}/${f.code}`)]),
          },
        ),
        { atLeastSequence: cause.sequence },
      );
    let instances: InstanceInfo[];
    try {
      instances = await o.compute.launchBatch(req);
    } catch (err) {
      // Transient failures (and waits) go back to the runtime: retried with backoff, the
      // launch is idempotent. A permanent one is this attempt's end for every member,
      // recorded with the adapter's remediation, so the events (and a Failed cluster) name the fix.
      if (!launchFailedForGood(err)) throw err;
      const remediation = remediationOf(err);
      const code = isComputeFailure(err) ? (err.code ?? err.kind) : err.name;
      await recordFailures(
        members.map((m) => ({
          ...m,
          code,
          reason: err.message,
          ...(remediation ? { remediation } : {}),
          capacity: isCapacityFailure(err),
        })),
      );
      return undefined;
    }
    const at = new Set(instances.map((i) => i.amiLaunchIndex ?? 0));
    const missing = members.filter((m) => !at.has(m.slot - req.slot));
    if (missing.length > 0) {
      const zone = req.availabilityZone ? ` in ${req.availabilityZone}` : "";
      await recordFailures(
        missing.map((m) => ({
          ...m,
          code: "InsufficientInstanceCapacity",
          reason: `EC2 launched ${instances.length} of the ${req.count} instances asked for slots ${req.slot}–${req.slot + req.count - 1} (${req.instanceType}${zone}, ${req.capacityType}): no capacity for slot ${m.slot}`,
          remediation: CLUSTER_REMEDIATIONS["no-capacity"],
          capacity: true,
        })),
      );
    }
    // 4. Every launched member's record as one item: the answer's launches in one commit.
    const recorded = launches.add(req.clusterId, {
      cause,
      launches: instances.map((i) => ({
        slot: req.slot + (i.amiLaunchIndex ?? 0),
        attempt: req.attempt,
        instanceId: i.instanceId,
        ...(i.availabilityZone ? { availabilityZone: i.availabilityZone } : {}),
        ...(i.privateIpAddress ? { privateIp: i.privateIpAddress } : {}),
      })),
    });
    // Each member whose instance is there awaits it (a failure is theirs to retry); this
    // keeps a failure nobody awaits from being an unhandled rejection.
    recorded.catch(() => {});
    // The boot polls may look at them from now on, before the record lands (`unrecorded`).
    watchUnrecorded(req.clusterId, req.region, instances, recorded);
    return { instances, recorded };
  };

  const react = async (e: Event) => {
    const ref = e.aggregate;
    const clusterId = ref.id;
    // At least as fresh as the commit reacted to (the cache serves when it is; another
    // replica's writes are read from the log).
    const { state } = await o.handler.read(ref, { atLeastSequence: e.sequence });
    if (state.status === "Absent") return;
    const region = state.spec.region;
    const ending = state.status === "Deleting" || state.status === "Deleted";

    switch (e.type) {
      case "cluster.requested":
        return void (await record(e, "cluster.start-validation", { clusterId }));
      case "cluster.retry-requested":
        // A cluster that failed before any launch is validated again (its image may exist now).
        return void (await (state.provisioned
          ? record(e, "cluster.start-provisioning", { clusterId })
          : record(e, "cluster.start-validation", { clusterId })));

      case "cluster.validation-started": {
        if (state.status !== "Validating") return;
        const imageId = state.spec.ami ?? o.defaultAmi ?? DEFAULT_CAIRN_AMI;
        const image = await o.compute.describeImage(region, imageId);
        const types = [state.spec.servers.instanceType, ...state.spec.pools.flatMap((p) => p.instanceTypes)];
        const problem = validationProblem(region, imageId, image, types);
        await record(e, "cluster.record-validation", {
          clusterId,
          ok: problem === undefined,
          imageId,
          ...(image ? { architecture: image.architecture } : {}),
          ...problem,
        });
        return;
      }

      case "cluster.instance-launch-requested": {
        const d = e.data;
        const slot = state.slots[d.slot];
        // 1. Still wanted? (a newer attempt, a scale-down or a delete makes this stale)
        if (ending || !slot || slot.attempt !== d.attempt || slot.status !== "launching") return;
        // 2. Launch the slot's batch (one RunInstances for its consecutive slots; a batch
        //    of one for a request recorded before batches), idempotent by the batch's
        //    token. Every parameter comes from the event, never from the slot's state, so
        //    whichever member asks, and whenever, sends the very same call.
        const batch = batchOf(d);
        const launched = await launchBatch(e, {
          region,
          clusterId,
          pool: d.pool,
          slot: batch.firstSlot,
          count: batch.count,
          attempt: d.attempt,
          role: d.role,
          instanceType: d.placement.instanceType,
          ...(d.placement.availabilityZone ? { availabilityZone: d.placement.availabilityZone } : {}),
          capacityType: d.placement.capacityType,
          imageId: state.spec.ami ?? o.defaultAmi ?? DEFAULT_CAIRN_AMI,
          tags: state.spec.tags,
        });
        // 3. Refused for good: recorded for the whole batch (`launchBatch`). Launched, but
        //    nothing at this slot's position: EC2 had no capacity for it, recorded too.
        const instances = launched?.instances;
        const instance = instances?.find((i) => (i.amiLaunchIndex ?? 0) === d.slot - batch.firstSlot);
        if (!launched || !instances || !instance) return;
        // 4. Its record: the whole answer's, made once by the call (`runBatch`), in one
        //    commit with the other answers that came meanwhile (group commit).
        const after = await launched.recorded;
        // 5. Instances nobody wants: this slot's, when its launch lost its place while it
        //    ran (a newer attempt, a scale-down, a delete), and — asked by the first slot
        //    only — those of the batch's other slots that no longer want theirs (their
        //    own events return at step 1; the call launched them anyway, as its
        //    parameters are fixed). Read as the log has it just after the record.
        const unwanted = instances.filter((i) => {
          const n = batch.firstSlot + (i.amiLaunchIndex ?? 0);
          if (n !== d.slot && d.slot !== batch.firstSlot) return false;
          const now = after.status === "Absent" ? undefined : after.slots[n];
          return !now || now.attempt !== d.attempt || now.status === "terminating" || isEndingState(after);
        });
        if (unwanted.length > 0) {
          o.logger?.warn(
            { cluster: clusterId, batch, attempt: d.attempt, instances: unwanted.map((i) => i.instanceId) },
            "terminating instances whose launch was superseded",
          );
          await o.compute.terminate(
            region,
            unwanted.map((i) => i.instanceId),
          );
        }
        return;
      }

      case "cluster.instance-launched": {
        const d = e.data;
        const slot = state.slots[d.slot];
        if (ending || !slot || slot.status !== "launched" || slot.instanceId !== d.instanceId) return;
        // 1. Not before it can be running.
        const waited = Math.max(0, Date.now() - Date.parse(e.time));
        if (waited < bootPolls.firstMs)
          throw new RetryLaterError(
            proportionalPollDelay(waited, bootPolls),
            `${d.instanceId} cannot be running yet`,
          );
        // 2. One DescribeInstances for every instance of the cluster still launching:
        //    whichever slot's event comes back first records every one running, so a
        //    large cluster costs one call per look, and the other events find their slot
        //    running. The launched slots are listed once per state, not once per event.
        const launched = launchedSlots(state);
        const seen = await describeLaunched(clusterId, region, launched);
        // Each running instance queued for its record once, by the first event that saw
        // it, not by every one of the commit's 500 events; this slot's own always (a
        // record that failed is retried by its own event).
        const taken = seen.take(launched.byInstance);
        const own = seen.get(d.instanceId);
        if (own?.state === "running" && !taken.some((t) => t.slot.slot === d.slot))
          taken.push({ slot, instance: own });
        const running = taken.map(({ slot: s, instance: i }) => ({
          slot: s.slot,
          instanceId: i.instanceId,
          ...(i.privateIpAddress ? { privateIp: i.privateIpAddress } : {}),
        }));
        // Every slot seen running in one commit, with those the other slots' events saw
        // meanwhile (group commit): one append where there were as many as slots.
        if (running.length > 0) await runnings.add(clusterId, { cause: e, instances: running });
        const instance = seen.get(d.instanceId);
        if (instance?.state === "running") return;
        if (!instance || instance.state === "pending")
          throw new RetryLaterError(
            proportionalPollDelay(waited, bootPolls),
            `${d.instanceId} is not running yet`,
          );
        await record(e, "cluster.record-launch-failure", {
          clusterId,
          slot: d.slot,
          attempt: d.attempt,
          code: "instance-lost",
          reason: `${d.instanceId} went ${instance.state} before it ran${instance.stateReason ? ` (${instance.stateReason})` : ""}`,
          // Nothing classified it: the catalogue's hint, so the event (and a Failed cluster) names a fix.
          remediation: CLUSTER_REMEDIATIONS["instance-lost"],
          capacity: false,
        });
        return;
      }

      case "cluster.instances-ready": {
        // At rest: reconcile EC2 against the log. An instance tagged for this cluster that
        // no settled slot owns (left by a crash between a superseded launch and its
        // clean-up, or launched for a slot that is gone) is terminated. Slots still in
        // flight are left alone: their instance may not be recorded yet.
        if (ending) return;
        const live = (await o.compute.describeCluster(region, clusterId)).filter(
          (i) => i.state !== "terminated" && i.state !== "shutting-down",
        );
        const strays = live.filter((i) => {
          if (!i.owner) return false;
          const owner = state.slots[i.owner.slot];
          return !owner || (owner.status === "running" && owner.instanceId !== i.instanceId);
        });
        if (strays.length === 0) return;
        o.logger?.warn(
          { cluster: clusterId, instances: strays.map((i) => i.instanceId) },
          "terminating instances no slot owns",
        );
        await o.compute.terminate(
          region,
          strays.map((i) => i.instanceId),
        );
        return;
      }

      case "cluster.instance-termination-requested": {
        const { slot, instanceId } = e.data;
        if (state.slots[slot]?.status !== "terminating") return;
        // A surplus node is drained first (nodes are named after their instance).
        if (instanceId && !ending) {
          const drain = await drains.drain(e, clusterId, instanceId, slot);
          if (drain === "pending") throw later(e, `draining ${instanceId} before it is terminated`);
          if (drain === "failed")
            o.logger?.warn(
              { cluster: clusterId, slot, instanceId },
              "the surplus node could not be drained in time; terminating it anyway",
            );
        }
        // The tags find an instance even when its launch was never recorded (a launch in
        // flight when the slot became surplus).
        const mine = (await o.compute.describeCluster(region, clusterId)).filter(
          (i) => i.owner?.slot === slot,
        );
        if (await terminateAll(region, mine)) {
          await record(e, "cluster.record-terminated", { clusterId, slots: [slot] });
          return;
        }
        throw later(e, `slot ${slot}'s instances are still terminating`);
      }

      case "cluster.node-replacement-requested": {
        // The slot relaunches (the next event); the instance that never became a Ready
        // node goes. Terminating a terminated instance is fine, so a redelivery is too.
        // A spot-interrupted node is drained first; the interruption follower terminates it then.
        if (e.data.drainFirst) return;
        await o.compute.terminate(region, [e.data.instanceId]);
        return;
      }

      case "cluster.deletion-requested": {
        if (state.status !== "Deleting") return;
        // 1. Its sessions end first (the idle-detector ends them on this same event):
        //    their workloads are deleted through the cluster's API, which needs its nodes.
        //    Waited for up to the bound, counted from the deletion, so a restart or the
        //    other replica waits no longer; past it, what is left goes with the instances.
        const waited = Math.max(0, Date.now() - Date.parse(e.time));
        const left = await o.sessions.live(clusterId);
        if (left.length > 0 && waited < sessionsEndTimeoutMs)
          throw later(e, `cluster ${clusterId}: waiting for ${describeSessions(left)} to end`);
        if (left.length > 0)
          o.logger?.warn(
            { cluster: clusterId, sessions: left, waitedMs: waited },
            "sessions did not end in time; terminating the cluster's instances under them",
          );
        // 2. Its instances.
        const all = await o.compute.describeCluster(region, clusterId, { includeTerminated: true });
        if (await terminateAll(region, all)) {
          await record(e, "cluster.finish-deletion", {
            clusterId,
            terminated: all.map((i) => i.instanceId).sort(),
            ...(left.length > 0 ? { sessionsLeft: [...left] } : {}),
          });
          return;
        }
        throw later(e, `cluster ${clusterId}'s instances are still terminating`);
      }

      default:
        return;
    }
  };

  /** Terminates what still lives; true once everything is terminated. */
  const terminateAll = async (region: string, instances: InstanceInfo[]): Promise<boolean> => {
    const live = instances
      .filter((i) => i.state !== "terminated" && i.state !== "shutting-down")
      .map((i) => i.instanceId);
    if (live.length > 0) await o.compute.terminate(region, live);
    return instances.every((i) => i.state === "terminated");
  };

  const main = await startReactor({
    nats: o.nats,
    // The durable consumer's name since the first release: a deployment resumes where it was.
    name: "provisioner-reactor",
    aggregate: "cluster",
    types: CLUSTER_EVENTS_REACTED_TO.filter((t) => !BOOT_EVENTS.includes(t)),
    // Clusters proceed side by side; each cluster's commits stay in order. The events of
    // one commit (200 launch requests) concern different slots and every step is
    // idempotent, so they run together (the EC2 bulkhead bounds the calls); if one must
    // wait or fails, the commit comes back and the others find their work done.
    concurrency: 32,
    ...(o.logger ? { logger: o.logger } : {}),
    react,
  });
  // The boot polls on a durable of their own: on the main one a cluster's instance-launched
  // commits queue behind its launch commit, so the first server was seen running only once
  // the last of 500 agents was launched (bench/install: boot 4.1 s instead of 0.3 at 200
  // nodes). Nothing orders them after other commits: each reads the cluster at least as
  // fresh as itself. A new durable starts at the stream's first message, so the
  // instance-launched events in flight when a deployment switches over are not lost.
  const boot = await startReactor({
    nats: o.nats,
    name: "provisioner-boot",
    aggregate: "cluster",
    types: BOOT_EVENTS,
    concurrency: 32,
    ...(o.logger ? { logger: o.logger } : {}),
    react,
  });
  return {
    stop: async () => {
      stopped = true;
      await main.stop();
      await boot.stop();
    },
    get stats() {
      const a = main.stats;
      const b = boot.stats;
      return {
        processed: a.processed + b.processed,
        acked: a.acked + b.acked,
        naked: a.naked + b.naked,
        retried: a.retried + b.retried,
        waiting: a.waiting + b.waiting,
        deadLettered: a.deadLettered + b.deadLettered,
        handedOver: a.handedOver + b.handedOver,
      };
    },
  };
}

/**
 * Whether a launch's failure ends its attempt: a permanent failure (the adapter's
 * `PermanentError`s: no capacity there, a missing image, no permission…). A transient one
 * or a wait is retried by the runtime.
 */
function launchFailedForGood(err: unknown): err is Error {
  if (isCairnError(err)) return err.failure === "permanent";
  return isComputeFailure(err) && !err.transient;
}

/** One slot's launch as `cluster.record-launches` records it. */
type LaunchRecord = CommandDataInput<"cluster.record-launches">["launches"][number];

/** A RunInstances answer: the instances by AmiLaunchIndex, and their launches' record (the state just after). */
interface LaunchedBatch {
  readonly instances: InstanceInfo[];
  readonly recorded: Promise<ClusterState>;
}

/** A state's slots launched with an instance: their ids (in slot order) and each by its instance. */
interface LaunchedSlots {
  readonly ids: readonly string[];
  readonly byInstance: ReadonlyMap<string, Slot>;
}
const launchedMemo = new WeakMap<object, LaunchedSlots>();

/**
 * The slots `state` shows launched (not yet running), once per state: the events of one
 * commit share the state the handler caches, so a 500-event commit lists them once, not
 * 500 times. Pure; the memo holds no state past its use.
 */
export function launchedSlots(state: Exclude<ClusterState, { status: "Absent" }>): LaunchedSlots {
  let memo = launchedMemo.get(state);
  if (!memo) {
    const byInstance = new Map<string, Slot>();
    for (const s of Object.values(state.slots))
      if (s.status === "launched" && s.instanceId !== undefined) byInstance.set(s.instanceId, s);
    memo = { ids: [...byInstance.keys()], byInstance };
    launchedMemo.set(state, memo);
  }
  return memo;
}

/** What a boot poll knows of an instance: its state, and its address or why it went down when known. */
type Seen = Pick<InstanceInfo, "instanceId" | "state" | "privateIpAddress" | "stateReason">;

/** Every instance state but `pending`: what a boot poll asks EC2 for. */
const NOT_PENDING: readonly InstanceState[] = [...LIVE_STATES.filter((s) => s !== "pending"), "terminated"];

/** How long a cluster's boot-poll answers are kept after the last ask (see `looks`). */
const LOOK_TTL_MS = 60_000;

/** A cluster going away: nothing launched for it is wanted. */
const isEndingState = (s: ClusterState) => s.status === "Deleting" || s.status === "Deleted";

/** Slots per batched record: the catalogue's bound on `cluster.record-launches`. */
const MAX_BATCH = 1_000;

function chunks<T>(xs: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < xs.length; i += size) out.push(xs.slice(i, i + size));
  return out;
}

/** A short, deterministic key naming a batch's members: its command id follows from it. */
function batchKey(members: readonly string[]): string {
  return createHash("sha256").update(members.join(",")).digest("hex").slice(0, 32);
}
