/**
 * The narrow interfaces the provisioner's reactor needs from the outside world, with
 * their contracts (karpenter's `cloudprovider/types.go` style). The real adapter is
 * `adapters/ec2.ts`; tests and local runs point that same adapter at `libs/sim`.
 *
 * Nothing here performs I/O. The helpers (`launchToken`, `cairnTags`, `ownerOf`) are
 * pure and deterministic, so the reactor can derive the same token and tags again
 * after any crash and reconcile the world against the log.
 */
import { createHash } from "node:crypto";
import { CAIRN_TAGS, type ClusterSessionRef, isCairnTagKey } from "@cairn/events";

export type Role = "server" | "agent";
export type CapacityType = "spot" | "on-demand";
export type InstanceState = "pending" | "running" | "stopping" | "stopped" | "shutting-down" | "terminated";

/** Every state but `terminated`: what "the instances a cluster has" means. */
export const LIVE_STATES: readonly InstanceState[] = [
  "pending",
  "running",
  "stopping",
  "stopped",
  "shutting-down",
];

/**
 * The tags Cairn puts on every instance it launches (and on its volumes): which cluster,
 * pool, slot and launch attempt an instance belongs to, so the world can be reconciled
 * against the log after any crash (`describeCluster` finds them by `cairn:cluster`,
 * `ownerOf` reads them back). Defined in @cairn/events beside EC2's tag rules, which a
 * create is checked against before anything is launched.
 */
export { CAIRN_TAGS };

/** Who an instance belongs to, as its Cairn tags say. */
export interface InstanceOwner {
  readonly clusterId: string;
  readonly pool: string;
  readonly slot: number;
  readonly role: Role;
  readonly attempt: number;
}

export interface LaunchRequest {
  readonly region: string;
  readonly clusterId: string;
  readonly pool: string;
  /** Non-negative integer: the slot's ordinal within its pool. */
  readonly slot: number;
  /** Non-negative integer: 0 for a slot's first launch, +1 for each replacement. */
  readonly attempt: number;
  readonly role: Role;
  readonly instanceType: string;
  /** Absent: the subnet's zone, else the zone EC2 picks. */
  readonly availabilityZone?: string;
  readonly subnetId?: string;
  readonly capacityType: CapacityType;
  readonly imageId: string;
  /** `launchToken(clusterId, slot, attempt)`; see `Compute.launch`. */
  readonly clientToken: string;
  /**
   * The spec's user tags. Cairn's own tags (`CAIRN_TAGS`) win over any of the same key:
   * a user cannot make an instance look like another cluster's.
   */
  readonly tags?: Readonly<Record<string, string>>;
  readonly securityGroupIds?: readonly string[];
  /** An instance profile name or ARN (the SSM agent needs one to register). */
  readonly iamInstanceProfile?: string;
  /** Cloud-init user data, as plain text (the adapter base64-encodes it). */
  readonly userData?: string;
}

/**
 * A launch of `count` consecutive slots in one RunInstances (MinCount 1, MaxCount
 * `count`): `slot` is the first; the instance with AmiLaunchIndex k is slot `slot + k`.
 * Every slot shares the pool, role, attempt and placement, as EC2 gives every instance of
 * a call the same parameters and tags (see cluster/launch-batches.ts).
 */
export interface LaunchBatchRequest extends LaunchRequest {
  /** 1 or more: MaxCount. */
  readonly count: number;
}

/** An instance as EC2 last described it. */
export interface InstanceInfo {
  readonly instanceId: string;
  readonly region: string;
  readonly state: InstanceState;
  readonly instanceType: string;
  readonly availabilityZone: string;
  readonly capacityType: CapacityType;
  readonly imageId: string;
  /** ISO 8601. */
  readonly launchTime?: string;
  readonly privateIpAddress?: string;
  readonly privateDnsName?: string;
  readonly subnetId?: string;
  /** The ClientToken it was launched with. */
  readonly clientToken?: string;
  /** Why it is in its state (e.g. `Server.SpotInstanceTermination`), when EC2 says. */
  readonly stateReason?: string;
  /** Its position in the RunInstances call that launched it (0 for the first, or a call of one). */
  readonly amiLaunchIndex?: number;
  readonly tags: Readonly<Record<string, string>>;
  /** Read from its Cairn tags; absent when they are missing or malformed (not Cairn's). */
  readonly owner?: InstanceOwner;
}

export type LaunchedInstance = InstanceInfo;

/**
 * Why a call failed, classified at the boundary. `transient`: retrying the same call
 * later may succeed (the reactor naks with backoff); permanent: it will not (the reactor
 * falls back, or records a rejection). The adapter's error classes implement this.
 */
