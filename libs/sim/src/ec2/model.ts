/**
 * The EC2 world: instances per region, their lifecycle and the indexes that keep
 * DescribeInstances fast. No HTTP here (see actions.ts), so it is tested directly.
 *
 * Time-driven state is lazy: an instance stores its last phase (`pending since t,
 * until t + instanceBoot`) and `settle()` rolls it forward to `now` when it is read.
 * Rolling forward is deterministic (it depends only on the stored times), so reading
 * early or late gives the same history; no timers.
 */
import type { Latencies } from "../clock.ts";
import { SimRandom } from "../random.ts";
import type { InstanceState, InstanceView } from "../world.ts";
import { Ec2Error, incorrectState, instanceIdMalformed, instancesNotFound, invalidValue } from "./errors.ts";

/** EC2's numeric state codes (the low byte of `instanceState.code`). */
export const STATE_CODES: Readonly<Record<InstanceState, number>> = {
  pending: 0,
  running: 16,
  "shutting-down": 32,
  terminated: 48,
  stopping: 64,
  stopped: 80,
};

/** The account every simulated resource belongs to. */
export const SIM_ACCOUNT_ID = "123456789012";
/** How long a terminated instance stays visible to Describe* calls (AWS: about an hour). */
export const TERMINATED_VISIBLE_MS = 60 * 60 * 1000;
/** How long status checks say `initializing` after an instance starts running. */
export const STATUS_INITIALIZING_MS = 2 * 60 * 1000;
/** Most tags one resource may carry. */
export const MAX_TAGS = 50;
/** Most instances one RunInstances may launch (a sanity bound, not an AWS quota). */
export const MAX_LAUNCH = 10_000;

/** Why an instance is in its state: EC2's `stateReason` and `reason` (state transition reason). */
export interface StateReason {
  code: string;
  message: string;
  /** The free-text `reason` (StateTransitionReason). */
  text: string;
}

interface Phase {
  state: InstanceState;
  /** Sim time (epoch ms) the phase began. */
  since: number;
  /** When a transitional state (pending, stopping, shutting-down) settles. */
  until?: number;
  reason?: StateReason;
}

export interface Instance {
  readonly id: string;
  /** Launch order within the region: pagination and result order follow it. */
  readonly seq: number;
  readonly region: string;
  readonly reservationId: string;
  readonly imageId: string;
  readonly instanceType: string;
  readonly availabilityZone: string;
  readonly subnetId: string;
  readonly vpcId: string;
  readonly privateIpAddress: string;
  readonly privateDnsName: string;
  readonly spotInstanceRequestId: string | undefined;
  readonly amiLaunchIndex: number;
  readonly clientToken: string;
  readonly keyName: string | undefined;
  readonly securityGroupIds: readonly string[];
  readonly iamInstanceProfileArn: string | undefined;
  readonly architecture: "x86_64" | "arm64";
  /** Sim time of the last launch or start (EC2 updates LaunchTime on start). */
  launchTime: number;
  phase: Phase;
  /** Sim time the instance last became running; undefined when it is not running. */
  runningSince: number | undefined;
  /** Spot interruption: the instance is reclaimed (shutting-down) at this sim time. */
  interruptAt: number | undefined;
  readonly tags: Map<string, string>;
  /** The serialized attributes that only an API call changes (cleared on such a change). */
  xml: string | undefined;
}

export interface Reservation {
  readonly id: string;
  readonly instances: readonly Instance[];
  readonly clientToken: string;
  /** The launch parameters, for ClientToken idempotency. */
  readonly fingerprint: string;
}

export interface SpotInterruptionNotice {
  instanceId: string;
  region: string;
  instanceType: string;
  availabilityZone: string;
  /** What happens at terminationTime (the sim reclaims by terminating). */
  action: "terminate";
  /** When the two-minute warning was given (ISO). */
  noticeTime: string;
  /** When the instance is reclaimed: it turns shutting-down, then terminated (ISO). */
  terminationTime: string;
}

