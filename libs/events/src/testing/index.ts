export * from "./cluster-history.ts";
export * from "./counter.ts";
export * from "./decider-spec.ts";
export * from "./jetstream.ts";
export * from "./tracing.ts";
export * from "./until.ts";
