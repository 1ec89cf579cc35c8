/**
 * The Compute port over EC2 (@aws-sdk/client-ec2): the only code of the provisioner that
 * talks to EC2. One EC2Client per region, created on first use and kept; endpoint and
 * credentials exactly as the SDK reads them from the environment (AWS_ENDPOINT_URL_EC2,
 * AWS_PROFILE, AWS_ACCESS_KEY_ID, …) unless given in the options. The SDK's own retries
 * are off (maxAttempts 1): `Resilience` (cockatiel) retries, breaks and limits.
 *
 * See docs/provisioner-ec2.md for the policies, the errors and the fallback order.
 */
import {
  DescribeImagesCommand,
  type DescribeImagesCommandOutput,
  DescribeInstanceStatusCommand,
  type DescribeInstanceStatusCommandOutput,
  DescribeInstancesCommand,
  type DescribeInstancesCommandOutput,
  EC2Client,
  type EC2ClientConfig,
  type Filter,
  type Instance,
  type InstanceStateChange,
  RebootInstancesCommand,
  RunInstancesCommand,
  type RunInstancesCommandInput,
  type RunInstancesCommandOutput,
  StartInstancesCommand,
  type StartInstancesCommandOutput,
  StopInstancesCommand,
  type StopInstancesCommandOutput,
  TerminateInstancesCommand,
  type TerminateInstancesCommandOutput,
} from "@aws-sdk/client-ec2";
import {
  adapterAwsClient,
  type LoggerLike,
  loggingObserver,
  type PolicyName,
  Resilience,
  type ResilienceOptions,
} from "@cairn/service";
import {
  CAIRN_TAGS,
  CLIENT_TOKEN_MAX_LENGTH,
  type Compute,
  type ComputeFailureKind,
  cairnTags,
  type ImageInfo,
  type InstanceInfo,
  type InstanceState,
  type InstanceStateInfo,
  type LaunchBatchRequest,
  type LaunchedInstance,
  type LaunchRequest,
  LIVE_STATES,
  ownerOf,
  type PerInstanceResult,
} from "../ports.ts";
import { classifyEc2Error, type Ec2CallContext, Ec2RequestError, Ec2ServerError } from "./ec2-errors.ts";

/** The EC2 actions the adapter calls. */
export type Ec2Operation =
  | "RunInstances"
  | "DescribeImages"
  | "DescribeInstances"
  | "DescribeInstanceStatus"
  | "TerminateInstances"
  | "StopInstances"
  | "StartInstances"
  | "RebootInstances";

/**
 * Which named policy each action runs under. Terminate is `critical`: an instance that
 * is not terminated keeps costing money and blocks a delete or a rollback.
 */
export const DEFAULT_OPERATION_POLICIES: Readonly<Record<Ec2Operation, PolicyName>> = {
  RunInstances: "aws",
  DescribeImages: "aws",
  DescribeInstances: "aws",
  DescribeInstanceStatus: "aws",
  TerminateInstances: "critical",
  StopInstances: "aws",
  StartInstances: "aws",
  RebootInstances: "aws",
};

/** The service label of the EC2 breaker and bulkhead (one per region). */
export const EC2_SERVICE = "ec2";

export type Ec2Command =
  | RunInstancesCommand
  | DescribeImagesCommand
  | DescribeInstancesCommand
  | DescribeInstanceStatusCommand
  | TerminateInstancesCommand
  | StopInstancesCommand
  | StartInstancesCommand
  | RebootInstancesCommand;

/** What commands are sent through: an EC2Client for one region (a fake in unit tests). */
export interface Ec2Transport {
  send(command: Ec2Command, options: { abortSignal: AbortSignal }): Promise<unknown>;
  destroy(): void;
}

export interface Ec2ComputeOptions extends ResilienceOptions {
  /** The EC2 endpoint (the sim's URL). Absent: the SDK's own resolution (AWS_ENDPOINT_URL_EC2, then AWS). */
  readonly endpoint?: string;
  /** Absent: the SDK's default credential chain. */
  readonly credentials?: EC2ClientConfig["credentials"];
  /** Ids per Terminate/Stop/Start/RebootInstances call. Default 10. */
  readonly batchSize?: number;
  /** Ids per DescribeInstances call of `describe`. Default 100. */
  readonly describeBatchSize?: number;
  /** MaxResults of a DescribeInstances page (5..1000). Default 1000. */
  readonly pageSize?: number;
  /** Overrides of DEFAULT_OPERATION_POLICIES. */
  readonly operationPolicies?: Partial<Record<Ec2Operation, PolicyName>>;
  /** Without `observer`: the default observer logs here. */
  readonly logger?: LoggerLike;
  /** Breakers and bulkheads shared with other adapters; else the adapter makes its own from these options. */
  readonly resilience?: Resilience;
  /** How a region's transport is made. Default: an EC2Client. */
  readonly transport?: (region: string) => Ec2Transport;
}