export interface InstanceStateChange {
  instanceId: string;
  previous: InstanceState;
  current: InstanceState;
}

/** What RunInstances asks for, validated (see actions.ts). */
export interface LaunchRequest {
  imageId: string;
  instanceType: string;
  /** How many to launch (MaxCount, or fewer when capacity is short). */
  count: number;
  /** MinCount: fewer than this and nothing is launched (see actions.ts). Absent: 1. */
  minCount?: number;
  availabilityZone: string;
  subnetId: string | undefined;
  spot: boolean;
  tags: readonly (readonly [string, string])[];
  securityGroupIds: readonly string[];
  keyName: string | undefined;
  iamInstanceProfile: string | undefined;
  /** Empty when the caller sent none (then the launch is not idempotent). */
  clientToken: string;
  /** Every launch parameter but the token, canonical: equal fingerprints = the same request. */
  fingerprint: string;
}

/** One region's instances and the indexes over their immutable attributes and tags. */
export class Region {
  readonly name: string;
  readonly byId = new Map<string, Instance>();
  /** Every instance in launch (seq) order. */
  readonly ordered: Instance[] = [];
  readonly reservations = new Map<string, Reservation>();
  /** ClientToken → reservation id. */
  readonly tokens = new Map<string, string>();
  /** tag key → tag value → instances. */
  readonly tagIndex = new Map<string, Map<string, Set<Instance>>>();
  readonly byType = new Map<string, Set<Instance>>();
  readonly byAz = new Map<string, Set<Instance>>();
  readonly spot = new Set<Instance>();
  readonly ips = new Set<string>();
  readonly interruptions: SpotInterruptionNotice[] = [];
  seq = 0;

  constructor(name: string) {
    this.name = name;
  }

  add(i: Instance): void {
    this.byId.set(i.id, i);
    this.ordered.push(i);
    addTo(this.byType, i.instanceType, i);
    addTo(this.byAz, i.availabilityZone, i);
    if (i.spotInstanceRequestId) this.spot.add(i);
    for (const [k, v] of i.tags) addTo(this.#tagValues(k), v, i);
  }

  setTag(i: Instance, key: string, value: string): void {
    const old = i.tags.get(key);
    if (old === value) return;
    const values = this.#tagValues(key);
    if (old !== undefined) values.get(old)?.delete(i);
    i.tags.set(key, value);
    addTo(values, value, i);
    i.xml = undefined;
  }

  #tagValues(key: string): Map<string, Set<Instance>> {
    return getOrAdd(this.tagIndex, key, () => new Map());
  }
}

function getOrAdd<K, V>(m: Map<K, V>, k: K, make: () => V): V {
  let v = m.get(k);
  if (v === undefined) {
    v = make();
    m.set(k, v);
  }
  return v;
}

function addTo<K, V>(m: Map<K, Set<V>>, k: K, v: V): void {
  getOrAdd(m, k, () => new Set<V>()).add(v);
}

const INSTANCE_ID = /^i-(?:[0-9a-f]{8}|[0-9a-f]{17})$/;

/** `2026-01-01 00:00:00 GMT`, as EC2 writes times into reason texts. */
const gmt = (t: number) => `${new Date(t).toISOString().slice(0, 19).replace("T", " ")} GMT`;

const userShutdown = (t: number): StateReason => ({
  code: "Client.UserInitiatedShutdown",
  message: "Client.UserInitiatedShutdown: User initiated shutdown",
  text: `User initiated (${gmt(t)})`,
});
const spotTermination = (t: number): StateReason => ({
  code: "Server.SpotInstanceTermination",
  message: "Server.SpotInstanceTermination: Spot instance termination",
  text: `Service initiated (${gmt(t)})`,
});
const PENDING_REASON: StateReason = { code: "pending", message: "pending", text: "" };

/** A 32-bit FNV-1a hash: deterministic names (default subnets, subnet zones) from a string. */
export function fnv32(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h >>> 0;
}
const hashHex = (s: string, n: number) => new SimRandom(fnv32(s)).hex(n);

