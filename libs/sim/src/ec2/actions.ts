/**
 * The EC2 actions the sim answers: each reads its Query parameters, validates them as
 * EC2 does, asks the world and returns the inner XML of its response. Errors are thrown
 * as Ec2Error; index.ts turns them into EC2's error body.
 */
import { dryRun, Ec2Error, insufficientCapacity, invalidValue, missingParameter } from "./errors.ts";
import {
  compileFilters,
  decodeToken,
  encodeToken,
  type Getter,
  INSTANCE_FILTERS,
  type InstanceFilter,
  selectPage,
} from "./filters.ts";
import {
  type Ec2World,
  type Instance,
  type LaunchRequest,
  MAX_LAUNCH,
  STATE_CODES,
  validateTags,
} from "./model.ts";
import type { QueryParams } from "./params.ts";
import {
  instanceStatusSetXml,
  reservationSetXml,
  runInstancesXml,
  stateChangesXml,
  statusOf,
} from "./xml.ts";

export interface ActionCall {
  readonly world: Ec2World;
  readonly region: string;
  readonly params: QueryParams;
  /**
   * Asks the fault registry whether this launch meets an insufficient-capacity fault
   * (matched on instanceType and availabilityZone): how many instances can still be
   * launched (the fault's `available`, 0 by default), or undefined when there is no fault.
   */
  readonly capacityFault: (facts: { instanceType: string; availabilityZone: string }) => number | undefined;
  /** Sim time the call is dated at (`SimCall.at`): a launch's boot counts from it. */
  readonly at: number;
}

export interface ActionResult {
  /** The response's members (inside `<XxxResponse>`, after `<requestId>`). */
  xml: string;
  /** The instance ids the call named or returned, for the request log. */
  ids: string[];
}

export interface Action {
  /** The instance ids the request names (the log's ids and the faults' `instanceId` fact). */
  named(p: QueryParams): string[];
  run(call: ActionCall): ActionResult;
}

/** At most this many ids go into one request-log entry (a describe of 10,000 instances stays small). */
const LOGGED_IDS = 1000;
const AMI_ID = /^ami-(?:[0-9a-f]{8}|[0-9a-f]{17})$/;
const INSTANCE_TYPE = /^[a-z][a-z0-9-]*\.[a-z0-9-]+$/;
const SUBNET_ID = /^subnet-[0-9a-z]+$/;

const instanceIds = (p: QueryParams) => p.list("InstanceId");

/** `InstanceId.N`, at least one. */
function requiredIds(p: QueryParams): string[] {
  const ids = instanceIds(p);
  if (ids.length === 0) throw missingParameter("InstanceId");
  return ids;
}

/** Throws DryRunOperation once the request has been validated, when DryRun=true. */
function checkDryRun(p: QueryParams): void {
  if (p.bool("DryRun", false)) throw dryRun();
}

/** The parameters that are not part of what a ClientToken promises. */
const NOT_FINGERPRINTED = ["Action", "Version", "ClientToken", "DryRun"];

/**
 * The zone a launch lands in: the subnet's zone, else Placement.AvailabilityZone,
 * else the region's first zone. A zone outside the region, or one that contradicts the
 * subnet's, is InvalidParameterValue.
 */
function launchZone(
  world: Ec2World,
  region: string,
  p: QueryParams,
): { az: string; subnetId: string | undefined } {
  const subnetId = p.get("SubnetId");
  const requested = p.get("Placement.AvailabilityZone");
  if (requested !== undefined && !world.zones(region).includes(requested)) {
    throw new Ec2Error("InvalidParameterValue", `Invalid availability zone: [${requested}]`);
  }
  if (subnetId !== undefined) {
    if (!SUBNET_ID.test(subnetId)) {
      throw new Ec2Error("InvalidSubnetID.Malformed", `The subnet ID '${subnetId}' is malformed`);
    }
    const az = world.subnetZone(region, subnetId);
    if (requested !== undefined && requested !== az) {
      throw new Ec2Error(
        "InvalidParameterValue",
        `The subnet '${subnetId}' is in ${az}, not in the requested Availability Zone ${requested}.`,
      );
    }
    return { az, subnetId };
  }
  return { az: requested ?? world.zones(region)[0]!, subnetId: undefined };
}

