/**
 * Creates what Cairn needs in JetStream before its services start, as the `admin` NATS user:
 *  - the streams CMD, EVT and DLQ (`ensureStreams`: drift is reported, never rewritten);
 *  - the leader-lease KV bucket `cairn_leases`;
 *  - each command-serving service's durable pull consumer on CMD, exactly as the service's
 *    consumer runner would make it (so the service finds it and changes nothing).
 * Services may not create streams or buckets (deploy/nats/nats.conf), so run this once per
 * environment, and again after an upgrade that adds a stream or a command consumer.
 *
 *   NATS_URL=nats://127.0.0.1:4222 CAIRN_NATS_USER=admin CAIRN_NATS_PASSWORD=… \
 *   CAIRN_NATS_REPLICAS=3 node deploy/nats/bootstrap.ts
 *
 * Exit code 0: everything exists (created now or before); drift is printed but is not an error.
 */

import {
  Buckets,
  ensureConsumer,
  ensureStreams,
  expectedStreams,
  type Nats,
  natsConnectOptions,
  resolveNatsAccess,
  Streams,
} from "@cairn/events";
import { envVars, loadConfig } from "@cairn/service";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { connect } from "@nats-io/transport-node";
import { z } from "zod";

/**
 * The durable consumer on CMD of each command-serving service: nats.conf lets each service use
 * only its own, by this name and filter. The batch size is the one `serveCommands` uses, which
 * sets max_ack_pending; keep the two equal or a service's start will try to update the consumer.
 */
export const COMMAND_CONSUMERS = [
  { service: "provisioner", durable: "provisioner-commands", filterSubject: "cmd.cluster.>" },
  { service: "installer", durable: "installer-commands", filterSubject: "cmd.install.>" },
  { service: "idle-detector", durable: "idle-detector-commands", filterSubject: "cmd.session.>" },
  { service: "node-ops", durable: "node-ops-commands", filterSubject: "cmd.node.>" },
  { service: "node-ops", durable: "node-ops-workload-commands", filterSubject: "cmd.workload.>" },
  // Not a family of its own: dead-letters what lands on a command subject nobody serves.
  { service: "projector", durable: "projector-stray-commands", filterSubject: "cmd.>" },
] as const;
export const COMMAND_BATCH_SIZE = 64;

export interface BootstrapReport {
  /** Streams, the bucket's stream (`KV_cairn_leases`) and consumers (`CMD/<durable>`). */
  readonly created: string[];
  readonly unchanged: string[];
  /** Command consumers whose filter, ack wait or max ack pending were brought up to date. */
  readonly updated: string[];
  readonly drift: { stream: string; field: string; expected: unknown; actual: unknown }[];
}

/** Idempotent: a second run creates nothing. `replicas`: 1 for a single server, 3 for a cluster. */
export async function bootstrapJetStream(
  nats: Pick<Nats, "nc" | "js" | "jsm">,
  opts: { replicas?: number } = {},
): Promise<BootstrapReport> {
  const replicas = opts.replicas ?? 1;
  const streams = await ensureStreams(nats.jsm, expectedStreams({ replicas }));
  const report: BootstrapReport = {
    created: [...streams.created],
    unchanged: [...streams.unchanged],
    updated: [],
    drift: [...streams.drift],
  };
  // The bucket the leader lease would create (history 1); Kvm.create only reads an existing one.
  const bucketStream = `KV_${Buckets.leases}`;
  const bucketExisted = await nats.jsm.streams.info(bucketStream).then(
    () => true,
    () => false,
  );
  await new Kvm(nats.nc).create(Buckets.leases, { history: 1, replicas });
  (bucketExisted ? report.unchanged : report.created).push(bucketStream);
  // The idle-detector's session heartbeats (last value per session), made here for the same reason.
  const heartbeatStream = `KV_${Buckets.heartbeats}`;
  const heartbeatsExisted = await nats.jsm.streams.info(heartbeatStream).then(
    () => true,
    () => false,
  );
  await new Kvm(nats.nc).create(Buckets.heartbeats, { history: 1, replicas });
  (heartbeatsExisted ? report.unchanged : report.created).push(heartbeatStream);

  for (const c of COMMAND_CONSUMERS) {
    const configOf = () =>
      nats.jsm.consumers.info(Streams.commands, c.durable).then(
        (i) => JSON.stringify(i.config),
        () => undefined,
      );
    const before = await configOf();
    await ensureConsumer({
      js: nats.js,
      jsm: nats.jsm,
      stream: Streams.commands,
      durable: c.durable,
      filterSubject: c.filterSubject,
      batchSize: COMMAND_BATCH_SIZE,
    });
    const name = `${Streams.commands}/${c.durable}`;
    if (before === undefined) report.created.push(name);
    else if (before === (await configOf())) report.unchanged.push(name);
    else report.updated.push(name);
  }
  return report;
}

/** The script's environment: the admin user by default, credentials apart from the URL. */
export const bootstrapConfig = z.object({
  NATS_URL: envVars.string(),
  CAIRN_NATS_USER: envVars.string().default("admin"),
  CAIRN_NATS_PASSWORD: envVars.string(),
  CAIRN_NATS_REPLICAS: z.coerce.number("must be 1, 3 or 5").int().min(1).max(5).default(1),
  /** TLS, as the services take it (docs/security.md). */
  NATS_CA: envVars.string().optional(),
  NATS_CERT: envVars.string().optional(),
  NATS_KEY: envVars.string().optional(),
});

if (import.meta.main) {
  let config: z.output<typeof bootstrapConfig>;
  try {
    config = loadConfig(bootstrapConfig);
  } catch (err) {
    process.stderr.write(`bootstrap: ${(err as Error).message}\n`);
    process.exit(2);
  }
  // Credentials as options: nats.js ignores a user and password written in the URL. TLS as a
  // service takes it (NATS_CA, NATS_CERT, NATS_KEY).
  const nc = await connect({
    ...natsConnectOptions(
      resolveNatsAccess({
        NATS_URL: config.NATS_URL,
        NATS_USER: config.CAIRN_NATS_USER,
        NATS_PASSWORD: config.CAIRN_NATS_PASSWORD,
        NATS_CA: config.NATS_CA,
        NATS_CERT: config.NATS_CERT,
        NATS_KEY: config.NATS_KEY,
      }),
    ),
    name: "cairn-bootstrap",
    waitOnFirstConnect: true,
    maxReconnectAttempts: 60,
    reconnectTimeWait: 1_000,
  });
  try {
    const report = await bootstrapJetStream(
      { nc, js: jetstream(nc), jsm: await jetstreamManager(nc) },
      { replicas: config.CAIRN_NATS_REPLICAS },
    );
    process.stdout.write(`${JSON.stringify(report)}\n`);
    for (const d of report.drift) {
      process.stderr.write(
        `bootstrap: stream ${d.stream} ${d.field} is ${JSON.stringify(d.actual)}, Cairn expects ${JSON.stringify(d.expected)}\n`,
      );
    }
  } finally {
    await nc.drain();
  }
}
