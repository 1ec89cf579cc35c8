/**
 * Run Command records and their status over time. A record holds when things start and
 * end and how they end; the status anyone sees is derived from the clock when read
 * (lazy), so no timer moves the world. Pure functions over records and `now`.
 */
import { failedStderr, firstChars, MAX_STDERR_CONTENT, MAX_STDOUT_CONTENT, pluginOutput } from "./output.ts";
import type { ScriptPlan } from "./scripts.ts";
import { epochSeconds } from "./wire.ts";

export const RUN_SHELL_SCRIPT = "AWS-RunShellScript";
export const PLUGIN_NAME = "aws:runShellScript";
/** Exit code the agent reports for a script it killed at its execution timeout (128 + SIGKILL). */
export const KILLED_EXIT_CODE = 137;

export type InvocationStatus = "Pending" | "InProgress" | "Success" | "Cancelled" | "TimedOut" | "Failed";
export type Outcome = "success" | "failed" | "timed-out";

/** What the instance knew about itself when the command reached it. */
export interface InstanceFacts {
  availabilityZone: string;
  privateIpAddress: string;
}

export interface Invocation {
  readonly commandId: string;
  readonly instanceId: string;
  readonly region: string;
  readonly plan: ScriptPlan;
  readonly facts: InstanceFacts;
  /** Sim ms the agent started the script. */
  readonly startAt: number;
  /** Sim ms the script ends on its own (success, failure or execution timeout). */
  endAt: number;
  outcome: Outcome;
  /** Exit code of a failed script. */
  exitCode: number;
  /** stderr of a failed script (the agent's closing line included). */
  stderr: string;
  /** The fault rule that made it fail or hang. */
  faultId?: string;
  /** Sim ms CancelCommand stopped it (only ever set before endAt). */
  cancelledAt?: number;
  /** The instance went away while the script ran (stopped, terminated, rebooted). */
  lostAt?: number;
}

export interface CommandRecord {
  readonly commandId: string;
  readonly region: string;
  readonly documentName: string;
  readonly comment: string;
  readonly parameters: Record<string, string[]>;
  readonly instanceIds: string[];
  /** TimeoutSeconds as asked (delivery timeout), default 3600. */
  readonly timeoutSeconds: number;
  /** The script's execution timeout in seconds (Parameters.executionTimeout, else TimeoutSeconds). */
  readonly executionTimeout: number;
  readonly requestedAt: number;
  /** As asked (a count or a percentage); default "50" and "0", as SSM answers them. */
  readonly maxConcurrency?: string;
  readonly maxErrors?: string;
  readonly step: string | undefined;
  readonly invocations: Invocation[];
}

export interface InvocationView {
  status: InvocationStatus;
  statusDetails: string;
  responseCode: number;
  startedAt?: number;
  endedAt?: number;
  /** Full stdout so far as SSM shows it (empty until the script ends). */
  stdout: string;
  stderr: string;
  terminal: boolean;
}

/** The invocation as of `now`. */
export function viewInvocation(inv: Invocation, now: number): InvocationView {
  if (inv.cancelledAt !== undefined) {
    return {
      status: "Cancelled",
      statusDetails: "Cancelled",
      responseCode: -1,
      startedAt: inv.startAt,
      endedAt: inv.cancelledAt,
      stdout: inv.plan.partialStdout,
      stderr: "",
      terminal: true,
    };
  }
  if (now < inv.startAt) {
    return {
      status: "Pending",
      statusDetails: "Pending",
      responseCode: -1,
      stdout: "",
      stderr: "",
      terminal: false,
    };
  }
  if (now < inv.endAt) {
    return {
      status: "InProgress",
      statusDetails: "InProgress",
      responseCode: -1,
      startedAt: inv.startAt,
      stdout: "",
      stderr: "",
      terminal: false,
    };
  }
  const ended = { startedAt: inv.startAt, endedAt: inv.endAt, terminal: true };
  switch (inv.outcome) {
    case "success":
      return {
        status: "Success",
        statusDetails: "Success",
        responseCode: 0,
        stdout: inv.plan.stdout,
        stderr: "",
        ...ended,
      };
    case "failed":
      return {
        status: "Failed",
        statusDetails: "Failed",
        responseCode: inv.exitCode,
        stdout: inv.plan.partialStdout,
        stderr: inv.stderr,
        ...ended,
      };
    case "timed-out":
      return {
        status: "TimedOut",
        statusDetails: "ExecutionTimedOut",
        responseCode: KILLED_EXIT_CODE,
        stdout: inv.plan.partialStdout,
        stderr: "",
        ...ended,
      };
  }
}

