import { DescribeInstancesCommand, EC2Client, RunInstancesCommand } from "@aws-sdk/client-ec2";
import {
  GetCommandInvocationCommand,
  GetParameterCommand,
  ParameterNotFound,
  SendCommandCommand,
  SSMClient,
} from "@aws-sdk/client-ssm";
import { CoreV1Api, KubeConfig } from "@kubernetes/client-node";
import { afterEach, describe, expect, it } from "vitest";
import { REALISTIC_LATENCIES } from "../clock.ts";
import { SIM_CREDENTIALS, type Sim, startSim } from "../sim.ts";
import type { KubePort, NodeRegistration } from "../world.ts";

const REGION = "eu-west-1";
const L = REALISTIC_LATENCIES;

let sim: Sim | undefined;
afterEach(async () => {
  await sim?.stop();
  sim = undefined;
});

async function world(seed: number) {
  sim = await startSim({ seed, timeScale: 1, latencies: { apiCall: 0 } });
  const cfg = { region: REGION, endpoint: sim.url, credentials: SIM_CREDENTIALS, maxAttempts: 1 };
  return { sim, ssm: new SSMClient(cfg), ec2: new EC2Client(cfg) };
}

/** Launches `count` instances and moves time until their SSM agents have registered. */
async function managed(s: Sim, ec2: EC2Client, count: number) {
  const out = await ec2.send(
    new RunInstancesCommand({
      ImageId: "ami-0abcdef1234567890",
      InstanceType: "t3.medium",
      MinCount: count,
      MaxCount: count,
    }),
  );
  s.clock.advance((L.instanceBoot + L.ssmRegistration) * 1000 + 1000);
  const ids = (out.Instances ?? []).map((i) => i.InstanceId!);
  const described = await ec2.send(new DescribeInstancesCommand({ InstanceIds: ids }));
  return described
    .Reservations!.flatMap((r) => r.Instances ?? [])
    .map((i) => ({
      id: i.InstanceId!,
      az: i.Placement!.AvailabilityZone!,
      ip: i.PrivateIpAddress!,
      dns: i.PrivateDnsName!,
    }));
}

async function run(ssm: SSMClient, instanceId: string, header: string) {
  const out = await ssm.send(
    new SendCommandCommand({
      DocumentName: "AWS-RunShellScript",
      InstanceIds: [instanceId],
      Parameters: {
        commands: ["#!/bin/bash", "set -euo pipefail", header, "curl -sfL https://get.k3s.io | sh -"],
      },
    }),
  );
  return out.Command!.CommandId!;
}

const status = (ssm: SSMClient, CommandId: string, InstanceId: string) =>
  ssm.send(new GetCommandInvocationCommand({ CommandId, InstanceId }));

/** A KubePort that records what the scripts ask of Kubernetes (to check the exact registrations). */
function recordingKube() {
  const calls: { op: string; cluster: string; node?: NodeRegistration }[] = [];
  const clusters = new Set<string>();
  const port: KubePort = {
    ensureCluster(clusterId) {
      clusters.add(clusterId);
      calls.push({ op: "ensureCluster", cluster: clusterId });
      return { server: `http://sim/k8s/${clusterId}`, token: "tok-secret" };
    },
    registerNode(clusterId, node) {
      calls.push({ op: "registerNode", cluster: clusterId, node });
    },
    setNodeReady() {},
    stopKubelet() {},
    replaceDatastore() {},
    removeNode() {},
    setImageAvailable() {},
    kubeconfig: (clusterId) =>
      `apiVersion: v1\nkind: Config\n# cluster ${clusterId}\nusers: [{name: u, user: {token: tok-secret}}]\n`,
    clusters: () => [...clusters],
  };
  return { port, calls };
}