export const DEFAULT_BATCH_SIZE = 10;
export const DEFAULT_DESCRIBE_BATCH_SIZE = 100;
export const DEFAULT_PAGE_SIZE = 1000;
/** EC2's limit on the ids one DescribeInstanceStatus names. */
export const STATUS_IDS_PER_CALL = 100;

const REGION = /^[a-z]{2}(-[a-z]+)+-\d{1,2}$/;
const CLIENT_TOKEN = /^[\x20-\x7e]+$/;
/** Refusals of a batch that may be about one of its instances only: worth asking id by id. */
const SPLIT_ON: ReadonlySet<ComputeFailureKind> = new Set<ComputeFailureKind>([
  "instance-not-found",
  "incorrect-state",
  "invalid-request",
]);
const STATES: ReadonlySet<string> = new Set<InstanceState>([...LIVE_STATES, "terminated"]);

/** `ids` in consecutive batches of at most `size`. Pure. */
export function batches<T>(ids: readonly T[], size: number): T[][] {
  if (!(Number.isInteger(size) && size >= 1)) throw new RangeError(`batch size must be ≥ 1, got ${size}`);
  const out: T[][] = [];
  for (let i = 0; i < ids.length; i += size) out.push(ids.slice(i, i + size));
  return out;
}

/**
 * The EC2Client of one region as the adapter uses it: SDK retries off (the adapter's
 * policies retry), endpoint and credentials from options or the environment, a client span
 * per call, and no SDK call logging (`withoutSdkCallLogging`: no SDK logger is given, and
 * its middleware would still mask and copy every answer).
 */
export function ec2Client(
  region: string,
  opts: Pick<Ec2ComputeOptions, "endpoint" | "credentials">,
): EC2Client {
  return adapterAwsClient(EC2Client, region, opts);
}

/** The default transport: an `ec2Client` per region. */
export function ec2ClientTransport(
  opts: Pick<Ec2ComputeOptions, "endpoint" | "credentials">,
): (region: string) => Ec2Transport {
  return (region) => {
    const client = ec2Client(region, opts);
    return {
      // One signature for every command: the SDK's overloads are per command type.
      send: (command, options) =>
        (client.send as (c: Ec2Command, o: object) => Promise<unknown>)(command, options),
      destroy: () => client.destroy(),
    };
  };
}

type StateChanges = Map<string, { previousState?: InstanceState; currentState?: InstanceState }>;

/** The real Compute: every EC2 call of the provisioner. */
export class Ec2Compute implements Compute {
  readonly resilience: Resilience;
  readonly #transport: (region: string) => Ec2Transport;
  readonly #clients = new Map<string, Ec2Transport>();
  readonly #policies: Readonly<Record<Ec2Operation, PolicyName>>;
  readonly #batchSize: number;
  readonly #describeBatchSize: number;
  readonly #pageSize: number;