/**
 * Makes an invocation end Failed, exit `code`, `message` on stderr: a fault, a bad
 * header, an effect that could not be applied.
 */
export function failInvocation(inv: Invocation, message: string, code = 1): void {
  inv.outcome = "failed";
  inv.exitCode = code;
  inv.stderr = failedStderr(message, code);
}

export interface CommandView {
  status: InvocationStatus;
  completed: number;
  errors: number;
}

/** A command's status as of `now`, aggregated over its invocations as Run Command does. */
export function viewCommand(cmd: CommandRecord, now: number): CommandView {
  const views = cmd.invocations.map((inv) => viewInvocation(inv, now));
  const completed = views.filter((v) => v.terminal).length;
  const errors = views.filter((v) => v.status === "Failed" || v.status === "TimedOut").length;
  let status: InvocationStatus;
  if (views.every((v) => v.status === "Pending")) status = "Pending";
  else if (completed < views.length) status = "InProgress";
  else if (views.every((v) => v.status === "Success")) status = "Success";
  else if (views.some((v) => v.status === "Cancelled")) status = "Cancelled";
  else if (views.some((v) => v.status === "Failed")) status = "Failed";
  else status = "TimedOut";
  return { status, completed, errors };
}

const NOTIFICATION_CONFIG = { NotificationArn: "", NotificationEvents: [], NotificationType: "" };
const CLOUDWATCH_CONFIG = { CloudWatchLogGroupName: "", CloudWatchOutputEnabled: false };

/** The `Command` structure (SendCommand, ListCommands). */
export function commandJson(cmd: CommandRecord, now: number, asSent = false): Record<string, unknown> {
  const v: CommandView = asSent ? { status: "Pending", completed: 0, errors: 0 } : viewCommand(cmd, now);
  return {
    CommandId: cmd.commandId,
    DocumentName: cmd.documentName,
    DocumentVersion: "$DEFAULT",
    Comment: cmd.comment,
    ExpiresAfter: epochSeconds(cmd.requestedAt + (cmd.timeoutSeconds + cmd.executionTimeout) * 1000),
    Parameters: cmd.parameters,
    InstanceIds: cmd.instanceIds,
    Targets: [],
    RequestedDateTime: epochSeconds(cmd.requestedAt),
    Status: v.status,
    StatusDetails: v.status === "TimedOut" ? "ExecutionTimedOut" : v.status,
    OutputS3Region: cmd.region,
    OutputS3BucketName: "",
    OutputS3KeyPrefix: "",
    MaxConcurrency: cmd.maxConcurrency ?? "50",
    MaxErrors: cmd.maxErrors ?? "0",
    TargetCount: cmd.instanceIds.length,
    CompletedCount: v.completed,
    ErrorCount: v.errors,
    DeliveryTimedOutCount: 0,
    ServiceRole: "",
    NotificationConfig: NOTIFICATION_CONFIG,
    CloudWatchOutputConfig: CLOUDWATCH_CONFIG,
    TimeoutSeconds: cmd.timeoutSeconds,
    TriggeredAlarms: [],
  };
}

