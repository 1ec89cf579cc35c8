/**
 * The cluster aggregate's pure core. No I/O, no clock: time arrives in the context.
 * Cluster states are the provisioner's words in PascalCase (DESIGN §7).
 *
 * A cluster is a set of node slots (numbered by `slotOf` in @cairn/events: servers
 * 0..n-1, pool i's members (i+1)·1000 + ordinal). Each slot moves launching → launched
 * → running; a capacity failure moves the slot to its next placement (a new attempt);
 * surplus slots move to terminating and then go away. The reactor records what EC2 did
 * through internal commands. The statuses and which event moves them are the shared
 * lifecycle (@cairn/events cluster-lifecycle.ts); `evolve` adds what only the owner keeps.
 */
import {
  assertNever,
  type ClusterCommand,
  type ClusterEvent,
  type ClusterSessionRef,
  type ClusterSpec,
  type ClusterStatus,
  clusterRemediation,
  clusterSpecAfter,
  clusterStatusAfter,
  type Decider,
  type EventEnvelope,
  ec2TagProblems,
  instancesReady,
  isRejection,
  type NodeSlot,
  plannedSlots,
  type Rejection,
  reject,
  SESSION_STATES,
  SLOT_TRANSITIONS,
  type SlotStatus,
  slotMoveOf,
} from "@cairn/events";
import type { Placement } from "../ports.ts";
import { batchLaunches } from "./launch-batches.ts";
import { nextPlacement, type PlacementChoices } from "./placement.ts";

// The statuses, their transitions and the slot numbering are the shared definition in
// @cairn/events (cluster-lifecycle.ts, cluster.ts): the projector folds the same one.
export type { ClusterStatus };
export { plannedSlots };

/** Relaunches of one slot for reasons other than capacity (an instance lost while booting). */
export const MAX_ATTEMPTS_WITHOUT_CAPACITY_REASON = 5;

export interface Slot extends NodeSlot {
  readonly attempt: number;
  readonly placement: Placement;
  /** Placements that ran out of capacity for this slot. */
  readonly failed: readonly Placement[];
  readonly status: SlotStatus | "failed";
  readonly instanceId?: string;
  /**
   * The instance's private IP as RunInstances answered it (EC2 gives an instance its
   * primary address at launch): what its running record carries, so a boot poll needs
   * only the instance's state.
   */
  readonly privateIp?: string;
}

export type ClusterState =
  | { readonly status: "Absent" }
  | {
      readonly status: ClusterStatus;
      readonly spec: ClusterSpec;
      /** The spec after each version that changed it, for rollback. */
      readonly specHistory: readonly { readonly version: number; readonly spec: ClusterSpec }[];
      /** Whether slots have been planned (provisioning started). */
      readonly provisioned: boolean;
      readonly slots: Readonly<Record<number, Slot>>;
      /**
       * The highest launch attempt each slot number ever used. A slot number that comes
       * back (scale down, then up or a rollback) continues from here: an attempt, and so
       * a ClientToken, is never used twice, or EC2 would hand back the old instance.
       */
      readonly attempts: Readonly<Record<number, number>>;
      /** Replaced instances still being drained (spot interruptions) → their slot: terminated once drained. */
      readonly draining?: Readonly<Record<string, number>>;
    };

type Active = Exclude<ClusterState, { status: "Absent" }>;

/**
 * What a cluster decision sees beyond the cluster's own events, read fresh by the
 * provisioner just before deciding (`observe`): for a delete, the sessions that live on
 * the cluster, as their owner (the idle-detector) has recorded them.
 */
export interface ClusterObservation {
  readonly liveSessions: readonly ClusterSessionRef[];
}

/** How many sessions to name in a refusal; the rest are counted. */
const NAMED_SESSIONS = 10;

/**
 * The live sessions in words: how many, in which states, which ones.
 * @example describeSessions([{ sessionId: "s-1", status: "Running" }, { sessionId: "s-2", status: "Hibernated" }])
 *   // "2 live sessions (1 Running, 1 Hibernated: s-1, s-2)"
 */