/** Graviton families (t4g, m6g, c7gn, r8g, …) are arm64. */
const architectureOf = (instanceType: string) =>
  /^[a-z]+\d+g[a-z]*\./.test(instanceType) ? ("arm64" as const) : ("x86_64" as const);

/** What `Ec2World.snapshot` takes: plain data. */
export interface Ec2WorldSnapshot {
  regions: {
    name: string;
    seq: number;
    instances: (Omit<Instance, "tags" | "xml"> & { tags: [string, string][]; xml?: undefined })[];
    reservations: { id: string; clientToken: string; fingerprint: string; instanceIds: string[] }[];
    tokens: [string, string][];
    interruptions: SpotInterruptionNotice[];
  }[];
  missingAmis: [string, string[]][];
  subnetZones: [string, string][];
}

export interface Ec2WorldOptions {
  now(): number;
  random: SimRandom;
  latencies: Latencies;
}

export class Ec2World {
  readonly #now: () => number;
  readonly #random: SimRandom;
  readonly #latencies: Latencies;
  readonly #regions = new Map<string, Region>();
  /** AMIs that answer InvalidAMIID.NotFound: everywhere (`*`) or per region. */
  readonly #missingAmis = new Map<string, Set<string>>([["*", new Set(["ami-00000000"])]]);
  /** Subnets pinned to a zone by the admin API; other subnets hash to a zone. */
  readonly #subnetZones = new Map<string, string>();

  constructor(opts: Ec2WorldOptions) {
    this.#now = opts.now;
    this.#random = opts.random;
    this.#latencies = opts.latencies;
  }

  now(): number {
    return this.#now();
  }

  /**
   * Every region's instances, reservations, tokens and interruptions, the missing AMIs
   * and pinned subnets, as JSON-able data (journal compaction). The indexes are rebuilt
   * by `restore`; cached XML is left out.
   */
  snapshot(): Ec2WorldSnapshot {
    return {
      regions: [...this.#regions.values()].map((r) => ({
        name: r.name,
        seq: r.seq,
        instances: r.ordered.map((i) => ({ ...i, tags: [...i.tags], xml: undefined })),
        reservations: [...r.reservations.values()].map((x) => ({
          id: x.id,
          clientToken: x.clientToken,
          fingerprint: x.fingerprint,
          instanceIds: x.instances.map((i) => i.id),
        })),
        tokens: [...r.tokens],
        interruptions: r.interruptions,
      })),
      missingAmis: [...this.#missingAmis].map(([region, amis]) => [region, [...amis]]),
      subnetZones: [...this.#subnetZones],
    };
  }

  /** Puts back what `snapshot` took, replacing everything. */
  restore(s: Ec2WorldSnapshot): void {
    this.#regions.clear();
    for (const rs of s.regions) {
      const r = new Region(rs.name);
      r.seq = rs.seq;
      for (const i of rs.instances) {
        const instance: Instance = { ...i, tags: new Map(i.tags), xml: undefined };
        r.add(instance);
        r.ips.add(instance.privateIpAddress);
      }
      for (const x of rs.reservations)
        r.reservations.set(x.id, {
          id: x.id,
          clientToken: x.clientToken,
          fingerprint: x.fingerprint,
          instances: x.instanceIds.map((id) => r.byId.get(id)!),
        });
      for (const [token, id] of rs.tokens) r.tokens.set(token, id);
      r.interruptions.push(...rs.interruptions);
      this.#regions.set(rs.name, r);
    }
    this.#missingAmis.clear();
    for (const [region, amis] of s.missingAmis) this.#missingAmis.set(region, new Set(amis));
    this.#subnetZones.clear();
    for (const [subnet, zone] of s.subnetZones) this.#subnetZones.set(subnet, zone);
  }