describe("K3s steps: what the scripts ask of Kubernetes", () => {
  it("k3s-server-init brings up the cluster, registers the server and stores the kubeconfig, after the install latency", async () => {
    const { sim, ssm, ec2 } = await world(21);
    const kube = recordingKube();
    sim.world.kube = kube.port; // this test checks the exact calls, not the Kubernetes API
    const [a] = await managed(sim, ec2, 1);
    const cmd = await run(
      ssm,
      a!.id,
      "# cairn-step: k3s-server-init cluster=c1 node=cp-1 labels=cairn.dev/pool=system taints=CriticalAddonsOnly=true:NoExecute",
    );

    sim.clock.advance(L.k3sServerInstall * 1000 - 5000);
    expect(await status(ssm, cmd, a!.id)).toMatchObject({ Status: "InProgress" });
    expect(kube.calls).toEqual([]);
    expect(sim.world.ssm.parameter(REGION, "/cairn/c1/kubeconfig")).toBeUndefined();

    sim.clock.advance(6000);
    const done = await status(ssm, cmd, a!.id);
    expect(done.Status).toBe("Success");
    expect(done.StandardOutputContent).toContain("[cairn] step k3s-server-init: k3s v1.31.4+k3s1 installed");
    expect(done.StandardOutputContent).not.toContain("tok-secret");
    expect(kube.calls).toEqual([
      { op: "ensureCluster", cluster: "c1" },
      {
        op: "registerNode",
        cluster: "c1",
        node: {
          name: "cp-1",
          instanceId: a!.id,
          availabilityZone: a!.az,
          role: "server",
          labels: { "cairn.dev/pool": "system" },
          taints: [{ key: "CriticalAddonsOnly", value: "true", effect: "NoExecute" }],
          internalIp: a!.ip,
        },
      },
    ]);
    const param = await ssm.send(
      new GetParameterCommand({ Name: "/cairn/c1/kubeconfig", WithDecryption: true }),
    );
    expect(param.Parameter).toMatchObject({ Type: "SecureString", Value: kube.port.kubeconfig("c1") });

    // Polling again changes nothing: the effect happened once.
    await status(ssm, cmd, a!.id);
    expect(kube.calls).toHaveLength(2);
  });

  it("one agent-join for many instances names each node after its instance (node-name=instance-id)", async () => {
    const { sim, ssm, ec2 } = await world(23);
    const kube = recordingKube();
    sim.world.kube = kube.port;
    const nodes = await managed(sim, ec2, 3);
    const [server, ...agents] = nodes;
    await run(ssm, server!.id, "# cairn-step: k3s-server-init cluster=c1 node=cp-1");
    sim.clock.advance(L.k3sServerInstall * 1000 + 1000);
    const cmd = await ssm.send(
      new SendCommandCommand({
        DocumentName: "AWS-RunShellScript",
        InstanceIds: agents.map((a) => a.id),
        Parameters: {
          commands: [
            "#!/bin/bash",
            "# cairn-step: k3s-agent-join cluster=c1 node-name=instance-id labels=tier=web",
          ],
        },
      }),
    );
    sim.clock.advance(L.k3sJoin * 1000 + 1000);
    for (const a of agents) expect((await status(ssm, cmd.Command!.CommandId!, a.id)).Status).toBe("Success");
    const registered = kube.calls
      .filter((c) => c.op === "registerNode")
      .map((c) => (c as { node: { name: string; instanceId: string } }).node);
    expect(registered.slice(1).map((n) => [n.name, n.instanceId])).toEqual(agents.map((a) => [a.id, a.id]));
  });

  it("applies a finished script's effect even if nobody polls the command", async () => {
    const { sim, ssm, ec2 } = await world(22);
    const kube = recordingKube();
    sim.world.kube = kube.port;
    const [a] = await managed(sim, ec2, 1);
    await run(ssm, a!.id, "# cairn-step: k3s-server-init cluster=c2 kubeconfig-param=/custom/kc");
    sim.clock.advance(L.k3sServerInstall * 1000 + 1000);
    // Any later request settles it; here one to EC2.
    await ec2.send(new DescribeInstancesCommand({}));
    expect(kube.calls.map((c) => c.op)).toEqual(["ensureCluster", "registerNode"]);
    expect(kube.calls[1]?.node?.name).toBe(a!.dns); // no node= → the host name
    expect(sim.world.ssm.parameter(REGION, "/custom/kc")).toBe(kube.port.kubeconfig("c2"));
  });

  it("joins register servers and agents after the join latency; a join before any server fails", async () => {
    const { sim, ssm, ec2 } = await world(23);
    const kube = recordingKube();
    sim.world.kube = kube.port;
    const [a, b, c] = await managed(sim, ec2, 3);

    const early = await run(ssm, b!.id, "# cairn-step: k3s-agent-join cluster=c3 node=w-early");
    sim.clock.advance(L.k3sJoin * 1000 + 1000);
    const failed = await status(ssm, early, b!.id);
    expect(failed).toMatchObject({ Status: "Failed", ResponseCode: 1 });
    expect(failed.StandardErrorContent).toMatch(/Unable to join cluster c3/);
    expect(kube.calls).toEqual([]);

    const init = await run(ssm, a!.id, "# cairn-step: k3s-server-init cluster=c3 node=cp-1");
    sim.clock.advance(L.k3sServerInstall * 1000 + 1000);
    expect((await status(ssm, init, a!.id)).Status).toBe("Success");

    const agent = await run(
      ssm,
      b!.id,
      "# cairn-step: k3s-agent-join cluster=c3 node=w-1 labels=cairn.dev/pool=gpu taints=gpu:NoSchedule",
    );
    const server = await run(ssm, c!.id, "# cairn-step: k3s-server-join cluster=c3 node=cp-2");
    sim.clock.advance(L.k3sJoin * 1000 - 5000);
    expect((await status(ssm, agent, b!.id)).Status).toBe("InProgress");
    expect(kube.calls.filter((x) => x.op === "registerNode")).toHaveLength(1);
    sim.clock.advance(6000);
    expect((await status(ssm, agent, b!.id)).Status).toBe("Success");
    expect((await status(ssm, server, c!.id)).Status).toBe("Success");
    const registered = kube.calls.filter((x) => x.op === "registerNode").map((x) => x.node);
    expect(registered.slice(1)).toEqual([
      {
        name: "w-1",
        instanceId: b!.id,
        availabilityZone: b!.az,
        role: "agent",
        labels: { "cairn.dev/pool": "gpu" },
        taints: [{ key: "gpu", effect: "NoSchedule" }],
        internalIp: b!.ip,
      },
      {
        name: "cp-2",
        instanceId: c!.id,
        availabilityZone: c!.az,
        role: "server",
        labels: {},
        taints: [],
        internalIp: c!.ip,
      },
    ]);
  });

  it("a malformed header fails the script with exit 2 and says why", async () => {
    const { sim, ssm, ec2 } = await world(24);
    const [a] = await managed(sim, ec2, 1);
    const cmd = await run(ssm, a!.id, "# cairn-step: k3s-agent-join node=w-1");
    sim.clock.advance(L.scriptDefault * 1000);
    const out = await status(ssm, cmd, a!.id);
    expect(out).toMatchObject({ Status: "Failed", ResponseCode: 2 });
    expect(out.StandardErrorContent).toBe(
      "cairn-step header: step k3s-agent-join needs cluster=<cluster id>\nfailed to run commands: exit status 2",
    );
  });
});

