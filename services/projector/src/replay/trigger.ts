/**
 * Replay on the bus: the projector answers core-NATS requests on
 * `cairn.admin.projector.replay` (queue group `projector`, so one instance takes each).
 * The reply comes when the replay is done: `{ ok: true, result }` or
 * `{ ok: false, error, message }`. This is a contract extension (docs/projector.md):
 * the projector owns no aggregate, so it is an admin request, not a `cmd.*` command.
 */
import { adminSubject, describeError, type Nats, type RunnerLogger } from "@cairn/events";
import { z } from "zod";
import { type ReplayOptions, type ReplayResult, replay } from "./replay.ts";

export const REPLAY_SUBJECT = adminSubject("projector", "replay");

export const replayRequest = z
  .object({
    checkOnly: z.boolean().default(false),
    keepOld: z.boolean().default(false),
    batchSize: z.number().int().min(1).max(100_000).optional(),
  })
  .strict();
export type ReplayRequest = z.input<typeof replayRequest>;

export type ReplayReply =
  | { readonly ok: true; readonly result: ReplayResult }
  | { readonly ok: false; readonly error: string; readonly message: string };

export interface ReplayServer {
  /** Stops taking requests; a replay under way stops between batches (it resumes next time). */
  stop(): Promise<void>;
}

/** Subscribes to replay requests; runs them one at a time. */
export function serveReplayRequests(
  opts: Omit<ReplayOptions, "checkOnly" | "keepOld" | "signal" | "batchSize"> & { logger: RunnerLogger },
): ReplayServer {
  const { nats, logger } = opts;
  const abort = new AbortController();
  let running: Promise<void> | undefined;
  const sub = subscribe(nats, async (body, respond) => {
    const req = replayRequest.safeParse(body);
    if (!req.success) {
      return respond({ ok: false, error: "BadRequest", message: z.prettifyError(req.error) });
    }
    if (running)
      return respond({ ok: false, error: "ReplayInProgressError", message: "a replay is running" });
    const task = (async () => {
      try {
        const result = await replay({ ...opts, ...req.data, signal: abort.signal });
        respond({ ok: true, result });
      } catch (err) {
        logger.error({ err: describeError(err) }, "replay failed");
        respond({ ok: false, error: (err as Error).name ?? "Error", message: describeError(err) });
      }
    })();
    running = task.finally(() => {
      running = undefined;
    });
  });
  logger.info({ subject: REPLAY_SUBJECT }, "replay requests are served");
  return {
    stop: async () => {
      sub.unsubscribe();
      abort.abort();
      await running;
    },
  };
}

function subscribe(nats: Nats, handle: (body: unknown, respond: (reply: ReplayReply) => void) => void) {
  return nats.nc.subscribe(REPLAY_SUBJECT, {
    queue: "projector",
    callback: (err, msg) => {
      if (err) return;
      let body: unknown;
      try {
        body = msg.data.length === 0 ? {} : msg.json();
      } catch {
        body = undefined;
      }
      handle(body, (reply) => {
        msg.respond(JSON.stringify(reply));
      });
    },
  });
}