  /** The region's state, created on first launch there. */
  region(name: string): Region {
    return getOrAdd(this.#regions, name, () => new Region(name));
  }

  /** The region to read: its state, or an empty one (not kept) if nothing was ever launched there. */
  reading(name: string): Region {
    return this.#regions.get(name) ?? new Region(name);
  }

  regionNames(): string[] {
    return [...this.#regions.keys()].sort();
  }

  /** The zones of a region the sim offers (`<region>a` … `<region>c`). */
  zones(region: string): string[] {
    return ["a", "b", "c"].map((z) => `${region}${z}`);
  }

  /** The zone a subnet lives in: pinned by the admin API, else a stable hash of its id. */
  subnetZone(region: string, subnetId: string): string {
    const pinned = this.#subnetZones.get(subnetId);
    if (pinned !== undefined && pinned.slice(0, -1) === region) return pinned;
    const zones = this.zones(region);
    return zones[fnv32(subnetId) % zones.length]!;
  }

  pinSubnet(subnetId: string, availabilityZone: string): void {
    if (!/^subnet-[0-9a-z]+$/.test(subnetId)) throw new Error(`not a subnet id: ${subnetId}`);
    if (!/^[a-z]{2}(-[a-z]+)+-\d[a-z]$/.test(availabilityZone)) {
      throw new Error(`not an availability zone: ${availabilityZone}`);
    }
    this.#subnetZones.set(subnetId, availabilityZone);
  }

  subnets(): Record<string, string> {
    return Object.fromEntries(this.#subnetZones);
  }

  addMissingAmi(imageId: string, region = "*"): void {
    getOrAdd(this.#missingAmis, region, () => new Set<string>()).add(imageId);
  }

  isMissingAmi(region: string, imageId: string): boolean {
    return Boolean(this.#missingAmis.get("*")?.has(imageId) || this.#missingAmis.get(region)?.has(imageId));
  }

  missingAmis(): Record<string, string[]> {
    return Object.fromEntries([...this.#missingAmis].map(([r, s]) => [r, [...s].sort()]));
  }

  /**
   * Rolls an instance's state forward to now (pending → running after instanceBoot,
   * stopping → stopped, shutting-down → terminated, a due spot interruption →
   * shutting-down) and returns it. Idempotent; never goes back.
   */
  settle(i: Instance, now = this.#now()): InstanceState {
    for (;;) {
      const p = i.phase;
      const interrupt =
        i.interruptAt !== undefined && (p.state === "pending" || p.state === "running")
          ? i.interruptAt
          : Number.POSITIVE_INFINITY;
      const due = p.until ?? Number.POSITIVE_INFINITY;
      if (Math.min(interrupt, due) > now) return p.state;
      if (interrupt <= due) {
        this.#enter(i, "shutting-down", interrupt, spotTermination(interrupt));
      } else if (p.state === "pending") {
        this.#enter(i, "running", due, undefined);
      } else if (p.state === "stopping") {
        this.#enter(i, "stopped", due, p.reason);
      } else {
        this.#enter(i, "terminated", due, p.reason);
      }
    }
  }

  #enter(i: Instance, state: InstanceState, at: number, reason: StateReason | undefined): void {
    const ms = (s: number) => s * 1000;
    const until =
      state === "pending"
        ? at + ms(this.#latencies.instanceBoot)
        : state === "stopping"
          ? at + ms(this.#latencies.instanceStop)
          : state === "shutting-down"
            ? at + ms(this.#latencies.instanceTerminate)
            : undefined;
    i.phase = { state, since: at, ...(until !== undefined ? { until } : {}), ...(reason ? { reason } : {}) };
    i.runningSince = state === "running" ? at : undefined;
  }

  /** A terminated instance drops out of Describe* (and is "not found") an hour after it terminated. */
  visible(i: Instance, now = this.#now()): boolean {
    const state = this.settle(i, now);
    return state !== "terminated" || now < i.phase.since + TERMINATED_VISIBLE_MS;
  }

  /**
   * The instances named, in the order named (duplicates once). Throws
   * InvalidInstanceID.Malformed for an id that cannot be one, and
   * InvalidInstanceID.NotFound naming every id this region does not have (or no longer
   * shows): the whole call fails, as in EC2.
   */
  lookup(region: string, ids: readonly string[]): Instance[] {
    const r = this.reading(region);
    const now = this.#now();
    const found: Instance[] = [];
    const missing: string[] = [];
    const seen = new Set<string>();
    for (const id of ids) {
      if (!INSTANCE_ID.test(id)) throw instanceIdMalformed(id);
      if (seen.has(id)) continue;
      seen.add(id);
      const i = r.byId.get(id);
      if (i && this.visible(i, now)) found.push(i);
      else missing.push(id);
    }
    if (missing.length > 0) throw instancesNotFound(missing);
    return found;
  }

  /** The region if it ever had a request; does not create it. */
  existing(name: string): Region | undefined {
    return this.#regions.get(name);
  }

  /**
   * ClientToken idempotency within a region: the reservation an earlier RunInstances
   * with this token launched, when the parameters are the same (`fingerprint`);
   * undefined for a new token. The same token with other parameters is
   * IdempotentParameterMismatch; a token whose instances are all terminated is
   * IdempotentInstanceTerminated.
   */
  replay(region: string, clientToken: string, fingerprint: string): Reservation | undefined {
    const r = this.reading(region);
    const id = r.tokens.get(clientToken);
    const earlier = id === undefined ? undefined : r.reservations.get(id);
    if (!earlier) return undefined;
    if (earlier.fingerprint !== fingerprint) {
      throw new Ec2Error(
        "IdempotentParameterMismatch",
        "Arguments on this idempotent request are inconsistent with arguments used in previous request(s).",
      );
    }
    const now = this.#now();
    if (earlier.instances.every((i) => this.settle(i, now) === "terminated")) {
      throw new Ec2Error(
        "IdempotentInstanceTerminated",
        `The client token '${clientToken}' was used to launch instances that have since been terminated. Use another client token.`,
      );
    }
    return earlier;
  }

  /**
   * Launches `count` instances in one reservation, pending until instanceBoot has
   * passed, and remembers its ClientToken (see `replay`, which the caller asks first).
   * `at` (sim epoch ms, not after now; default now) dates the launch: its `launchTime`
   * and the start of the boot. The call's arrival, as EC2 launches each call when it
   * comes, not after the calls that came with it (`SimCall.at`).
   */
  run(region: string, req: LaunchRequest, at?: number): Reservation {
    const r = this.region(region);
    const now = Math.min(at ?? Number.POSITIVE_INFINITY, this.#now());
    const reservationId = `r-${this.#random.hex(17)}`;
    const vpcId = `vpc-${hashHex(`vpc:${region}`, 17)}`;
    const subnetId = req.subnetId ?? `subnet-${hashHex(`subnet:${req.availabilityZone}`, 17)}`;
    const securityGroupIds =
      req.securityGroupIds.length > 0 ? req.securityGroupIds : [`sg-${hashHex(`sg:${vpcId}`, 17)}`];
    const instances: Instance[] = [];
    for (let n = 0; n < req.count; n++) {
      let id: string;
      do id = `i-${this.#random.hex(17)}`;
      while (r.byId.has(id));
      const ip = this.#privateIp(r);
      const i: Instance = {
        id,
        seq: ++r.seq,
        region,
        reservationId,
        imageId: req.imageId,
        instanceType: req.instanceType,
        availabilityZone: req.availabilityZone,
        subnetId,
        vpcId,
        privateIpAddress: ip,
        privateDnsName: `ip-${ip.replaceAll(".", "-")}.${region}.compute.internal`,
        spotInstanceRequestId: req.spot ? `sir-${this.#random.hex(8)}` : undefined,
        amiLaunchIndex: n,
        clientToken: req.clientToken,
        keyName: req.keyName,
        securityGroupIds,
        iamInstanceProfileArn: req.iamInstanceProfile
          ? `arn:aws:iam::${SIM_ACCOUNT_ID}:instance-profile/${req.iamInstanceProfile}`
          : undefined,
        architecture: architectureOf(req.instanceType),
        launchTime: now,
        phase: {
          state: "pending",
          since: now,
          until: now + this.#latencies.instanceBoot * 1000,
          reason: PENDING_REASON,
        },
        runningSince: undefined,
        interruptAt: undefined,
        tags: new Map(req.tags),
        xml: undefined,
      };
      r.add(i);
      instances.push(i);
    }
    const reservation: Reservation = {
      id: reservationId,
      instances,
      clientToken: req.clientToken,
      fingerprint: req.fingerprint,
    };
    r.reservations.set(reservationId, reservation);
    if (req.clientToken) r.tokens.set(req.clientToken, reservationId);
    return reservation;
  }

  /** A 10.x.y.z address no other instance of the region has, drawn from the seeded PRNG. */
  #privateIp(r: Region): string {
    for (;;) {
      const ip = `10.${this.#random.int(0, 255)}.${this.#random.int(0, 255)}.${this.#random.int(4, 254)}`;
      if (!r.ips.has(ip)) {
        r.ips.add(ip);
        return ip;
      }
    }
  }

  /** stopped → pending (then running after instanceBoot); pending/running: unchanged. */
  start(region: string, ids: readonly string[]): InstanceStateChange[] {
    return this.#transition(region, ids, (i, state, now) => {
      if (state === "pending" || state === "running") return undefined;
      if (state !== "stopped") throw incorrectState(i.id, "started");
      return () => {
        this.#enter(i, "pending", now, PENDING_REASON);
        i.launchTime = now;
        i.xml = undefined;
      };
    });
  }

  /** running → stopping (then stopped after instanceStop); stopping/stopped: unchanged; spot: UnsupportedOperation. */
  stop(region: string, ids: readonly string[]): InstanceStateChange[] {
    return this.#transition(region, ids, (i, state, now) => {
      if (i.spotInstanceRequestId) {
        throw new Ec2Error(
          "UnsupportedOperation",
          `You can't stop the Spot Instance '${i.id}' because it is associated with a one-time Spot Instance request. You can only stop Spot Instances associated with persistent Spot Instance requests.`,
        );
      }
      if (state === "stopping" || state === "stopped") return undefined;
      if (state !== "running") throw incorrectState(i.id, "stopped");
      return () => this.#enter(i, "stopping", now, userShutdown(now));
    });
  }

  /** Anything → shutting-down (then terminated after instanceTerminate). Idempotent. */
  terminate(region: string, ids: readonly string[]): InstanceStateChange[] {
    return this.#transition(region, ids, (i, state, now) => {
      if (state === "shutting-down" || state === "terminated") return undefined;
      return () => this.#enter(i, "shutting-down", now, userShutdown(now));
    });
  }

  /**
   * A reboot keeps a running instance `running` in EC2's terms, but its OS starts
   * again: `runningSince` moves to now, so its SSM agent registers again and its
   * status checks initialize again. A terminated instance is ignored, as in EC2.
   */
  reboot(region: string, ids: readonly string[]): void {
    this.#transition(region, ids, (i, state, now) => {
      if (state === "terminated") return undefined;
      if (state !== "running") throw incorrectState(i.id, "rebooted");
      return () => {
        i.runningSince = now;
      };
    });
  }

  /**
   * Checks every instance first and changes them only when all may change (one bad
   * instance fails the whole call, as in EC2). `decide` returns the change to make, or
   * undefined for none.
   */
  #transition(
    region: string,
    ids: readonly string[],
    decide: (i: Instance, state: InstanceState, now: number) => (() => void) | undefined,
  ): InstanceStateChange[] {
    const instances = this.lookup(region, ids);
    const now = this.#now();
    const plan = instances.map((i) => {
      const previous = this.settle(i, now);
      return { i, previous, apply: decide(i, previous, now) };
    });
    return plan.map(({ i, previous, apply }) => {
      apply?.();
      return { instanceId: i.id, previous, current: i.phase.state };
    });
  }

