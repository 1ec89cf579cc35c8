/**
 * The sim survives a restart on the same data directory, as a real cloud outlives its
 * control plane: instances, SSM parameters and commands, Kubernetes objects and SQS
 * messages are there again (with the same ids), time carries on, and new ids are fresh.
 * Everything through the real SDK clients.
 */
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  DescribeInstancesCommand,
  EC2Client,
  RunInstancesCommand,
  TerminateInstancesCommand,
} from "@aws-sdk/client-ec2";
import {
  CreateQueueCommand,
  DeleteMessageCommand,
  ReceiveMessageCommand,
  SendMessageCommand,
  SQSClient,
} from "@aws-sdk/client-sqs";
import {
  GetParameterCommand,
  ListCommandsCommand,
  PutParameterCommand,
  SendCommandCommand,
  SSMClient,
} from "@aws-sdk/client-ssm";
import { AppsV1Api, CoreV1Api, KubeConfig } from "@kubernetes/client-node";
import { afterAll, describe, expect, it } from "vitest";
import { SIM_CREDENTIALS, type Sim, type SimOptions, startSim } from "./sim.ts";

const region = "eu-west-1";
let dir: string;
const dirs: string[] = [];
const sims: Sim[] = [];
afterAll(async () => {
  for (const s of sims) await s.stop().catch(() => {});
  for (const d of [...dirs, dir]) if (d) await rm(d, { recursive: true, force: true });
});
const freePort = () =>
  new Promise<number>((resolve) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });

const start = async (opts: Partial<SimOptions> = {}) => {
  const sim = await startSim({ timeScale: 100, dataDir: dir, latencies: { apiCall: 0 }, ...opts });
  sims.push(sim);
  const o = { region, endpoint: sim.url, credentials: SIM_CREDENTIALS, maxAttempts: 1 };
  return { sim, ec2: new EC2Client(o), ssm: new SSMClient(o), sqs: new SQSClient(o) };
};
const states = async (ec2: EC2Client) =>
  Object.fromEntries(
    ((await ec2.send(new DescribeInstancesCommand({}))).Reservations ?? [])
      .flatMap((r) => r.Instances ?? [])
      .map((i) => [i.InstanceId!, i.State?.Name]),
  );
