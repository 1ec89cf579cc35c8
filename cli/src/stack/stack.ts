/**
 * `npm run stack` (`cairn stack`): the production shape on one machine (DESIGN §8).
 *  0. The API ports (CAIRN_API_PORT and the next ones, one per projector) must be free.
 *  1. NATS: a cluster of three `nats-server` processes with routes on loopback, each loading
 *     deploy/nats/nats.conf (one user per service, each allowed only its own subjects), the
 *     passwords fresh for this run (or CAIRN_NATS_<USER>_PASSWORD when set).
 *  2. JetStream as admin (deploy/nats/bootstrap.ts): CMD, EVT, DLQ and the buckets at three
 *     replicas, and the command consumers; services may not create them.
 *  3. Postgres: DATABASE_URL, else the local server (database `cairn`), else an embedded one.
 *  4. The cloud: libs/sim as its own process, as `cairn up` does (or AWS when configured).
 *  5. Two processes of every service (`--replicas`) from its bundle (scripts/build.ts, built
 *     first), each as its own NATS user, with the
 *     environment deploy/ gives it (shape.ts), supervised: a crash is restarted with backoff.
 *  6. Where everything is, printed and written to <data dir>/endpoints.json (mode 0600: it holds
 *     the admin user's NATS URL, which the CLI reads); "Cairn is up" once a projector serves.
 * Ctrl-C or SIGTERM stops the services, then NATS, the sim and an embedded Postgres.
 */
import { mkdir } from "node:fs/promises";
import { createServer } from "node:net";
import { join, resolve } from "node:path";
import { connectNats, resolveNatsAccess } from "@cairn/events";
import { ensureDatabase, findPostgres, freePort, startNatsCluster } from "@cairn/testkit";
import { bootstrapJetStream } from "../../../deploy/nats/bootstrap.ts";
import { writeEndpointsFile } from "../endpoints-file.ts";
import { supervise } from "../supervisor.ts";
import { ApiPortTakenError, startSimProcess, usesRealAws, waitFor } from "../up.ts";
import {
  NATS_CONFIG_FILE,
  natsServerEnv,
  newNatsPasswords,
  SERVICE_MALLOC_ENV,
  SERVICE_NODE_OPTIONS,
  STACK_DEFAULTS,
  STACK_SERVICES,
  serviceEnv,
  simEnv,
} from "./shape.ts";

const root = resolve(import.meta.dirname, "../../..");

export interface StackOptions {
  readonly env?: NodeJS.ProcessEnv;
  /** Processes per service. Default 2. */
  readonly replicas?: number;
  /** NATS servers. Default 3 (streams at three replicas; 1 gives R1). */
  readonly natsNodes?: number;
}

function say(line: string) {
  process.stderr.write(`cairn: ${line}\n`);
}