/** What a fault rule may match on for RunInstances, read leniently (before validation). */
export function launchFacts(world: Ec2World, region: string, p: QueryParams): Record<string, string> {
  let availabilityZone: string;
  try {
    availabilityZone = launchZone(world, region, p).az;
  } catch {
    availabilityZone = p.get("Placement.AvailabilityZone") ?? world.zones(region)[0]!;
  }
  return { instanceType: p.get("InstanceType") ?? "m1.small", availabilityZone };
}

/** Validates RunInstances' parameters into a LaunchRequest (everything but idempotency and capacity). */
function parseLaunch(world: Ec2World, region: string, p: QueryParams, clientToken: string): LaunchRequest {
  if (p.hasPrefix("LaunchTemplate.")) {
    throw new Ec2Error(
      "InvalidParameterValue",
      "Launch templates are not modelled by the sim; give ImageId and InstanceType instead.",
    );
  }
  const imageId = p.get("ImageId");
  if (imageId === undefined) throw missingParameter("ImageId");
  if (!AMI_ID.test(imageId)) {
    throw new Ec2Error("InvalidAMIID.Malformed", `Invalid id: "${imageId}" (expecting "ami-...")`);
  }
  if (world.isMissingAmi(region, imageId)) {
    throw new Ec2Error("InvalidAMIID.NotFound", `The image id '[${imageId}]' does not exist`);
  }
  const instanceType = p.get("InstanceType") ?? "m1.small";
  if (!INSTANCE_TYPE.test(instanceType)) throw invalidValue("InstanceType", instanceType);

  const maxCount = p.int("MaxCount", 1);
  if (maxCount === undefined) throw missingParameter("MaxCount");
  const minCount = p.int("MinCount", 1);
  if (minCount === undefined) throw missingParameter("MinCount");
  if (minCount > maxCount) {
    throw new Ec2Error(
      "InvalidParameterValue",
      `Value (${minCount}) for parameter minCount is invalid. Expected a value less than or equal to maxCount (${maxCount}).`,
    );
  }
  if (maxCount > MAX_LAUNCH) {
    throw new Ec2Error(
      "InstanceLimitExceeded",
      `You have requested more instances (${maxCount}) than your current instance limit of ${MAX_LAUNCH} allows for the specified instance type.`,
    );
  }

  const { az, subnetId } = launchZone(world, region, p);

  const market = p.get("InstanceMarketOptions.MarketType");
  if (market !== undefined && market !== "spot") {
    if (market === "capacity-block") {
      throw new Ec2Error("InvalidParameterValue", "Capacity Blocks are not modelled by the sim.");
    }
    throw invalidValue("InstanceMarketOptions.MarketType", market, "Expecting spot or capacity-block.");
  }

  const tags: [string, string][] = [];
  for (const n of p.indices("TagSpecification")) {
    const resourceType = p.get(`TagSpecification.${n}.ResourceType`);
    if (resourceType === undefined) throw missingParameter(`TagSpecification.${n}.ResourceType`);
    const specTags = p.tags(`TagSpecification.${n}.Tag`);
    validateTags(specTags);
    // Tags for the launch's volumes, network interfaces or spot request are accepted and
    // dropped: the sim models instances only.
    if (resourceType === "instance") tags.push(...specTags);
  }
  const merged = new Map(tags);
  validateTags([...merged]);

  const profileArn = p.get("IamInstanceProfile.Arn");
  const iamInstanceProfile =
    p.get("IamInstanceProfile.Name") ?? profileArn?.slice(profileArn.lastIndexOf("/") + 1);

  return {
    imageId,
    instanceType,
    count: maxCount,
    minCount,
    availabilityZone: az,
    subnetId,
    spot: market === "spot",
    tags: [...merged],
    securityGroupIds: p.list("SecurityGroupId"),
    keyName: p.get("KeyName"),
    iamInstanceProfile,
    clientToken,
    fingerprint: p.fingerprint(NOT_FINGERPRINTED),
  };
}

