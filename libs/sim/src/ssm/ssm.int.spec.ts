import { EC2Client, RunInstancesCommand, TerminateInstancesCommand } from "@aws-sdk/client-ec2";
import {
  CancelCommandCommand,
  DeleteParameterCommand,
  DescribeInstanceInformationCommand,
  GetCommandInvocationCommand,
  GetParameterCommand,
  GetParametersCommand,
  InternalServerError,
  InvalidDocument,
  InvalidInstanceId,
  InvalidParameters,
  InvocationDoesNotExist,
  ListCommandInvocationsCommand,
  ListCommandsCommand,
  ParameterAlreadyExists,
  ParameterNotFound,
  PutParameterCommand,
  SendCommandCommand,
  SSMClient,
  ThrottlingException,
} from "@aws-sdk/client-ssm";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { REALISTIC_LATENCIES } from "../clock.ts";
import { SIM_CREDENTIALS, type Sim, startSim } from "../sim.ts";
import { printedText } from "./output.ts";

const REGION = "eu-west-1";
const L = REALISTIC_LATENCIES;
/** Sim ms from RunInstances until the instance's agent is registered with SSM. */
const MANAGED_AFTER = (L.instanceBoot + L.ssmRegistration) * 1000;

let sim: Sim;
let ssm: SSMClient;
let ec2: EC2Client;

const clients = (s: Sim, region = REGION) => {
  const cfg = { region, endpoint: s.url, credentials: SIM_CREDENTIALS, maxAttempts: 1 };
  return { ssm: new SSMClient(cfg), ec2: new EC2Client(cfg) };
};

beforeAll(async () => {
  sim = await startSim({ seed: 11, timeScale: 1, latencies: { apiCall: 0 } });
  ({ ssm, ec2 } = clients(sim));
});
afterAll(async () => sim?.stop());
afterEach(() => sim.faults.clear());

async function launch(client = ec2, count = 1): Promise<string[]> {
  const out = await client.send(
    new RunInstancesCommand({
      ImageId: "ami-0abcdef1234567890",
      InstanceType: "t3.medium",
      MinCount: count,
      MaxCount: count,
    }),
  );
  return (out.Instances ?? []).map((i) => i.InstanceId!);
}

/** Instances whose SSM agent has registered. */
async function managed(count = 1, s = sim, client = ec2): Promise<string[]> {
  const ids = await launch(client, count);
  s.clock.advance(MANAGED_AFTER + 1000);
  return ids;
}

const script = (...lines: string[]) => ({ commands: ["#!/bin/bash", "set -euo pipefail", ...lines] });

async function send(
  instanceIds: string[],
  commands: string[],
  extra: Partial<{ TimeoutSeconds: number }> = {},
) {
  const out = await ssm.send(
    new SendCommandCommand({
      DocumentName: "AWS-RunShellScript",
      InstanceIds: instanceIds,
      Parameters: { commands },
      ...extra,
    }),
  );
  return out.Command!;
}

const invocation = (CommandId: string, InstanceId: string, client = ssm) =>
  client.send(new GetCommandInvocationCommand({ CommandId, InstanceId }));

async function rejection(
  p: Promise<unknown>,
): Promise<Error & { $fault?: string; $metadata?: { httpStatusCode?: number } }> {
  try {
    await p;
  } catch (err) {
    return err as Error;
  }
  throw new Error("expected the call to fail");
}