const kube = (sim: Sim) => {
  const kc = new KubeConfig();
  kc.loadFromString(sim.world.kube.kubeconfig("k1"));
  return kc.makeApiClient(CoreV1Api);
};
const until = async (what: string, f: () => Promise<boolean>) => {
  const end = Date.now() + 10_000;
  while (!(await f())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
};

describe("the sim on a data directory", () => {
  it("restores instances, parameters, commands, Kubernetes objects and queues after a restart; new ids are fresh", async () => {
    dir = await mkdtemp(join(tmpdir(), "cairn-sim-"));
    const a = await start();
    const launched = await a.ec2.send(
      new RunInstancesCommand({
        ImageId: "ami-0abc1234def567890",
        InstanceType: "t3.large",
        MinCount: 2,
        MaxCount: 2,
      }),
    );
    const ids = launched.Instances!.map((i) => i.InstanceId!);
    await until("running", async () => Object.values(await states(a.ec2)).every((s) => s === "running"));
    await a.ec2.send(new TerminateInstancesCommand({ InstanceIds: [ids[1]!] }));
    await a.ssm.send(
      new PutParameterCommand({ Name: "/cairn/x/token", Value: "s3cret", Type: "SecureString" }),
    );
    // The SSM agent registers 20 sim s after boot.
    let commandId = "";
    await until("the agent", async () => {
      try {
        const out = await a.ssm.send(
          new SendCommandCommand({
            DocumentName: "AWS-RunShellScript",
            InstanceIds: [ids[0]!],
            Parameters: { commands: ["echo hi"] },
          }),
        );
        commandId = out.Command!.CommandId!;
        return true;
      } catch {
        return false;
      }
    });
    await fetch(`${a.sim.adminUrl}/kube/ensure-cluster`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ clusterId: "k1" }),
    });
    const pod = await kube(a.sim).createNamespacedPod({
      namespace: "default",
      body: { metadata: { name: "p1" }, spec: { containers: [{ name: "c", image: "nginx:1.27" }] } },
    });
    const q = await a.sqs.send(new CreateQueueCommand({ QueueName: "q1" }));
    await a.sqs.send(new SendMessageCommand({ QueueUrl: q.QueueUrl!, MessageBody: "hello" }));
    const before = await (await fetch(`${a.sim.adminUrl}/health`)).json();
    const seed = (before as { seed: number }).seed;
    await a.sim.stop();

    const b = await start();
    const after = (await (await fetch(`${b.sim.adminUrl}/health`)).json()) as {
      seed: number;
      simTime: string;
    };
    expect(after.seed).toBe(seed);
    expect(Date.parse(after.simTime)).toBeGreaterThanOrEqual(
      Date.parse((before as { simTime: string }).simTime),
    );
    const st = await states(b.ec2);
    expect(st[ids[0]!]).toBe("running");
    expect(["shutting-down", "terminated"]).toContain(st[ids[1]!]);
    expect(
      (await b.ssm.send(new GetParameterCommand({ Name: "/cairn/x/token", WithDecryption: true }))).Parameter
        ?.Value,
    ).toBe("s3cret");
    expect((await b.ssm.send(new ListCommandsCommand({}))).Commands?.map((c) => c.CommandId)).toContain(
      commandId,
    );
    const restored = await kube(b.sim).readNamespacedPod({ name: "p1", namespace: "default" });
    expect(restored.metadata?.uid).toBe(pod.metadata?.uid);
    const got = await b.sqs.send(
      new ReceiveMessageCommand({ QueueUrl: q.QueueUrl!, MaxNumberOfMessages: 1 }),
    );
    expect(got.Messages?.map((m) => m.Body)).toEqual(["hello"]);
    // New ids never repeat the old ones.
    const more = await b.ec2.send(
      new RunInstancesCommand({
        ImageId: "ami-0abc1234def567890",
        InstanceType: "t3.large",
        MinCount: 2,
        MaxCount: 2,
      }),
    );
    for (const i of more.Instances ?? []) expect(ids).not.toContain(i.InstanceId);
    await b.sim.stop();

    // A third start replays the second run's calls too.
    const c = await start();
    const all = await states(c.ec2);
    for (const i of [...ids, ...(more.Instances ?? []).map((x) => x.InstanceId!)])
      expect(all[i]).toBeDefined();
  });
});