describe("K3s steps: the Kubernetes API sees the cluster", () => {
  it("k3s-server-init → the kubeconfig SecureString exists and lists the node through @kubernetes/client-node", async () => {
    const { sim, ssm, ec2 } = await world(31);
    const [a, b] = await managed(sim, ec2, 2);
    const init = await run(
      ssm,
      a!.id,
      "# cairn-step: k3s-server-init cluster=demo-1 node=cp-1 labels=cairn.dev/pool=system",
    );

    sim.clock.advance(L.k3sServerInstall * 1000 - 5000);
    expect(
      await rejection(ssm.send(new GetParameterCommand({ Name: "/cairn/demo-1/kubeconfig" }))),
    ).toBeInstanceOf(ParameterNotFound);
    sim.clock.advance(6000);
    expect((await status(ssm, init, a!.id)).Status).toBe("Success");
    const param = await ssm.send(
      new GetParameterCommand({ Name: "/cairn/demo-1/kubeconfig", WithDecryption: true }),
    );
    expect(param.Parameter?.Type).toBe("SecureString");
    const yaml = param.Parameter!.Value!;
    expect(sim.world.kube.clusters()).toContain("demo-1");

    const kc = new KubeConfig();
    kc.loadFromString(yaml);
    const api = kc.makeApiClient(CoreV1Api);
    const nodes = await api.listNode();
    expect(nodes.items.map((n) => n.metadata?.name)).toEqual(["cp-1"]);
    expect(nodes.items[0]?.metadata?.labels?.["cairn.dev/pool"]).toBe("system");
    expect(nodes.items[0]?.spec?.providerID).toBe(`aws:///${a!.az}/${a!.id}`);
    expect(nodes.items[0]?.status?.addresses).toContainEqual({ type: "InternalIP", address: a!.ip });
    // The sim's own picture of the world shows it too.
    const kubeState = sim.state().kube as { clusters?: Record<string, { nodes?: { name: string }[] }> };
    expect(kubeState.clusters?.["demo-1"]?.nodes?.map((n) => n.name)).toEqual(["cp-1"]);

    await run(ssm, b!.id, "# cairn-step: k3s-agent-join cluster=demo-1 node=w-1");
    sim.clock.advance(L.k3sJoin * 1000 + 1000);
    const after = await api.listNode(); // no SSM poll in between: settle() before this request applies the join
    expect(after.items.map((n) => n.metadata?.name).sort()).toEqual(["cp-1", "w-1"]);
  });
});

async function rejection(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (err) {
    return err as Error;
  }
  throw new Error("expected the call to fail");
}