export const COMPUTE_FAILURE_KINDS = [
  "throttled",
  "capacity",
  "image-not-found",
  "unauthorized",
  "idempotency-mismatch",
  "token-spent",
  "instance-not-found",
  "incorrect-state",
  "server",
  "network",
  "timeout",
  "breaker-open",
  "bulkhead-full",
  "invalid-request",
] as const;
export type ComputeFailureKind = (typeof COMPUTE_FAILURE_KINDS)[number];

export interface ComputeFailure extends Error {
  readonly kind: ComputeFailureKind;
  readonly transient: boolean;
  /** What a person (or the reactor) should do about it. */
  readonly remediation: string;
  /** The provider's error code (`InsufficientInstanceCapacity`), when it sent one. */
  readonly code: string | undefined;
  readonly region: string | undefined;
  /** The provider action (`RunInstances`). */
  readonly operation: string | undefined;
}

/** A capacity failure names the placement that has no capacity: feed it to the fallback planner. */
export interface CapacityFailure extends ComputeFailure {
  readonly kind: "capacity";
  readonly placement: Placement;
}

/** One combination a launch can try (see adapters/placement.ts). `availabilityZone` undefined: EC2 picks. */
export interface Placement {
  readonly instanceType: string;
  readonly availabilityZone: string | undefined;
  readonly capacityType: CapacityType;
}

export function isComputeFailure(err: unknown): err is ComputeFailure {
  return (
    err instanceof Error &&
    typeof (err as Partial<ComputeFailure>).transient === "boolean" &&
    COMPUTE_FAILURE_KINDS.includes((err as Partial<ComputeFailure>).kind as ComputeFailureKind)
  );
}

export function isCapacityFailure(err: unknown): err is CapacityFailure {
  return isComputeFailure(err) && err.kind === "capacity";
}

/**
 * The outcome for one instance of a batched call. A batch that fails transiently (after
 * the policy's retries) gives every instance of it that error; a permanent failure of a
 * batch is retried instance by instance, so each gets its own error.
 */
export type PerInstanceResult =
  | {
      readonly instanceId: string;
      readonly ok: true;
      /** Absent for reboot (EC2 reports no state change). */
      readonly previousState?: InstanceState;
      readonly currentState?: InstanceState;
    }
  | { readonly instanceId: string; readonly ok: false; readonly error: ComputeFailure };

/**
 * Every EC2 effect of the provisioner. Calls are confined to the region given: nothing
 * ever reaches another region. Each call runs under retries (transient failures only),
 * a circuit breaker per region, a bulkhead and timeouts; a failure is always a
 * `ComputeFailure`.
 */
export interface Compute {
  /**
   * Launches one instance for `slot` of `pool`, tagged with `cairnTags(req)`.
   *
   * Idempotent by `clientToken`: the same token with the same request returns the
   * instance the first call launched (even after a crash between the call and its
   * record), never a second one. Derive it with `launchToken(clusterId, slot, attempt)`.
   *
   * Rejects with a ComputeFailure:
   * - `capacity` (CapacityFailure): no capacity for this type/zone/capacity type; not
   *   retried. Ask `nextPlacement` (adapters/placement.ts) for the next combination and
   *   launch it as the next attempt: a token is never reused with other parameters
   *   (EC2 answers that with `idempotency-mismatch`).
   * - `image-not-found`, `unauthorized`, `idempotency-mismatch`, `invalid-request`:
   *   permanent; the hint says what to fix.
   * - `token-spent`: the instance this token launched is terminated; launch the next attempt.
   * - transient kinds after the retries are spent.
   */
  launch(req: LaunchRequest): Promise<LaunchedInstance>;

  /**
   * Launches up to `count` instances for slots `slot … slot+count-1` in one call, tagged
   * with `cairnTags(req)` (the first slot: `ownerOf` adds each instance's AmiLaunchIndex).
   * Resolves with the instances EC2 launched, by AmiLaunchIndex: all `count`, or fewer
   * when capacity was short (EC2 launches the most it can; the missing positions are the
   * slots it had no capacity for). Rejects as `launch` does when it launched none.
   *
   * Idempotent by `clientToken` (`launchBatchToken(clusterId, slot, attempt, count)`): the
   * same token with the same request answers the same instances, however many of the
   * batch's slots ask, after any crash, from any replica.
   */
  launchBatch(req: LaunchBatchRequest): Promise<LaunchedInstance[]>;