export function describeSessions(sessions: readonly ClusterSessionRef[]): string {
  const byState = SESSION_STATES.map((st) => [st, sessions.filter((x) => x.status === st).length] as const)
    .filter(([, n]) => n > 0)
    .map(([st, n]) => `${n} ${st}`);
  const ids = sessions.map((x) => x.sessionId).sort();
  const named = ids.slice(0, NAMED_SESSIONS).join(", ");
  const more = ids.length > NAMED_SESSIONS ? ` and ${ids.length - NAMED_SESSIONS} more` : "";
  const noun = sessions.length === 1 ? "live session" : "live sessions";
  return `${sessions.length} ${noun} (${byState.join(", ")}: ${named}${more})`;
}

/**
 * A spec EC2 would refuse at every launch because of its tags (recorded before a create
 * was checked against EC2's tag rules: a create is refused by its schema now) is refused
 * here before it launches anything, not failed at its first launch.
 */
function tagRefusal(clusterId: string, spec: ClusterSpec, what: string): Rejection | undefined {
  const problems = ec2TagProblems(spec.tags);
  if (problems.length === 0) return undefined;
  return reject(
    "invalid",
    `cluster ${clusterId} cannot ${what}: EC2 would refuse every launch, because of the spec's tags: ${problems.join("; ")}`,
  );
}

/**
 * The maps (`slots`, `attempts`) made during the fold in progress (`evolveAll`): no state
 * outside that fold holds them yet, so the fold's next events write into them instead of
 * copying them again. Undefined outside `evolveAll`: then every change copies its map, and
 * no state is ever changed after it was returned.
 */
let drafts: WeakSet<object> | undefined;

/** `map` to write into: itself when the fold in progress made it, else a copy (which it then owns). */
function owned<T extends object>(map: Readonly<T>): T {
  if (drafts?.has(map)) return map as T;
  const copy = { ...map } as T;
  drafts?.add(copy);
  return copy;
}

/** The cluster with one slot changed (`change` → undefined: removed); unchanged when the slot is unknown. */
function withSlot(state: Active, slot: number, change: (s: Slot) => Slot | undefined): Active {
  const s = state.slots[slot];
  if (!s) return state;
  const changed = change(s);
  // A copy of the map and one assignment (`owned`: no copy inside a fold that made the map
  // already). Copying per event was O(n²) per commit: a commit records 500 slots.
  const slots = owned<Record<number, Slot>>(state.slots);
  if (changed) slots[slot] = changed;
  else delete slots[slot];
  return { ...state, slots };
}

/** A placement as events carry it (the zone left out when EC2 picks it). */
const toPlacement = (p: {
  instanceType: string;
  availabilityZone?: string | undefined;
  capacityType: Placement["capacityType"];
}): Placement => ({
  instanceType: p.instanceType,
  availabilityZone: p.availabilityZone,
  capacityType: p.capacityType,
});

const initialState = (): ClusterState => ({ status: "Absent" });

/** A cluster that is going away accepts nothing but another delete. */
const isEnding = (s: ClusterState) => s.status === "Deleting" || s.status === "Deleted";

export function specAt(state: ClusterState, version: number): ClusterSpec | undefined {
  if (state.status === "Absent") return undefined;
  let found: ClusterSpec | undefined;
  for (const h of state.specHistory) if (h.version <= version) found = h.spec;
  return found;
}

/** Where a slot may be placed, in order of preference. */
export function placementChoices(spec: ClusterSpec, slot: NodeSlot): PlacementChoices {
  if (slot.role === "server") {
    return {
      instanceTypes: [spec.servers.instanceType],
      availabilityZones: spec.availabilityZones,
      capacityType: "on-demand",
      fallbackToOnDemand: false,
    };
  }
  const pool = spec.pools.find((p) => p.name === slot.pool);
  if (!pool) throw new Error(`slot ${slot.slot} names pool ${slot.pool}, which the spec lacks`);
  return {
    instanceTypes: pool.instanceTypes,
    availabilityZones: spec.availabilityZones,
    capacityType: pool.capacityType,
    fallbackToOnDemand: pool.fallbackToOnDemand,
  };
}