  constructor(opts: Ec2ComputeOptions = {}) {
    const observer = opts.observer ?? (opts.logger ? loggingObserver(opts.logger) : undefined);
    this.resilience = opts.resilience ?? new Resilience({ ...opts, ...(observer ? { observer } : {}) });
    this.#transport = opts.transport ?? ec2ClientTransport(opts);
    this.#policies = { ...DEFAULT_OPERATION_POLICIES, ...opts.operationPolicies };
    this.#batchSize = opts.batchSize ?? DEFAULT_BATCH_SIZE;
    this.#describeBatchSize = opts.describeBatchSize ?? DEFAULT_DESCRIBE_BATCH_SIZE;
    this.#pageSize = opts.pageSize ?? DEFAULT_PAGE_SIZE;
    for (const [name, size] of [
      ["batchSize", this.#batchSize],
      ["describeBatchSize", this.#describeBatchSize],
    ] as const) {
      if (!(Number.isInteger(size) && size >= 1))
        throw new RangeError(`${name} must be an integer ≥ 1, got ${size}`);
    }
    if (!(Number.isInteger(this.#pageSize) && this.#pageSize >= 5 && this.#pageSize <= 1000)) {
      throw new RangeError(
        `pageSize must be an integer in 5..1000 (EC2's MaxResults), got ${this.#pageSize}`,
      );
    }
  }

  async launch(req: LaunchRequest): Promise<LaunchedInstance> {
    const [first] = await this.launchBatch({ ...req, count: 1 });
    if (!first)
      throw new Ec2ServerError(
        { region: req.region, operation: "RunInstances" },
        { message: "RunInstances answered without an instance" },
      );
    return first;
  }

  async launchBatch(req: LaunchBatchRequest): Promise<LaunchedInstance[]> {
    const ctx: Ec2CallContext = {
      region: req.region,
      operation: "RunInstances",
      instanceType: req.instanceType,
      ...(req.availabilityZone !== undefined ? { availabilityZone: req.availabilityZone } : {}),
      capacityType: req.capacityType,
      imageId: req.imageId,
    };
    this.#checkRegion(ctx);
    if (!(Number.isSafeInteger(req.count) && req.count >= 1)) {
      throw new Ec2RequestError(ctx, {
        code: "InvalidParameterValue",
        message: `a launch is of 1 or more instances, got ${req.count}`,
      });
    }
    if (req.clientToken.length > CLIENT_TOKEN_MAX_LENGTH || !CLIENT_TOKEN.test(req.clientToken)) {
      throw new Ec2RequestError(ctx, {
        code: "InvalidClientToken",
        message: `a ClientToken is 1..${CLIENT_TOKEN_MAX_LENGTH} printable ASCII characters; use launchToken()`,
      });
    }
    // Built once: every try sends the very same parameters, as the ClientToken requires.
    const input = runInstancesInput(req);
    const out = await this.#call<RunInstancesCommandOutput>(ctx, () => new RunInstancesCommand(input));
    const launched = (out.Instances ?? [])
      .map((i) => toInfo(req.region, i))
      .filter((i): i is InstanceInfo => i !== undefined)
      .sort((a, b) => (a.amiLaunchIndex ?? 0) - (b.amiLaunchIndex ?? 0));
    // EC2 answers at least MinCount (1) instances, or an error.
    if (launched.length === 0)
      throw new Ec2ServerError(ctx, { message: "RunInstances answered without an instance" });
    return launched;
  }

  async describeCluster(
    region: string,
    clusterId: string,
    opts: { readonly includeTerminated?: boolean } = {},
  ): Promise<InstanceInfo[]> {
    const filters: Filter[] = [{ Name: `tag:${CAIRN_TAGS.cluster}`, Values: [clusterId] }];
    if (!opts.includeTerminated) filters.push({ Name: "instance-state-name", Values: [...LIVE_STATES] });
    return this.#describeAll(region, filters);
  }

  async describeImage(region: string, imageId: string): Promise<ImageInfo | undefined> {
    const ctx = { region, operation: "DescribeImages", imageId };
    this.#checkRegion(ctx);
    try {
      const out = await this.#call<DescribeImagesCommandOutput>(
        ctx,
        () => new DescribeImagesCommand({ ImageIds: [imageId] }),
      );
      const image = out.Images?.find((i) => i.ImageId === imageId);
      if (!image) return undefined;
      return {
        imageId,
        architecture: (image.Architecture ?? "x86_64") as ImageInfo["architecture"],
        state: image.State ?? "available",
      };
    } catch (err) {
      if ((err as { kind?: string }).kind === "image-not-found") return undefined;
      throw err;
    }
  }

  async describe(
    region: string,
    instanceIds: readonly string[],
    opts: { readonly states?: readonly InstanceState[] } = {},
  ): Promise<InstanceInfo[]> {
    const unique = [...new Set(instanceIds)];
    if (unique.length === 0) return [];
    const states: Filter[] = opts.states ? [{ Name: "instance-state-name", Values: [...opts.states] }] : [];
    // A filter, not InstanceIds: an unknown id is then absent instead of failing the call.
    const pages = await Promise.all(
      batches(unique, this.#describeBatchSize).map((b) =>
        this.#describeAll(region, [{ Name: "instance-id", Values: b }, ...states]),
      ),
    );
    return pages.flat();
  }

  /**
   * DescribeInstanceStatus by id (at most 100 a call, EC2's limit; the batches at once),
   * every state (`IncludeAllInstances`) narrowed by the `instance-state-name` filter: an
   * item is an id, a zone, a state and two status summaries, a few elements where
   * DescribeInstances answers the whole instance (its parse was most of a 500-node
   * boot's SDK time). EC2 has no `instance-id` filter on this action, and one id it does
   * not show (eventual consistency right after RunInstances, or a terminated instance
   * gone) fails the whole call with `InvalidInstanceID.NotFound`: that batch is asked
   * again through `describe`, whose filter leaves an unknown id out. So is one refused as
   * unauthorized (a role without `ec2:DescribeInstanceStatus`, granted before it was used).
   */
  async states(
    region: string,
    instanceIds: readonly string[],
    opts: { readonly states: readonly InstanceState[] },
  ): Promise<InstanceStateInfo[]> {
    const unique = [...new Set(instanceIds)];
    if (unique.length === 0 || opts.states.length === 0) return [];
    const ctx: Ec2CallContext = { region, operation: "DescribeInstanceStatus" };
    this.#checkRegion(ctx);
    const wanted: ReadonlySet<string> = new Set(opts.states);
    const batch = async (ids: string[]): Promise<InstanceStateInfo[]> => {
      const out: InstanceStateInfo[] = [];
      const seenTokens = new Set<string>();
      let nextToken: string | undefined;
      try {
        do {
          const token = nextToken;
          const page = await this.#call<DescribeInstanceStatusCommandOutput>(
            { ...ctx, instanceIds: ids },
            () =>
              new DescribeInstanceStatusCommand({
                InstanceIds: ids,
                IncludeAllInstances: true,
                Filters: [{ Name: "instance-state-name", Values: [...opts.states] }],
                ...(token !== undefined ? { NextToken: token } : {}),
              }),
          );
          for (const s of page.InstanceStatuses ?? []) {
            const state = s.InstanceState?.Name;
            if (s.InstanceId && state !== undefined && wanted.has(state))
              out.push({ instanceId: s.InstanceId, state: state as InstanceState });
          }
          nextToken = page.NextToken || undefined;
          if (nextToken !== undefined) {
            if (seenTokens.has(nextToken))
              throw new Ec2ServerError(ctx, { message: "DescribeInstanceStatus repeated a NextToken" });
            seenTokens.add(nextToken);
          }
        } while (nextToken !== undefined);
        return out;
      } catch (err) {
        // NotFound: an id EC2 does not show. Unauthorized: a role granted before the boot
        // polls asked DescribeInstanceStatus (deploy/README.md lists it now); it still has
        // DescribeInstances, so the look works, at its old cost.
        const kind = (err as { kind?: string }).kind;
        if (kind !== "instance-not-found" && kind !== "unauthorized") throw err;
        return (await this.describe(region, ids, opts)).map((i) => ({
          instanceId: i.instanceId,
          state: i.state,
        }));
      }
    };
    return (await Promise.all(batches(unique, STATUS_IDS_PER_CALL).map(batch))).flat();
  }

  terminate(region: string, instanceIds: readonly string[]): Promise<PerInstanceResult[]> {
    return this.#batched("TerminateInstances", region, instanceIds, async (ctx, ids) =>
      stateChanges(
        (
          await this.#call<TerminateInstancesCommandOutput>(
            ctx,
            () => new TerminateInstancesCommand({ InstanceIds: ids }),
          )
        ).TerminatingInstances,
      ),
    );
  }