const runInstances: Action = {
  named: () => [],
  /**
   * 1. ClientToken seen before with the same parameters → the first launch's
   *    reservation again (no new instance); with other parameters → mismatch.
   * 2. Validate; DryRun stops here.
   * 3. An insufficient-capacity fault for this type and zone: EC2 launches the largest
   *    number it can above MinCount, or nothing (InsufficientInstanceCapacity) when it
   *    cannot launch MinCount. So MinCount = MaxCount is all or nothing.
   * 4. Launch that many (MaxCount without a fault) instances, pending, AmiLaunchIndex
   *    0..n-1, in one reservation that the ClientToken then names.
   */
  run({ world, region, params: p, capacityFault, at }) {
    const clientToken = p.get("ClientToken") ?? "";
    if (clientToken.length > 64) {
      throw new Ec2Error(
        "InvalidParameterValue",
        `Value (${clientToken}) for parameter clientToken is invalid. Length exceeds maximum of 64.`,
      );
    }
    const earlier = clientToken
      ? world.replay(region, clientToken, p.fingerprint(NOT_FINGERPRINTED))
      : undefined;
    if (earlier) return { xml: runInstancesXml(world, earlier), ids: earlier.instances.map((i) => i.id) };

    const req = parseLaunch(world, region, p, clientToken);
    checkDryRun(p);
    const available = capacityFault({
      instanceType: req.instanceType,
      availabilityZone: req.availabilityZone,
    });
    if (available !== undefined && available < (req.minCount ?? 1)) {
      const others = world.zones(region).filter((z) => z !== req.availabilityZone);
      throw insufficientCapacity(req.instanceType, req.availabilityZone, others);
    }
    const reservation = world.run(
      region,
      available === undefined ? req : { ...req, count: Math.min(req.count, available) },
      at,
    );
    return { xml: runInstancesXml(world, reservation), ids: reservation.instances.map((i) => i.id) };
  },
};

/**
 * One Describe* page: named instances (all must exist) or the region's, filtered,
 * paginated by MaxResults/NextToken. EC2 refuses InstanceId.N together with MaxResults.
 */
function describePage(
  call: ActionCall,
  action: string,
  filters: InstanceFilter[],
  where?: (i: Instance, state: Instance["phase"]["state"]) => boolean,
): { instances: Instance[]; tokenXml: string; ids: string[] } {
  const { world, region, params: p } = call;
  const ids = instanceIds(p);
  const maxResults = p.int("MaxResults", 5, 1000);
  if (ids.length > 0 && maxResults !== undefined) {
    throw new Ec2Error(
      "InvalidParameterCombination",
      "The parameter instancesSet cannot be used with the parameter maxResults",
    );
  }
  const named = ids.length > 0 ? world.lookup(region, ids) : undefined;
  const requestKey = `${action}?${p.fingerprint(["Action", "Version", "NextToken", "MaxResults", "DryRun"])}`;
  const nextToken = p.get("NextToken");
  const afterSeq = nextToken ? decodeToken(nextToken, requestKey) : 0;
  checkDryRun(p);
  const now = world.now();
  const page = selectPage(
    world,
    world.reading(region),
    {
      ...(named ? { named } : {}),
      filters,
      ...(where ? { where } : {}),
      afterSeq,
      limit: maxResults ?? Number.POSITIVE_INFINITY,
    },
    now,
  );
  const last = page.instances.at(-1);
  const tokenXml = page.more && last ? `<nextToken>${encodeToken(last.seq, requestKey)}</nextToken>` : "";
  const logged = ids.length > 0 ? ids : page.instances.slice(0, LOGGED_IDS).map((i) => i.id);
  return { instances: page.instances, tokenXml, ids: logged };
}

const describeInstances: Action = {
  named: instanceIds,
  run(call) {
    const filters = compileFilters(call.params.filters(), INSTANCE_FILTERS);
    const page = describePage(call, "DescribeInstances", filters);
    return { xml: reservationSetXml(page.instances) + page.tokenXml, ids: page.ids };
  },
};

const describeInstanceStatus: Action = {
  named: instanceIds,
  run(call) {
    const now = call.world.now();
    const status: Getter = (i) => statusOf(i, now);
    // EC2's filters for this call: no `instance-id` (ids go in InstanceId.N), so a filter on
    // it is refused as unknown, as EC2 refuses it.
    const getters: Record<string, Getter> = {
      "availability-zone": INSTANCE_FILTERS["availability-zone"]!,
      "instance-state-name": INSTANCE_FILTERS["instance-state-name"]!,
      "instance-state-code": (_, s) => String(STATE_CODES[s]),
      "instance-status.status": status,
      "system-status.status": status,
      "instance-status.reachability": (i) => statusDetail(statusOf(i, now)),
      "system-status.reachability": (i) => statusDetail(statusOf(i, now)),
    };
    const filters = compileFilters(call.params.filters(), getters, { tags: false });
    const includeAll = call.params.bool("IncludeAllInstances", false);
    const page = describePage(
      call,
      "DescribeInstanceStatus",
      filters,
      includeAll ? undefined : (_, state) => state === "running",
    );
    return { xml: instanceStatusSetXml(page.instances, now) + page.tokenXml, ids: page.ids };
  },
};

