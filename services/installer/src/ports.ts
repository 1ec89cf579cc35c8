/**
 * What the installer needs from the world, narrowed to the calls it makes: SSM Run
 * Command and Parameter Store. The decider never sees these; the reactor calls them and
 * records the outcome.
 */
import {
  PermanentSsmError,
  type SsmFailure,
  SsmNotManaged,
  TransientSsmError,
} from "./adapters/ssm-errors.ts";

/** An SSM invocation as the installer reads it. */
export interface Invocation {
  /** SSM's words: Pending, InProgress, Delayed, Success, Cancelled, TimedOut, Failed, … */
  readonly status: string;
  readonly startedAt?: string;
  readonly endedAt?: string;
  readonly stdout: string;
  readonly stderr: string;
}

export const RUNNING_STATUSES = new Set(["Pending", "InProgress", "Delayed", "Cancelling"]);

export interface StepCommand {
  readonly instanceId: string;
  /** The script, one element per line or a whole script per element. */
  readonly commands: readonly string[];
  /** ≤ 100 characters; names the step so that a sent command can be found again. */
  readonly comment: string;
  /** SSM's own execution timeout (the agent kills the script past it). */
  readonly executionTimeoutSeconds: number;
  /** Where the full output goes, when a bucket is configured (SSM cuts stdout at 24,000 characters). */
  readonly outputS3?: { readonly bucket: string; readonly keyPrefix: string };
}

/** One step's script for several instances: one SSM command (SendCommand names at most 50). */
export interface BatchCommand extends Omit<StepCommand, "instanceId"> {
  readonly instanceIds: readonly string[];
}

/** One instance's invocation of a batch's command, as ListCommandInvocations (with Details) shows it. */
export interface BatchInvocation extends Invocation {
  readonly instanceId: string;
}

/** SSM Run Command and Parameter Store in one region. */
export interface RemoteExec {
  /** Those of `instanceIds` whose SSM Agent is registered and online. */
  onlineInstances(region: string, instanceIds: readonly string[]): Promise<ReadonlySet<string>>;
  /** Sends one step; the command id. A refused instance (not managed yet) is `NotManagedError`. */
  send(region: string, step: StepCommand): Promise<string>;
  /**
   * Sends one step to several instances as one command, every invocation running on its
   * own (one failing stops none of the others); the command id. SSM refuses the whole
   * call when one instance is not managed (`NotManagedError`).
   */
  sendBatch(region: string, batch: BatchCommand): Promise<string>;
  /**
   * Every invocation of a command, by instance (ListCommandInvocations by command id, with
   * its details, every page): a batch's progress in one or a few calls rather than one per
   * instance. The output is the plugin's (SSM shows its first 2,500 characters there);
   * a failed one's full output is `invocation`'s.
   */
  invocations(region: string, commandId: string): Promise<ReadonlyMap<string, BatchInvocation>>;
  /** The instances a command names (ListCommands), or undefined when SSM does not know it. */
  commandTargets(region: string, commandId: string): Promise<readonly string[] | undefined>;
  /**
   * The command sent to `instanceId` with this exact comment since `since`, if any: how a
   * send cut short by a crash is found again instead of sent twice.
   */
  findSent(region: string, instanceId: string, comment: string, since: Date): Promise<string | undefined>;
  /** The invocation, or undefined when SSM does not know it (yet). */
  invocation(region: string, commandId: string, instanceId: string): Promise<Invocation | undefined>;
  /** Cancels invocations still running (one instance's, or several of one command). Cancelling an ended one is fine. */
  cancel(region: string, commandId: string, instanceId: string | readonly string[]): Promise<void>;
  /** Stores a SecureString unless it exists; true when this call created it. */
  putSecretIfAbsent(region: string, name: string, value: string): Promise<boolean>;
  /** The parameter's version, or undefined when it does not exist. Never reads the value. */
  parameterVersion(region: string, name: string): Promise<number | undefined>;
  /** Deletes parameters; missing ones are fine. */
  deleteParameters(region: string, names: readonly string[]): Promise<void>;
}

/**
 * A failure the adapter understood: one class per condition (adapters/ssm-errors.ts),
 * each a `TransientError` or `PermanentError` of @cairn/events with a remediation hint.
 * `transient: false` is permanent: retrying will not help, the reactor records it.
 * Anything else thrown is retried by the runtime.
 */
export type RemoteExecFailure = SsmFailure;

/** The instance is not (yet, or any more) a managed instance: its SSM Agent is not online (transient). */
export const NotManagedError = SsmNotManaged;
export type NotManagedError = SsmNotManaged;

export const isRemoteExecFailure = (e: unknown): e is RemoteExecFailure =>
  e instanceof TransientSsmError || e instanceof PermanentSsmError;
