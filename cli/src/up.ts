/**
 * `cairn up`: the whole control plane on one machine (DESIGN §8).
 *  1. NATS: NATS_URL, else a private nats-server (JetStream in <data dir>/nats).
 *  2. Postgres: DATABASE_URL, else the local server (database `cairn`), else an
 *     embedded one in <data dir>/postgres.
 *  3. The cloud: AWS as the SDK finds it (credentials and a region), else libs/sim as
 *     its own process on CAIRN_SIM_PORT, handed to the services through the SDK's own
 *     variables (AWS_ENDPOINT_URL_EC2, AWS_ENDPOINT_URL_SSM, AWS_ENDPOINT_URL_SQS, credentials).
 *  4. The five services as separate processes: they talk only through NATS.
 *  5. Where everything is, printed and written to <data dir>/endpoints.json.
 * Ctrl-C stops the services first, then what it started.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdir, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { ensureDatabase, findPostgres, freePort, type PostgresServer, startNatsServer } from "@cairn/testkit";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
export const SERVICES = ["provisioner", "installer", "idle-detector", "node-ops", "projector"] as const;

export interface Endpoints {
  natsUrl: string;
  databaseUrl: string;
  /** The simulated cloud's endpoint, when Cairn runs against the sim. */
  simUrl?: string;
  apiUrl: string;
  docsUrl: string;
}

async function portFree(port: number): Promise<boolean> {
  return await new Promise((res) => {
    const s = createServer();
    s.once("error", () => res(false));
    s.listen(port, "127.0.0.1", () => s.close(() => res(true)));
  });
}

function say(line: string) {
  process.stderr.write(`cairn: ${line}\n`);
}

