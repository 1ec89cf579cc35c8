/**
 * deploy/nats/nats.conf, for real: a nats-server started with that file, one connection per
 * user, and the real Cairn code paths (the bootstrap, ensureStreams, EventStore, the consumer
 * runner, the leader lease, the provisioner service) run under each user's permissions.
 *
 * The key property: a service appends events only for the aggregates it owns, and the projector
 * appends none. Everything else here proves that the rules still let the services do their job.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { connect as tcpConnect } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import {
  CommandBus,
  ConcurrencyConflictError,
  catalogue,
  clusterSessionsId,
  connectNats,
  EventStore,
  ensureConsumer,
  ensureStreams,
  type Nats,
  newId,
  type RawEventEnvelope,
  SnapshotStore,
  startConsumer,
  startSessionActivity,
} from "@cairn/events";
import { appendAsOwner, recordClusterRequested } from "@cairn/events/testing";
import { startIdleDetector } from "@cairn/idle-detector";
import { startProvisioner } from "@cairn/provisioner";
import { acquireLeadership, type LeaderLease } from "@cairn/service";
import { SIM_CREDENTIALS, startSim } from "@cairn/sim";
import { freePort, natsServerBin } from "@cairn/testkit";
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { connect, type NatsConnection, headers as natsHeaders } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bootstrapJetStream, COMMAND_BATCH_SIZE, COMMAND_CONSUMERS } from "../deploy/nats/bootstrap.ts";

const root = resolve(import.meta.dirname, "..");
const SERVICES = ["provisioner", "installer", "idle-detector", "node-ops", "projector"] as const;
type Service = (typeof SERVICES)[number];
type User = Service | "admin";
const USERS: readonly User[] = ["admin", ...SERVICES];

/** Event types each service may append (what nats.conf must allow, and nothing more). */
const OWNS: Record<Service, readonly string[]> = {
  provisioner: ["cluster"],
  installer: ["install"],
  "idle-detector": ["session"],
  "node-ops": ["nodeop", "workload", "kube"],
  projector: [],
};
const AGGREGATES = ["cluster", "install", "session", "nodeop", "workload", "kube"] as const;

// Passwords as the README says to make them: a letter first, then letters and digits.
const passwords = Object.fromEntries(
  USERS.map((u) => [u, `cairn${randomBytes(16).toString("hex")}`]),
) as Record<User, string>;
const passwordVariable = (u: User) => `CAIRN_NATS_${u.toUpperCase().replaceAll("-", "_")}_PASSWORD`;

const DENIED = /Permissions Violation/;

let server: ChildProcess | undefined;
let serverLog = "";
let port: number;
let storeDir: string;
let admin: Nats;
const connections: Nats[] = [];
const leases: LeaderLease[] = [];
const conns = new Map<User, Nats>();

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until<T>(
  what: string,
  f: () => Promise<T | undefined> | T | undefined,
  ms = 10_000,
): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

async function waitForPort(p: number, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (server?.exitCode !== null)
      throw new Error(`nats-server exited with ${server?.exitCode}:\n${serverLog}`);
    const ok = await new Promise<boolean>((done) => {
      const s = tcpConnect({ port: p, host: "127.0.0.1" }, () => {
        s.end();
        done(true);
      });
      s.on("error", () => done(false));
    });
    if (ok) return;
    await sleep(25);
  }
  throw new Error(`nats-server did not listen on ${p} within ${ms} ms:\n${serverLog}`);
}

/**
 * A connection as `user`, shaped like `connectNats` gives it. The user and password are passed as
 * options: nats.js 3 ignores credentials written in the server URL (see the last test).
 */
async function connectAs(user: User): Promise<Nats> {
  const nc = await connect({
    servers: `127.0.0.1:${port}`,
    user,
    pass: passwords[user],
    name: `perm-test-${user}`,
  });
  const n: Nats = {
    nc,
    js: jetstream(nc, { timeout: 5_000 }),
    jsm: await jetstreamManager(nc, { timeout: 5_000 }),
    close: async () => {
      if (!nc.isClosed()) await nc.drain().catch(() => nc.close());
    },
  };
  connections.push(n);
  return n;
}

/** One shared connection per user (a fresh one with `connectAs`). */
async function as(user: User): Promise<Nats> {
  let n = conns.get(user);
  if (!n) {
    n = await connectAs(user);
    conns.set(user, n);
  }
  return n;
}

/** The message stored last on `subject` in EVT, as admin sees it; undefined when there is none. */
async function lastEvent(subject: string) {
  return (
    (await admin.jsm.streams.getMessage("EVT", { last_by_subj: subject }).catch(() => null)) ?? undefined
  );
}

