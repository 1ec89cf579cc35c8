/**
 * The `RemoteExec` port on the AWS SDK v3 SSM client: one client per region (cached),
 * every call under the shared resilience (retry with full jitter, a breaker per
 * service and region, a bulkhead, timeouts). Errors are classified at this boundary:
 * throttling, 5xx and network failures are transient; an instance that is not managed
 * is its own answer (`NotManagedError`); the rest is permanent, with a hint.
 */
import {
  CancelCommandCommand,
  DeleteParameterCommand,
  DescribeInstanceInformationCommand,
  GetCommandInvocationCommand,
  GetParameterCommand,
  ListCommandInvocationsCommand,
  PutParameterCommand,
  SendCommandCommand,
  SSMClient,
  type SSMClientConfig,
  SSMServiceException,
} from "@aws-sdk/client-ssm";
import {
  type LoggerLike,
  loggingObserver,
  type PolicyName,
  Resilience,
  type ResilienceOptions,
} from "@cairn/service";
import {
  type Invocation,
  NotManagedError,
  type RemoteExec,
  RemoteExecFailure,
  type StepCommand,
} from "../ports.ts";

export const SSM_SERVICE = "ssm";

export interface SsmRemoteExecOptions extends ResilienceOptions {
  /** The SSM endpoint (the sim's URL). Absent: the SDK's own resolution (`AWS_ENDPOINT_URL_SSM`, …). */
  readonly endpoint?: string;
  readonly credentials?: SSMClientConfig["credentials"];
  readonly logger?: LoggerLike;
  /** Share breakers and bulkheads with other adapters of the process. */
  readonly resilience?: Resilience;
}

const TRANSIENT_CODES = new Set([
  "ThrottlingException",
  "TooManyUpdates",
  "InternalServerError",
  "ServiceUnavailable",
  "RequestLimitExceeded",
]);
const NETWORK_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "EPIPE",
  "ENOTFOUND",
  "EAI_AGAIN",
  "TimeoutError",
  "TaskCancelledError",
  "AbortError",
  "RequestTimeout",
]);

/** A thrown SDK or network error as a `RemoteExecFailure`. */
export function classifySsmError(err: unknown, operation: string): RemoteExecFailure {
  if (err instanceof RemoteExecFailure) return err;
  const e = err as {
    name?: string;
    code?: string;
    $metadata?: { httpStatusCode?: number };
    message?: string;
  };
  const code = (err instanceof SSMServiceException ? err.name : (e.code ?? e.name)) ?? "Error";
  const status = e.$metadata?.httpStatusCode;
  const message = `SSM ${operation}: ${code}: ${e.message ?? String(err)}`;
  if (TRANSIENT_CODES.has(code) || (status !== undefined && status >= 500) || NETWORK_CODES.has(code))
    return new RemoteExecFailure(message, {
      transient: true,
      code,
      remediation: "SSM is throttling or unwell: the call is retried with backoff",
      cause: err,
    });
  if (code === "AccessDeniedException" || code === "UnrecognizedClientException")
    return new RemoteExecFailure(message, {
      transient: false,
      code,
      remediation:
        "give the installer's role ssm:SendCommand, ssm:GetCommandInvocation and the parameter actions",
      cause: err,
    });
  return new RemoteExecFailure(message, { transient: false, code, cause: err });
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
    const observer = o.observer ?? (o.logger ? loggingObserver(o.logger) : undefined);
    this.resilience = o.resilience ?? new Resilience({ ...o, ...(observer ? { observer } : {}) });
  }

  #client(region: string): SSMClient {
    let c = this.#clients.get(region);
    if (!c) {
      c = new SSMClient({
        region,
        // Retries are the resilience policy's; the SDK's own would multiply them.
        maxAttempts: 1,
        ...(this.#o.endpoint !== undefined ? { endpoint: this.#o.endpoint } : {}),
        ...(this.#o.credentials !== undefined ? { credentials: this.#o.credentials } : {}),
      });
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
      (e) => classifySsmError(e, operation),
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
      if (!id)
        throw new RemoteExecFailure("SSM SendCommand answered without a CommandId", {
          transient: true,
          code: "NoCommandId",
        });
      return id;
    } catch (err) {
      if (err instanceof RemoteExecFailure && err.code === "InvalidInstanceId")
        throw new NotManagedError(step.instanceId, err);
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
      if (err instanceof RemoteExecFailure && err.code === "InvocationDoesNotExist") return undefined;
      throw err;
    }
  }

  async cancel(region: string, commandId: string, instanceId: string): Promise<void> {
    await this.#call(region, "CancelCommand", "aws", (c, abortSignal) =>
      c.send(new CancelCommandCommand({ CommandId: commandId, InstanceIds: [instanceId] }), { abortSignal }),
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
      if (err instanceof RemoteExecFailure && err.code === "ParameterAlreadyExists") return false;
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
      if (err instanceof RemoteExecFailure && err.code === "ParameterNotFound") return undefined;
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
        if (!(err instanceof RemoteExecFailure && err.code === "ParameterNotFound")) throw err;
      }
    }
  }
}

export function createSsmRemoteExec(o: SsmRemoteExecOptions = {}): SsmRemoteExec {
  return new SsmRemoteExec(o);
}
