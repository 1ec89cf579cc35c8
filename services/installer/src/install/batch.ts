/**
 * Batches, pure: the agent joins one decision requests go out as few SSM commands as
 * possible instead of one per node. SSM runs one document with one set of parameters on
 * up to 50 instances per SendCommand; an agent join's script is the same on every node
 * of a pool with one capacity type (the node names itself after its instance id, read on
 * the instance), so the joins of such a group are one command per 50 nodes, and their
 * progress one ListCommandInvocations per command.
 *
 * What stays per node: the step's attempt, its result, its retries (a failed node's next
 * attempt is a new request, batched with whatever else that decision requests), its
 * removal. A batch is only how the request is carried out.
 *
 * @example batchSteps(state, [requested(1001), requested(1002)], 7)
 *   // → the two requests with `batch: "7.0"`, then `install.batch-requested { batch: "7.0", slots: [1001, 1002] }`
 */
import { type InstallEvent, type InstallStep, MAX_BATCH_INSTANCES } from "@cairn/events";
import { after, type InstallState } from "./state.ts";

/** Steps whose script does not depend on the node: the joins of agents. */
export const BATCHED_STEPS: ReadonlySet<InstallStep> = new Set(["k3s-agent-join"]);

type StepRequested = Extract<InstallEvent, { type: "install.step-requested" }>;

/**
 * Groups the batchable steps `events` request (decided on `state`) into batches of 2 to
 * 50 nodes with the same script: the same step, pool and capacity type. Each member's
 * request names its batch, and one `install.batch-requested` per batch follows the
 * decision's events. A group of one stays a request of its own. `version` is the install's
 * version before the decision: batch ids are `<version>.<n>`, unique within the install.
 */
export function batchSteps(
  state: InstallState,
  events: readonly InstallEvent[],
  version: number,
): InstallEvent[] {
  const candidates = events.filter(
    (e): e is StepRequested => e.type === "install.step-requested" && BATCHED_STEPS.has(e.data.step),
  );
  if (candidates.length < 2) return [...events];
  const end = after(state, events);
  if (end.status === "Absent") return [...events];
  // Only requests still standing when the decision ends (a node added and replaced in one
  // group commit leaves a request of an instance that is gone).
  const groups = new Map<string, StepRequested[]>();
  for (const e of candidates) {
    const n = end.nodes[e.data.slot];
    if (n?.instanceId !== e.data.instanceId || n.step?.status !== "requested") continue;
    if (n.step.name !== e.data.step || n.step.attempt !== e.data.attempt) continue;
    const key = JSON.stringify([e.data.step, n.pool, n.capacityType]);
    groups.set(key, [...(groups.get(key) ?? []), e]);
  }
  const batchOf = new Map<StepRequested, string>();
  const batches: InstallEvent[] = [];
  for (const group of groups.values()) {
    for (let i = 0; i < group.length; i += MAX_BATCH_INSTANCES) {
      const members = group.slice(i, i + MAX_BATCH_INSTANCES);
      if (members.length < 2) continue;
      const batch = `${version}.${batches.length}`;
      for (const m of members) batchOf.set(m, batch);
      batches.push({
        type: "install.batch-requested",
        data: {
          batch,
          step: members[0]!.data.step,
          slots: members.map((m) => m.data.slot),
          instanceIds: members.map((m) => m.data.instanceId),
        },
      });
    }
  }
  if (batches.length === 0) return [...events];
  return [
    ...events.map((e) => {
      const batch = e.type === "install.step-requested" ? batchOf.get(e) : undefined;
      return batch !== undefined && e.type === "install.step-requested"
        ? { ...e, data: { ...e.data, batch } }
        : e;
    }),
    ...batches,
  ];
}