function launch(
  spec: ClusterSpec,
  slot: NodeSlot,
  attempt: number,
  failed: readonly Placement[],
): ClusterEvent | undefined {
  const placement = nextPlacement(placementChoices(spec, slot), failed);
  if (!placement) return undefined;
  const { slot: n, pool, ordinal, role } = slot;
  return {
    type: "cluster.instance-launch-requested",
    data: { slot: n, pool, ordinal, role, attempt, placement },
  };
}

/**
 * What it takes to bring the cluster's slots to a spec: launches for missing slots,
 * terminations for surplus ones (highest ordinal first, since slot numbers grow with
 * ordinals). Slots already terminating are not asked twice.
 */
function reconcile(state: Active, target: ClusterSpec): ClusterEvent[] {
  const want = new Map(plannedSlots(target).map((s) => [s.slot, s]));
  const events: ClusterEvent[] = [];
  for (const s of Object.values(state.slots)) {
    if (!want.has(s.slot) && s.status !== "terminating") {
      events.push({
        type: "cluster.instance-termination-requested",
        data: { slot: s.slot, ...(s.instanceId ? { instanceId: s.instanceId } : {}) },
      });
    }
  }
  for (const s of want.values()) {
    if (state.slots[s.slot]) continue;
    const e = launch(target, s, (state.attempts[s.slot] ?? 0) + 1, []);
    if (e) events.push(e);
  }
  return events;
}

/**
 * A scale that cannot complete is undone: the cluster returns to the spec it had before
 * the scale and terminates what the scale added. Undefined when the cluster is not
 * scaling (then the failure fails the cluster).
 */
function compensateScale(
  state: Active,
  reason: string,
  remediation: string | undefined,
): ClusterEvent[] | undefined {
  if (state.status !== "Scaling") return undefined;
  const lastGood = state.specHistory.at(-2)?.spec;
  if (!lastGood) return undefined;
  return [
    {
      type: "cluster.scale-failed",
      data: { reason, remediation: clusterRemediation("scale-failed", remediation), spec: lastGood },
    },
    ...reconcile(state, lastGood),
  ];
}

/** The slots planned and their first launches (and, for a spec without nodes, ready at once). */
function provisioning(state: Active): ClusterEvent[] {
  const slots = plannedSlots(state.spec);
  const launches = slots
    .map((s) => launch(state.spec, s, (state.attempts[s.slot] ?? 0) + 1, []))
    .filter((e): e is ClusterEvent => !!e);
  const started: ClusterEvent[] = [{ type: "cluster.provisioning-started", data: { slots } }, ...launches];
  return slots.length === 0 ? [...started, { type: "cluster.instances-ready", data: { count: 0 } }] : started;
}

/** After `events`, does every slot run and nothing remain to terminate? Then the instances are ready. */
function readyAfter(state: Active, events: ClusterEvent[], position: number): ClusterEvent[] {
  const after = evolveClusterAll(
    state,
    events.map((e, i) => ({ ...e, position: position + i + 1 }) as never),
  );
  if (after.status === "Absent" || after.status === "Failed" || isEnding(after)) return [];
  const slots = Object.values(after.slots);
  if (!instancesReady(slots.map((s) => s.status))) return [];
  return [{ type: "cluster.instances-ready", data: { count: slots.length } }];
}

type CommandData<T extends ClusterCommand["type"]> = Extract<ClusterCommand, { type: T }>["data"];

/**
 * `cluster.record-launch`, for one slot or many in one commit: each slot still launching
 * at that attempt records its instance, once; a slot that moved on (or is named twice)
 * records nothing.
 */