  /** Sets (overwrites) tags on instances. At most MAX_TAGS per instance; `aws:` keys are reserved. */
  createTags(region: string, ids: readonly string[], tags: readonly (readonly [string, string])[]): void {
    validateTags(tags);
    const r = this.reading(region);
    const instances = this.lookup(region, ids);
    for (const i of instances) {
      const keys = new Set([...i.tags.keys(), ...tags.map(([k]) => k)]);
      if (keys.size > MAX_TAGS) {
        throw new Ec2Error(
          "TagLimitExceeded",
          `The maximum number of tags (${MAX_TAGS}) for resource '${i.id}' has been reached.`,
        );
      }
    }
    for (const i of instances) for (const [k, v] of tags) r.setTag(i, k, v);
  }

  /**
   * Gives a spot instance its two-minute warning: it keeps running until
   * `terminationTime` (now + spotInterruptionNotice), then is reclaimed.
   */
  interruptSpot(region: string, instanceId: string): SpotInterruptionNotice {
    const [i] = this.lookup(region, [instanceId]);
    if (!i) throw instancesNotFound([instanceId]);
    if (!i.spotInstanceRequestId)
      throw new Error(`${instanceId} is an on-demand instance; only spot instances are interrupted`);
    const state = this.settle(i);
    if (i.interruptAt !== undefined) throw new Error(`${instanceId} already has an interruption notice`);
    if (state !== "pending" && state !== "running")
      throw new Error(`${instanceId} is ${state}; nothing to interrupt`);
    const now = this.#now();
    i.interruptAt = now + this.#latencies.spotInterruptionNotice * 1000;
    const notice: SpotInterruptionNotice = {
      instanceId,
      region,
      instanceType: i.instanceType,
      availabilityZone: i.availabilityZone,
      action: "terminate",
      noticeTime: new Date(now).toISOString(),
      terminationTime: new Date(i.interruptAt).toISOString(),
    };
    this.reading(region).interruptions.push(notice);
    return notice;
  }

