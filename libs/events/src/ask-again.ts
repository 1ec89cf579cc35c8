/**
 * JetStream API requests that a cluster may leave unanswered, asked again. On a NATS cluster
 * (nats-server 2.9 with R3 streams, as `npm run stack` and deploy/ run it) a request can go
 * without an answer until it times out, though nothing failed:
 *  - an ephemeral (R1) consumer of an R3 stream may be placed on a server that is down, and its
 *    create is never answered ("consumer is offline"); fixed in nats-server 2.12
 *    (nats-io/nats-server#7165). Asked again, it gets a new name and a new placement, on a
 *    live server with two chances in three or better; one made late on the returning server
 *    goes away with its inactivity threshold (5 min, set by nats.js);
 *  - two replicas creating the same durable consumer at once, or asking for its info while its
 *    group elects a leader, can wait for an answer that never comes.
 * Each attempt here waits a short while (the client's own timeout is longer), then asks again.
 * Only for requests that are safe to repeat: reads, and creates that are idempotent.
 */
import type { Consumer, JetStreamClient, OrderedConsumerOptions } from "@nats-io/jetstream";
import { TimeoutError } from "@nats-io/transport-node";

export interface AskAgainOptions {
  /** How long one attempt may take before it is asked again. Default 3 000 ms. */
  readonly attemptTimeoutMs?: number;
  /** Attempts in all. Default 6. */
  readonly attempts?: number;
}

/** One attempt took longer than its time. */
export class AttemptTimeoutError extends Error {
  override readonly name = "AttemptTimeoutError";
}

/**
 * Runs `ask` until it answers, asking again after an attempt that took longer than
 * `attemptTimeoutMs` or that the client timed out; any other error is thrown at once, and the
 * last timeout after `attempts`. A late answer of an abandoned attempt is handed to `discard`.
 * @example await askAgain("consumer info", () => jsm.consumers.info("EVT", "projector"))
 */
export async function askAgain<T>(
  what: string,
  ask: () => Promise<T>,
  opts: AskAgainOptions & { discard?: (late: T) => void } = {},
): Promise<T> {
  const attempts = opts.attempts ?? 6;
  const timeoutMs = opts.attemptTimeoutMs ?? 3_000;
  for (let attempt = 1; ; attempt++) {
    let timer: NodeJS.Timeout | undefined;
    const pending = ask();
    try {
      return await Promise.race([
        pending,
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () =>
              reject(
                new AttemptTimeoutError(
                  `${what}: no answer within ${timeoutMs} ms (attempt ${attempt} of ${attempts})`,
                ),
              ),
            timeoutMs,
          );
        }),
      ]);
    } catch (err) {
      const timedOut = err instanceof AttemptTimeoutError || err instanceof TimeoutError;
      if (!timedOut || attempt >= attempts) throw err;
      if (err instanceof AttemptTimeoutError) pending.then((late) => opts.discard?.(late)).catch(() => {});
    } finally {
      clearTimeout(timer);
    }
  }
}

/**
 * `js.consumers.get(stream, opts)` (an ordered consumer), asked again under a new name when a
 * create goes unanswered (see the top of this file).
 * @example const c = await openOrderedConsumer(js, "EVT", { filter_subjects: "evt.cluster.demo-1" });
 */
export function openOrderedConsumer(
  js: JetStreamClient,
  stream: string,
  opts: Partial<OrderedConsumerOptions>,
  retry: AskAgainOptions = {},
): Promise<Consumer> {
  // Each call gets a fresh name (nats.js picks a new prefix): a new placement.
  return askAgain(`creating an ordered consumer on ${stream}`, () => js.consumers.get(stream, { ...opts }), {
    ...retry,
    discard: (late) => void late.delete().catch(() => {}),
  });
}
