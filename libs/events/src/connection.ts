import { type JetStreamClient, type JetStreamManager, jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";

export interface Nats {
  readonly nc: NatsConnection;
  readonly js: JetStreamClient;
  readonly jsm: JetStreamManager;
  close(): Promise<void>;
}

/**
 * Splits `NATS_URL` (one or more comma-separated URLs) into servers and the user and
 * password written in them (`nats://provisioner:secret@nats:4222`): nats.js does not
 * read credentials from a URL, so they are handed over as options and never logged.
 */
export function natsServers(url: string): {
  servers: string[];
  user?: string;
  pass?: string;
  display: string;
} {
  let user: string | undefined;
  let pass: string | undefined;
  const servers = url
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean)
    .map((s) => {
      const withScheme = s.includes("://") ? s : `nats://${s}`;
      const u = new URL(withScheme);
      if (u.username) user = decodeURIComponent(u.username);
      if (u.password) pass = decodeURIComponent(u.password);
      return `${u.protocol}//${u.host}`;
    });
  return { servers, ...(user ? { user } : {}), ...(pass ? { pass } : {}), display: servers.join(",") };
}

/**
 * Connects for the long haul: reconnects forever (a NATS restart is an outage to
 * ride out, not a crash) and waits on the first connect. Credentials may be written
 * in the URL.
 */
export async function connectNats(url: string, opts: { name?: string } = {}): Promise<Nats> {
  const { servers, user, pass } = natsServers(url);
  const nc = await connect({
    servers,
    ...(user ? { user } : {}),
    ...(pass ? { pass } : {}),
    name: opts.name ?? "cairn",
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
