/**
 * NATS sends of one turn of the event loop, made together at its end.
 *
 * nats.js writes to its socket at the end of every microtask checkpoint in which something
 * was sent (nats-core's `sendCommand` queues `flushPending` as a microtask). A service that
 * settles one message per macrotask — an ack once a command's append was acked, a reactor's
 * ack once its reaction returned, each in the callback of its own socket read — makes one
 * `write` system call per protocol message. On a 2-core machine at 500 commands/s that was
 * a fifth of the provisioner's CPU (`writeBuffer`, bench/command-read) and, through the
 * reads it causes, a good part of nats-server's.
 *
 * `atTurnEnd(send)` runs `send` (a synchronous nats.js call: `msg.ack()`, `nc.publish(…)`)
 * at the end of the current turn (`setImmediate`: after every I/O callback of the turn),
 * with every other send deferred in the same turn, one after another in one macrotask: one
 * microtask checkpoint, so one socket write per connection. Order among deferred sends is
 * kept; a send is never later than the end of the turn it was asked for in.
 *
 * What may be deferred: sends whose caller does not wait on the write itself — settlements
 * (ack, nak, term: already decided, the work behind them already committed) and publishes
 * whose answer comes back on a subscription. Never a send whose caller closes or drains the
 * connection in the same turn without `flushTurnWrites()` first.
 */

const queue: (() => void)[] = [];
let scheduled: NodeJS.Immediate | undefined;
/** Sends that ride along with the next turn's sends, or go on their own after `ACK_LINGER_MS`. */
const riders: (() => void)[] = [];
let riderTimer: NodeJS.Timeout | undefined;

/**
 * How long an acknowledgement may wait for a write to ride along with. Nothing waits on an
 * ack (the work behind it is committed; the server only needs it within the ack wait, 5 s),
 * while every ack sent on its own is a write system call here and a read and a wake-up in
 * nats-server. Under traffic there is a send to ride with within a millisecond or two (the
 * next command's look or append); idle, the ack goes on its own after this.
 */
export const ACK_LINGER_MS = 5;

/** Defers `send` to the end of this turn of the event loop (see the module's comment). */
export function atTurnEnd(send: () => void): void {
  queue.push(send);
  scheduled ??= setImmediate(flushTurnWrites);
}

/**
 * Defers a send nobody waits on (an ack) until the next turn's sends go ({@link atTurnEnd}),
 * or `ACK_LINGER_MS` at most: one socket write for it and them. A process killed meanwhile
 * loses it, as it would lose an ack still in its socket buffer: the message comes back
 * after the ack wait and its handling is idempotent (commit ids, expected sequences).
 */
export function withNextWrite(send: () => void): void {
  riders.push(send);
  riderTimer ??= setTimeout(flushTurnWrites, ACK_LINGER_MS);
}

/**
 * Runs every deferred send now (before a connection is drained or closed, so that nothing
 * deferred is lost with it). A send that throws (its connection closed meanwhile) is
 * dropped: it was a settlement or a publish whose caller hears of it by its own timeout.
 */
export function flushTurnWrites(): void {
  if (scheduled) {
    clearImmediate(scheduled);
    scheduled = undefined;
  }
  if (riderTimer) {
    clearTimeout(riderTimer);
    riderTimer = undefined;
  }
  // A send deferred by one of these (none is today) waits for the next turn.
  const sends = riders.length > 0 ? [...riders.splice(0), ...queue.splice(0)] : queue.splice(0);
  for (const send of sends) {
    try {
      send();
    } catch {
      // See above: dropped.
    }
  }
}
