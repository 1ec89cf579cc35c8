export * from "./clock.ts";
export * from "./faults.ts";
export * from "./random.ts";
export * from "./request-log.ts";
export * from "./sim.ts";
export type * from "./world.ts";
