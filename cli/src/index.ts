export * from "./api-client.ts";
export * from "./demo.ts";
export * from "./up.ts";
