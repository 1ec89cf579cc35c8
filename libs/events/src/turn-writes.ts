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

/** Defers `send` to the end of this turn of the event loop (see the module's comment). */
export function atTurnEnd(send: () => void): void {
  queue.push(send);
  scheduled ??= setImmediate(flushTurnWrites);
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
  // A send deferred by one of these (none is today) waits for the next turn.
  const sends = queue.splice(0);
  for (const send of sends) {
    try {
      send();
    } catch {
      // See above: dropped.
    }
  }
}
