import { type Nats, openOrderedConsumer, Streams } from "@cairn/events";
import { DeliverPolicy, type JsMsg } from "@nats-io/jetstream";

/** The stream's last sequence (0 when empty). */
export async function streamHead(nats: Nats): Promise<number> {
  return (await nats.jsm.streams.info(Streams.events)).state.last_seq;
}

/**
 * Reads `EVT` from `from` to `until` (inclusive) with an ordered consumer — ephemeral,
 * nothing acked, the live durable untouched — and yields it in batches of at most
 * `batchSize`. Deleted sequences are simply absent. The consumer goes when the
 * iteration ends (also when the caller stops early).
 */
export async function* readLog(
  nats: Nats,
  from: number,
  until: number,
  batchSize: number,
): AsyncGenerator<JsMsg[]> {
  if (until < from) return;
  // No filter: `EVT` holds only `evt.>`, and multi-filter consumers need nats-server 2.10.
  const consumer = await openOrderedConsumer(nats.js, Streams.events, {
    deliver_policy: DeliverPolicy.StartSequence,
    opt_start_seq: from,
  });
  // Several batches' worth in flight, so reading overlaps with applying.
  const msgs = await consumer.consume({ max_messages: Math.max(1_000, batchSize * 2) });
  try {
    let batch: JsMsg[] = [];
    for await (const m of msgs) {
      if (m.seq <= until) batch.push(m);
      // pending 0: the stream has nothing more right now (the end was deleted).
      const done = m.seq >= until || m.info.pending === 0;
      if (batch.length >= batchSize || (done && batch.length > 0)) {
        yield batch;
        batch = [];
      }
      if (done) return;
    }
  } finally {
    await msgs.close().catch(() => {});
  }
}
