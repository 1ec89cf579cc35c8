import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";

/** `NATS_URL`, else what `cairn up` wrote in the data dir, else the default on loopback. */
export function natsUrl(env = process.env): string {
  if (env.NATS_URL) return env.NATS_URL;
  try {
    const endpoints = JSON.parse(
      readFileSync(join(resolve(env.CAIRN_DATA_DIR ?? ".cairn"), "endpoints.json"), "utf8"),
    );
    if (typeof endpoints.natsUrl === "string") return endpoints.natsUrl;
  } catch {
    // no local run recorded
  }
  return "nats://127.0.0.1:4222";
}
