export * from "./cluster/decider.ts";
export * from "./provisioner.ts";
