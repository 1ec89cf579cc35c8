export * from "./clock.ts";
export type { Ec2SimPort, SpotInterruptionNotice } from "./ec2/index.ts";
export { spotInterruptionWarning } from "./ec2/index.ts";
export * from "./faults.ts";
export * from "./random.ts";
export * from "./request-log.ts";
export * from "./sim.ts";
export { SPOT_INTERRUPTION_QUEUE } from "./sqs/index.ts";
export type * from "./world.ts";