describe("SSM Run Command", () => {
  it("refuses an instance before its agent registers, then runs the script to Success", async () => {
    const [id] = await launch();
    const cmds = script("# cairn-step: k3s-check cluster=demo", "systemctl is-active k3s");

    const early = await rejection(send([id!], cmds.commands));
    expect(early).toBeInstanceOf(InvalidInstanceId);
    expect(early.name).toBe("InvalidInstanceId");
    expect(early.message).toContain(id);

    // Running, but the agent has not registered yet.
    sim.clock.advance(L.instanceBoot * 1000 + 1000);
    expect(await rejection(send([id!], cmds.commands))).toBeInstanceOf(InvalidInstanceId);

    sim.clock.advance(L.ssmRegistration * 1000);
    const cmd = await send([id!], cmds.commands, { TimeoutSeconds: 600 });
    expect(cmd).toMatchObject({
      DocumentName: "AWS-RunShellScript",
      InstanceIds: [id],
      Status: "Pending",
      TimeoutSeconds: 600,
      Parameters: { commands: cmds.commands },
    });
    expect(cmd.CommandId).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-a[0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(cmd.RequestedDateTime).toBeInstanceOf(Date);

    const running = await invocation(cmd.CommandId!, id!);
    expect(running).toMatchObject({
      Status: "InProgress",
      StatusDetails: "InProgress",
      ResponseCode: -1,
      ExecutionEndDateTime: "",
      StandardOutputContent: "",
      PluginName: "aws:runShellScript",
    });
    expect(running.ExecutionStartDateTime).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);

    sim.clock.advance(L.scriptDefault * 1000);
    const done = await invocation(cmd.CommandId!, id!);
    expect(done).toMatchObject({
      Status: "Success",
      StatusDetails: "Success",
      ResponseCode: 0,
      StandardOutputContent: "active\n",
      StandardErrorContent: "",
      StandardOutputUrl: "",
    });
    expect(done.ExecutionEndDateTime).not.toBe("");
    expect(done.ExecutionElapsedTime).toBe("PT2S");

    const listed = await ssm.send(new ListCommandsCommand({ CommandId: cmd.CommandId! }));
    expect(listed.Commands?.[0]).toMatchObject({ Status: "Success", CompletedCount: 1, ErrorCount: 0 });
  });

  it("refuses the whole call when one instance is not registered, and knows no invocation it never made", async () => {
    const [ready] = await managed();
    const [fresh] = await launch();
    const before = (await ssm.send(new ListCommandsCommand({}))).Commands?.length ?? 0;
    const err = await rejection(send([ready!, fresh!], ["echo hi"]));
    expect(err).toBeInstanceOf(InvalidInstanceId);
    expect(err.message).toContain(fresh);
    expect(err.message).not.toContain(ready);
    expect((await ssm.send(new ListCommandsCommand({}))).Commands?.length ?? 0).toBe(before);

    const cmd = await send([ready!], ["echo hi"]);
    expect(await rejection(invocation(cmd.CommandId!, fresh!))).toBeInstanceOf(InvocationDoesNotExist);
    // Regions are apart: the same command is unknown in another region.
    const other = clients(sim, "us-east-1").ssm;
    expect(await rejection(invocation(cmd.CommandId!, ready!, other))).toBeInstanceOf(InvocationDoesNotExist);
    // An unknown instance id in another region is just as unregistered.
    expect(
      await rejection(
        other.send(
          new SendCommandCommand({
            DocumentName: "AWS-RunShellScript",
            InstanceIds: [ready!],
            Parameters: { commands: ["echo"] },
          }),
        ),
      ),
    ).toBeInstanceOf(InvalidInstanceId);
  });

  it("runs AWS-RunShellScript only, and needs its commands", async () => {
    const [id] = await managed();
    const doc = await rejection(
      ssm.send(
        new SendCommandCommand({
          DocumentName: "AWS-RunPowerShellScript",
          InstanceIds: [id!],
          Parameters: { commands: ["dir"] },
        }),
      ),
    );
    expect(doc).toBeInstanceOf(InvalidDocument);
    const noCommands = await rejection(
      ssm.send(
        new SendCommandCommand({ DocumentName: "AWS-RunShellScript", InstanceIds: [id!], Parameters: {} }),
      ),
    );
    expect(noCommands).toBeInstanceOf(InvalidParameters);
  });

  it("cuts StandardOutputContent at exactly 24,000 characters, and a plugin's Output at 2,500", async () => {
    const [id] = await managed();
    const long = await send([id!], script("# cairn-step: print bytes=30000").commands);
    const exact = await send([id!], script("# cairn-step: print bytes=24000").commands);
    sim.clock.advance(L.scriptDefault * 1000);

    const cut = await invocation(long.CommandId!, id!);
    expect(cut.Status).toBe("Success");
    expect(cut.StandardOutputContent).toHaveLength(24_000);
    expect(cut.StandardOutputContent).toBe(printedText(30_000).slice(0, 24_000));
    expect(cut.StandardOutputUrl).toBe("");
    expect((await invocation(exact.CommandId!, id!)).StandardOutputContent).toBe(printedText(24_000));

    const listed = await ssm.send(
      new ListCommandInvocationsCommand({ CommandId: long.CommandId!, Details: true }),
    );
    const plugin = listed.CommandInvocations?.[0]?.CommandPlugins?.[0];
    expect(plugin).toMatchObject({ Name: "aws:runShellScript", Status: "Success", ResponseCode: 0 });
    expect(plugin?.Output).toHaveLength(2_500);
    expect(plugin?.Output?.endsWith("\n---Output truncated---")).toBe(true);
  });

  it("a command-hang fault keeps the script InProgress until its timeout, then TimedOut", async () => {
    const [id] = await managed();
    sim.faults.add({ kind: "command-hang", service: "ssm", count: 1, match: { step: "k3s-restart" } });
    const cmd = await send([id!], script("# cairn-step: k3s-restart").commands, { TimeoutSeconds: 120 });

    sim.clock.advance(100_000);
    expect(await invocation(cmd.CommandId!, id!)).toMatchObject({ Status: "InProgress", ResponseCode: -1 });

    sim.clock.advance(25_000);
    const out = await invocation(cmd.CommandId!, id!);
    expect(out).toMatchObject({ Status: "TimedOut", StatusDetails: "ExecutionTimedOut" });
    expect(out.ResponseCode).not.toBe(0);
    expect(
      (await ssm.send(new ListCommandsCommand({ CommandId: cmd.CommandId! }))).Commands?.[0]?.Status,
    ).toBe("TimedOut");
  });

  it("a command-slow fault runs the script delaySeconds longer, then Success — or TimedOut past its timeout", async () => {
    const [id] = await managed();
    sim.faults.add({
      kind: "command-slow",
      service: "ssm",
      count: 2,
      delaySeconds: 90,
      match: { instanceId: id! },
    });
    const slow = await send([id!], script("# cairn-step: k3s-restart").commands, { TimeoutSeconds: 600 });
    // Where an undisturbed run has ended, the slow one still runs.
    sim.clock.advance(L.scriptDefault * 1000 + 1_000);
    expect((await invocation(slow.CommandId!, id!)).Status).toBe("InProgress");
    sim.clock.advance(90_000);
    expect(await invocation(slow.CommandId!, id!)).toMatchObject({ Status: "Success", ResponseCode: 0 });

    // With an execution timeout shorter than the slowed run, the agent ends it.
    const out = await ssm.send(
      new SendCommandCommand({
        DocumentName: "AWS-RunShellScript",
        InstanceIds: [id!],
        Parameters: { commands: ["# cairn-step: k3s-restart"], executionTimeout: ["60"] },
      }),
    );
    sim.clock.advance(61_000);
    expect(await invocation(out.Command!.CommandId!, id!)).toMatchObject({
      Status: "TimedOut",
      StatusDetails: "ExecutionTimedOut",
    });
  });

  it("Parameters.executionTimeout bounds a script that runs longer: it times out", async () => {
    const [id] = await managed();
    const out = await ssm.send(
      new SendCommandCommand({
        DocumentName: "AWS-RunShellScript",
        InstanceIds: [id!],
        Parameters: { commands: ["# cairn-step: k3s-server-init cluster=slow"], executionTimeout: ["30"] },
      }),
    );
    sim.clock.advance(31_000);
    expect((await invocation(out.Command!.CommandId!, id!)).Status).toBe("TimedOut");
    // It never got to write its kubeconfig.
    expect(
      await rejection(ssm.send(new GetParameterCommand({ Name: "/cairn/slow/kubeconfig" }))),
    ).toBeInstanceOf(ParameterNotFound);
  });

  it("a command-fail fault ends the script Failed with ResponseCode 1 and the rule's output", async () => {
    const [id] = await managed();
    sim.faults.add({
      kind: "command-fail",
      service: "ssm",
      count: 1,
      match: { instanceId: id! },
      output: "curl: (6) Could not resolve host: get.k3s.io",
    });
    const cmd = await send([id!], script("# cairn-step: k3s-restart").commands);
    sim.clock.advance(L.scriptDefault * 1000);
    const out = await invocation(cmd.CommandId!, id!);
    expect(out).toMatchObject({ Status: "Failed", StatusDetails: "Failed", ResponseCode: 1 });
    expect(out.StandardErrorContent).toBe(
      "curl: (6) Could not resolve host: get.k3s.io\nfailed to run commands: exit status 1",
    );
    // The rule was used up: the next run succeeds.
    const again = await send([id!], script("# cairn-step: k3s-restart").commands);
    sim.clock.advance(L.scriptDefault * 1000);
    expect((await invocation(again.CommandId!, id!)).Status).toBe("Success");
  });

  it("CancelCommand cancels what still runs and leaves what has ended", async () => {
    const [a, b] = await managed(2);
    const finished = await send([a!], ["echo quick"]);
    sim.clock.advance(L.scriptDefault * 1000);
    const slow = await send([a!, b!], script("# cairn-step: k3s-server-init cluster=cancel-me").commands);

    await ssm.send(new CancelCommandCommand({ CommandId: finished.CommandId! }));
    await ssm.send(new CancelCommandCommand({ CommandId: slow.CommandId!, InstanceIds: [a!] }));
    expect((await invocation(finished.CommandId!, a!)).Status).toBe("Success");
    expect(await invocation(slow.CommandId!, a!)).toMatchObject({
      Status: "Cancelled",
      StatusDetails: "Cancelled",
    });
    expect((await invocation(slow.CommandId!, b!)).Status).toBe("InProgress");

    await ssm.send(new CancelCommandCommand({ CommandId: slow.CommandId! }));
    sim.clock.advance(L.k3sServerInstall * 1000);
    expect((await invocation(slow.CommandId!, b!)).Status).toBe("Cancelled");
    expect(
      (await ssm.send(new ListCommandsCommand({ CommandId: slow.CommandId! }))).Commands?.[0]?.Status,
    ).toBe("Cancelled");
    // A cancelled install has no effect.
    expect(
      await rejection(ssm.send(new GetParameterCommand({ Name: "/cairn/cancel-me/kubeconfig" }))),
    ).toBeInstanceOf(ParameterNotFound);
  });

  it("a script whose instance is terminated under it never succeeds", async () => {
    const [id] = await managed();
    const cmd = await send([id!], script("# cairn-step: k3s-server-init cluster=doomed").commands, {
      TimeoutSeconds: 300,
    });
    await ec2.send(new TerminateInstancesCommand({ InstanceIds: [id!] }));
    expect((await invocation(cmd.CommandId!, id!)).Status).toBe("InProgress");
    sim.clock.advance(L.k3sServerInstall * 1000);
    expect((await invocation(cmd.CommandId!, id!)).Status).toBe("InProgress");
    sim.clock.advance(300_000);
    expect((await invocation(cmd.CommandId!, id!)).Status).toBe("TimedOut");
    expect(
      await rejection(ssm.send(new GetParameterCommand({ Name: "/cairn/doomed/kubeconfig" }))),
    ).toBeInstanceOf(ParameterNotFound);
  });

  it("a throttle fault surfaces as the SDK's ThrottlingException", async () => {
    sim.faults.add({ kind: "throttle", service: "ssm", action: "GetParameter", count: 1 });
    const err = await rejection(ssm.send(new GetParameterCommand({ Name: "/throttled" })));
    expect(err).toBeInstanceOf(ThrottlingException);
    expect(err.name).toBe("ThrottlingException");
    expect(err.$metadata?.httpStatusCode).toBe(400);
    // Used up: the same call now reaches Parameter Store.
    expect(await rejection(ssm.send(new GetParameterCommand({ Name: "/throttled" })))).toBeInstanceOf(
      ParameterNotFound,
    );
    const logged = sim.requests
      .list({ service: "ssm", action: "GetParameter" })
      .filter((r) => r.ids.includes("/throttled"));
    expect(logged.map((r) => r.error)).toEqual(["ThrottlingException", "ParameterNotFound"]);
  });

  it("an internal-error fault is a 500 InternalServerError", async () => {
    sim.faults.add({ kind: "internal-error", service: "ssm", action: "ListCommands", count: 1 });
    const err = await rejection(ssm.send(new ListCommandsCommand({})));
    expect(err).toBeInstanceOf(InternalServerError);
    expect(err.$fault).toBe("server");
    expect(err.$metadata?.httpStatusCode).toBe(500);
  });

  it("one command on many instances: each invocation its own status, one failing fails none of the others", async () => {
    const ids = await managed(4);
    sim.faults.add({ kind: "command-fail", service: "ssm", count: 1, match: { instanceId: ids[1]! } });
    const cmd = await ssm.send(
      new SendCommandCommand({
        DocumentName: "AWS-RunShellScript",
        InstanceIds: ids,
        Parameters: { commands: script("# cairn-step: k3s-restart").commands },
        MaxConcurrency: "100%",
        MaxErrors: "100%",
      }),
    );
    expect(cmd.Command).toMatchObject({ MaxConcurrency: "100%", MaxErrors: "100%", TargetCount: 4 });
    sim.clock.advance(L.scriptDefault * 1000);
    const listed = await ssm.send(
      new ListCommandInvocationsCommand({ CommandId: cmd.Command!.CommandId!, Details: true }),
    );
    const byId = new Map(listed.CommandInvocations!.map((i) => [i.InstanceId, i]));
    expect(ids.map((id) => byId.get(id)?.Status)).toEqual(["Success", "Failed", "Success", "Success"]);
    expect(byId.get(ids[1])?.CommandPlugins?.[0]).toMatchObject({ Status: "Failed", ResponseCode: 1 });
    expect(byId.get(ids[0])?.CommandPlugins?.[0]?.ResponseFinishDateTime).toBeInstanceOf(Date);
  });

  it("MaxConcurrency runs that many at once: the rest wait Pending until one ends", async () => {
    const ids = await managed(3);
    const cmd = await ssm.send(
      new SendCommandCommand({
        DocumentName: "AWS-RunShellScript",
        InstanceIds: ids,
        Parameters: { commands: script("# cairn-step: k3s-restart").commands },
        MaxConcurrency: "2",
      }),
    );
    const statuses = async () => {
      const out = await ssm.send(new ListCommandInvocationsCommand({ CommandId: cmd.Command!.CommandId! }));
      return ids.map((id) => out.CommandInvocations!.find((i) => i.InstanceId === id)?.Status);
    };
    sim.clock.advance(1000);
    expect(await statuses()).toEqual(["InProgress", "InProgress", "Pending"]);
    sim.clock.advance(L.scriptDefault * 1000);
    expect(await statuses()).toEqual(["Success", "Success", "InProgress"]);
    sim.clock.advance(L.scriptDefault * 1000);
    expect(await statuses()).toEqual(["Success", "Success", "Success"]);
  });

  it("refuses MaxConcurrency and MaxErrors outside SSM's patterns, and answers the defaults 50 and 0", async () => {
    const [id] = await managed();
    const commands = ["echo hi"];
    for (const bad of [
      { MaxConcurrency: "0" },
      { MaxConcurrency: "101%" },
      { MaxErrors: "-1" },
      { MaxErrors: "x" },
    ]) {
      const err = await rejection(
        ssm.send(
          new SendCommandCommand({
            DocumentName: "AWS-RunShellScript",
            InstanceIds: [id!],
            Parameters: { commands },
            ...bad,
          }),
        ),
      );
      expect(err.name).toBe("ValidationException");
    }
    const plain = await send([id!], commands);
    expect(plain).toMatchObject({ MaxConcurrency: "50", MaxErrors: "0" });
  });

  it("lists invocations newest first, page by page", async () => {
    const [a, b, c] = await managed(3);
    const cmd = await send([a!, b!, c!], ["echo page"]);
    const first = await ssm.send(
      new ListCommandInvocationsCommand({ CommandId: cmd.CommandId!, MaxResults: 2 }),
    );
    expect(first.CommandInvocations?.map((i) => i.InstanceId)).toEqual([a, b]);
    expect(first.CommandInvocations?.[0]?.CommandPlugins).toEqual([]);
    expect(first.NextToken).toBeTruthy();
    const second = await ssm.send(
      new ListCommandInvocationsCommand({
        CommandId: cmd.CommandId!,
        MaxResults: 2,
        NextToken: first.NextToken!,
      }),
    );
    expect(second.CommandInvocations?.map((i) => i.InstanceId)).toEqual([c]);
    expect(second.NextToken).toBeUndefined();

    const byInstance = await ssm.send(new ListCommandInvocationsCommand({ InstanceId: b! }));
    expect(byInstance.CommandInvocations?.[0]?.CommandId).toBe(cmd.CommandId);
    const pending = await ssm.send(
      new ListCommandInvocationsCommand({
        CommandId: cmd.CommandId!,
        Filters: [{ key: "Status", value: "Success" }],
      }),
    );
    expect(pending.CommandInvocations).toEqual([]);
  });

  it("describes managed instances as Online once registered", async () => {
    const [ready] = await managed();
    const [fresh] = await launch();
    const out = await ssm.send(
      new DescribeInstanceInformationCommand({ Filters: [{ Key: "InstanceIds", Values: [ready!, fresh!] }] }),
    );
    expect(out.InstanceInformationList?.map((i) => [i.InstanceId, i.PingStatus])).toEqual([
      [ready, "Online"],
    ]);
    expect(out.InstanceInformationList?.[0]).toMatchObject({
      PlatformType: "Linux",
      ResourceType: "EC2Instance",
    });
  });

  it("gives the same command ids for the same seed, whatever was polled in between", async () => {
    const runOnce = async (polls: number) => {
      const s = await startSim({ seed: 99, timeScale: 1, latencies: { apiCall: 0 } });
      try {
        const c = clients(s);
        const ids = await managed(1, s, c.ec2);
        const out: string[] = [];
        for (let i = 0; i < 3; i++) {
          const cmd = await c.ssm.send(
            new SendCommandCommand({
              DocumentName: "AWS-RunShellScript",
              InstanceIds: ids,
              Parameters: { commands: ["echo"] },
            }),
          );
          out.push(cmd.Command!.CommandId!);
          for (let p = 0; p < polls; p++) await invocation(cmd.Command!.CommandId!, ids[0]!, c.ssm);
        }
        return out;
      } finally {
        await s.stop();
      }
    };
    const quiet = await runOnce(0);
    expect(new Set(quiet).size).toBe(3);
    expect(await runOnce(4)).toEqual(quiet);
  });

  it("records every call in the request log with its ids", async () => {
    const [id] = await managed();
    const cmd = await send([id!], ["echo logged"]);
    const entry = sim.requests.list({ service: "ssm", action: "SendCommand" }).at(-1);
    expect(entry).toMatchObject({ region: REGION, status: 200, ids: [cmd.CommandId, id] });
  });
});

