import { defineRejected } from "./common.ts";
import type { EventOf } from "./define.ts";

// Session workloads on a cluster (owned by node-ops); their events arrive with it.
export const WorkloadRejected = defineRejected("workload");
export const workloadEvents = [WorkloadRejected] as const;
export type WorkloadEvent = EventOf<(typeof workloadEvents)[number]>;