  /**
   * Every instance tagged `cairn:cluster = clusterId` in `region`, all pages, each once.
   * Terminated instances (EC2 shows them for about an hour) only with `includeTerminated`.
   * Eventually consistent: an instance launched a moment ago may be missing.
   */
  describeCluster(
    region: string,
    clusterId: string,
    opts?: { readonly includeTerminated?: boolean },
  ): Promise<InstanceInfo[]>;

  /**
   * The image as EC2 describes it in `region`, or undefined when it does not exist there.
   * What validation checks before anything is launched.
   */
  describeImage(region: string, imageId: string): Promise<ImageInfo | undefined>;

  /**
   * The instances among `instanceIds` that EC2 knows in `region`, in no order. An unknown
   * id is absent from the answer rather than an error (a just-launched instance may not be
   * visible yet; an old terminated one is gone).
   */
  describe(
    region: string,
    instanceIds: readonly string[],
    opts?: {
      /**
       * Only the instances in these states (EC2's `instance-state-name` filter): one in
       * another state is absent, as an unknown one is. A boot poll asks for every state
       * but `pending`, so a look at 500 booting instances answers (and parses) none of
       * them until they run.
       */
      readonly states?: readonly InstanceState[];
    },
  ): Promise<InstanceInfo[]>;

  /**
   * The states of the instances among `instanceIds` that EC2 shows in one of `states`, in
   * no order: the boot poll's look. Absent: another state, or not visible yet. Cheaper
   * than `describe` per instance (DescribeInstanceStatus answers an id, a zone and a state
   * where DescribeInstances answers the whole instance), but without an instance's
   * details: ask `describe` for those (a private IP, why it stopped).
   */
  states(
    region: string,
    instanceIds: readonly string[],
    opts: { readonly states: readonly InstanceState[] },
  ): Promise<InstanceStateInfo[]>;

  /**
   * Terminates instances: batched, a result per distinct id in the order given.
   * Idempotent: terminating a terminated instance is ok (terminated → terminated); an
   * instance EC2 no longer knows is an `instance-not-found` result (treat it as gone).
   */
  terminate(region: string, instanceIds: readonly string[]): Promise<PerInstanceResult[]>;
  /** Stops instances (batched like `terminate`). Stopping a stopped instance is ok. */
  stop(region: string, instanceIds: readonly string[]): Promise<PerInstanceResult[]>;
  /** Starts stopped instances (batched like `terminate`). Starting a running one is ok. */
  start(region: string, instanceIds: readonly string[]): Promise<PerInstanceResult[]>;
  /** Reboots instances (batched like `terminate`); results carry no states. */
  reboot(region: string, instanceIds: readonly string[]): Promise<PerInstanceResult[]>;
}

/** An instance's state as the boot poll sees it (`Compute.states`). */
export interface InstanceStateInfo {
  readonly instanceId: string;
  readonly state: InstanceState;
}

export interface ImageInfo {
  readonly imageId: string;
  readonly architecture: "x86_64" | "arm64" | "i386" | "x86_64_mac" | "arm64_mac";
  /** `available`, `pending`, `failed`, `deregistered`, … */
  readonly state: string;
}

/**
 * The CPU architecture of an instance type, from its name: a `g` right after the
 * generation digit marks AWS Graviton (`t4g`, `m7g`, `c7gn`, `r8g`): arm64. Else x86_64.
 * @example architectureOf("t4g.large") // "arm64"
 */
export function architectureOf(instanceType: string): "x86_64" | "arm64" {
  const family = instanceType.split(".")[0] ?? "";
  return /\dg/.test(family) ? "arm64" : "x86_64";
}

/** EC2 accepts a ClientToken of at most 64 ASCII characters. */
export const CLIENT_TOKEN_MAX_LENGTH = 64;

/**
 * The ClientToken of a slot's launch attempt: deterministic, ASCII, 46 characters, and
 * distinct for each (cluster, slot, attempt) (a SHA-256 prefix of 160 bits). The same
 * inputs after a crash give the same token, so a repeated launch is the same launch.
 * @example launchToken("demo-1", 0, 0) // "cairn-" + 40 hex characters
 */
export function launchToken(clusterId: string, slot: number, attempt: number): string {
  if (clusterId.length === 0) throw new RangeError("launchToken: clusterId must not be empty");
  if (!Number.isSafeInteger(slot) || slot < 0)
    throw new RangeError(`launchToken: slot must be a non-negative integer, got ${slot}`);
  if (!Number.isSafeInteger(attempt) || attempt < 0)
    throw new RangeError(`launchToken: attempt must be a non-negative integer, got ${attempt}`);
  const digest = createHash("sha256")
    .update(JSON.stringify([clusterId, slot, attempt]))
    .digest("hex");
  return `cairn-${digest.slice(0, 40)}`;
}

