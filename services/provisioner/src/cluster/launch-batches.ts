/**
 * Which slots one RunInstances launches together. Pure.
 *
 * EC2 launches many instances in one call (MinCount/MaxCount), under one ClientToken,
 * with the same parameters for every instance: one image, instance type, zone, market and
 * set of tags. So a batch is a run of slots that differ in nothing EC2 is told: the same
 * pool (hence role), placement and attempt (the `cairn:attempt` tag), and consecutive
 * slot numbers, so that the instance with AmiLaunchIndex k is slot `firstSlot + k` and its
 * `cairn:slot` tag (the batch's first slot) says which without the log.
 */
import { type ClusterEvent, MAX_LAUNCH_BATCH } from "@cairn/events";

type LaunchRequested = Extract<ClusterEvent, { type: "cluster.instance-launch-requested" }>;

const isLaunch = (e: ClusterEvent): e is LaunchRequested => e.type === "cluster.instance-launch-requested";

/** What every member of a batch shares: the parameters of the one call. */
const callKey = (d: LaunchRequested["data"]) =>
  JSON.stringify([
    d.pool,
    d.role,
    d.attempt,
    d.placement.instanceType,
    d.placement.availabilityZone ?? null,
    d.placement.capacityType,
  ]);

/**
 * A decision's events with its launch requests grouped into RunInstances calls: each
 * request that shares its call with others carries `batch: { firstSlot, count }`; one
 * alone carries none (launched as before, one call with its own token). Events keep their
 * order; nothing else changes. Deterministic: the same decision gives the same batches,
 * so the same ClientTokens after any crash.
 *
 * @example batchLaunches([launch(1000), launch(1001), launch(1003)])
 *   // 1000 and 1001 get { firstSlot: 1000, count: 2 }; 1003 none
 */
export function batchLaunches(events: readonly ClusterEvent[], max = MAX_LAUNCH_BATCH): ClusterEvent[] {
  const launches = events.filter(isLaunch);
  if (launches.length < 2) return [...events];
  const sorted = [...launches].sort((a, b) => a.data.slot - b.data.slot);
  const batchOf = new Map<LaunchRequested, { firstSlot: number; count: number }>();
  let run: LaunchRequested[] = [];
  const close = () => {
    if (run.length > 1) {
      const batch = { firstSlot: run[0]!.data.slot, count: run.length };
      for (const e of run) batchOf.set(e, batch);
    }
    run = [];
  };
  for (const e of sorted) {
    const last = run.at(-1);
    if (
      !last ||
      run.length >= max ||
      e.data.slot !== last.data.slot + 1 ||
      callKey(e.data) !== callKey(last.data)
    )
      close();
    run.push(e);
  }
  close();
  return events.map((e) => {
    const batch = isLaunch(e) ? batchOf.get(e) : undefined;
    return batch && isLaunch(e) ? { ...e, data: { ...e.data, batch } } : e;
  });
}

/** The batch a launch request belongs to: its own, or a batch of one (events recorded before batches). */
export function batchOf(d: LaunchRequested["data"]): { firstSlot: number; count: number } {
  return d.batch ?? { firstSlot: d.slot, count: 1 };
}