describe("journal compaction", () => {
  const journalOf = async (d: string) =>
    (await readFile(join(d, "journal.ndjson"), "utf8")).split("\n").filter(Boolean);
  const run = (clientToken: string) =>
    new RunInstancesCommand({
      ImageId: "ami-0abc1234def567890",
      InstanceType: "t3.large",
      MinCount: 1,
      MaxCount: 1,
      ClientToken: clientToken,
    });
  const kubeOf = (sim: Sim) => {
    const kc = new KubeConfig();
    kc.loadFromString(sim.world.kube.kubeconfig("k1"));
    return { core: kc.makeApiClient(CoreV1Api), apps: kc.makeApiClient(AppsV1Api) };
  };

  it("snapshots the cloud every compactAfter calls instead of growing; a restart restores the snapshot and the calls after it, exactly", async () => {
    dirs.push(dir);
    dir = await mkdtemp(join(tmpdir(), "cairn-sim-compact-"));
    const a = await start({ compactAfter: 10 });
    const ids: string[] = [];
    for (let i = 0; i < 12; i++) ids.push((await a.ec2.send(run(`launch-${i}`))).Instances![0]!.InstanceId!);
    await a.ec2.send(new TerminateInstancesCommand({ InstanceIds: [ids[0]!] }));
    await a.ssm.send(
      new PutParameterCommand({ Name: "/cairn/k1/token", Value: "s3cret", Type: "SecureString" }),
    );
    a.sim.world.kube.ensureCluster("k1");
    a.sim.world.kube.registerNode("k1", {
      name: "n1",
      role: "agent",
      labels: {},
      taints: [],
      instanceId: ids[1],
    });
    const ka = kubeOf(a.sim);
    await ka.apps.createNamespacedDeployment({
      namespace: "default",
      body: {
        metadata: { name: "web" },
        spec: {
          replicas: 2,
          selector: { matchLabels: { app: "web" } },
          template: {
            metadata: { labels: { app: "web" } },
            spec: { containers: [{ name: "c", image: "nginx:1.27" }] },
          },
        },
      },
    });
    await ka.apps.createNamespacedDaemonSet({
      namespace: "default",
      body: {
        metadata: { name: "agent" },
        spec: {
          selector: { matchLabels: { app: "agent" } },
          template: {
            metadata: { labels: { app: "agent" } },
            spec: { containers: [{ name: "c", image: "busybox:1" }] },
          },
        },
      },
    });
    const q = await a.sqs.send(new CreateQueueCommand({ QueueName: "q1" }));
    await a.sqs.send(new SendMessageCommand({ QueueUrl: q.QueueUrl!, MessageBody: "first" }));
    await a.sqs.send(new SendMessageCommand({ QueueUrl: q.QueueUrl!, MessageBody: "second" }));
    // Received, not deleted: its receipt handle must still delete it after the restart.
    const inFlight = (
      await a.sqs.send(new ReceiveMessageCommand({ QueueUrl: q.QueueUrl!, MaxNumberOfMessages: 1 }))
    ).Messages![0]!;
    await fetch(`${a.sim.adminUrl}/faults`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ kind: "throttle", service: "ec2", action: "StopInstances", count: 2 }),
    });
    // Everything booted and ready, so nothing changes with the restart's downtime (through
    // the admin API: a jump of sim time is journaled, as any call that changes the cloud).
    await fetch(`${a.sim.adminUrl}/time/advance`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ seconds: 600 }),
    });

    const lines = await journalOf(dir);
    expect(lines.length).toBeLessThanOrEqual(11); // a snapshot and at most compactAfter calls after it
    const header = JSON.parse(lines[0]!) as { v: number; snapshot?: object };
    expect(header.v).toBe(2);
    expect(header.snapshot).toBeDefined();
    // The whole cloud as the admin API shows it (the sim's own port aside: it listens anew).
    const picture = (sim: Sim) => JSON.stringify(sim.state()).replaceAll(sim.url, "<sim>");
    const before = picture(a.sim);
    const podsBefore = (await ka.core.listNamespacedPod({ namespace: "default" })).items.map(
      (p) => `${p.metadata?.name} ${p.metadata?.uid} ${p.spec?.nodeName} ${p.status?.phase}`,
    );
    await a.sim.stop();

    const b = await start({ compactAfter: 10 });
    expect(JSON.parse(picture(b.sim))).toEqual(JSON.parse(before));
    const kb = kubeOf(b.sim);
    // Unlike a replay, a snapshot keeps what the controllers made between calls, names and uids.
    expect(
      (await kb.core.listNamespacedPod({ namespace: "default" })).items.map(
        (p) => `${p.metadata?.name} ${p.metadata?.uid} ${p.spec?.nodeName} ${p.status?.phase}`,
      ),
    ).toEqual(podsBefore);
    expect(
      (await b.ssm.send(new GetParameterCommand({ Name: "/cairn/k1/token", WithDecryption: true }))).Parameter
        ?.Value,
    ).toBe("s3cret");
    await b.sqs.send(
      new DeleteMessageCommand({ QueueUrl: q.QueueUrl!, ReceiptHandle: inFlight.ReceiptHandle! }),
    );
    const rest = await b.sqs.send(
      new ReceiveMessageCommand({ QueueUrl: q.QueueUrl!, MaxNumberOfMessages: 10 }),
    );
    expect(rest.Messages?.map((m) => m.Body)).toEqual(["second"]);
    // The fault added at run time is still in force, with its count.
    const faults = (await (await fetch(`${b.sim.adminUrl}/faults`)).json()) as {
      rules: { count?: number }[];
    };
    expect(faults.rules.map((r) => r.count)).toEqual([2]);
    // ClientToken idempotency survives: the same token is the same instance, a new one a new id.
    expect((await b.ec2.send(run("launch-3"))).Instances![0]!.InstanceId).toBe(ids[3]);
    const fresh = (await b.ec2.send(run("after-restart"))).Instances![0]!.InstanceId!;
    expect(ids).not.toContain(fresh);
    await b.sim.stop();

    // A third start: the snapshot plus the second run's calls.
    const c = await start({ compactAfter: 10 });
    expect(Object.keys(await states(c.ec2))).toEqual(expect.arrayContaining([...ids, fresh]));
    await c.sim.stop();
  });

  it("a compaction cut short by a crash (a torn journal.ndjson.tmp beside the journal) is discarded; the journal restores as it was", async () => {
    dirs.push(dir);
    dir = await mkdtemp(join(tmpdir(), "cairn-sim-torn-"));
    const a = await start({ compactAfter: 1000 });
    const launched = (await a.ec2.send(run("torn-1"))).Instances![0]!.InstanceId!;
    await a.sim.stop();
    const journal = await readFile(join(dir, "journal.ndjson"), "utf8");
    // What a kill mid-compaction leaves: half a snapshot in the new file, the old one whole.
    await writeFile(join(dir, "journal.ndjson.tmp"), '{"v":2,"seed":1,"snapshot":{"t":17');
    const b = await start({ compactAfter: 1000 });
    expect(Object.keys(await states(b.ec2))).toEqual([launched]);
    expect(existsSync(join(dir, "journal.ndjson.tmp"))).toBe(false);
    expect((await readFile(join(dir, "journal.ndjson"), "utf8")).startsWith(journal)).toBe(true);
    await b.sim.stop();
  });

  it("SIGKILLed again and again while it compacts on every call: each restart has every launch it acknowledged, and ids never repeat", async () => {
    dirs.push(dir);
    dir = await mkdtemp(join(tmpdir(), "cairn-sim-kill-"));
    const acknowledged: string[] = [];
    let midCompaction = 0;
    // At least 4 rounds, and until a kill has landed inside a compaction (most do).
    // (On a loaded machine kills land between compactions more often: keep trying, bounded.)
    const deadline = Date.now() + 90_000;
    for (let round = 0; round < 4 || (midCompaction === 0 && Date.now() < deadline); round++) {
      const port = await freePort();
      const child = spawn(process.execPath, [join(import.meta.dirname, "main.ts")], {
        env: {
          ...process.env,
          CAIRN_SIM_PORT: String(port),
          CAIRN_SIM_TIME_SCALE: "100",
          CAIRN_SIM_DATA_DIR: dir,
          CAIRN_SIM_COMPACT_AFTER: "1",
        },
        stdio: ["ignore", "pipe", "inherit"],
      });
      const url = `http://127.0.0.1:${port}`;
      await until(
        "the sim restored",
        async () => (await fetch(`${url}/_sim/health`).catch(() => undefined))?.ok === true,
      );
      const ec2 = new EC2Client({ region, endpoint: url, credentials: SIM_CREDENTIALS, maxAttempts: 1 });
      const have = Object.keys(await states(ec2));
      expect(have).toEqual(expect.arrayContaining(acknowledged));
      expect(new Set(have).size).toBe(have.length);
      // Launch until killed: compaction runs before every call, so the kill lands in one often.
      const exited = new Promise((r) => child.once("exit", r));
      let stop = false;
      const load = (async () => {
        for (let i = 0; !stop; i++) {
          try {
            const out = await ec2.send(run(`r${round}-${i}`));
            acknowledged.push(out.Instances![0]!.InstanceId!);
          } catch {
            return; // killed mid-call: not acknowledged
          }
        }
      })();
      await new Promise((r) => setTimeout(r, 300 + Math.random() * 400));
      child.kill("SIGKILL");
      stop = true;
      await exited;
      await load;
      ec2.destroy();
      // A kill that left a new journal half written landed inside a compaction.
      if (existsSync(join(dir, "journal.ndjson.tmp"))) midCompaction++;
    }
    const b = await start({ compactAfter: 1 });
    const all = Object.keys(await states(b.ec2));
    expect(all).toEqual(expect.arrayContaining(acknowledged));
    expect(new Set(all).size).toBe(all.length);
    expect(acknowledged.length).toBeGreaterThan(8);
    expect(midCompaction).toBeGreaterThan(0);
    await b.sim.stop();
  }, 150_000);
});