/**
 * The ClientToken of one RunInstances for `count` slots from `firstSlot` at `attempt`: for
 * one slot, `launchToken` (the token such a launch always had, so a launch recorded before
 * batches is the same launch); for more, as distinct (a slot's attempt is launched by one
 * call only, so no two batches share a first slot and attempt).
 * @example launchBatchToken("demo-1", 1000, 1, 100) // "cairn-" + 40 hex characters
 */
export function launchBatchToken(
  clusterId: string,
  firstSlot: number,
  attempt: number,
  count: number,
): string {
  if (count === 1) return launchToken(clusterId, firstSlot, attempt);
  if (!Number.isSafeInteger(count) || count < 1)
    throw new RangeError(`launchBatchToken: count must be a positive integer, got ${count}`);
  launchToken(clusterId, firstSlot, attempt); // the same checks of the other inputs
  const digest = createHash("sha256")
    .update(JSON.stringify([clusterId, firstSlot, attempt, count]))
    .digest("hex");
  return `cairn-${digest.slice(0, 40)}`;
}

/** The `Name` tag: `<cluster>-<pool>-<slot>`, or `<cluster>-<pool>-<first>-<last>` for a batch. */
export function instanceName(clusterId: string, pool: string, slot: number, count = 1): string {
  return count > 1 ? `${clusterId}-${pool}-${slot}-${slot + count - 1}` : `${clusterId}-${pool}-${slot}`;
}

/**
 * The tags of a launch, in a fixed order (the user's, sorted by key, then Cairn's), so a
 * repeated launch sends exactly the same parameters and its ClientToken matches.
 */
export function cairnTags(
  req: Pick<LaunchRequest, "clusterId" | "pool" | "slot" | "role" | "attempt" | "tags"> & {
    readonly count?: number;
  },
): [key: string, value: string][] {
  const own: [string, string][] = [
    [CAIRN_TAGS.cluster, req.clusterId],
    [CAIRN_TAGS.pool, req.pool],
    [CAIRN_TAGS.slot, String(req.slot)],
    [CAIRN_TAGS.role, req.role],
    [CAIRN_TAGS.attempt, String(req.attempt)],
    [CAIRN_TAGS.name, instanceName(req.clusterId, req.pool, req.slot, req.count)],
  ];
  const user = Object.entries(req.tags ?? {})
    .filter(([k]) => !isCairnTagKey(k))
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return [...user, ...own];
}

const NON_NEGATIVE_INT = /^(0|[1-9]\d{0,15})$/;

/**
 * Who an instance belongs to, from its tags and its AmiLaunchIndex; undefined when a Cairn
 * tag is missing or malformed. A batch's instances share their tags (EC2 tags every
 * instance of a call alike): `cairn:slot` is the batch's first slot, and the instance at
 * AmiLaunchIndex k is slot `cairn:slot + k`. An instance launched alone (index 0) is its tag's slot.
 * @example ownerOf({ "cairn:slot": "1000", … }, 7) // { slot: 1007, … }
 */
export function ownerOf(
  tags: Readonly<Record<string, string>>,
  amiLaunchIndex = 0,
): InstanceOwner | undefined {
  const clusterId = tags[CAIRN_TAGS.cluster];
  const pool = tags[CAIRN_TAGS.pool];
  const slot = tags[CAIRN_TAGS.slot];
  const role = tags[CAIRN_TAGS.role];
  const attempt = tags[CAIRN_TAGS.attempt];
  if (!clusterId || !pool || slot === undefined || attempt === undefined) return undefined;
  if (role !== "server" && role !== "agent") return undefined;
  if (!NON_NEGATIVE_INT.test(slot) || !NON_NEGATIVE_INT.test(attempt)) return undefined;
  if (!Number.isSafeInteger(amiLaunchIndex) || amiLaunchIndex < 0) return undefined;
  return { clusterId, pool, slot: Number(slot) + amiLaunchIndex, role, attempt: Number(attempt) };
}

/**
 * The sessions on a cluster, as the idle-detector (their owner) records them: the
 * cluster's session ledger and each holder's own state, read from the log when asked
 * (never from a cache that could be behind another replica's writes). The real adapter
 * is `adapters/cluster-sessions.ts`.
 */
export interface ClusterSessions {
  /**
   * The cluster's live sessions (neither Terminated nor Failed) with their states, by
   * id; empty when none (or when no session ever ran there). Throws on I/O failure
   * (transient): a delete must not be decided on a guess.
   */
  live(clusterId: string): Promise<readonly ClusterSessionRef[]>;
}
