/**
 * The `RemoteExec` port on the AWS SDK v3 SSM client: one client per region (cached),
 * every call under the shared resilience (retry with full jitter, a breaker per
 * service and region with SSM's own settings — 3 failures, 45 s, 3 at once — a bulkhead,
 * timeouts). Errors are classified at this boundary (ssm-errors.ts, one class per
 * condition): throttling, 5xx and network failures are transient; an instance that is
 * not managed is its own answer (`SsmNotManaged`); the rest is permanent, with a hint.
 */
import {
  CancelCommandCommand,
  DeleteParameterCommand,
  DescribeInstanceInformationCommand,
  GetCommandInvocationCommand,
  GetParameterCommand,
  ListCommandInvocationsCommand,
  ListCommandsCommand,
  PutParameterCommand,
  SendCommandCommand,
  SSMClient,
  type SSMClientConfig,
} from "@aws-sdk/client-ssm";
import {
  adapterAwsClient,
  type LoggerLike,
  type PolicyName,
  Resilience,
  type ResilienceOptions,
  resilienceMetricsObserver,
} from "@cairn/service";
import type { BatchCommand, BatchInvocation, Invocation, RemoteExec, StepCommand } from "../ports.ts";
import {
  classifySsmError,
  SsmInvalidInstance,
  SsmInvocationNotFound,
  SsmNoCommandId,
  SsmNotManaged,
  SsmParameterExists,
  SsmParameterNotFound,
} from "./ssm-errors.ts";

export const SSM_SERVICE = "ssm";

export interface SsmRemoteExecOptions extends ResilienceOptions {
  /** The SSM endpoint (the sim's URL). Absent: the SDK's own resolution (`AWS_ENDPOINT_URL_SSM`, …). */
  readonly endpoint?: string;
  readonly credentials?: SSMClientConfig["credentials"];
  readonly logger?: LoggerLike;
  /** Share breakers and bulkheads with other adapters of the process. */
  readonly resilience?: Resilience;
}

/**
 * The SSMClient of one region as the adapter uses it: SDK retries off (the resilience
 * policies retry), endpoint and credentials from options or the environment, a client span
 * per call, and no SDK call logging (`withoutSdkCallLogging`: no SDK logger is given, and its
 * middleware would still mask and copy every answer — a ListCommandInvocations of 50
 * members with their output, a DescribeInstanceInformation of hundreds of instances).
 */
export function ssmClient(
  region: string,
  opts: Pick<SsmRemoteExecOptions, "endpoint" | "credentials"> = {},
): SSMClient {
  return adapterAwsClient(SSMClient, region, opts);
}

const iso = (d: Date | string | undefined) => {
  if (d === undefined || d === "") return undefined;
  const t = d instanceof Date ? d : new Date(d);
  return Number.isNaN(t.getTime()) ? undefined : t.toISOString();
};

export class SsmRemoteExec implements RemoteExec {
  readonly resilience: Resilience;
  readonly #clients = new Map<string, SSMClient>();
  readonly #o: SsmRemoteExecOptions;

  constructor(o: SsmRemoteExecOptions = {}) {
    this.#o = o;
    // Metrics for every call (and log lines, given a logger) unless an observer is given.
    const observer = o.observer ?? resilienceMetricsObserver(o.logger);
    this.resilience = o.resilience ?? new Resilience({ ...o, observer });
  }

  #client(region: string): SSMClient {
    let c = this.#clients.get(region);
    if (!c) {
      c = ssmClient(region, this.#o);
      this.#clients.set(region, c);
    }
    return c;
  }

