/**
 * The proof, end to end across the sim's modules, with the unmodified official
 * clients only: EC2 launches an instance; SSM refuses it until its agent registers; a
 * K3s server step brings up the cluster's API server and writes the kubeconfig as a
 * SecureString; client-node, with that kubeconfig, lists the node, cordons it, and is
 * refused an eviction by a PodDisruptionBudget (429) until the budget allows it.
 */
import { DescribeInstancesCommand, EC2Client, RunInstancesCommand } from "@aws-sdk/client-ec2";
import {
  GetCommandInvocationCommand,
  GetParameterCommand,
  SendCommandCommand,
  SSMClient,
} from "@aws-sdk/client-ssm";
import {
  ApiException,
  CoreV1Api,
  KubeConfig,
  PatchStrategy,
  PolicyV1Api,
  setHeaderOptions,
} from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SIM_CREDENTIALS, type Sim, startSim } from "./sim.ts";

let sim: Sim;
let ec2: EC2Client;
let ssm: SSMClient;
const region = "eu-west-1";

beforeAll(async () => {
  sim = await startSim({ seed: 11, timeScale: 1 });
  const cfg = { region, endpoint: sim.url, credentials: SIM_CREDENTIALS, maxAttempts: 1 };
  ec2 = new EC2Client(cfg);
  ssm = new SSMClient(cfg);
});
afterAll(async () => sim?.stop());

const advance = (seconds: number) => sim.clock.advance(seconds * 1000);

async function refusal(p: Promise<unknown>): Promise<{ name?: string; code?: number; body?: string }> {
  try {
    await p;
  } catch (err) {
    if (err instanceof ApiException) return { code: err.code, body: String(err.body) };
    return { name: (err as Error).name };
  }
  throw new Error("expected a refusal");
}

describe("the sim, across EC2, SSM and Kubernetes", () => {
  it("takes a cluster from an instance launch to a node that client-node cordons and drains against a PDB", async () => {
    // 1. One server instance, launched twice with one token: one instance.
    const launch = () =>
      ec2.send(
        new RunInstancesCommand({
          ImageId: "ami-0abc1234def567890",
          InstanceType: "t3.medium",
          MinCount: 1,
          MaxCount: 1,
          ClientToken: "proof-server-0",
          TagSpecifications: [{ ResourceType: "instance", Tags: [{ Key: "cairn:cluster", Value: "proof" }] }],
        }),
      );
    const first = await launch();
    const again = await launch();
    const instanceId = first.Instances?.[0]?.InstanceId;
    expect(instanceId).toMatch(/^i-[0-9a-f]{17}$/);
    expect(again.Instances?.map((i) => i.InstanceId)).toEqual([instanceId]);

    // 2. Running after the boot latency; unknown to SSM until its agent registers.
    advance(31);
    const described = await ec2.send(new DescribeInstancesCommand({ InstanceIds: [instanceId!] }));
    expect(described.Reservations?.[0]?.Instances?.[0]?.State?.Name).toBe("running");
    const script = [
      "#!/bin/bash",
      "# cairn-step: k3s-server-init cluster=proof node=proof-server-0 labels=cairn.dev/pool=servers",
      "set -euo pipefail",
    ];
    const send = () =>
      ssm.send(
        new SendCommandCommand({
          DocumentName: "AWS-RunShellScript",
          InstanceIds: [instanceId!],
          Parameters: { commands: script },
          TimeoutSeconds: 600,
        }),
      );
    expect((await refusal(send())).name).toBe("InvalidInstanceId");
    advance(21);
    const sent = await send();
    const commandId = sent.Command?.CommandId;

    // 3. The server step finishes after the install latency.
    const status = async () =>
      (await ssm.send(new GetCommandInvocationCommand({ CommandId: commandId, InstanceId: instanceId })))
        .Status;
    expect(await status()).toBe("InProgress");
    advance(61);
    expect(await status()).toBe("Success");

    // 4. The kubeconfig the script wrote, a SecureString, drives client-node.
    const param = await ssm.send(
      new GetParameterCommand({ Name: "/cairn/proof/kubeconfig", WithDecryption: true }),
    );
    expect(param.Parameter?.Type).toBe("SecureString");
    const kc = new KubeConfig();
    kc.loadFromString(param.Parameter?.Value ?? "");
    const core = kc.makeApiClient(CoreV1Api);
    const policy = kc.makeApiClient(PolicyV1Api);
    const nodes = await core.listNode();
    expect(nodes.items.map((n) => n.metadata?.name)).toEqual(["proof-server-0"]);
    const node = nodes.items[0]!;
    expect(node.metadata?.labels?.["cairn.dev/pool"]).toBe("servers");
    expect(node.spec?.providerID).toContain(instanceId);
    expect(node.status?.conditions?.find((c) => c.type === "Ready")?.status).toBe("True");

    // 5. Cordon.
    await core.patchNode(
      { name: "proof-server-0", body: { spec: { unschedulable: true } } },
      setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
    );
    expect((await core.readNode({ name: "proof-server-0" })).spec?.unschedulable).toBe(true);

    // 6. Two pods on the node, a budget that needs both: eviction refused with 429.
    for (const name of ["web-1", "web-2"]) {
      await core.createNamespacedPod({
        namespace: "default",
        body: {
          metadata: { name, labels: { app: "web" } },
          spec: { nodeName: "proof-server-0", containers: [{ name: "web", image: "nginx" }] },
        },
      });
    }
    await policy.createNamespacedPodDisruptionBudget({
      namespace: "default",
      body: {
        metadata: { name: "web" },
        spec: { minAvailable: 2, selector: { matchLabels: { app: "web" } } },
      },
    });
    const evict = () =>
      core.createNamespacedPodEviction({
        name: "web-1",
        namespace: "default",
        body: { metadata: { name: "web-1", namespace: "default" } },
      });
    const refused = await refusal(evict());
    expect(refused.code).toBe(429);
    expect(refused.body).toContain("disruption budget");

    // 7. The budget allows one: the eviction goes through and the pod goes away.
    await policy.patchNamespacedPodDisruptionBudget(
      { name: "web", namespace: "default", body: { spec: { minAvailable: 1 } } },
      setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
    );
    advance(1); // the disruption controller processes the changed budget (until then: 429, Retry-After 10)
    await evict();
    advance(5);
    const left = await core.listNamespacedPod({
      namespace: "default",
      fieldSelector: "spec.nodeName=proof-server-0",
    });
    expect(left.items.map((p) => p.metadata?.name)).toEqual(["web-2"]);

    // 8. Every call was made in eu-west-1, and the request log says so.
    const aws = sim.requests.list().filter((r) => r.service !== "kube");
    expect(new Set(aws.map((r) => r.region))).toEqual(new Set([region]));
  });

  it("a throttling fault surfaces as the SDKs' own typed exceptions", async () => {
    sim.faults.add({ kind: "throttle", service: "ec2", count: 1 });
    sim.faults.add({ kind: "throttle", service: "ssm", count: 1 });
    expect((await refusal(ec2.send(new DescribeInstancesCommand({})))).name).toBe("RequestLimitExceeded");
    expect((await refusal(ssm.send(new GetParameterCommand({ Name: "/cairn/proof/kubeconfig" })))).name).toBe(
      "ThrottlingException",
    );
    // And then calls go through again.
    await ec2.send(new DescribeInstancesCommand({}));
  });
});