export async function stack(opts: StackOptions = {}): Promise<void> {
  const env = { ...process.env, ...opts.env };
  const replicas = opts.replicas ?? STACK_DEFAULTS.replicas;
  const natsNodes = opts.natsNodes ?? STACK_DEFAULTS.natsNodes;
  const streamReplicas = Math.min(3, natsNodes);
  const dataDir = resolve(env.CAIRN_DATA_DIR ?? ".cairn");
  const apiPort = Number(env.CAIRN_API_PORT ?? 8080);
  const apiPorts = Array.from({ length: replicas }, (_, i) => apiPort + i);

  // 0.
  for (const p of apiPorts) if (await portTaken(p, "127.0.0.1")) throw new ApiPortTakenError(p, "127.0.0.1");
  await mkdir(dataDir, { recursive: true });
  const stops: (() => Promise<void>)[] = [];
  const undo = async () => {
    for (const stop of stops.reverse()) await stop().catch(() => {});
  };

  try {
    // 1.
    const passwords = newNatsPasswords(env);
    const cluster = await startNatsCluster({
      nodes: natsNodes,
      config: NATS_CONFIG_FILE,
      env: { ...env, ...natsServerEnv(passwords) },
      dataDir: join(dataDir, "stack-nats"),
    });
    stops.push(() => cluster.stop());
    say(`started a ${natsNodes}-node NATS cluster at ${cluster.url} (logs and stores in ${cluster.dataDir})`);

    // 2.
    const admin = await connectNats(
      resolveNatsAccess({ NATS_URL: cluster.url, NATS_USER: "admin", NATS_PASSWORD: passwords.admin }),
      { name: "cairn-stack-bootstrap" },
    );
    try {
      const report = await bootstrapJetStream(admin, { replicas: streamReplicas });
      for (const d of report.drift)
        say(
          `stream ${d.stream} ${d.field} is ${JSON.stringify(d.actual)}, expected ${JSON.stringify(d.expected)}`,
        );
      say(
        `JetStream ready at ${streamReplicas} replicas (created: ${report.created.join(", ") || "nothing"})`,
      );
    } finally {
      await admin.close();
    }

    // 3.
    let databaseUrl = env.DATABASE_URL;
    if (!databaseUrl) {
      const pg = await findPostgres({ dataDir: join(dataDir, "postgres"), useDatabaseUrl: false });
      if (pg.embedded) stops.push(() => pg.stop());
      databaseUrl = await ensureDatabase(pg, "cairn");
      say(pg.embedded ? "started an embedded Postgres" : "using the local Postgres (database cairn)");
    } else say("using Postgres at DATABASE_URL");

    // 4.
    let cloudEnv: Record<string, string> = {};
    if (usesRealAws(env)) say("using AWS as the SDK finds it");
    else {
      const simPort = Number(env.CAIRN_SIM_PORT ?? 4566);
      const sim = await startSimProcess(env, { root, dataDir, port: simPort });
      stops.push(sim.stop);
      const simUrl = sim.url;
      cloudEnv = simEnv(simUrl, { ...(env.AWS_REGION ? { region: env.AWS_REGION } : {}) });
      say(`started the simulated cloud at ${simUrl}`);
    }

    // 5. The services' bundles, as deploy/ runs them (scripts/build.ts; rolldown is a dev
    // dependency, as this command is a developer's).
    const { bundlePath, buildIfStale } = await import("../../../scripts/build.ts");
    const t0 = performance.now();
    let built = 0;
    for (const service of STACK_SERVICES) if (await buildIfStale(service)) built++;
    if (built > 0) say(`built ${built} bundles in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    const specs = [];
    for (const service of STACK_SERVICES) {
      for (let i = 0; i < replicas; i++) {
        specs.push({
          name: `${service}#${i + 1}`,
          command: process.execPath,
          args: [bundlePath(service)],
          env: {
            ...SERVICE_MALLOC_ENV,
            ...env,
            NODE_OPTIONS: [env.NODE_OPTIONS, SERVICE_NODE_OPTIONS].filter(Boolean).join(" "),
            ...cloudEnv,
            ...serviceEnv(service, {
              natsUrl: cluster.url,
              natsPassword: passwords[service],
              natsReplicas: streamReplicas,
              healthPort: await freePort(),
              healthHost: "127.0.0.1",
              logLevel: env.LOG_LEVEL ?? "info",
              dataDir,
              databaseUrl,
              apiPort: apiPorts[i]!,
              apiHost: "127.0.0.1",
              ...(env.OTEL_EXPORTER_OTLP_ENDPOINT ? { otlpEndpoint: env.OTEL_EXPORTER_OTLP_ENDPOINT } : {}),
              ...(env.JAEGER_UI_URL ? { jaegerUiUrl: env.JAEGER_UI_URL } : {}),
            }),
          },
        });
      }
    }
    let stopping = false;
    const supervisor = supervise(specs);
    const shutdown = async (code: number) => {
      if (stopping) return;
      stopping = true;
      await supervisor.stop();
      await undo();
      process.exit(code);
    };
    process.on("SIGINT", (signal) => {
      if (!stopping) return void shutdown(0);
      say(`${signal} again: killing the services now`);
      supervisor.kill();
    });
    process.on("SIGTERM", () => void shutdown(0));
    process.once("exit", () => supervisor.kill("SIGTERM"));

    // 6.
    const apiUrls = apiPorts.map((p) => `http://127.0.0.1:${p}`);
    const adminUrl = cluster.nodes
      .map((n) => `nats://admin:${encodeURIComponent(passwords.admin)}@127.0.0.1:${n.port}`)
      .join(",");
    await writeEndpointsFile(
      dataDir,
      { natsUrl: adminUrl, databaseUrl, apiUrl: apiUrls[0], docsUrl: `${apiUrls[0]}/docs` },
      0o600,
    );
    await waitFor(`${apiUrls[0]}/readyz`, 180_000);
    say(
      `Cairn is up (${replicas} processes per service, ${natsNodes} NATS servers). API ${apiUrls.join(" ")}  ` +
        `NATS ${cluster.url} (as admin: see ${join(dataDir, "endpoints.json")})`,
    );
  } catch (err) {
    await undo();
    throw err;
  }
}

/** True when another process listens on host:port. */
async function portTaken(port: number, host: string): Promise<boolean> {
  return await new Promise((res) => {
    const s = createServer();
    s.once("error", (err: NodeJS.ErrnoException) => res(err.code === "EADDRINUSE"));
    s.listen(port, host, () => s.close(() => res(false)));
  });
}
