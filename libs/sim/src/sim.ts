import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { handleAdmin } from "./admin.ts";
import { awsProtocolOf, signedRegion } from "./aws.ts";
import { type Latencies, REALISTIC_LATENCIES, SimClock } from "./clock.ts";
import { createEc2 } from "./ec2/index.ts";
import { type FaultInput, FaultRegistry } from "./faults.ts";
import { isRead, Journal, replayBody, type SimSnapshot } from "./journal.ts";
import { createKube } from "./kube/index.ts";
import { SimRandom } from "./random.ts";
import { RequestLog } from "./request-log.ts";
import { fromJson, toJson } from "./snapshot.ts";
import { createSqs } from "./sqs/index.ts";
import { createSsm } from "./ssm/index.ts";
import type { Ec2Port, KubePort, SimContext, SimModule, SqsPort, SsmPort, World } from "./world.ts";

export interface SimOptions {
  /** Seeds every id and random choice: the same seed, the same run. Default 1. */
  seed?: number;
  /** Sim time runs this many times faster than wall time. Default 1 (realistic). */
  timeScale?: number;
  /** Overrides of the realistic latencies (sim seconds). */
  latencies?: Partial<Latencies>;
  /** 0 (default) picks a free port. */
  port?: number;
  /** Faults in force from the start (the config file's `faults`). */
  faults?: FaultInput[];
  /**
   * Where the sim keeps its journal (journal.ts): given, the simulated cloud survives a
   * restart on the same directory. Absent: nothing is kept (tests).
   */
  dataDir?: string;
  /**
   * With a data directory: after this many journaled calls the journal is compacted into
   * a snapshot of the whole cloud (journal.ts). Default 10,000.
   */
  compactAfter?: number;
  /** Told after each compaction: the calls it folded, the snapshot's size and how long it took. */
  onCompaction?: (info: { calls: number; bytes: number; ms: number }) => void;
}

/** Journaled calls between two compactions, unless configured. */
export const DEFAULT_COMPACT_AFTER = 10_000;

export interface Sim {
  /** The AWS endpoint (EC2, SSM and SQS): give it to the SDK clients as `endpoint`. */
  readonly url: string;
  readonly port: number;
  /** `${url}/_sim`: the admin API. */
  readonly adminUrl: string;
  readonly clock: SimClock;
  readonly faults: FaultRegistry;
  readonly requests: RequestLog;
  readonly world: World;
  /** Module states, as the admin API shows them. */
  state(): Record<string, unknown>;
  stop(): Promise<void>;
}

/**
 * Starts the simulated cloud on loopback: EC2 (Query), SSM (JSON 1.1), SQS (JSON 1.0) and one
 * Kubernetes API server per managed cluster under `/k8s/<clusterId>`, plus the admin
 * API under `/_sim`.
 * @example const sim = await startSim({ seed: 7, timeScale: 100 });
 *          const ec2 = new EC2Client({ region: "eu-west-1", endpoint: sim.url, credentials: SIM_CREDENTIALS });
 */
