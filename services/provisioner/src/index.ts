export * from "./adapters/ec2.ts";
export * from "./adapters/ec2-errors.ts";
export * from "./cluster/decider.ts";
export * from "./cluster/placement.ts";
export * from "./cluster/reactor.ts";
export * from "./observability.ts";
export * from "./ports.ts";
export * from "./provisioner.ts";