describe("Parameter Store", () => {
  it("stores a SecureString: read back with decryption, opaque without", async () => {
    const secret = "K10::server:0123456789abcdef";
    const put = await ssm.send(
      new PutParameterCommand({ Name: "/cairn/t1/token", Value: secret, Type: "SecureString" }),
    );
    expect(put.Version).toBe(1);

    const plain = await ssm.send(new GetParameterCommand({ Name: "/cairn/t1/token", WithDecryption: true }));
    expect(plain.Parameter).toMatchObject({
      Name: "/cairn/t1/token",
      Type: "SecureString",
      Value: secret,
      Version: 1,
    });
    expect(plain.Parameter?.LastModifiedDate).toBeInstanceOf(Date);
    expect(plain.Parameter?.ARN).toBe("arn:aws:ssm:eu-west-1:123456789012:parameter/cairn/t1/token");

    const opaque = await ssm.send(new GetParameterCommand({ Name: "/cairn/t1/token" }));
    expect(opaque.Parameter?.Value).not.toBe(secret);
    expect(opaque.Parameter?.Value).not.toContain("0123456789abcdef");
    expect(opaque.Parameter?.Value).toMatch(/^AQICAH[A-Za-z0-9+/]+=*$/);

    // The admin state names it, never shows its value.
    const state = JSON.stringify(sim.state().ssm);
    expect(state).toContain("/cairn/t1/token");
    expect(state).not.toContain(secret);
  });

  it("refuses to overwrite without Overwrite, counts versions, deletes", async () => {
    const name = "/cairn/t2/endpoint";
    await ssm.send(new PutParameterCommand({ Name: name, Value: "a", Type: "String" }));
    expect(
      await rejection(ssm.send(new PutParameterCommand({ Name: name, Value: "b", Type: "String" }))),
    ).toBeInstanceOf(ParameterAlreadyExists);
    const v2 = await ssm.send(new PutParameterCommand({ Name: name, Value: "b", Overwrite: true }));
    expect(v2.Version).toBe(2);
    expect((await ssm.send(new GetParameterCommand({ Name: name }))).Parameter).toMatchObject({
      Value: "b",
      Type: "String",
    });

    const both = await ssm.send(new GetParametersCommand({ Names: [name, "/cairn/t2/missing"] }));
    expect(both.Parameters?.map((p) => p.Value)).toEqual(["b"]);
    expect(both.InvalidParameters).toEqual(["/cairn/t2/missing"]);

    await ssm.send(new DeleteParameterCommand({ Name: name }));
    expect(await rejection(ssm.send(new GetParameterCommand({ Name: name })))).toBeInstanceOf(
      ParameterNotFound,
    );
    expect(await rejection(ssm.send(new DeleteParameterCommand({ Name: name })))).toBeInstanceOf(
      ParameterNotFound,
    );
  });

  it("keeps regions apart and validates names and types", async () => {
    await ssm.send(new PutParameterCommand({ Name: "/cairn/t3/x", Value: "1", Type: "String" }));
    const other = clients(sim, "us-west-2").ssm;
    expect(await rejection(other.send(new GetParameterCommand({ Name: "/cairn/t3/x" })))).toBeInstanceOf(
      ParameterNotFound,
    );

    const noType = await rejection(ssm.send(new PutParameterCommand({ Name: "/cairn/t3/y", Value: "1" })));
    expect(noType.name).toBe("ValidationException");
    const badName = await rejection(
      ssm.send(new PutParameterCommand({ Name: "cairn/t3/z", Value: "1", Type: "String" })),
    );
    expect(badName.name).toBe("ValidationException");
    const reserved = await rejection(
      ssm.send(new PutParameterCommand({ Name: "/aws/x", Value: "1", Type: "String" })),
    );
    expect(reserved.name).toBe("ValidationException");
  });
});