  stop(region: string, instanceIds: readonly string[]): Promise<PerInstanceResult[]> {
    return this.#batched("StopInstances", region, instanceIds, async (ctx, ids) =>
      stateChanges(
        (
          await this.#call<StopInstancesCommandOutput>(
            ctx,
            () => new StopInstancesCommand({ InstanceIds: ids }),
          )
        ).StoppingInstances,
      ),
    );
  }

  start(region: string, instanceIds: readonly string[]): Promise<PerInstanceResult[]> {
    return this.#batched("StartInstances", region, instanceIds, async (ctx, ids) =>
      stateChanges(
        (
          await this.#call<StartInstancesCommandOutput>(
            ctx,
            () => new StartInstancesCommand({ InstanceIds: ids }),
          )
        ).StartingInstances,
      ),
    );
  }

  reboot(region: string, instanceIds: readonly string[]): Promise<PerInstanceResult[]> {
    return this.#batched("RebootInstances", region, instanceIds, async (ctx, ids) => {
      await this.#call<unknown>(ctx, () => new RebootInstancesCommand({ InstanceIds: ids }));
      return new Map(ids.map((id) => [id, {}]));
    });
  }

  /** Closes every region's client (their sockets). The adapter makes new ones if used again. */
  close(): void {
    for (const c of this.#clients.values()) c.destroy();
    this.#clients.clear();
  }

  /** Every page of a DescribeInstances with these filters, each instance once. */
  async #describeAll(region: string, filters: Filter[]): Promise<InstanceInfo[]> {
    const ctx: Ec2CallContext = { region, operation: "DescribeInstances" };
    this.#checkRegion(ctx);
    const found = new Map<string, InstanceInfo>();
    const seenTokens = new Set<string>();
    let nextToken: string | undefined;
    do {
      const token = nextToken;
      // Each page is its own resilient call: a throttled page 7 does not restart at page 1.
      const page = await this.#call<DescribeInstancesCommandOutput>(
        ctx,
        () =>
          new DescribeInstancesCommand({
            Filters: filters,
            MaxResults: this.#pageSize,
            ...(token !== undefined ? { NextToken: token } : {}),
          }),
      );
      for (const r of page.Reservations ?? []) {
        for (const i of r.Instances ?? []) {
          const info = toInfo(region, i);
          if (info) found.set(info.instanceId, info);
        }
      }
      nextToken = page.NextToken || undefined;
      if (nextToken !== undefined) {
        if (seenTokens.has(nextToken)) {
          throw new Ec2ServerError(ctx, { message: "DescribeInstances repeated a NextToken" });
        }
        seenTokens.add(nextToken);
      }
    } while (nextToken !== undefined);
    return [...found.values()];
  }

  /**
   * A state change over many instances:
   * 1. distinct ids, in batches of `batchSize`, all batches at once (the bulkhead bounds them);
   * 2. a batch that succeeds gives each instance its previous and current state;
   * 3. a batch refused because of one of its instances (an unknown id, a state that does
   *    not allow the action, a spot instance that cannot be stopped) is asked again id by
   *    id, so each instance gets its own outcome;
   * 4. any other failure (retries spent, breaker open, no permission) is every instance's.
   */
  async #batched(
    operation: Ec2Operation,
    region: string,
    instanceIds: readonly string[],
    send: (
      ctx: Ec2CallContext & { region: string; operation: string },
      ids: string[],
    ) => Promise<StateChanges>,
  ): Promise<PerInstanceResult[]> {
    const unique = [...new Set(instanceIds)];
    if (unique.length === 0) return [];
    this.#checkRegion({ region, operation });
    const results = new Map<string, PerInstanceResult>();
    const run = async (ids: string[]): Promise<void> => {
      const ctx = { region, operation, instanceIds: ids };
      try {
        const changes = await send(ctx, ids);
        for (const id of ids) {
          const c = changes.get(id);
          results.set(
            id,
            c
              ? { instanceId: id, ok: true, ...c }
              : {
                  instanceId: id,
                  ok: false,
                  error: new Ec2ServerError(
                    { ...ctx, instanceIds: [id] },
                    { message: `EC2 reported no change for ${id}` },
                  ),
                },
          );
        }
      } catch (err) {
        const failure = classifyEc2Error(err, ctx);
        if (ids.length > 1 && SPLIT_ON.has(failure.kind)) {
          await Promise.all(ids.map((id) => run([id])));
          return;
        }
        for (const id of ids) results.set(id, { instanceId: id, ok: false, error: failure });
      }
    };
    await Promise.all(batches(unique, this.#batchSize).map(run));
    return unique.map((id) => results.get(id)!);
  }

  #call<T>(
    ctx: Ec2CallContext & { operation: string; region: string },
    command: () => Ec2Command,
  ): Promise<T> {
    const operation = ctx.operation as Ec2Operation;
    const client = this.#client(ctx.region);
    return this.resilience.run(
      { service: EC2_SERVICE, region: ctx.region, operation },
      this.#policies[operation] ?? "default",
      (signal) => client.send(command(), { abortSignal: signal }) as Promise<T>,
      (err) => classifyEc2Error(err, ctx),
    );
  }

  #client(region: string): Ec2Transport {
    let client = this.#clients.get(region);
    if (!client) {
      client = this.#transport(region);
      this.#clients.set(region, client);
    }
    return client;
  }

  /** A region that is not an AWS region code never gets a client (a typo must not reach a default endpoint). */
  #checkRegion(ctx: Ec2CallContext): asserts ctx is Ec2CallContext & { region: string; operation: string } {
    if (ctx.region === undefined || !REGION.test(ctx.region)) {
      throw new Ec2RequestError(ctx, {
        code: "InvalidRegion",
        message: `"${ctx.region}" is not an AWS region code such as eu-west-1`,
      });
    }
  }
}