describe("a call dated at its arrival", () => {
  it("replays each call at its own sim time, however long the restart takes to begin replaying", async () => {
    const own = await mkdtemp(join(tmpdir(), "cairn-sim-replay-time-"));
    dirs.push(own);
    // At ×100,000 a millisecond of wall time is 100 sim seconds: time that ran between the
    // restarted sim's clock being made and its replay (modules made, the server listening:
    // milliseconds) would date the first replayed call minutes late, and so would a module
    // that read the clock after the journal's write instead of the date the journal keeps.
    const boot = async () => {
      const sim = await startSim({ timeScale: 100_000, dataDir: own, latencies: { apiCall: 0 } });
      sims.push(sim);
      const ssm = new SSMClient({ region, endpoint: sim.url, credentials: SIM_CREDENTIALS, maxAttempts: 1 });
      return { sim, ssm };
    };
    const first = await boot();
    for (const n of [1, 2, 3])
      await first.ssm.send(new PutParameterCommand({ Name: `/t/${n}`, Value: "v", Type: "String" }));
    const times = first.sim.requests.list({ action: "PutParameter" }).map((r) => Date.parse(r.time));
    first.ssm.destroy();
    await first.sim.stop();

    const again = await boot();
    again.ssm.destroy();
    const replayed = again.sim.requests.list({ action: "PutParameter" }).map((r) => Date.parse(r.time));
    expect(replayed).toEqual(times);
  });

  it("replays each Kubernetes and admin call at the time it was journaled", async () => {
    const own = await mkdtemp(join(tmpdir(), "cairn-sim-kube-time-"));
    dirs.push(own);
    // As above at ×100,000: a Kubernetes object stamped with the clock read after the
    // journal's write (a write takes ~1 ms of wall time, minutes of sim time here) would be
    // stamped at the journal's earlier date in the replay, and its creationTimestamp, a
    // pod's phase or an eviction's 429 would change across a restart.
    const boot = async () => {
      const sim = await startSim({ timeScale: 100_000, dataDir: own, latencies: { apiCall: 0 } });
      sims.push(sim);
      return sim;
    };
    const first = await boot();
    await fetch(`${first.adminUrl}/kube/ensure-cluster`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ clusterId: "k1" }),
    });
    const created: string[] = [];
    for (const n of [1, 2, 3, 4, 5]) {
      const pod = await kube(first).createNamespacedPod({
        namespace: "default",
        body: { metadata: { name: `p${n}` }, spec: { containers: [{ name: "c", image: "nginx:1.27" }] } },
      });
      created.push(String(pod.metadata?.creationTimestamp?.toISOString()));
    }
    const times = first.requests.list({ service: "kube" }).map((r) => r.time);
    await first.stop();

    const again = await boot();
    const replayed: string[] = [];
    for (const n of [1, 2, 3, 4, 5]) {
      const pod = await kube(again).readNamespacedPod({ name: `p${n}`, namespace: "default" });
      replayed.push(String(pod.metadata?.creationTimestamp?.toISOString()));
    }
    expect(replayed).toEqual(created);
    expect(
      again.requests
        .list({ service: "kube" })
        .map((r) => r.time)
        .slice(0, times.length),
    ).toEqual(times);
  });

  it("is dated the same after a restart: a launch that waited behind another boots from its arrival again", async () => {
    const own = await mkdtemp(join(tmpdir(), "cairn-sim-at-"));
    dirs.push(own);
    // As ec2.int.spec's "concurrent calls": 10 sim s a call at ×1000, two 2,000-instance
    // launches at once, so the second waits behind the first for tens of sim seconds.
    const boot = async () => {
      const sim = await startSim({ timeScale: 1000, dataDir: own, latencies: { apiCall: 10 } });
      sims.push(sim);
      const ec2 = new EC2Client({ region, endpoint: sim.url, credentials: SIM_CREDENTIALS, maxAttempts: 1 });
      return { sim, ec2 };
    };
    const first = await boot();
    const run = () =>
      first.ec2.send(
        new RunInstancesCommand({ ImageId: "ami-0abc1234def56789a", MinCount: 2000, MaxCount: 2000 }),
      );
    await Promise.all([run(), run()]);
    const [, second] = first.sim.requests.list({ action: "RunInstances" });
    expect(second!.at).toBeDefined();
    const last = second!.ids.at(-1)!;
    first.sim.clock.advance(60_000);
    const before = first.sim.world.ec2.instance(region, last)!.runningSince!;
    first.ec2.destroy();
    await first.sim.stop();

    const again = await boot();
    again.ec2.destroy();
    expect(again.sim.world.ec2.instance(region, last)!.runningSince).toBe(before);
  });
});
