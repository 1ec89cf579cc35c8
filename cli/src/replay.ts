/**
 * `cairn replay`: asks the running projector (over NATS, `cairn.admin.projector.replay`)
 * to rebuild every read model and swap it in, or only to compare (`--check-only`), and
 * prints its report. The projector does the work: it holds the apply lock the swap needs.
 */
import { connectNats } from "@cairn/events";
import { REPLAY_SUBJECT, type ReplayReply, type ReplayRequest } from "@cairn/projector";
import { natsUrl } from "./nats-url.ts";

export { natsUrl };

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
