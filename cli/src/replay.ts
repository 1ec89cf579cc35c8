/**
 * `cairn replay`: asks the running projector (over NATS, `cairn.admin.projector.replay`)
 * to rebuild every read model and swap it in, or only to compare (`--check-only`), and
 * prints its report. The projector does the work: it holds the apply lock the swap needs.
 */
import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { connectNats } from "@cairn/events";
import { REPLAY_SUBJECT, type ReplayReply, type ReplayRequest } from "@cairn/projector";

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

/** Sends the request and waits for the projector's answer (a replay of a big log takes minutes). */
export async function requestReplay(
  request: ReplayRequest,
  opts: { url?: string; timeoutMs?: number } = {},
): Promise<ReplayReply> {
  const nats = await connectNats(opts.url ?? natsUrl(), { name: "cairn-cli" });
  try {
    const reply = await nats.nc.request(REPLAY_SUBJECT, JSON.stringify(request), {
      timeout: opts.timeoutMs ?? 30 * 60_000,
    });
    return reply.json<ReplayReply>();
  } catch (err) {
    if ((err as Error).message?.includes("no responders"))
      throw new Error(`no projector answers on ${REPLAY_SUBJECT} (is the projector running?)`, {
        cause: err,
      });
    throw err;
  } finally {
    await nats.close();
  }
}
