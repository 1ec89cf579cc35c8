export * from "./adapters/ssm.ts";
export * from "./install/decider.ts";
export * from "./install/health-probe.ts";
export * from "./install/output.ts";
export * from "./install/reactor.ts";
export * from "./installer.ts";
export * from "./ports.ts";
export * from "./scripts/steps.ts";