function recordLaunches(
  state: ClusterState,
  launches: readonly Omit<CommandData<"cluster.record-launch">, "clusterId">[],
): ClusterEvent[] {
  if (state.status === "Absent") return [];
  const done = new Set<number>();
  const events: ClusterEvent[] = [];
  for (const { slot, attempt, instanceId, availabilityZone, privateIp } of launches) {
    const s = state.slots[slot];
    if (done.has(slot) || s?.status !== "launching" || s.attempt !== attempt) continue;
    done.add(slot);
    events.push({
      type: "cluster.instance-launched",
      data: {
        slot,
        attempt,
        instanceId,
        ...(availabilityZone ? { availabilityZone } : {}),
        ...(privateIp ? { privateIp } : {}),
      },
    });
  }
  return events;
}

/**
 * `cluster.record-running`, for one slot or many in one commit: each slot still launched
 * with that instance runs, once; the instances are ready after the last, when every slot runs.
 */
function recordRunning(
  state: ClusterState,
  instances: readonly Omit<CommandData<"cluster.record-running">, "clusterId">[],
  version: number,
): ClusterEvent[] {
  if (state.status === "Absent") return [];
  const done = new Set<number>();
  const events: ClusterEvent[] = [];
  for (const { slot, instanceId, privateIp } of instances) {
    const s = state.slots[slot];
    if (done.has(slot) || s?.status !== "launched" || s.instanceId !== instanceId) continue;
    done.add(slot);
    events.push({
      type: "cluster.instance-running",
      data: {
        slot,
        instanceId,
        role: s.role,
        pool: s.pool,
        capacityType: s.placement.capacityType,
        ...(privateIp ? { privateIp } : {}),
      },
    });
  }
  return events.length === 0 ? [] : [...events, ...readyAfter(state, events, version)];
}

/**
 * The decisions one command at a time, before launches are grouped into RunInstances
 * calls (`clusterDecider.decide` groups them: `batchLaunches`).
 */