/** A Compute over EC2; see Ec2ComputeOptions. */
export function createEc2Compute(opts: Ec2ComputeOptions = {}): Ec2Compute {
  return new Ec2Compute(opts);
}

/** The RunInstances parameters of a launch. Pure and deterministic (the ClientToken needs the same parameters every time). */
export function runInstancesInput(
  req: LaunchRequest & { readonly count?: number },
): RunInstancesCommandInput {
  const tags = cairnTags(req).map(([Key, Value]) => ({ Key, Value }));
  const profile = req.iamInstanceProfile;
  return {
    ClientToken: req.clientToken,
    ImageId: req.imageId,
    InstanceType: req.instanceType as RunInstancesCommandInput["InstanceType"],
    // EC2 launches the most it can up to MaxCount, and nothing only when it cannot launch
    // MinCount: a batch short of capacity launches what it can, the rest fall back.
    MinCount: 1,
    MaxCount: req.count ?? 1,
    ...(req.subnetId !== undefined ? { SubnetId: req.subnetId } : {}),
    ...(req.availabilityZone !== undefined ? { Placement: { AvailabilityZone: req.availabilityZone } } : {}),
    ...(req.capacityType === "spot"
      ? {
          InstanceMarketOptions: {
            MarketType: "spot",
            SpotOptions: { SpotInstanceType: "one-time", InstanceInterruptionBehavior: "terminate" },
          },
        }
      : {}),
    ...(req.securityGroupIds?.length ? { SecurityGroupIds: [...req.securityGroupIds] } : {}),
    ...(profile !== undefined
      ? { IamInstanceProfile: profile.startsWith("arn:") ? { Arn: profile } : { Name: profile } }
      : {}),
    ...(req.userData !== undefined ? { UserData: Buffer.from(req.userData, "utf8").toString("base64") } : {}),
    // IMDSv2 only: a pod cannot read the node's credentials with a plain GET.
    MetadataOptions: { HttpTokens: "required", HttpEndpoint: "enabled", HttpPutResponseHopLimit: 1 },
    TagSpecifications: [
      { ResourceType: "instance", Tags: tags },
      { ResourceType: "volume", Tags: tags },
    ],
  };
}

