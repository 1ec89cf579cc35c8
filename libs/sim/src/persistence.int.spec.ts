/**
 * The sim survives a restart on the same data directory, as a real cloud outlives its
 * control plane: instances, SSM parameters and commands, Kubernetes objects and SQS
 * messages are there again (with the same ids), time carries on, and new ids are fresh.
 * Everything through the real SDK clients.
 */
import { mkdtemp, rm } from "node:fs/promises";
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
import { CoreV1Api, KubeConfig } from "@kubernetes/client-node";
import { afterAll, describe, expect, it } from "vitest";
import { SIM_CREDENTIALS, type Sim, startSim } from "./sim.ts";

const region = "eu-west-1";
let dir: string;
const sims: Sim[] = [];
afterAll(async () => {
  for (const s of sims) await s.stop().catch(() => {});
  if (dir) await rm(dir, { recursive: true, force: true });
});

const start = async () => {
  const sim = await startSim({ timeScale: 100, dataDir: dir, latencies: { apiCall: 0 } });
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
