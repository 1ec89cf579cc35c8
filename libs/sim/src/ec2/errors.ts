/**
 * EC2 errors as the Query protocol sends them: an HTTP status and a `<Code>` the SDK
 * turns into the exception's `name` (`InvalidInstanceID.NotFound`, `RequestLimitExceeded`).
 */
export class Ec2Error extends Error {
  override readonly name = "Ec2Error";
  /** The EC2 error code, e.g. `InvalidInstanceID.NotFound`. */
  readonly code: string;
  /** HTTP status: 400 for the caller's mistakes, 500/503 for the service's own. */
  readonly status: number;

  constructor(code: string, message: string, status = 400) {
    super(message);
    this.code = code;
    this.status = status;
  }
}

export const missingParameter = (name: string) =>
  new Ec2Error("MissingParameter", `The request must contain the parameter ${name}`);

export const invalidValue = (name: string, value: string, why = "") =>
  new Ec2Error("InvalidParameterValue", `Invalid value '${value}' for ${name}.${why ? ` ${why}` : ""}`);

export const throttled = () => new Ec2Error("RequestLimitExceeded", "Request limit exceeded.", 503);

export const internalError = () =>
  new Ec2Error("InternalError", "An internal error has occurred. Please try again.", 500);

/** The message AWS sends, naming the other zones of the region as the way out. */
export const insufficientCapacity = (instanceType: string, az: string, otherAzs: readonly string[]) =>
  new Ec2Error(
    "InsufficientInstanceCapacity",
    `We currently do not have sufficient ${instanceType} capacity in the Availability Zone you requested (${az}). ` +
      "Our system will be working on provisioning additional capacity. " +
      `You can currently get ${instanceType} capacity by not specifying an Availability Zone in your request or choosing ${otherAzs.join(", ")}.`,
    500,
  );

export const instancesNotFound = (ids: readonly string[]) =>
  new Ec2Error(
    "InvalidInstanceID.NotFound",
    ids.length === 1
      ? `The instance ID '${ids[0]}' does not exist`
      : `The instance IDs '${ids.join(", ")}' do not exist`,
  );

export const instanceIdMalformed = (id: string) =>
  new Ec2Error("InvalidInstanceID.Malformed", `Invalid id: "${id}" (expecting "i-...")`);

export const incorrectState = (id: string, verb: string) =>
  new Ec2Error(
    "IncorrectInstanceState",
    `The instance '${id}' is not in a state from which it can be ${verb}.`,
  );

export const dryRun = () =>
  new Ec2Error("DryRunOperation", "Request would have succeeded, but DryRun flag is set.", 412);