/** The first server error (-ERR) the connection reports, or undefined within `ms`. */
function nextServerError(nc: NatsConnection, ms = 2_000): Promise<Error | undefined> {
  const seen = (async () => {
    for await (const s of nc.status()) if (s.type === "error") return s.error;
    return undefined;
  })();
  return Promise.race([seen, sleep(ms).then(() => undefined)]);
}

function rejectedEvent(
  aggregate: { type: string; id: string },
  position: number,
  cause: string,
): RawEventEnvelope {
  return {
    id: newId(),
    type: `${aggregate.type}.rejected`,
    version: catalogue.eventVersion(`${aggregate.type}.rejected`),
    aggregate: aggregate as RawEventEnvelope["aggregate"],
    position,
    time: new Date().toISOString(),
    data: {
      commandId: cause,
      commandType: `${aggregate.type}.probe`,
      code: "invalid",
      reason: "permission test",
    },
    meta: { causationId: cause, correlationId: cause, actor: "perm-test" },
  };
}

beforeAll(async () => {
  port = await freePort();
  const monitorPort = await freePort();
  storeDir = await mkdtemp(join(tmpdir(), "cairn-nats-perm-"));
  const env: NodeJS.ProcessEnv = { ...process.env, CAIRN_NATS_STORE_DIR: storeDir };
  for (const u of USERS) env[passwordVariable(u)] = passwords[u];
  // -a / -p / -m override the file; the store folder comes from CAIRN_NATS_STORE_DIR (nats-server
  // refuses -sd on top of a store_dir set in the file).
  const args = ["-c", join(root, "deploy/nats/nats.conf"), "-a", "127.0.0.1", "-p", String(port)];
  server = spawn(natsServerBin(), [...args, "-m", String(monitorPort)], {
    env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  server.stdout?.on("data", (d) => {
    serverLog += d;
  });
  server.stderr?.on("data", (d) => {
    serverLog += d;
  });
  await waitForPort(port, 15_000);
  admin = await as("admin");
  const report = await bootstrapJetStream(admin);
  expect(report.created).toEqual([
    "CMD",
    "EVT",
    "DLQ",
    "KV_cairn_snapshots",
    "KV_cairn_leases",
    "KV_cairn_heartbeats",
    ...COMMAND_CONSUMERS.map((c) => `CMD/${c.durable}`),
  ]);
  expect(report.drift).toEqual([]);
});

afterAll(async () => {
  await Promise.all(leases.map((l) => l.stop()));
  for (const n of connections) await n.close().catch(() => {});
  if (server && server.exitCode === null) {
    const exited = new Promise((r) => server?.once("exit", r));
    server.kill("SIGTERM");
    await Promise.race([exited, sleep(5_000).then(() => server?.kill("SIGKILL"))]);
  }
  if (storeDir) await rm(storeDir, { recursive: true, force: true });
});

describe("the server from deploy/nats/nats.conf", () => {
  it("stores JetStream data where CAIRN_NATS_STORE_DIR says", async () => {
    expect(await readdir(storeDir)).toContain("jetstream");
  });

  it("refuses connections without a known user and password", async () => {
    const once = { servers: `127.0.0.1:${port}`, reconnect: false };
    await expect(connect(once)).rejects.toThrow(/Authorization Violation/);
    await expect(connect({ ...once, user: "provisioner", pass: passwords.projector })).rejects.toThrow(
      /Authorization Violation/,
    );
    await expect(connect({ ...once, user: "intruder", pass: passwords.admin })).rejects.toThrow(
      /Authorization Violation/,
    );
  });

  it("the bootstrap is idempotent: a second run creates and changes nothing", async () => {
    const again = await bootstrapJetStream(admin);
    expect(again.created).toEqual([]);
    expect(again.updated).toEqual([]);
    expect(again.drift).toEqual([]);
  });
});

describe("events: each service appends only for the aggregates it owns", () => {
  for (const service of SERVICES) {
    const owned = OWNS[service].map((t) => `evt.${t}.*`).join(", ") || "no event at all";
    it(`${service} may append ${owned}`, async () => {
      const n = await as(service);
      for (const type of AGGREGATES) {
        const subject = `evt.${type}.by-${service}`;
        if (OWNS[service].includes(type)) {
          const ack = await n.js.publish(subject, "{}");
          expect(ack.stream).toBe("EVT");
          expect((await lastEvent(subject))?.seq).toBe(ack.seq);
        } else {
          await expect(n.js.publish(subject, "{}"), subject).rejects.toThrow(DENIED);
          expect(await lastEvent(subject), subject).toBeUndefined();
        }
      }
    });
  }

  it("a plain (non-JetStream) publish to another aggregate is dropped and reported", async () => {
    const p = await connectAs("projector");
    const error = nextServerError(p.nc);
    p.nc.publish("evt.cluster.plain-by-projector", "{}");
    await p.nc.flush();
    expect(String(await error)).toMatch(
      /Permissions Violation for Publish to "evt.cluster.plain-by-projector"/,
    );
    expect(await lastEvent("evt.cluster.plain-by-projector")).toBeUndefined();
    // The connection survives the violation.
    expect((await p.js.publish("cmd.cluster.create", "{}")).stream).toBe("CMD");
  });
});

describe("commands and dead letters: every service sends them", () => {
  for (const service of SERVICES) {
    it(`${service} publishes cmd.* and dlq.*`, async () => {
      const n = await as(service);
      expect((await n.js.publish("cmd.cluster.create", "{}", { msgID: newId() })).stream).toBe("CMD");
      expect((await n.js.publish("cmd.session.create", "{}", { msgID: newId() })).stream).toBe("CMD");
      expect((await n.js.publish("dlq.CMD", "{}", { msgID: newId() })).stream).toBe("DLQ");
    });
  }
});

describe("consumers", () => {
  for (const { service, durable, filterSubject } of COMMAND_CONSUMERS) {
    it(`${service} creates its pull consumer ${durable} on ${filterSubject}, reads and acks`, async () => {
      // A first start without the bootstrap's consumer: the service makes it itself.
      await admin.jsm.consumers.delete("CMD", durable);
      const n = await as(service);
      const marker = newId();
      const seen: string[] = [];
      const runner = await startConsumer({
        js: n.js,
        jsm: n.jsm,
        stream: "CMD",
        durable,
        filterSubject,
        batchSize: COMMAND_BATCH_SIZE,
        handle: async (m) => {
          seen.push(m.string());
        },
      });
      try {
        await admin.js.publish(filterSubject.replace(">", "probe"), marker, { msgID: marker });
        await until(`${durable} to handle the command`, () => (seen.includes(marker) ? true : undefined));
      } finally {
        await runner.stop();
      }
      const info = await until("the acks to be recorded", async () => {
        const i = await n.jsm.consumers.info("CMD", durable);
        return i.num_ack_pending === 0 && i.num_pending === 0 ? i : undefined;
      });
      expect(info.config.filter_subject).toBe(filterSubject);
      expect(info.ack_floor.stream_seq).toBe(info.delivered.stream_seq);
      // What the service made is what the bootstrap makes: neither rewrites the other.
      const report = await bootstrapJetStream(admin);
      expect(report.unchanged).toContain(`CMD/${durable}`);
      expect(report.updated).toEqual([]);
    });
  }

  it("the projector re-creates its durable consumer on evt.>, reads the log and acks", async () => {
    const n = await as("projector");
    // As resetConsumer does at every start: delete (if any), then add from the checkpoint.
    await n.jsm.consumers.delete("EVT", "projector").catch(() => {});
    await n.jsm.consumers.add("EVT", {
      durable_name: "projector",
      filter_subject: "evt.>",
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
    });
    await n.jsm.consumers.delete("EVT", "projector");
    const { last_seq: last, messages } = (await n.jsm.streams.info("EVT")).state;
    expect(messages).toBe(last);
    expect((await n.jsm.streams.getMessage("EVT", { seq: last }))?.seq).toBe(last);
    let handled = 0;
    const runner = await startConsumer({
      js: n.js,
      jsm: n.jsm,
      stream: "EVT",
      durable: "projector",
      filterSubject: "evt.>",
      batchSize: 100,
      handleBatch: async (msgs) => {
        handled += msgs.length;
      },
    });
    try {
      await until("the projector to read the log", () => (handled >= last ? true : undefined));
    } finally {
      await runner.stop();
    }
    const info = await until("the acks to be recorded", async () => {
      const i = await n.jsm.consumers.info("EVT", "projector");
      return i.num_ack_pending === 0 ? i : undefined;
    });
    expect(info.ack_floor.stream_seq).toBe(last);
  });

  it("a service cannot create, read, delete or ack another service's command consumer", async () => {
    const p = await as("provisioner");
    await expect(
      ensureConsumer({
        js: p.js,
        jsm: p.jsm,
        stream: "CMD",
        durable: "idle-detector-commands",
        filterSubject: "cmd.session.>",
      }),
    ).rejects.toThrow(DENIED);
    // Its own kind of name with another filter: the filter is part of the API subject.
    await expect(
      p.jsm.consumers.add("CMD", {
        durable_name: "provisioner-commands-2",
        filter_subject: "cmd.session.>",
        ack_policy: AckPolicy.Explicit,
      }),
    ).rejects.toThrow(DENIED);
    await expect(p.js.consumers.get("CMD", "idle-detector-commands")).rejects.toThrow(DENIED);
    await expect(p.jsm.consumers.delete("CMD", "idle-detector-commands")).rejects.toThrow(DENIED);
    await expect(p.jsm.consumers.delete("CMD", "provisioner-commands")).rejects.toThrow(DENIED);
    // JetStream itself checks that the filter in the API subject is the one in the request.
    const reply = await p.nc.request(
      "$JS.API.CONSUMER.CREATE.CMD.provisioner-commands.cmd.cluster.>",
      JSON.stringify({
        stream_name: "CMD",
        config: {
          durable_name: "provisioner-commands",
          filter_subject: "cmd.session.>",
          ack_policy: "explicit",
        },
      }),
    );
    expect(reply.json<{ error?: { description: string } }>().error?.description).toMatch(/filter/i);
    // An ack names its consumer: acking another's messages is refused.
    const error = nextServerError(p.nc);
    p.nc.publish("$JS.ACK.CMD.idle-detector-commands.1.1.1.0.0", "+ACK");
    await p.nc.flush();
    expect(String(await error)).toMatch(DENIED);
  });

  it("no service but the projector can touch the projector's durable consumer", async () => {
    for (const service of SERVICES.filter((s) => s !== "projector")) {
      const n = await as(service);
      await expect(n.jsm.consumers.delete("EVT", "projector"), service).rejects.toThrow(DENIED);
      await expect(n.js.consumers.get("EVT", "projector"), service).rejects.toThrow(DENIED);
    }
    expect((await admin.jsm.consumers.info("EVT", "projector")).name).toBe("projector");
  });

  it("no service can make a push consumer that delivers into the log", async () => {
    const p = await as("provisioner");
    const push = { deliver_subject: "evt.session.via-push", ack_policy: AckPolicy.None };
    // On the leases bucket: no consumer at all (so no KV watch either).
    await expect(
      p.jsm.consumers.add("KV_cairn_leases", {
        ...push,
        name: "KV_WATCHER_x",
        filter_subject: "$KV.cairn_leases.>",
      }),
    ).rejects.toThrow(DENIED);
    await expect((await new Kvm(p.nc).open("cairn_leases")).watch()).rejects.toThrow(DENIED);
    // Its pull consumer on CMD (made by the bootstrap) cannot become a push consumer: JetStream
    // refuses the change, whichever way it is asked.
    const own = { durable_name: "provisioner-commands", filter_subject: "cmd.cluster.>" };
    await expect(p.jsm.consumers.add("CMD", { ...push, ...own })).rejects.toThrow(/can not be updated/);
    await expect(
      p.jsm.consumers.add("CMD", { ...push, ...own, ack_policy: AckPolicy.Explicit, max_waiting: 0 }),
    ).rejects.toThrow(/can not be updated|max waiting/);
    await expect(
      p.jsm.consumers.update("CMD", "provisioner-commands", {
        deliver_subject: "evt.session.via-push",
      } as never),
    ).rejects.toThrow(/push mode|max waiting/);
    // On EVT, JetStream refuses the cycle.
    await expect(
      p.jsm.consumers.add("EVT", { ...push, name: "loop", filter_subject: "evt.cluster.>" }),
    ).rejects.toThrow(/cycle/);
    expect(
      (await admin.jsm.consumers.info("CMD", "provisioner-commands")).config.deliver_subject,
    ).toBeUndefined();
  });
});

describe("streams are admin's: services only read their info", () => {
  for (const service of SERVICES) {
    it(`${service}: ensureStreams finds them; creating, changing or deleting is refused`, async () => {
      const n = await as(service);
      const report = await ensureStreams(n.jsm);
      expect(report).toEqual({
        created: [],
        unchanged: ["CMD", "EVT", "DLQ", "KV_cairn_snapshots"],
        drift: [],
      });
      await expect(n.jsm.streams.add({ name: "ROGUE", subjects: ["rogue.>"] })).rejects.toThrow(DENIED);
      await expect(n.jsm.streams.update("EVT", { max_age: 1 })).rejects.toThrow(DENIED);
      await expect(n.jsm.streams.purge("EVT")).rejects.toThrow(DENIED);
      await expect(n.jsm.streams.deleteMessage("EVT", 1)).rejects.toThrow(DENIED);
      await expect(n.jsm.streams.delete("EVT")).rejects.toThrow(DENIED);
      await expect(n.jsm.streams.delete("KV_cairn_leases")).rejects.toThrow(DENIED);
      // The lease's own call: it only reads the bucket the bootstrap made; a new one is refused.
      await new Kvm(n.nc).create("cairn_leases", { history: 1 });
      await expect(new Kvm(n.nc).create("cairn_other", { history: 1 })).rejects.toThrow(DENIED);
    });
  }
});

describe("the real code paths under a service's permissions", () => {
  it("the idle-detector serves sessions, answers heartbeats and writes them to its bucket, and sweeps under its lease", async () => {
    const provisioner = await as("provisioner");
    const cluster = { type: "cluster" as const, id: `hb-${randomBytes(3).toString("hex")}` };
    await recordClusterRequested(
      new EventStore({ js: provisioner.js, jsm: provisioner.jsm, catalogue }),
      cluster.id,
    );
    await appendAsOwner(
      new EventStore({ js: provisioner.js, jsm: provisioner.jsm, catalogue }),
      cluster,
      "cluster.ready",
      {
        nodes: 1,
        k3sVersion: "v1.31.4+k3s1",
      },
    );
    const d = await startIdleDetector({ nats: await as("idle-detector"), sweepIntervalMs: 200 });
    try {
      const sessionId = `s-${randomBytes(3).toString("hex")}`;
      await new CommandBus({ js: admin.js, catalogue }).send({
        type: "session.create",
        data: {
          sessionId,
          user: "alice",
          clusterId: cluster.id,
          template: { image: "ide:1", cpu: "1", memory: "1Gi", storage: "1Gi" },
        },
      });
      // Admitted (cluster read, quota taken), its workload asked of node-ops: Starting.
      await until(
        "Starting",
        async () =>
          (await d.handler.read({ type: "session", id: sessionId })).state.status === "Starting" || undefined,
      );
      const answer = await admin.nc.request(`hb.session.${sessionId}`, JSON.stringify({ connections: 1 }));
      expect(answer.json()).toEqual({ ok: true, status: 200 });
      const entry = await (await new Kvm(admin.nc).open("cairn_heartbeats")).get(sessionId);
      expect(entry?.json<{ connections: number }>().connections).toBe(1);
      await until("known", () => d.heartbeats.lastActivity(sessionId));
      const unknown = await admin.nc.request("hb.session.nobody", JSON.stringify({ connections: 1 }));
      expect(unknown.json()).toMatchObject({ ok: false, status: 404 });
      await until("sweeping", () => d.sweeper.isLeader() || undefined);
    } finally {
      await d.stop();
      // Its durable reactors stay, as a service's do; the next test counts EVT's consumers.
      for (const durable of ["idle-detector-reactor", "idle-detector-workloads", "idle-detector-clusters"])
        await admin.jsm.consumers.delete("EVT", durable);
    }
  });
  it("the projector's API writes the heartbeat bucket (compare-and-set) and reads it back; nothing more of it", async () => {
    const p = await as("projector");
    const activity = await startSessionActivity({ nc: p.nc, resolutionMs: 0 });
    try {
      const id = `api-${randomBytes(3).toString("hex")}`;
      // The first write reads the key (direct get), then puts on its revision; the second
      // puts on the revision the first got back.
      await activity.record(id, 1, 1_000);
      await activity.record(id, 2, 2_000);
      const entry = await (await new Kvm(admin.nc).open("cairn_heartbeats")).get(id);
      expect(entry?.json()).toEqual({ at: 2_000, connections: 2 });
      // Another writer's later value: read back, and never written over with an earlier one.
      await (await new Kvm(admin.nc).open("cairn_heartbeats")).put(
        id,
        JSON.stringify({ at: 9_000, connections: 1 }),
      );
      await activity.record(id, 1, 3_000);
      expect((await (await new Kvm(admin.nc).open("cairn_heartbeats")).get(id))?.json()).toMatchObject({
        at: 9_000,
      });
      expect(await activity.load(id)).toBe(9_000);
      // The bucket itself is not the projector's to change, nor to watch.
      await expect(p.jsm.streams.purge("KV_cairn_heartbeats")).rejects.toThrow(DENIED);
      await expect(p.jsm.streams.delete("KV_cairn_heartbeats")).rejects.toThrow(DENIED);
      await expect(
        p.jsm.consumers.add("KV_cairn_heartbeats", {
          name: "hb-watch",
          ack_policy: AckPolicy.None,
          deliver_subject: "evt.session.via-kv",
          filter_subject: "$KV.cairn_heartbeats.>",
        }),
      ).rejects.toThrow(DENIED);
    } finally {
      activity.stop();
    }
  });
  it("the provisioner's EventStore appends, detects conflicts and loads through ordered consumers", async () => {
    const p = await as("provisioner");
    const store = new EventStore({ js: p.js, jsm: p.jsm, catalogue });
    const cluster = { type: "cluster" as const, id: `es-${randomBytes(4).toString("hex")}` };
    const commit = (position: number, expected: number) =>
      store.append(
        {
          aggregate: cluster,
          causationId: `cause-${position}`,
          events: [rejectedEvent(cluster, position, `cause-${position}`)],
        },
        expected,
      );
    const a = await commit(1, 0);
    const b = await commit(2, a.sequence);
    await expect(commit(3, a.sequence)).rejects.toBeInstanceOf(ConcurrencyConflictError);
    expect(await store.lastSequence(cluster)).toBe(b.sequence);
    const history = await store.load(cluster);
    expect(history).toMatchObject({ version: 2, lastSequence: b.sequence });
    expect(history.events.map((e) => e.meta.causationId)).toEqual(["cause-1", "cause-2"]);
    expect((await store.load(cluster, { toVersion: 1 })).version).toBe(1);
    // Each load deleted its ordered consumer: only the projector's durable is left.
    const left: string[] = [];
    for await (const c of await admin.jsm.consumers.list("EVT")) left.push(c.name);
    expect(left).toEqual(["projector"]);

    // Any service reads any aggregate (the installer cannot write this one).
    const installer = await as("installer");
    const reader = new EventStore({ js: installer.js, jsm: installer.jsm, catalogue });
    expect((await reader.load(cluster)).lastSequence).toBe(b.sequence);

    const session = { type: "session" as const, id: cluster.id };
    await expect(
      store.append(
        { aggregate: session, causationId: "cause-1", events: [rejectedEvent(session, 1, "cause-1")] },
        0,
      ),
    ).rejects.toThrow(DENIED);
    expect(await lastEvent(`evt.session.${cluster.id}`)).toBeUndefined();
  });

  it("the provisioner puts and gets its clusters' snapshots, nothing else of the bucket; others cannot write them", async () => {
    const p = await as("provisioner");
    const snapshots = await SnapshotStore.open(p.js);
    const id = `snap-${randomBytes(4).toString("hex")}`;
    const record = {
      schema: 1,
      aggregate: { type: "cluster", id },
      sequence: 1,
      commitId: "c".repeat(32),
      version: 1,
      state: { status: "Absent" },
      commits: [],
    };
    await snapshots.put(record);
    expect(await snapshots.get({ type: "cluster", id })).toEqual(record);
    const kv = await new Kvm(p.js).open("cairn_snapshots");
    await expect(kv.put(`session.${id}`, "{}")).rejects.toThrow(DENIED);
    await expect(p.jsm.streams.purge("KV_cairn_snapshots")).rejects.toThrow(DENIED);
    for (const other of ["installer", "idle-detector", "node-ops", "projector"] as const) {
      const o = await as(other);
      await expect((await new Kvm(o.js).open("cairn_snapshots")).put(`cluster.${id}`, "{}")).rejects.toThrow(
        DENIED,
      );
    }
    expect(await snapshots.get({ type: "cluster", id })).toEqual(record);
  });

  it("the provisioner service decides a command the projector's CommandBus sent, and dead-letters junk", async () => {
    const provisioner = await connectAs("provisioner");
    // Its reactor calls EC2: the simulated one, never a real endpoint.
    const sim = await startSim({ seed: 1, timeScale: 100 });
    const running = await startProvisioner({
      nats: provisioner,
      ec2: { endpoint: sim.url, credentials: SIM_CREDENTIALS },
      pollMs: 20,
    });
    try {
      const bus = new CommandBus({ js: (await as("projector")).js, catalogue });
      const clusterId = `perm-${randomBytes(4).toString("hex")}`;
      const sent = await bus.send({
        type: "cluster.create",
        data: {
          clusterId,
          name: "perm",
          region: "eu-west-1",
          k3sVersion: "v1.31.4+k3s1",
          servers: { count: 1, instanceType: "t3.medium" },
        },
        meta: { actor: "perm-test" },
      });
      const junk = await (await as("projector")).js.publish("cmd.cluster.create", "not json", {
        msgID: newId(),
      });
      const history = new EventStore({ js: admin.js, jsm: admin.jsm, catalogue });
      const first = await until("the provisioner's first event", async () => {
        const h = await history.load({ type: "cluster", id: clusterId });
        return h.events[0];
      });
      expect(first).toMatchObject({ type: "cluster.requested", meta: { causationId: sent.commandId } });
      const dead = await until("the dead letter", async () => {
        const m = await admin.jsm.streams.getMessage("DLQ", { last_by_subj: "dlq.CMD" }).catch(() => null);
        return m?.header.get("Cairn-Dlq-Sequence") === String(junk.seq) ? m : undefined;
      });
      expect(dead.header.get("Cairn-Dlq-Consumer")).toBe("provisioner-commands");
      // The provisioner's reactor, under the same permissions, carried the cluster on.
      await until("the reactor's commits", async () => {
        const last = await lastEvent(`evt.cluster.${clusterId}`);
        return last?.string().includes("cluster.provisioning-started") ||
          last?.string().includes("cluster.instance")
          ? last
          : undefined;
      });
      // A delete is decided on the cluster's sessions, read under the same permissions from
      // their owner's subjects: one lives there, recorded as the idle-detector records it.
      const sessionId = `perm-s-${randomBytes(3).toString("hex")}`;
      await appendAsOwner(history, { type: "session", id: sessionId }, "session.requested", {
        sessionId,
        user: "alice",
        clusterId,
        template: { image: "ide:1", cpu: "1", memory: "1Gi", storage: "1Gi" },
        idleTimeoutSeconds: 60,
        maxLifetimeSeconds: 3600,
        cause: "user",
      });
      await appendAsOwner(
        history,
        { type: "session", id: clusterSessionsId(clusterId) },
        "session.quota-taken",
        {
          scope: "cluster",
          owner: clusterId,
          sessionId,
          cpuMillis: 1000,
          memoryBytes: 2 ** 30,
          limits: {},
          usage: { sessions: 1, cpuMillis: 1000, memoryBytes: 2 ** 30 },
        },
      );
      await bus.send({ type: "cluster.delete", data: { clusterId }, meta: { actor: "perm-test" } });
      await until("the delete refused", async () => {
        const last = await lastEvent(`evt.cluster.${clusterId}`);
        return last?.string().includes(`1 live session (1 Pending: ${sessionId})`) ? last : undefined;
      });
      await bus.send({
        type: "cluster.delete",
        data: { clusterId, force: true },
        meta: { actor: "perm-test" },
      });
      await until("the forced delete", async () => {
        const h = await history.load({ type: "cluster", id: clusterId });
        return h.events.find((e) => e.type === "cluster.deletion-requested");
      });
    } finally {
      await running.stop();
      await sim.stop();
    }
  });

  it("two services contend for a leader lease; a release hands over at once, without a watch", async () => {
    const name = `perm-${randomBytes(4).toString("hex")}`;
    const ttlMs = 6_000;
    // Polls every 2 s: a takeover well under that came from following the key's subject.
    const renewEveryMs = 2_000;
    const contend = async (service: Service) => {
      const lease = await acquireLeadership({
        nc: (await as(service)).nc,
        name,
        holder: service,
        ttlMs,
        renewEveryMs,
      });
      leases.push(lease);
      return lease;
    };
    const a = await contend("idle-detector");
    const b = await contend("node-ops");
    expect(a.isLeader()).toBe(true);
    expect(b.isLeader()).toBe(false);
    await sleep(renewEveryMs + 500); // a renewal (kv.update on the revision) went through
    expect(a.isLeader()).toBe(true);
    expect(b.isLeader()).toBe(false);
    const released = Date.now();
    expect(await a.release()).toBe(true);
    // No watch (refused, see nats.conf): the follower's subscription to the key sees the delete.
    await until("the follower to take over", () => (b.isLeader() ? true : undefined), ttlMs);
    expect(Date.now() - released).toBeLessThan(renewEveryMs / 2);
    expect(await b.release()).toBe(true);
  });
});

describe("a service process logs in as its own user", () => {
  /** Runs a service's main.ts until it says it is ready (or exits); its output, whole. */
  async function runServiceProcess(
    service: Service,
    env: Record<string, string>,
  ): Promise<{ output: string; ready: boolean; code: number | null; stop(): Promise<void> }> {
    const child = spawn(process.execPath, [join(root, "services", service, "src", "main.ts")], {
      env: {
        PATH: process.env.PATH,
        HOME: process.env.HOME,
        LOG_LEVEL: "info",
        CAIRN_HEALTH_PORT: "0",
        ...env,
      },
      stdio: ["ignore", "pipe", "pipe", "ipc"],
    });
    let output = "";
    child.stdout?.on("data", (d) => (output += d));
    child.stderr?.on("data", (d) => (output += d));
    const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
    const ready = await Promise.race([
      new Promise<boolean>((r) =>
        child.on("message", (m) => (m as { type?: string })?.type === "cairn.ready" && r(true)),
      ),
      exited.then(() => false),
      sleep(30_000).then(() => false),
    ]);
    return {
      get output() {
        return output;
      },
      ready,
      code: child.exitCode,
      stop: async () => {
        if (child.exitCode === null) child.kill("SIGTERM");
        await exited;
      },
    };
  }

  it("idle-detector with NATS_USER/NATS_PASSWORD: ready, its sweep lease and heartbeats work, no secret and no violation logged", async () => {
    const logBefore = serverLog.length;
    const p = await runServiceProcess("idle-detector", {
      NATS_URL: `nats://127.0.0.1:${port}`,
      NATS_USER: "idle-detector",
      NATS_PASSWORD: passwords["idle-detector"],
      CAIRN_SESSION_SWEEP_SECONDS: "1",
    });
    try {
      expect(p.ready, p.output).toBe(true);
      await sleep(1_500); // a sweep or two under its lease
      const ready = await until("the ready line", () =>
        p.output.split("\n").find((l) => l.includes('"msg":"idle-detector ready"')),
      );
      expect(JSON.parse(ready ?? "{}")).toMatchObject({
        nats: `nats://127.0.0.1:${port}`,
        natsUser: "idle-detector",
        natsTls: false,
      });
      expect(p.output).not.toContain(passwords["idle-detector"]);
      expect(p.output).not.toMatch(/stream differs|watch failed|Permissions Violation/);
    } finally {
      await p.stop();
    }
    expect(serverLog.slice(logBefore)).not.toMatch(/Permissions Violation|Authorization Violation/);
  });

  it("provisioner with its password in NATS_URL: the ready line shows the URL without it", async () => {
    const sim = await startSim({ seed: 2, timeScale: 100 });
    const p = await runServiceProcess("provisioner", {
      NATS_URL: `nats://provisioner:${passwords.provisioner}@127.0.0.1:${port}`,
      AWS_ENDPOINT_URL_EC2: sim.url,
      AWS_ACCESS_KEY_ID: SIM_CREDENTIALS.accessKeyId,
      AWS_SECRET_ACCESS_KEY: SIM_CREDENTIALS.secretAccessKey,
      AWS_REGION: "eu-west-1",
    });
    try {
      expect(p.ready, p.output).toBe(true);
      const ready = await until("the ready line", () =>
        p.output.split("\n").find((l) => l.includes('"msg":"provisioner ready"')),
      );
      expect(JSON.parse(ready ?? "{}")).toMatchObject({
        nats: `nats://127.0.0.1:${port}`,
        natsUser: "provisioner",
      });
      expect(p.output).not.toContain(passwords.provisioner);
    } finally {
      await p.stop();
      await sim.stop();
    }
  });

  it("a wrong password is refused: the service exits 1 saying why, without printing the password", async () => {
    const wrong = `cairn${randomBytes(8).toString("hex")}`;
    const p = await runServiceProcess("idle-detector", {
      NATS_URL: `nats://127.0.0.1:${port}`,
      NATS_USER: "idle-detector",
      NATS_PASSWORD: wrong,
    });
    await p.stop();
    expect(p.ready).toBe(false);
    expect(p.output).toMatch(/Authorization Violation|AUTHORIZATION_VIOLATION/i);
    expect(p.output).not.toContain(wrong);
  });

  it("two ways to log in at once are refused at start, naming them", async () => {
    const p = await runServiceProcess("idle-detector", {
      NATS_URL: `nats://idle-detector:${passwords["idle-detector"]}@127.0.0.1:${port}`,
      NATS_USER: "idle-detector",
      NATS_PASSWORD: passwords["idle-detector"],
    });
    await p.stop();
    expect(p.ready).toBe(false);
    expect(p.output).toContain(
      "give one way to log in to NATS, not NATS_USER/NATS_PASSWORD and a user in NATS_URL",
    );
    expect(p.output).not.toContain(passwords["idle-detector"]);
  });
});

describe("why the rules are as they are, and a known gap", () => {
  it("a push consumer's deliveries are stored by the stream they match, headers included (shown as admin)", async () => {
    // nats-server does not check a deliver subject against its creator's permissions
    // (nats-io/nats-server#8274). Were services allowed consumers on KV_cairn_leases, one could do
    // this and burn the Nats-Msg-Id of a commit another service is about to append.
    const subject = "evt.session.via-push";
    const listener = admin.nc.subscribe(subject); // deliveries need interest beyond the stream's
    await admin.nc.flush();
    await admin.jsm.consumers.add("KV_cairn_leases", {
      name: "push-demo",
      filter_subject: "$KV.cairn_leases.push-demo",
      deliver_subject: subject,
      ack_policy: AckPolicy.None,
      deliver_policy: DeliverPolicy.New,
    });
    try {
      const h = natsHeaders();
      h.set("Nats-Msg-Id", "a-commit-id-to-come");
      await admin.js.publish("$KV.cairn_leases.push-demo", "x", { headers: h });
      const stored = await until("the delivery to be stored in EVT", () =>
        admin.jsm.streams
          .getMessage("EVT", { last_by_subj: "$KV.cairn_leases.push-demo" })
          // Not stored yet: nats.js answers null (not a 404 thrown), which `until` would take.
          .then((m) => m ?? undefined)
          .catch(() => undefined),
      );
      expect(stored?.subject).toBe("$KV.cairn_leases.push-demo");
      const real = await admin.js.publish("evt.session.victim", "{}", { msgID: "a-commit-id-to-come" });
      expect(real).toMatchObject({ duplicate: true, seq: stored?.seq });
    } finally {
      listener.unsubscribe();
      await admin.jsm.consumers.delete("KV_cairn_leases", "push-demo");
    }
  });

  // nats.js 3 takes the servers from a URL but drops `user:password@`; connectNats hands the
  // credentials over as options, so NATS_URL=nats://provisioner:…@host authenticates.
  it("connectNats authenticates with the user and password written in NATS_URL", async () => {
    const n = await connectNats(`nats://provisioner:${passwords.provisioner}@127.0.0.1:${port}`, {
      name: "perm-test-url",
    });
    connections.push(n);
    expect((await n.js.publish("evt.cluster.via-url", "{}")).stream).toBe("EVT");
  });
});