/** An SDK Instance as the port describes it; undefined without an id. */
export function toInfo(region: string, i: Instance): InstanceInfo | undefined {
  if (!i.InstanceId) return undefined;
  const tags: Record<string, string> = {};
  for (const t of i.Tags ?? []) if (t.Key !== undefined) tags[t.Key] = t.Value ?? "";
  const state = i.State?.Name;
  const owner = ownerOf(tags, i.AmiLaunchIndex ?? 0);
  return {
    instanceId: i.InstanceId,
    region,
    state: state !== undefined && STATES.has(state) ? (state as InstanceState) : "pending",
    instanceType: i.InstanceType ?? "unknown",
    availabilityZone: i.Placement?.AvailabilityZone ?? "",
    capacityType: i.InstanceLifecycle === "spot" ? "spot" : "on-demand",
    imageId: i.ImageId ?? "",
    ...(i.LaunchTime ? { launchTime: new Date(i.LaunchTime).toISOString() } : {}),
    ...(i.PrivateIpAddress ? { privateIpAddress: i.PrivateIpAddress } : {}),
    ...(i.PrivateDnsName ? { privateDnsName: i.PrivateDnsName } : {}),
    ...(i.SubnetId ? { subnetId: i.SubnetId } : {}),
    ...(i.ClientToken ? { clientToken: i.ClientToken } : {}),
    ...(i.StateReason?.Code ? { stateReason: i.StateReason.Code } : {}),
    ...(i.AmiLaunchIndex !== undefined ? { amiLaunchIndex: i.AmiLaunchIndex } : {}),
    tags,
    ...(owner ? { owner } : {}),
  };
}

/** The per-instance states of a Terminate/Stop/StartInstances answer. */
function stateChanges(list: readonly InstanceStateChange[] | undefined): StateChanges {
  const changes: StateChanges = new Map();
  for (const c of list ?? []) {
    if (!c.InstanceId) continue;
    const previous = c.PreviousState?.Name;
    const current = c.CurrentState?.Name;
    changes.set(c.InstanceId, {
      ...(previous && STATES.has(previous) ? { previousState: previous as InstanceState } : {}),
      ...(current && STATES.has(current) ? { currentState: current as InstanceState } : {}),
    });
  }
  return changes;
}