/** GetCommandInvocation's answer. */
export function invocationResultJson(
  cmd: CommandRecord,
  inv: Invocation,
  now: number,
): Record<string, unknown> {
  const v = viewInvocation(inv, now);
  return {
    CommandId: cmd.commandId,
    InstanceId: inv.instanceId,
    Comment: cmd.comment,
    DocumentName: cmd.documentName,
    DocumentVersion: "$DEFAULT",
    PluginName: PLUGIN_NAME,
    ResponseCode: v.responseCode,
    ExecutionStartDateTime: v.startedAt !== undefined ? new Date(v.startedAt).toISOString() : "",
    ExecutionElapsedTime:
      v.startedAt !== undefined && v.endedAt !== undefined ? isoDuration(v.endedAt - v.startedAt) : "",
    ExecutionEndDateTime: v.endedAt !== undefined ? new Date(v.endedAt).toISOString() : "",
    Status: v.status,
    StatusDetails: v.statusDetails,
    StandardOutputContent: firstChars(v.stdout, MAX_STDOUT_CONTENT),
    StandardOutputUrl: "",
    StandardErrorContent: firstChars(v.stderr, MAX_STDERR_CONTENT),
    StandardErrorUrl: "",
    CloudWatchOutputConfig: CLOUDWATCH_CONFIG,
  };
}

/** One `CommandInvocation` of ListCommandInvocations; `details` adds the plugin with its Output. */
export function invocationJson(
  cmd: CommandRecord,
  inv: Invocation,
  now: number,
  details: boolean,
): Record<string, unknown> {
  const v = viewInvocation(inv, now);
  return {
    CommandId: cmd.commandId,
    InstanceId: inv.instanceId,
    InstanceName: "",
    Comment: cmd.comment,
    DocumentName: cmd.documentName,
    DocumentVersion: "$DEFAULT",
    RequestedDateTime: epochSeconds(cmd.requestedAt),
    Status: v.status,
    StatusDetails: v.statusDetails,
    TraceOutput: "",
    StandardOutputUrl: "",
    StandardErrorUrl: "",
    CommandPlugins: details
      ? [
          {
            Name: PLUGIN_NAME,
            Status: v.status,
            StatusDetails: v.statusDetails,
            ResponseCode: v.responseCode,
            ...(v.startedAt !== undefined ? { ResponseStartDateTime: epochSeconds(v.startedAt) } : {}),
            ...(v.endedAt !== undefined ? { ResponseFinishDateTime: epochSeconds(v.endedAt) } : {}),
            Output: v.terminal ? pluginOutput(v.stdout, v.stderr) : "",
            StandardOutputUrl: "",
            StandardErrorUrl: "",
            OutputS3Region: cmd.region,
            OutputS3BucketName: "",
            OutputS3KeyPrefix: "",
          },
        ]
      : [],
    ServiceRole: "",
    NotificationConfig: NOTIFICATION_CONFIG,
    CloudWatchOutputConfig: CLOUDWATCH_CONFIG,
  };
}

/**
 * How many invocations run at once for `MaxConcurrency` ("10" or "10%") over `targets`
 * instances: a percentage rounds down, but never below one.
 */
export function concurrencyOf(maxConcurrency: string, targets: number): number {
  if (maxConcurrency.endsWith("%"))
    return Math.max(1, Math.floor((targets * Number(maxConcurrency.slice(0, -1))) / 100));
  return Number(maxConcurrency);
}

/**
 * Start times under a concurrency limit: the first `limit` invocations start at `now`, each
 * later one when the earliest of those running ends. `runs[i]` is invocation i's run time.
 */
export function staggeredStarts(now: number, runs: readonly number[], limit: number): number[] {
  const ends: number[] = [];
  return runs.map((run) => {
    let start = now;
    if (ends.length >= limit) {
      ends.sort((a, b) => a - b);
      start = ends.shift()!;
    }
    ends.push(start + run);
    return start;
  });
}

/** `PT2.5S`-style durations, as ExecutionElapsedTime is written. */
export function isoDuration(ms: number): string {
  return `PT${(Math.max(0, ms) / 1000).toFixed(3).replace(/\.?0+$/, "")}S`;
}
