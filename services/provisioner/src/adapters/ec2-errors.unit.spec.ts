import { EC2ServiceException } from "@aws-sdk/client-ec2";
import {
  CairnError,
  describeError,
  isPermanent,
  PermanentError,
  remediationOf,
  settlementOf,
  TransientError,
} from "@cairn/events";
import { BrokenCircuitError, BulkheadRejectedError, TaskCancelledError } from "cockatiel";
import { describe, expect, it } from "vitest";
import { isCapacityFailure, isComputeFailure } from "../ports.ts";
import {
  BreakerOpenError,
  BulkheadFullError,
  CallTimeoutError,
  CapacityError,
  classifyEc2Error,
  type Ec2CallContext,
  Ec2RequestError,
  Ec2ServerError,
  IdempotencyMismatchError,
  ImageNotFoundError,
  IncorrectInstanceStateError,
  InstanceNotFoundError,
  isTransient,
  NetworkError,
  ThrottlingError,
  TokenSpentError,
  UnauthorizedError,
} from "./ec2-errors.ts";

/** An exception as the SDK's EC2 (Query) deserializer builds it: name and Code from `<Code>`. */
function sdkError(code: string, status: number, message = `${code} happened`): Error {
  const e = new EC2ServiceException({
    name: code,
    $fault: status >= 500 ? "server" : "client",
    $metadata: { httpStatusCode: status, requestId: "req-1", attempts: 1, totalRetryDelay: 0 },
    message,
  });
  return Object.assign(e, { Code: code });
}

function nodeError(code: string): Error {
  return Object.assign(new Error(`connect ${code} 127.0.0.1:443`), { code, syscall: "connect" });
}

const launch: Ec2CallContext = {
  region: "eu-west-1",
  operation: "RunInstances",
  instanceType: "t3.large",
  availabilityZone: "eu-west-1b",
  capacityType: "spot",
  imageId: "ami-0123456789abcdef0",
};

type Row = [label: string, err: unknown, cls: abstract new (...args: never[]) => Error, transient: boolean];

const table: Row[] = [
  ["RequestLimitExceeded (503)", sdkError("RequestLimitExceeded", 503), ThrottlingError, true],
  ["Throttling (400)", sdkError("Throttling", 400), ThrottlingError, true],
  ["any code with 429", sdkError("SlowDown", 429), ThrottlingError, true],
  ["InsufficientInstanceCapacity (500)", sdkError("InsufficientInstanceCapacity", 500), CapacityError, false],
  ["InsufficientHostCapacity", sdkError("InsufficientHostCapacity", 500), CapacityError, false],
  ["SpotMaxPriceTooLow", sdkError("SpotMaxPriceTooLow", 400), CapacityError, false],
  ["MaxSpotInstanceCountExceeded", sdkError("MaxSpotInstanceCountExceeded", 400), CapacityError, false],
  ["InvalidAMIID.NotFound", sdkError("InvalidAMIID.NotFound", 400), ImageNotFoundError, false],
  ["InvalidAMIID.Malformed", sdkError("InvalidAMIID.Malformed", 400), ImageNotFoundError, false],
  ["InvalidAMIID.Unavailable", sdkError("InvalidAMIID.Unavailable", 400), ImageNotFoundError, false],
  ["UnauthorizedOperation (403)", sdkError("UnauthorizedOperation", 403), UnauthorizedError, false],
  ["AuthFailure (401)", sdkError("AuthFailure", 401), UnauthorizedError, false],
  [
    "IdempotentParameterMismatch",
    sdkError("IdempotentParameterMismatch", 400),
    IdempotencyMismatchError,
    false,
  ],
  ["IdempotentInstanceTerminated", sdkError("IdempotentInstanceTerminated", 400), TokenSpentError, false],
  ["InvalidInstanceID.NotFound", sdkError("InvalidInstanceID.NotFound", 400), InstanceNotFoundError, false],
  ["InvalidInstanceID.Malformed", sdkError("InvalidInstanceID.Malformed", 400), InstanceNotFoundError, false],
  ["IncorrectInstanceState", sdkError("IncorrectInstanceState", 400), IncorrectInstanceStateError, false],
  ["InternalError (500)", sdkError("InternalError", 500), Ec2ServerError, true],
  ["ServiceUnavailable (503)", sdkError("ServiceUnavailable", 503), Ec2ServerError, true],
  ["an unknown code with 502", sdkError("BadGateway", 502), Ec2ServerError, true],
  ["InvalidParameterValue (400)", sdkError("InvalidParameterValue", 400), Ec2RequestError, false],
  ["ECONNREFUSED", nodeError("ECONNREFUSED"), NetworkError, true],
  ["ECONNRESET", nodeError("ECONNRESET"), NetworkError, true],
  ["ETIMEDOUT", nodeError("ETIMEDOUT"), NetworkError, true],
  ["EAI_AGAIN", nodeError("EAI_AGAIN"), NetworkError, true],
  ["socket hang up", new Error("socket hang up"), NetworkError, true],
  ["cockatiel timeout", new TaskCancelledError("Operation timed out after 30000ms"), CallTimeoutError, true],
  [
    "SDK TimeoutError",
    Object.assign(new Error("timed out"), { name: "TimeoutError" }),
    CallTimeoutError,
    true,
  ],
  ["an abort", Object.assign(new Error("aborted"), { name: "AbortError" }), CallTimeoutError, true],
  ["breaker open", new BrokenCircuitError(), BreakerOpenError, true],
  ["bulkhead full", new BulkheadRejectedError(5, 0), BulkheadFullError, true],
  ["a bug (TypeError)", new TypeError("x is undefined"), Ec2RequestError, false],
  ["a thrown string", "boom", Ec2RequestError, false],
];

