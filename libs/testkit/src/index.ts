export * from "./nats-server.ts";
export * from "./postgres.ts";