const unbatched: Decider<ClusterCommand, ClusterEvent, ClusterState, ClusterObservation> = {
  aggregate: "cluster",
  initialState,
  // The state is plain JSON data (records keyed by slot number, arrays, strings): a
  // long-lived cluster (health verdicts, scales, upgrades) loads from its snapshot and the
  // commits after it (bench/growth). Bump on any change of ClusterState's shape or evolve.
  snapshot: { version: 1 },

  decide(command, state, ctx) {
    switch (command.type) {
      case "cluster.create": {
        if (state.status !== "Absent") {
          return reject(
            "already-exists",
            `cluster ${command.data.clusterId} already exists (state ${state.status}); choose another id`,
          );
        }
        return [{ type: "cluster.requested", data: { spec: command.data } }];
      }
      case "cluster.scale": {
        const { clusterId, pool, count } = command.data;
        if (state.status === "Absent") return reject("not-found", `cluster ${clusterId} does not exist`);
        if (isEnding(state))
          return reject("conflict", `cluster ${clusterId} is ${state.status}; it cannot be scaled`);
        if (state.status === "Failed")
          return reject("conflict", `cluster ${clusterId} is Failed; delete it or roll it back first`);
        const current = state.spec.pools.find((p) => p.name === pool);
        if (!current) {
          const names = state.spec.pools.map((p) => p.name).join(", ") || "none";
          return reject("invalid", `cluster ${clusterId} has no pool ${pool} (pools: ${names})`);
        }
        if (current.count === count) return [];
        if (count > current.count) {
          const refused = tagRefusal(clusterId, state.spec, `scale pool ${pool} up`);
          if (refused) return refused;
        }
        const target = {
          ...state.spec,
          pools: state.spec.pools.map((p) => (p.name === pool ? { ...p, count } : p)),
        };
        const scaled: ClusterEvent = {
          type: "cluster.scale-requested",
          data: { pool, from: current.count, to: count },
        };
        return state.provisioned ? [scaled, ...reconcile(state, target)] : [scaled];
      }
      case "cluster.rollback": {
        const { clusterId, toVersion } = command.data;
        if (state.status === "Absent") return reject("not-found", `cluster ${clusterId} does not exist`);
        if (isEnding(state))
          return reject("conflict", `cluster ${clusterId} is ${state.status}; it cannot be rolled back`);
        if (toVersion > ctx.version) {
          return reject(
            "invalid",
            `cluster ${clusterId} is at version ${ctx.version}; cannot roll back to ${toVersion}`,
          );
        }
        const spec = specAt(state, toVersion);
        if (!spec) return reject("invalid", `cluster ${clusterId} had no spec at version ${toVersion}`);
        const refused = tagRefusal(clusterId, spec, `roll back to version ${toVersion}`);
        if (refused) return refused;
        const rolled: ClusterEvent = { type: "cluster.rollback-requested", data: { toVersion, spec } };
        return state.provisioned ? [rolled, ...reconcile(state, spec)] : [rolled];
      }
      case "cluster.delete": {
        const { clusterId, force } = command.data;
        if (state.status === "Absent") return reject("not-found", `cluster ${clusterId} does not exist`);
        // Deleting twice is one delete (its sessions are being ended already).
        if (isEnding(state)) return [];
        const live = ctx.observed?.liveSessions;
        // Sessions are their users' work: a delete ends them only when it says so.
        if (!force) {
          if (live === undefined)
            return reject(
              "conflict",
              `cannot tell whether sessions live on cluster ${clusterId} (they were not looked at); send the delete with force: true to terminate any`,
            );
          if (live.length > 0)
            return reject(
              "conflict",
              `cluster ${clusterId} has ${describeSessions(live)}; terminate them first, or send the delete with force: true to terminate them (cause cluster-deleted) before the cluster is deleted`,
            );
        }
        return [
          {
            type: "cluster.deletion-requested",
            data: {
              ...(force ? { force: true } : {}),
              ...(live && live.length > 0 ? { sessions: [...live] } : {}),
            },
          },
        ];
      }

      case "cluster.update-pool": {
        const { clusterId, pool } = command.data;
        if (state.status === "Absent") return reject("not-found", `cluster ${clusterId} does not exist`);
        if (isEnding(state))
          return reject("conflict", `cluster ${clusterId} is ${state.status}; its pools cannot change`);
        const current = state.spec.pools.find((p) => p.name === pool);
        if (!current) {
          const names = state.spec.pools.map((p) => p.name).join(", ") || "none";
          return reject("invalid", `cluster ${clusterId} has no pool ${pool} (pools: ${names})`);
        }
        const labels = command.data.labels ?? current.labels;
        const taints = command.data.taints ?? current.taints;
        if (JSON.stringify([labels, taints]) === JSON.stringify([current.labels, current.taints])) return [];
        return [{ type: "cluster.pool-updated", data: { pool, labels, taints } }];
      }
      case "cluster.retry": {
        const { clusterId } = command.data;
        if (state.status === "Absent") return reject("not-found", `cluster ${clusterId} does not exist`);
        if (state.status !== "Failed") {
          return reject(
            "conflict",
            `only a Failed cluster can be retried; cluster ${clusterId} is ${state.status}`,
          );
        }
        const refused = tagRefusal(clusterId, state.spec, "be retried");
        if (refused)
          return reject(
            "invalid",
            `${refused.rejected.reason}. Delete it and create it again with tags EC2 takes`,
          );
        const retry: ClusterEvent = { type: "cluster.retry-requested", data: {} };
        if (!state.provisioned) return [retry];
        // Every slot that does not run starts again from its first placement, as a new attempt.
        const relaunch = plannedSlots(state.spec)
          .filter((s) => {
            const have = state.slots[s.slot]?.status;
            return have !== "running" && have !== "launched";
          })
          .map((s) => launch(state.spec, s, (state.attempts[s.slot] ?? 0) + 1, []))
          .filter((e): e is ClusterEvent => !!e);
        return [retry, ...relaunch];
      }

      // Internal: the reactor records what EC2 did. Stale or repeated records change nothing.
      case "cluster.start-validation": {
        if (state.status === "Absent" || state.provisioned || isEnding(state)) return [];
        if (state.status === "Validating" || state.status === "Failed") return [];
        return [{ type: "cluster.validation-started", data: {} }];
      }
      case "cluster.record-validation": {
        if (state.status !== "Validating") return [];
        const { ok, imageId, architecture, reason, remediation } = command.data;
        if (!ok)
          return [
            {
              type: "cluster.failed",
              data: {
                reason: reason ?? `the spec does not suit region ${state.spec.region}`,
                remediation: clusterRemediation("validation-failed", remediation),
                code: "validation-failed",
              },
            },
          ];
        return [
          { type: "cluster.validated", data: { imageId, architecture: architecture ?? "x86_64" } },
          ...provisioning(state),
        ];
      }
      case "cluster.start-provisioning": {
        if (state.status === "Absent" || state.provisioned || isEnding(state) || state.status === "Failed")
          return [];
        return provisioning(state);
      }
      case "cluster.record-launch":
        return recordLaunches(state, [command.data]);
      case "cluster.record-launches":
        // `cluster.record-launch` for many slots in one commit.
        return recordLaunches(state, command.data.launches);
      case "cluster.record-launch-failure": {
        const { slot, attempt, code, reason, remediation, capacity } = command.data;
        if (state.status === "Absent") return [];
        const s = state.slots[slot];
        if (!s || s.attempt !== attempt || (s.status !== "launching" && s.status !== "launched")) return [];
        const failedEvent: ClusterEvent = {
          type: "cluster.instance-launch-failed",
          data: {
            slot,
            attempt,
            placement: s.placement,
            code,
            reason,
            ...(remediation ? { remediation } : {}),
            capacity,
          },
        };
        // A cluster that is going away or has failed tries nothing more (retry starts afresh).
        if (isEnding(state) || state.status === "Failed") return [failedEvent];
        if (capacity) {
          const failed = [...s.failed, s.placement];
          const next = launch(state.spec, s, attempt + 1, failed);
          if (next) return [failedEvent, next];
          const undo = compensateScale(
            state,
            `no capacity left for slot ${slot} (pool ${s.pool}) to scale to`,
            "add instance types or availability zones to the pool, or allow fallbackToOnDemand, then scale again",
          );
          if (undo) return [failedEvent, ...undo];
          return [
            failedEvent,
            {
              type: "cluster.failed",
              data: {
                reason: `no capacity left for slot ${slot} (pool ${s.pool}): every instance type, zone and capacity type it may use failed`,
                remediation:
                  "add instance types or availability zones to the pool, or allow fallbackToOnDemand, then retry",
                code: "no-capacity",
              },
            },
          ];
        }
        if (code === "instance-lost" && attempt < MAX_ATTEMPTS_WITHOUT_CAPACITY_REASON) {
          const { slot: n, pool, ordinal, role } = s;
          return [
            failedEvent,
            {
              type: "cluster.instance-launch-requested",
              data: { slot: n, pool, ordinal, role, attempt: attempt + 1, placement: s.placement },
            },
          ];
        }
        const undo = compensateScale(state, `slot ${slot} could not be launched: ${reason}`, remediation);
        if (undo) return [failedEvent, ...undo];
        return [
          failedEvent,
          {
            type: "cluster.failed",
            data: {
              reason: `slot ${slot} could not be launched: ${reason}`,
              remediation: clusterRemediation(
                code === "instance-lost" ? "instance-lost" : "launch-failed",
                remediation,
              ),
              code: "launch-failed",
            },
          },
        ];
      }
      case "cluster.record-launch-failures": {
        // `cluster.record-launch-failure` for many slots in one commit (a batch EC2 refused):
        // each decided on the state the ones before it left, so the cluster fails (or a
        // scale is undone) once, and the next placements of all of them are batched
        // together by `decide`.
        const { clusterId, failures } = command.data;
        const events: ClusterEvent[] = [];
        let s = state;
        for (const f of failures) {
          const d = unbatched.decide(
            { ...command, type: "cluster.record-launch-failure", data: { clusterId, ...f } },
            s,
            { ...ctx, version: ctx.version + events.length },
          );
          if (isRejection(d) || d.length === 0) continue;
          s = evolveClusterAll(
            s,
            d.map((e, i) => ({ ...e, position: ctx.version + events.length + i + 1 }) as never),
          );
          events.push(...d);
        }
        return events;
      }
      case "cluster.record-running":
        return recordRunning(state, [command.data], ctx.version);
      case "cluster.record-running-instances":
        // `cluster.record-running` for many slots in one commit, and ready after the last.
        return recordRunning(state, command.data.instances, ctx.version);
      case "cluster.record-terminated": {
        if (state.status === "Absent") return [];
        const events: ClusterEvent[] = command.data.slots
          .filter((n) => state.slots[n]?.status === "terminating")
          .map((slot) => ({ type: "cluster.instance-terminated", data: { slot } }));
        if (events.length === 0) return [];
        return [...events, ...readyAfter(state, events, ctx.version)];
      }
      // The installer's reports. Only a cluster whose instances are all running can be Ready;
      // a report that arrives while a scale launches more is superseded by the next one.
      case "cluster.record-installed": {
        if (state.status !== "Configuring" && state.status !== "Recovering") return [];
        const { nodes, k3sVersion } = command.data;
        return [{ type: "cluster.ready", data: { nodes, k3sVersion } }];
      }
      case "cluster.record-install-failure": {
        if (state.status === "Absent" || isEnding(state) || state.status === "Failed") return [];
        const { reason, remediation } = command.data;
        return [
          {
            type: "cluster.failed",
            data: {
              reason: `K3s could not be installed: ${reason}`,
              remediation: clusterRemediation("install-failed", remediation),
              code: "install-failed",
            },
          },
        ];
      }
      case "cluster.record-health": {
        if (state.status === "Absent") return [];
        const { health, reason, remediation } = command.data;
        if (health === "degraded")
          return state.status === "Ready"
            ? [
                {
                  type: "cluster.degraded",
                  data: { reason, remediation: clusterRemediation("degraded", remediation) },
                },
              ]
            : [];
        if (health === "recovering")
          return state.status === "Ready" || state.status === "Degraded"
            ? [
                {
                  type: "cluster.recovering",
                  data: { reason, remediation: clusterRemediation("recovering", remediation) },
                },
              ]
            : [];
        if (state.status !== "Degraded" && state.status !== "Recovering") return [];
        const nodes = Object.values(state.slots).filter((s) => s.status === "running").length;
        return [{ type: "cluster.ready", data: { nodes, k3sVersion: state.spec.k3sVersion } }];
      }
      case "cluster.record-k3s-version": {
        if (state.status === "Absent" || isEnding(state)) return [];
        const to = command.data.k3sVersion;
        if (to === state.spec.k3sVersion) return [];
        return [{ type: "cluster.k3s-upgraded", data: { from: state.spec.k3sVersion, to } }];
      }
      case "cluster.replace-node": {
        const { slot, instanceId, reason, drainFirst } = command.data;
        if (state.status === "Absent" || isEnding(state) || state.status === "Failed") return [];
        const s = state.slots[slot];
        // Only the instance the slot has now: a report about an earlier one is stale.
        if (!s || s.instanceId !== instanceId || (s.status !== "running" && s.status !== "launched"))
          return [];
        const relaunch = launch(state.spec, s, (state.attempts[slot] ?? s.attempt) + 1, []);
        if (!relaunch) return [];
        return [
          {
            type: "cluster.node-replacement-requested",
            data: { slot, instanceId, reason, ...(drainFirst ? { drainFirst } : {}) },
          },
          relaunch,
        ];
      }
      case "cluster.finish-deletion": {
        if (state.status !== "Deleting") return [];
        const { terminated, sessionsLeft } = command.data;
        return [
          {
            type: "cluster.deleted",
            data: { terminated, ...(sessionsLeft && sessionsLeft.length > 0 ? { sessionsLeft } : {}) },
          },
        ];
      }
      default:
        return assertNever(command);
    }
  },

  evolve(state, event) {
    if (event.type === "cluster.requested") {
      return {
        status: "Pending",
        spec: event.data.spec,
        specHistory: [{ version: event.position, spec: event.data.spec }],
        provisioned: false,
        slots: {},
        attempts: {},
      };
    }
    if (state.status === "Absent") return state;
    // 1. What the shared lifecycle says: the status, the spec (each change kept for
    //    rollback) and the status of the slot the event moves, if it has one.
    const spec = clusterSpecAfter(state.spec, event);
    const next: Active = {
      ...state,
      status: clusterStatusAfter(state.status, event),
      spec,
      specHistory:
        spec === state.spec ? state.specHistory : [...state.specHistory, { version: event.position, spec }],
    };
    const move = slotMoveOf(event);
    const moved = move
      ? withSlot(next, move.slot, (s) => (move.status ? { ...s, status: move.status } : undefined))
      : next;
    // 2. What only the provisioner keeps: launch attempts and placements, instance ids,
    //    instances draining before termination.
    switch (event.type) {
      case "cluster.provisioning-started":
        return { ...moved, provisioned: true };
      case "cluster.instance-launch-requested": {
        const { slot, pool, ordinal, role, attempt, placement } = event.data;
        const s: Slot = {
          slot,
          pool,
          ordinal,
          role,
          attempt,
          placement: toPlacement(placement),
          failed: next.slots[slot]?.failed ?? [],
          status: SLOT_TRANSITIONS[event.type],
        };
        const attempts = owned<Record<number, number>>(next.attempts);
        attempts[slot] = Math.max(attempt, next.attempts[slot] ?? 0);
        const slots = owned<Record<number, Slot>>(next.slots);
        slots[slot] = s;
        return { ...next, slots, attempts };
      }
      case "cluster.instance-launched":
        // A launch request made the slot anew, so no earlier attempt's address is left.
        return withSlot(moved, event.data.slot, (s) => ({
          ...s,
          instanceId: event.data.instanceId,
          ...(event.data.privateIp ? { privateIp: event.data.privateIp } : {}),
        }));
      case "cluster.instance-launch-failed":
        return withSlot(moved, event.data.slot, (s) => ({
          ...s,
          failed: event.data.capacity ? [...s.failed, toPlacement(event.data.placement)] : s.failed,
        }));
      case "cluster.node-replacement-requested": {
        const { instanceId, slot, drainFirst } = event.data;
        return drainFirst ? { ...moved, draining: { ...moved.draining, [instanceId]: slot } } : moved;
      }
      case "cluster.retry-requested":
        return {
          ...moved,
          slots: Object.fromEntries(Object.entries(moved.slots).map(([k, v]) => [k, { ...v, failed: [] }])),
        };
      case "cluster.deleted":
        return { ...moved, slots: {} };
      default:
        return moved;
    }
  },
};

/**
 * Many events folded at once, equal to `events.reduce(evolve, state)`: the slot and
 * attempt maps are copied once for the fold, not once per event (`drafts`), and `state`
 * is left as it was. Synchronous, so no other fold sees the drafts.
 */
function evolveClusterAll(state: ClusterState, events: readonly EventEnvelope<ClusterEvent>[]): ClusterState {
  const outer = drafts;
  drafts = new WeakSet();
  try {
    let s = state;
    for (const e of events) s = unbatched.evolve(s, e);
    return s;
  } finally {
    drafts = outer;
  }
}

export const clusterDecider: Decider<ClusterCommand, ClusterEvent, ClusterState, ClusterObservation> = {
  ...unbatched,
  evolveAll: evolveClusterAll,
  /**
   * Every decision's launch requests grouped into RunInstances calls (`batchLaunches`):
   * a pool of 500 slots is 5 calls, not 500. Pure, so the same decision gives the same
   * batches and ClientTokens on any replica, after any crash.
   */
  decide(command, state, ctx) {
    const d = unbatched.decide(command, state, ctx);
    return isRejection(d) ? d : batchLaunches(d);
  },
};
