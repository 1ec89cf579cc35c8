export * from "./nats-cluster.ts";
export * from "./nats-server.ts";
export * from "./postgres.ts";