export async function startSim(opts: SimOptions = {}): Promise<Sim> {
  // A new journal without a configured seed takes a random one: a wiped data directory
  // must not hand out the old ids again.
  const journal = opts.dataDir
    ? new Journal(opts.dataDir, opts.seed ?? (Math.floor(Math.random() * 2 ** 31) || 1))
    : undefined;
  const seed = journal?.header.seed ?? opts.seed ?? 1;
  const restored = journal?.header.snapshot;
  const firstT = restored?.t ?? journal?.entries[0]?.t;
  const clock = new SimClock({
    timeScale: opts.timeScale ?? 1,
    ...(firstT !== undefined ? { start: firstT } : {}),
  });
  // Restoring: time stands still at the journal's start until the replay has run. Left to
  // run while the sim starts (modules made, the server listening: tens of ms on a loaded
  // machine, minutes of sim time at a high time scale), every replayed call without a date
  // of its own (`at`) that came earlier than that would be replayed at the start's end.
  if (firstT !== undefined) clock.freezeAt(firstT);
  const random = new SimRandom(seed);
  const faults = new FaultRegistry(random, () => clock.now());
  for (const f of opts.faults ?? []) faults.add(f, { fromConfig: true });
  const compactAfter = Math.max(1, opts.compactAfter ?? DEFAULT_COMPACT_AFTER);
  const requests = new RequestLog();
  const latencies = { ...REALISTIC_LATENCIES, ...opts.latencies };
  let baseUrl = "";

  const world = {} as { ec2: Ec2Port; ssm: SsmPort; kube: KubePort; sqs: SqsPort };
  const ctx: SimContext = { clock, random, faults, requests, latencies, baseUrl: () => baseUrl, world };
  const ec2 = createEc2(ctx);
  const ssm = createSsm(ctx);
  const kube = createKube(ctx);
  const sqs = createSqs(ctx);
  world.ec2 = ec2.port;
  world.sqs = sqs.port;
  world.ssm = ssm.port;
  world.kube = kube.port;
  const modules: Record<string, SimModule<unknown>> = { ec2, ssm, kube, sqs };

  /** The whole cloud now (journal compaction). */
  const snapshot = (): SimSnapshot => ({
    t: clock.now(),
    wall: Date.now(),
    rng: random.state,
    faults: faults.snapshot(),
    modules: Object.fromEntries(Object.entries(modules).map(([k, m]) => [k, toJson(m.snapshot?.())])),
  });
  if (restored) {
    // A compacted journal: the cloud as it was at the snapshot, then the calls after it.
    clock.freezeAt(restored.t);
    random.state = restored.rng;
    faults.restore(restored.faults);
    for (const [k, m] of Object.entries(modules)) {
      const data = restored.modules[k];
      if (data !== undefined) m.restore?.(fromJson(data));
    }
  }

  const server = createServer((req, res) => {
    void route(req, res).catch((err) => {
      if (!res.headersSent) res.writeHead(500, { "content-type": "text/plain" });
      res.end(`sim error: ${(err as Error).message}`);
    });
  });
  server.keepAliveTimeout = 60_000;
  let restoring = journal !== undefined && (journal.entries.length > 0 || restored !== undefined);

  /** While the journal is replayed: the PRNG state the next call must start from. */
  let replaying: { rng: number } | undefined;
  const replayedAt = (req: IncomingMessage) => replayedAtOf(req, clock.now());
  /**
   * Right before a module acts on a call: a call that may change the cloud is journaled
   * (with the PRNG's state), or, in a replay, the PRNG is put back to where it was.
   */
  const record = (req: IncomingMessage, url: URL, body: Buffer, at?: number) => {
    if (!journal || isRead(req, url, body)) return;
    if (replaying) {
      random.state = replaying.rng;
      return;
    }
    // Every call before this one has done all it does (modules act synchronously once
    // journaled), so the snapshot is the cloud between two calls.
    if (journal.sinceSnapshot >= compactAfter) {
      const started = performance.now();
      const calls = journal.sinceSnapshot;
      const bytes = journal.compact(snapshot());
      opts.onCompaction?.({ calls, bytes, ms: Math.round(performance.now() - started) });
    }
    journal.append(req, url, body, clock.now(), random.state, at);
  };

  /**
   * The calls' turns: each AWS call waits for the one before it to have started (its
   * synchronous part: a RunInstances of 100 builds its instances and its answer, 3–5 ms)
   * and then for one pass of the event loop's poll, where calls that reached the socket
   * meanwhile are read and dated. Without it, calls whose latency timers came due together
   * ran back to back, and a call that arrived during them was dated only after all of them:
   * five RunInstances written by the provisioner within 0.2 ms were dated up to 11 ms
   * apart, and their instances booted that much later (docs/sim-ec2.md "A call is dated
   * when it came"). A call that awaits inside (a long poll, a fault's delay) holds no turn
   * past its first await.
   */
  let turns: Promise<void> = Promise.resolve();
  const turnstile = async (): Promise<() => void> => {
    const before = turns;
    let done!: () => void;
    turns = new Promise<void>((r) => (done = r));
    await before;
    await new Promise<void>((r) => setImmediate(r));
    return done;
  };

  async function route(req: IncomingMessage, res: ServerResponse) {
    const arrived = clock.now();
    const url = new URL(req.url ?? "/", baseUrl);
    const body = await readBody(req);
    if (restoring && req.headers["x-cairn-sim-replay"] !== "1") {
      // Not up until the journal is replayed: callers wait (cairn up polls /_sim/health).
      res.writeHead(503, { "content-type": "text/plain", "retry-after": "1" });
      res.end("the sim is restoring its state");
      return;
    }
    for (const m of Object.values(modules)) m.settle?.();
    // An admin or Kubernetes call acts at the date its journal entry keeps (the replay
    // freezes time there): both act synchronously once journaled (SimCall).
    if (url.pathname === "/_sim" || url.pathname.startsWith("/_sim/")) {
      return clock.heldAt(clock.now(), () => {
        record(req, url, body);
        return handleAdmin(req, res, url, body, { clock, faults, requests, modules, seed });
      });
    }
    if (url.pathname.startsWith("/k8s/")) {
      return clock.heldAt(clock.now(), () => {
        record(req, url, body);
        return kube.handle({ req, res, url, body, region: "" });
      });
    }
    const protocol = awsProtocolOf(req);
    const region = signedRegion(req) ?? "us-east-1";
    if (latencies.apiCall > 0 && !replaying) await clock.sleep(latencies.apiCall * 1000);
    if (protocol === "sqs" && req.headers["x-amz-target"] === "AmazonSQS.ReceiveMessage") {
      // A long poll journals itself when it takes messages (SimCall.journal).
      return sqs.handle({ req, res, url, body, region, journal: () => record(req, url, body) });
    }
    // The call is dated when it came (plus the API's latency), not when this one process
    // got round to it: a cloud serves concurrent calls side by side (SimCall.at). A replay
    // dates it as the journal did.
    const at = replaying ? replayedAt(req) : Math.min(clock.now(), arrived + latencies.apiCall * 1000);
    // One call's own work per turn of the event loop, each after a look for new calls, so
    // the calls that came meanwhile are dated (`arrived`) before it runs (`turnstile`).
    const done = await turnstile();
    try {
      record(req, url, body, at);
      if (protocol === "ssm") return ssm.handle({ req, res, url, body, region, at });
      if (protocol === "sqs") return sqs.handle({ req, res, url, body, region, at });
      if (protocol === "ec2") return ec2.handle({ req, res, url, body, region, at });
    } finally {
      done();
    }
    res.writeHead(404, { "content-type": "text/plain" });
    res.end(
      `the sim speaks EC2 (Query), SSM (JSON 1.1), SQS (JSON 1.0), Kubernetes under /k8s/<cluster> and its admin API under /_sim; not ${req.method} ${url.pathname}`,
    );
  }

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port ?? 0, "127.0.0.1", () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  baseUrl = `http://127.0.0.1:${port}`;

  if (journal && restoring) {
    // Replay every journaled call at its sim time, with the PRNG where it was, then let
    // time run on from the last call plus the wall time the sim was down (scaled).
    for (const e of journal.entries) {
      clock.freezeAt(e.t);
      replaying = { rng: e.rng };
      const r = await fetch(`${baseUrl}${e.path}`, {
        method: e.method,
        headers: {
          ...e.headers,
          "x-cairn-sim-replay": "1",
          ...(e.at !== undefined ? { [REPLAYED_AT_HEADER]: String(e.at) } : {}),
        },
        ...(e.method === "GET" || e.method === "HEAD" ? {} : { body: replayBody(e) }),
      });
      await r.arrayBuffer();
    }
    replaying = undefined;
    // Where the replay left time (the last call's, or later if it jumped time), plus the
    // wall time since the last call.
    const last = journal.entries.at(-1) ?? restored!;
    clock.resumeFrom(clock.now() + Math.max(0, Date.now() - last.wall) * clock.timeScale);
    journal.entries = []; // replayed: no need to hold them
    restoring = false;
  }

  return {
    url: baseUrl,
    port,
    adminUrl: `${baseUrl}/_sim`,
    clock,
    faults,
    requests,
    world,
    state: () => Object.fromEntries(Object.entries(modules).map(([k, m]) => [k, m.state()])),
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** On a replayed call: the sim time the journal dated it at, when earlier than its entry's `t`. */
const REPLAYED_AT_HEADER = "x-cairn-sim-at";

/** A replayed call's date: the journal's `at`, else the (frozen) time of its entry. */
function replayedAtOf(req: IncomingMessage, now: number): number {
  const v = req.headers[REPLAYED_AT_HEADER];
  const at = typeof v === "string" ? Number(v) : Number.NaN;
  return Number.isFinite(at) && at <= now ? at : now;
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** Credentials the AWS SDK needs to sign; the sim does not check them. */
export const SIM_CREDENTIALS = { accessKeyId: "SIMACCESSKEY", secretAccessKey: "simsecretkey" } as const;
