/**
 * Opening an ordered consumer, riding out a known nats-server defect: on a cluster, an
 * ephemeral (R1) consumer of an R3 stream may be placed on a server that is down, and its
 * create request then goes unanswered ("consumer is offline") until the request times out.
 * Fixed in nats-server 2.12 (nats-io/nats-server#7165); Debian's 2.9 has it. Each attempt
 * here waits a short while and the next one asks again under a new name: another placement,
 * on a live server with two chances in three or better. A consumer created late on the
 * returning server is removed by its inactivity threshold (5 min, set by nats.js).
 */
import type { Consumer, JetStreamClient, OrderedConsumerOptions } from "@nats-io/jetstream";

export interface OrderedConsumerRetry {
  /** How long one create may take before it is asked again. Default 2 000 ms. */
  readonly attemptTimeoutMs?: number;
  /** Attempts in all. Default 6. */
  readonly attempts?: number;
}

/** An attempt to create the consumer took longer than its time. */
export class OrderedConsumerTimeoutError extends Error {
  override readonly name = "OrderedConsumerTimeoutError";
}

/**
 * `js.consumers.get(stream, opts)` (an ordered consumer), asked again when an attempt takes
 * longer than `attemptTimeoutMs`. Other errors are thrown at once.
 * @example const c = await openOrderedConsumer(js, "EVT", { filter_subjects: "evt.cluster.demo-1" });
 */
export async function openOrderedConsumer(
  js: JetStreamClient,
  stream: string,
  opts: Partial<OrderedConsumerOptions>,
  retry: OrderedConsumerRetry = {},
): Promise<Consumer> {
  const attempts = retry.attempts ?? 6;
  const timeoutMs = retry.attemptTimeoutMs ?? 2_000;
  for (let attempt = 1; ; attempt++) {
    let timer: NodeJS.Timeout | undefined;
    // Each call gets a fresh name (nats.js picks a new prefix): a new placement.
    const pending = js.consumers.get(stream, { ...opts });
    try {
      return await Promise.race([
        pending,
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () =>
              reject(
                new OrderedConsumerTimeoutError(
                  `creating an ordered consumer on ${stream} took over ${timeoutMs} ms (attempt ${attempt} of ${attempts})`,
                ),
              ),
            timeoutMs,
          );
        }),
      ]);
    } catch (err) {
      if (!(err instanceof OrderedConsumerTimeoutError) || attempt >= attempts) throw err;
      // The late answer, if any, is dropped: the consumer it made expires on its own.
      pending.then((c) => c.delete().catch(() => {})).catch(() => {});
    } finally {
      clearTimeout(timer);
    }
  }
}