describe("classifyEc2Error", () => {
  it.each(table)("%s → %o", (_label, err, cls, transient) => {
    const c = classifyEc2Error(err, launch);
    expect(c).toBeInstanceOf(cls);
    expect(c.name).toBe(cls.name);
    expect(c.transient).toBe(transient);
    expect(isTransient(err)).toBe(transient);
    expect(isTransient(c)).toBe(transient);
    expect(c.cause).toBe(err);
    expect(c.remediation.length).toBeGreaterThan(10);
    expect(c.region).toBe("eu-west-1");
    expect(c.operation).toBe("RunInstances");
    // The consumer runner's contract: transient → nak with backoff, permanent → dead letter.
    expect(c).toBeInstanceOf(transient ? TransientError : PermanentError);
    expect(isPermanent(c)).toBe(!transient);
    expect(isComputeFailure(c)).toBe(true);
    // The runtime's base: the class and the hint are read there, never the adapter's type.
    expect(c).toBeInstanceOf(CairnError);
    expect(c.failure).toBe(transient ? "transient" : "permanent");
    expect(remediationOf(c)).toBe(c.remediation);
    expect(settlementOf(c).kind).toBe(transient ? "transient" : "permanent");
    // Wrapped by a caller, the hint is still found down the cause chain.
    expect(remediationOf(new Error("launch failed", { cause: c }))).toBe(c.remediation);
  });

  it("keeps the EC2 code and message", () => {
    const c = classifyEc2Error(
      sdkError("InvalidParameterValue", 400, "Invalid value 'x' for InstanceType."),
      launch,
    );
    expect(c.code).toBe("InvalidParameterValue");
    expect(c.message).toContain("Invalid value 'x' for InstanceType.");
  });

  it("a refusal of the launch's tags says what EC2 takes and what to do", () => {
    const limit = classifyEc2Error(
      sdkError("TagLimitExceeded", 400, "The maximum number of tags (50) for resource has been reached."),
      launch,
    );
    expect(limit).toBeInstanceOf(Ec2RequestError);
    expect(limit.remediation).toMatch(
      /^EC2 refused the instance's tags \(TagLimitExceeded\): a cluster keeps at most 44 tags/,
    );
    const reserved = classifyEc2Error(
      sdkError("InvalidParameterValue", 400, "Value ( aws:x ) for parameter Tag.Key is invalid."),
      launch,
    );
    expect(reserved.remediation).toContain("not starting with aws:");
    // Another InvalidParameterValue keeps the general hint.
    expect(
      classifyEc2Error(sdkError("InvalidParameterValue", 400, "bad InstanceType"), launch).remediation,
    ).toMatch(/^EC2 rejected the request \(InvalidParameterValue\)/);
  });

  it("returns an already classified error as it is", () => {
    const c = new ThrottlingError(launch);
    expect(classifyEc2Error(c, {})).toBe(c);
  });

  it("a capacity error names the placement that failed and says how to fall back", () => {
    const c = classifyEc2Error(sdkError("InsufficientInstanceCapacity", 500), launch);
    expect(isCapacityFailure(c)).toBe(true);
    expect((c as CapacityError).placement).toEqual({
      instanceType: "t3.large",
      availabilityZone: "eu-west-1b",
      capacityType: "spot",
    });
    expect(c.remediation).toBe(
      "try the next instance type, then the next availability zone, then on-demand if the pool allows (fallbackToOnDemand)",
    );
  });

  it("a capacity error keeps the requested placement, and the zone EC2 named apart", () => {
    const { availabilityZone: _, ...anyZone } = launch;
    const msg =
      "We currently do not have sufficient t3.large capacity in the Availability Zone you requested (eu-west-1a).";
    const c = classifyEc2Error(sdkError("InsufficientInstanceCapacity", 500, msg), anyZone) as CapacityError;
    expect(c.placement.availabilityZone).toBeUndefined();
    expect(c.zone).toBe("eu-west-1a");
  });

  it("the AMI hint names the image and the region", () => {
    const c = classifyEc2Error(sdkError("InvalidAMIID.NotFound", 400), launch);
    expect(c.remediation).toBe(
      "the AMI ami-0123456789abcdef0 does not exist in eu-west-1: build or copy the Cairn AMI there, or set `ami` in the spec",
    );
  });

  it("the permission hint names the action", () => {
    const c = classifyEc2Error(sdkError("UnauthorizedOperation", 403), launch);
    expect(c.remediation).toContain("the credentials lack ec2:RunInstances in eu-west-1");
    const t = classifyEc2Error(sdkError("UnauthorizedOperation", 403), {
      region: "eu-west-1",
      operation: "TerminateInstances",
    });
    expect(t.remediation).toContain("ec2:TerminateInstances");
  });

  it("the idempotency hint says it is a bug", () => {
    const c = classifyEc2Error(sdkError("IdempotentParameterMismatch", 400), launch);
    expect(c.remediation).toBe("a launch with this token had other parameters: a bug; report it");
  });

  it("throttling says back off; an open breaker says EC2 failed repeatedly", () => {
    expect(classifyEc2Error(sdkError("RequestLimitExceeded", 503), launch).remediation).toMatch(/^back off/);
    expect(classifyEc2Error(new BrokenCircuitError(), launch).remediation).toBe(
      "EC2 in eu-west-1 failed repeatedly; waiting for it to recover",
    );
  });

  it("describeError shows the chain and the hint, as dead letters carry it", () => {
    const line = describeError(classifyEc2Error(sdkError("InvalidAMIID.NotFound", 400), launch));
    expect(line).toContain("ImageNotFoundError");
    expect(line).toContain("InvalidAMIID.NotFound");
    expect(line).toContain("(fix: the AMI ami-0123456789abcdef0 does not exist in eu-west-1");
  });

  it("never throws, whatever it is given", () => {
    for (const v of [undefined, null, 42, {}, { $metadata: {} }, Symbol("s")]) {
      expect(() => classifyEc2Error(v)).not.toThrow();
    }
  });
});