export async function up(opts: { env?: NodeJS.ProcessEnv } = {}): Promise<void> {
  const env = { ...process.env, ...opts.env };
  const dataDir = resolve(env.CAIRN_DATA_DIR ?? ".cairn");
  const apiPort = Number(env.CAIRN_API_PORT ?? 8080);
  await mkdir(dataDir, { recursive: true });
  const stops: (() => Promise<void>)[] = [];

  // 1.
  let natsUrl = env.NATS_URL;
  if (!natsUrl) {
    const port = (await portFree(4222)) ? 4222 : await freePort();
    const nats = await startNatsServer({ port, storeDir: join(dataDir, "nats") });
    stops.push(() => nats.stop());
    natsUrl = nats.url;
    say(`started nats-server with JetStream at ${natsUrl} (store ${join(dataDir, "nats")})`);
  } else say(`using NATS at ${natsUrl}`);

  // 2.
  let databaseUrl = env.DATABASE_URL;
  let pg: PostgresServer | undefined;
  if (!databaseUrl) {
    pg = await findPostgres({ dataDir: join(dataDir, "postgres"), useDatabaseUrl: false });
    if (pg.embedded) stops.push(() => pg!.stop());
    databaseUrl = await ensureDatabase(pg, "cairn");
    say(
      `${pg.embedded ? "started an embedded Postgres" : "using the local Postgres"}: database ${redactUrl(databaseUrl)}`,
    );
  } else say(`using Postgres at ${redactUrl(databaseUrl)}`);

  // 3.
  const children = new Map<string, ChildProcess>();
  let stopping = false;
  let cloudEnv: NodeJS.ProcessEnv = {};
  let simUrl: string | undefined;
  if (usesRealAws(env)) {
    say(
      `using AWS as the SDK finds it (${env.AWS_PROFILE ? `profile ${env.AWS_PROFILE}` : "credentials from the environment"})`,
    );
  } else {
    const simPort = Number(env.CAIRN_SIM_PORT ?? 4566);
    if (!(await portFree(simPort)))
      throw new Error(`CAIRN_SIM_PORT ${simPort} is taken; set CAIRN_SIM_PORT to a free port`);
    const sim = spawn(process.execPath, [join(root, "libs", "sim", "src", "main.ts")], {
      // The simulated cloud keeps its state with the rest of the data: it outlives a restart.
      env: { ...env, CAIRN_SIM_PORT: String(simPort), CAIRN_SIM_DATA_DIR: join(dataDir, "sim") },
      stdio: ["ignore", "inherit", "inherit"],
      detached: true,
    });
    stops.push(
      () =>
        new Promise<void>((res) => {
          if (sim.exitCode !== null) return res();
          sim.once("exit", () => res());
          sim.kill("SIGTERM");
        }),
    );
    simUrl = `http://127.0.0.1:${simPort}`;
    // A sim restoring a long journal answers 503 until it is done.
    await waitFor(`${simUrl}/_sim/health`, 120_000);
    cloudEnv = {
      AWS_ENDPOINT_URL_EC2: simUrl,
      AWS_ENDPOINT_URL_SSM: simUrl,
      AWS_ENDPOINT_URL_SQS: simUrl,
      AWS_ACCESS_KEY_ID: "SIMACCESSKEY",
      AWS_SECRET_ACCESS_KEY: "simsecretkey",
      AWS_REGION: env.AWS_REGION ?? "eu-west-1",
    };
    say(
      `started the simulated cloud at ${simUrl} (time scale ${env.CAIRN_SIM_TIME_SCALE ?? 1}; admin ${simUrl}/_sim)`,
    );
  }

  // 4.
  const childEnv = {
    ...env,
    ...cloudEnv,
    NATS_URL: natsUrl,
    DATABASE_URL: databaseUrl,
    CAIRN_API_PORT: String(apiPort),
    CAIRN_DATA_DIR: dataDir,
  };
  for (const name of SERVICES) {
    const child = spawn(process.execPath, [join(root, "services", name, "src", "main.ts")], {
      env: childEnv,
      stdio: ["ignore", "inherit", "inherit"],
      // Its own process group: a Ctrl-C reaches only `cairn up`, which stops the
      // services once and in order (a second signal would skip their drain).
      detached: true,
    });
    children.set(name, child);
    child.on("exit", (code, signal) => {
      children.delete(name);
      if (!stopping) {
        say(`${name} exited (${signal ?? code}); stopping everything`);
        void shutdown(1);
      }
    });
  }

  const shutdown = async (code: number) => {
    if (stopping) return;
    stopping = true;
    await Promise.all(
      [...children.values()].map(
        (c) =>
          new Promise<void>((res) => {
            c.once("exit", () => res());
            c.kill("SIGTERM");
            setTimeout(() => c.kill("SIGKILL"), 15_000).unref();
          }),
      ),
    );
    for (const stop of stops.reverse()) await stop().catch(() => {});
    process.exit(code);
  };
  process.once("SIGINT", () => void shutdown(0));
  process.once("SIGTERM", () => void shutdown(0));

  // 5.
  const apiUrl = `http://127.0.0.1:${apiPort}`;
  const endpoints: Endpoints = {
    natsUrl,
    databaseUrl,
    apiUrl,
    docsUrl: `${apiUrl}/docs`,
    ...(simUrl ? { simUrl } : {}),
  };
  await writeFile(join(dataDir, "endpoints.json"), `${JSON.stringify(endpoints, null, 2)}\n`);
  await waitForApi(apiUrl, () => stopping);
  if (!stopping) {
    say(`Cairn is up. API ${apiUrl}  docs ${apiUrl}/docs  NATS ${natsUrl}`);
    say(`try: node cli/src/main.ts demo   (or: curl ${apiUrl}/clusters)`);
  }
}

/** Real AWS when the SDK would find credentials and a region; otherwise the sim. */
export function usesRealAws(env: NodeJS.ProcessEnv): boolean {
  const credentials = !!env.AWS_PROFILE || (!!env.AWS_ACCESS_KEY_ID && !!env.AWS_SECRET_ACCESS_KEY);
  const region = !!env.AWS_REGION || !!env.AWS_DEFAULT_REGION || !!env.AWS_PROFILE;
  return credentials && region;
}

async function waitFor(url: string, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      if ((await fetch(url)).ok) return;
    } catch {
      // not up yet
    }
    if (Date.now() > deadline) throw new Error(`${url} did not answer within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function waitForApi(url: string, cancelled: () => boolean): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (!cancelled() && Date.now() < deadline) {
    try {
      if ((await fetch(`${url}/readyz`)).ok) return;
    } catch {
      // not up yet
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  if (!cancelled()) say(`the API did not become ready at ${url} within 60 s; see the projector's log above`);
}

function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = "***";
    return u.toString();
  } catch {
    return "(unparseable URL)";
  }
}