  #call<T>(
    region: string,
    operation: string,
    policy: PolicyName,
    fn: (c: SSMClient, signal: AbortSignal) => Promise<T>,
  ) {
    return this.resilience.run(
      { service: SSM_SERVICE, region, operation },
      policy,
      (signal) => fn(this.#client(region), signal),
      (e) => classifySsmError(e, { operation, region }),
    );
  }

  async onlineInstances(region: string, instanceIds: readonly string[]): Promise<ReadonlySet<string>> {
    const online = new Set<string>();
    // DescribeInstanceInformation takes at most 50 ids in its InstanceIds filter.
    for (let i = 0; i < instanceIds.length; i += 50) {
      const ids = instanceIds.slice(i, i + 50);
      let token: string | undefined;
      do {
        const page = await this.#call(region, "DescribeInstanceInformation", "aws", (c, abortSignal) =>
          c.send(
            new DescribeInstanceInformationCommand({
              Filters: [{ Key: "InstanceIds", Values: [...ids] }],
              ...(token ? { NextToken: token } : {}),
            }),
            { abortSignal },
          ),
        );
        for (const info of page.InstanceInformationList ?? [])
          if (info.InstanceId && info.PingStatus === "Online") online.add(info.InstanceId);
        token = page.NextToken;
      } while (token);
    }
    return online;
  }

  async send(region: string, step: StepCommand): Promise<string> {
    try {
      const out = await this.#call(region, "SendCommand", "aws", (c, abortSignal) =>
        c.send(
          new SendCommandCommand({
            DocumentName: "AWS-RunShellScript",
            InstanceIds: [step.instanceId],
            Comment: step.comment.slice(0, 100),
            Parameters: {
              commands: [...step.commands],
              executionTimeout: [String(step.executionTimeoutSeconds)],
            },
            ...(step.outputS3
              ? { OutputS3BucketName: step.outputS3.bucket, OutputS3KeyPrefix: step.outputS3.keyPrefix }
              : {}),
          }),
          { abortSignal },
        ),
      );
      const id = out.Command?.CommandId;
      if (!id) throw new SsmNoCommandId({ operation: "SendCommand", region });
      return id;
    } catch (err) {
      // Not retried as a call (the agent takes minutes), but transient for the step.
      if (err instanceof SsmInvalidInstance) throw new SsmNotManaged(step.instanceId, err);
      throw err;
    }
  }

  async sendBatch(region: string, batch: BatchCommand): Promise<string> {
    try {
      const out = await this.#call(region, "SendCommand", "aws", (c, abortSignal) =>
        c.send(
          new SendCommandCommand({
            DocumentName: "AWS-RunShellScript",
            InstanceIds: [...batch.instanceIds],
            Comment: batch.comment.slice(0, 100),
            Parameters: {
              commands: [...batch.commands],
              executionTimeout: [String(batch.executionTimeoutSeconds)],
            },
            // Every invocation at once (SSM's default is 50, the most one call names) and
            // none stopped by another's failure: SSM's default MaxErrors of 0 would stop
            // sending to the rest after the first error, failing nodes that did nothing wrong.
            MaxConcurrency: "100%",
            MaxErrors: "100%",
            ...(batch.outputS3
              ? { OutputS3BucketName: batch.outputS3.bucket, OutputS3KeyPrefix: batch.outputS3.keyPrefix }
              : {}),
          }),
          { abortSignal },
        ),
      );
      const id = out.Command?.CommandId;
      if (!id) throw new SsmNoCommandId({ operation: "SendCommand", region });
      return id;
    } catch (err) {
      if (err instanceof SsmInvalidInstance) throw new SsmNotManaged(batch.instanceIds.join(","), err);
      throw err;
    }
  }

  async invocations(region: string, commandId: string): Promise<ReadonlyMap<string, BatchInvocation>> {
    const found = new Map<string, BatchInvocation>();
    let token: string | undefined;
    // A command names at most 50 instances: one page of 50, a second only if SSM pages smaller.
    do {
      const out = await this.#call(region, "ListCommandInvocations", "aws", (c, abortSignal) =>
        c.send(
          new ListCommandInvocationsCommand({
            CommandId: commandId,
            Details: true,
            MaxResults: 50,
            ...(token ? { NextToken: token } : {}),
          }),
          { abortSignal },
        ),
      );
      for (const inv of out.CommandInvocations ?? []) {
        if (!inv.InstanceId) continue;
        const plugin = inv.CommandPlugins?.[0];
        const startedAt = iso(plugin?.ResponseStartDateTime);
        const endedAt = iso(plugin?.ResponseFinishDateTime);
        found.set(inv.InstanceId, {
          instanceId: inv.InstanceId,
          status: inv.Status ?? "Pending",
          ...(startedAt ? { startedAt } : {}),
          ...(endedAt ? { endedAt } : {}),
          stdout: plugin?.Output ?? "",
          stderr: "",
        });
      }
      token = out.NextToken;
    } while (token);
    return found;
  }

  async commandTargets(region: string, commandId: string): Promise<readonly string[] | undefined> {
    try {
      const out = await this.#call(region, "ListCommands", "aws", (c, abortSignal) =>
        c.send(new ListCommandsCommand({ CommandId: commandId }), { abortSignal }),
      );
      return out.Commands?.[0]?.InstanceIds;
    } catch (err) {
      if (err instanceof SsmInvocationNotFound) return undefined;
      throw err;
    }
  }

  async findSent(
    region: string,
    instanceId: string,
    comment: string,
    since: Date,
  ): Promise<string | undefined> {
    // Newest first: a command sent for this step is among the instance's last ones. The
    // comparison with `since` is by SSM's own clock (no filter on ours: clocks differ).
    let token: string | undefined;
    for (let page = 0; page < 4; page++) {
      const out = await this.#call(region, "ListCommandInvocations", "aws", (c, abortSignal) =>
        c.send(
          new ListCommandInvocationsCommand({
            InstanceId: instanceId,
            MaxResults: 50,
            ...(token ? { NextToken: token } : {}),
          }),
          { abortSignal },
        ),
      );
      const invocations = out.CommandInvocations ?? [];
      const found = invocations.find((i) => i.Comment === comment.slice(0, 100));
      if (found?.CommandId) return found.CommandId;
      // Older than the step's request by an hour: what follows is older still.
      const oldest = invocations.at(-1)?.RequestedDateTime;
      if (oldest && oldest.getTime() < since.getTime() - 3_600_000) return undefined;
      token = out.NextToken;
      if (!token) return undefined;
    }
    return undefined;
  }

  async invocation(region: string, commandId: string, instanceId: string): Promise<Invocation | undefined> {
    try {
      const out = await this.#call(region, "GetCommandInvocation", "aws", (c, abortSignal) =>
        c.send(new GetCommandInvocationCommand({ CommandId: commandId, InstanceId: instanceId }), {
          abortSignal,
        }),
      );
      const startedAt = iso(out.ExecutionStartDateTime);
      const endedAt = iso(out.ExecutionEndDateTime);
      return {
        status: out.Status ?? "Pending",
        ...(startedAt ? { startedAt } : {}),
        ...(endedAt ? { endedAt } : {}),
        stdout: out.StandardOutputContent ?? "",
        stderr: out.StandardErrorContent ?? "",
      };
    } catch (err) {
      if (err instanceof SsmInvocationNotFound) return undefined;
      throw err;
    }
  }

  async cancel(region: string, commandId: string, instanceId: string | readonly string[]): Promise<void> {
    const InstanceIds = typeof instanceId === "string" ? [instanceId] : [...instanceId];
    if (InstanceIds.length === 0) return;
    await this.#call(region, "CancelCommand", "aws", (c, abortSignal) =>
      c.send(new CancelCommandCommand({ CommandId: commandId, InstanceIds }), { abortSignal }),
    );
  }

  async putSecretIfAbsent(region: string, name: string, value: string): Promise<boolean> {
    try {
      await this.#call(region, "PutParameter", "aws", (c, abortSignal) =>
        c.send(
          new PutParameterCommand({
            Name: name,
            Value: value,
            Type: "SecureString",
            Overwrite: false,
            Description: "Cairn: K3s secret of one cluster (read on its instances only)",
          }),
          { abortSignal },
        ),
      );
      return true;
    } catch (err) {
      if (err instanceof SsmParameterExists) return false;
      throw err;
    }
  }

  async parameterVersion(region: string, name: string): Promise<number | undefined> {
    try {
      // Without decryption: the installer checks that the secret is there, it never reads it.
      const out = await this.#call(region, "GetParameter", "aws", (c, abortSignal) =>
        c.send(new GetParameterCommand({ Name: name, WithDecryption: false }), { abortSignal }),
      );
      return out.Parameter?.Version;
    } catch (err) {
      if (err instanceof SsmParameterNotFound) return undefined;
      throw err;
    }
  }

  async deleteParameters(region: string, names: readonly string[]): Promise<void> {
    for (const name of names) {
      try {
        await this.#call(region, "DeleteParameter", "aws", (c, abortSignal) =>
          c.send(new DeleteParameterCommand({ Name: name }), { abortSignal }),
        );
      } catch (err) {
        if (!(err instanceof SsmParameterNotFound)) throw err;
      }
    }
  }
}

export function createSsmRemoteExec(o: SsmRemoteExecOptions = {}): SsmRemoteExec {
  return new SsmRemoteExec(o);
}
