export * from "./api-client.ts";
export * from "./demo.ts";
export * from "./replay.ts";
export * from "./up.ts";
