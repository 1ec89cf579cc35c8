export * from "./decider-spec.ts";
export * from "./tracing.ts";
export * from "./counter.ts";