  /** Every interruption notice given, oldest first; of one region or of all. */
  interruptions(region?: string): SpotInterruptionNotice[] {
    const regions = region === undefined ? this.regionNames() : [region];
    return regions.flatMap((r) => this.#regions.get(r)?.interruptions ?? []);
  }

  view(i: Instance, now = this.#now()): InstanceView {
    const state = this.settle(i, now);
    return {
      instanceId: i.id,
      region: i.region,
      state,
      instanceType: i.instanceType,
      availabilityZone: i.availabilityZone,
      privateIpAddress: i.privateIpAddress,
      privateDnsName: i.privateDnsName,
      tags: Object.fromEntries(i.tags),
      ...(i.runningSince !== undefined ? { runningSince: i.runningSince } : {}),
      spot: i.spotInstanceRequestId !== undefined,
      reservationId: i.reservationId,
      clientToken: i.clientToken,
      amiLaunchIndex: i.amiLaunchIndex,
    };
  }
}

/** EC2's tag rules: a key of 1..128 characters not starting with `aws:`, a value of at most 256. */
export function validateTags(tags: readonly (readonly [string, string])[]): void {
  for (const [k, v] of tags) {
    if (k.length === 0 || k.length > 128)
      throw invalidValue("Tag.Key", k, "A tag key is 1 to 128 characters long.");
    if (k.toLowerCase().startsWith("aws:")) {
      throw invalidValue("Tag.Key", k, "Tag keys starting with 'aws:' are reserved for internal use.");
    }
    if (v.length > 256) throw invalidValue("Tag.Value", v, "A tag value is at most 256 characters long.");
  }
  if (tags.length > MAX_TAGS) {
    throw new Ec2Error(
      "TagLimitExceeded",
      `A resource can have at most ${MAX_TAGS} tags; ${tags.length} were given.`,
    );
  }
}