const statusDetail = (s: "initializing" | "ok" | "not-applicable") =>
  s === "ok" ? "passed" : s === "initializing" ? "initializing" : undefined;

/** Start/Stop/Terminate: validate every id, then change all (or none). */
function stateChange(
  change: (world: Ec2World, region: string, ids: string[]) => ReturnType<Ec2World["start"]>,
): Action {
  return {
    named: instanceIds,
    run({ world, region, params: p }) {
      const ids = requiredIds(p);
      if (p.bool("DryRun", false)) {
        world.lookup(region, ids);
        throw dryRun();
      }
      const changes = change(world, region, ids);
      return { xml: stateChangesXml(changes), ids: changes.map((c) => c.instanceId) };
    },
  };
}

const rebootInstances: Action = {
  named: instanceIds,
  run({ world, region, params: p }) {
    const ids = requiredIds(p);
    if (p.bool("DryRun", false)) {
      world.lookup(region, ids);
      throw dryRun();
    }
    world.reboot(region, ids);
    return { xml: "<return>true</return>", ids };
  },
};

const createTags: Action = {
  named: (p) => p.list("ResourceId"),
  run({ world, region, params: p }) {
    const ids = p.list("ResourceId");
    if (ids.length === 0) throw missingParameter("ResourceId");
    for (const id of ids) {
      if (!id.startsWith("i-")) {
        throw new Ec2Error("InvalidID", `The ID '${id}' is not valid (the sim tags instances only)`);
      }
    }
    const tags = p.tags("Tag");
    if (tags.length === 0) throw missingParameter("Tag");
    if (p.bool("DryRun", false)) {
      validateTags(tags);
      world.lookup(region, ids);
      throw dryRun();
    }
    world.createTags(region, ids, tags);
    return { xml: "<return>true</return>", ids };
  },
};

/**
 * DescribeImages by `ImageId.N`: every well-formed AMI exists (an x86_64, EBS-backed
 * Linux image owned by the sim's account) unless the admin action `missing-ami` says
 * otherwise; an unknown id fails the whole call, as EC2 does. Without ids the answer is
 * empty (the sim keeps no catalogue of images to list).
 */
const describeImages: Action = {
  named: () => [],
  run({ world, region, params: p }) {
    const ids = p.list("ImageId");
    for (const id of ids)
      if (!AMI_ID.test(id))
        throw new Ec2Error("InvalidAMIID.Malformed", `Invalid id: "${id}" (expecting "ami-...")`);
    const missing = ids.filter((id) => world.isMissingAmi(region, id));
    if (missing.length > 0)
      throw new Ec2Error("InvalidAMIID.NotFound", `The image id '[${missing.join(", ")}]' does not exist`);
    const items = ids
      .map(
        (id) =>
          `<item><imageId>${id}</imageId><imageLocation>123456789012/cairn-k3s-${id}</imageLocation>` +
          "<imageState>available</imageState><imageOwnerId>123456789012</imageOwnerId>" +
          "<isPublic>false</isPublic><architecture>x86_64</architecture><imageType>machine</imageType>" +
          `<name>cairn-k3s-${id}</name><rootDeviceType>ebs</rootDeviceType><rootDeviceName>/dev/xvda</rootDeviceName>` +
          "<virtualizationType>hvm</virtualizationType><platformDetails>Linux/UNIX</platformDetails>" +
          "<enaSupport>true</enaSupport></item>",
      )
      .join("");
    return { xml: `<imagesSet>${items}</imagesSet>`, ids };
  },
};

/** Every action the sim answers; any other is InvalidAction. */
export const ACTIONS: Readonly<Record<string, Action>> = {
  RunInstances: runInstances,
  DescribeInstances: describeInstances,
  DescribeInstanceStatus: describeInstanceStatus,
  StartInstances: stateChange((w, r, ids) => w.start(r, ids)),
  StopInstances: stateChange((w, r, ids) => w.stop(r, ids)),
  TerminateInstances: stateChange((w, r, ids) => w.terminate(r, ids)),
  RebootInstances: rebootInstances,
  CreateTags: createTags,
  DescribeImages: describeImages,
};
