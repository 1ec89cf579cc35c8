import { type JetStreamClient, type JetStreamManager, jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { type NatsAccess, natsConnectOptions, natsServers, resolveNatsAccess } from "./nats-access.ts";

export { natsServers };

export interface Nats {
  readonly nc: NatsConnection;
  readonly js: JetStreamClient;
  readonly jsm: JetStreamManager;
  close(): Promise<void>;
}

/**
 * Connects for the long haul: reconnects forever (a NATS restart is an outage to
 * ride out, not a crash) and waits on the first connect. `target` is a `NATS_URL` (a user and
 * password may be written in it) or an access resolved from the environment with
 * `resolveNatsAccess` (a creds file, a user and password, TLS files).
 * @example
 * await connectNats(resolveNatsAccess(process.env), { name: "provisioner" })
 */
export async function connectNats(
  target: string | NatsAccess,
  opts: {
    name?: string;
    /** The server does not deliver this connection's own publishes to its own subscriptions. */
    noEcho?: boolean;
  } = {},
): Promise<Nats> {
  const access = typeof target === "string" ? resolveNatsAccess({ NATS_URL: target }) : target;
  const nc = await connect({
    ...natsConnectOptions(access),
    name: opts.name ?? "cairn",
    noEcho: opts.noEcho ?? false,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 250,
    waitOnFirstConnect: true,
    // nats.js otherwise builds an Error (a captured stack) for every request and JetStream
    // publish, in case it times out: a tenth of a busy process's time on the heartbeat path.
    // A timeout still fails with its TimeoutError, only without the caller's stack.
    noAsyncTraces: true,
  });
  const js = jetstream(nc, { timeout: 10_000 });
  const jsm = await jetstreamManager(nc, { timeout: 10_000 });
  return {
    nc,
    js,
    jsm,
    close: async () => {
      if (!nc.isClosed()) await nc.drain().catch(() => nc.close());
    },
  };
}
