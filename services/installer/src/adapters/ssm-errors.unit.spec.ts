import { SSMServiceException } from "@aws-sdk/client-ssm";
import { describeError, isPermanent, PermanentError, settlementOf, TransientError } from "@cairn/events";
import { BrokenCircuitError, BulkheadRejectedError, TaskCancelledError } from "cockatiel";
import { describe, expect, it } from "vitest";
import { isRemoteExecFailure, NotManagedError } from "../ports.ts";
import {
  classifySsmError,
  SsmAccessDenied,
  SsmBreakerOpen,
  SsmBulkheadFull,
  SsmInvalidDocument,
  SsmInvalidInstance,
  SsmInvocationNotFound,
  SsmNetworkError,
  SsmNotManaged,
  SsmParameterExists,
  SsmParameterNotFound,
  SsmRequestError,
  SsmThrottled,
  SsmTimeout,
  SsmUnavailable,
} from "./ssm-errors.ts";

/** An exception as the SDK's JSON protocol deserializer makes it (name = the error code). */
const sdk = (
  name: string,
  status: number,
  fault: "client" | "server" = status >= 500 ? "server" : "client",
) =>
  new SSMServiceException({
    name,
    $fault: fault,
    $metadata: { httpStatusCode: status },
    message: `${name} said so`,
  });

const ctx = { operation: "SendCommand", region: "eu-west-1" };

describe("classifySsmError: the SDK's error → one class per condition, its failure kind and its hint", () => {
  const cases: [string, unknown, abstract new (...a: never[]) => Error, "transient" | "permanent", RegExp][] =
    [
      [
        "ThrottlingException",
        sdk("ThrottlingException", 400),
        SsmThrottled,
        "transient",
        /rates per account/,
      ],
      ["TooManyUpdates", sdk("TooManyUpdates", 429), SsmThrottled, "transient", /backoff/],
      ["a bare 429", sdk("Whatever", 429), SsmThrottled, "transient", /backoff/],
      [
        "InternalServerError",
        sdk("InternalServerError", 500),
        SsmUnavailable,
        "transient",
        /Health Dashboard/,
      ],
      ["a 503", sdk("Unknown", 503), SsmUnavailable, "transient", /server error/],
      [
        "ECONNREFUSED",
        Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:1"), { code: "ECONNREFUSED" }),
        SsmNetworkError,
        "transient",
        /AWS_ENDPOINT_URL_SSM/,
      ],
      [
        "the SDK's TimeoutError",
        Object.assign(new Error("t"), { name: "TimeoutError" }),
        SsmTimeout,
        "transient",
        /never sent twice/,
      ],
      ["cockatiel's timeout", new TaskCancelledError("late"), SsmTimeout, "transient", /slow/],
      ["an open breaker", new BrokenCircuitError(), SsmBreakerOpen, "transient", /45 s/],
      [
        "a full bulkhead",
        new BulkheadRejectedError(3, 0),
        SsmBulkheadFull,
        "transient",
        /MAX_PARALLEL_JOINS/,
      ],
      [
        "AccessDeniedException",
        sdk("AccessDeniedException", 400),
        SsmAccessDenied,
        "permanent",
        /ssm:SendCommand/,
      ],
      [
        "UnrecognizedClientException",
        sdk("UnrecognizedClientException", 400),
        SsmAccessDenied,
        "permanent",
        /AWS_PROFILE/,
      ],
      ["InvalidDocument", sdk("InvalidDocument", 400), SsmInvalidDocument, "permanent", /step scripts/],
      ["InvalidParameters", sdk("InvalidParameters", 400), SsmInvalidDocument, "permanent", /report it/],
      [
        "InvalidInstanceId",
        sdk("InvalidInstanceId", 400),
        SsmInvalidInstance,
        "permanent",
        /AmazonSSMManagedInstanceCore/,
      ],
      [
        "ParameterNotFound",
        sdk("ParameterNotFound", 400),
        SsmParameterNotFound,
        "permanent",
        /secret parameter/,
      ],
      ["ParameterAlreadyExists", sdk("ParameterAlreadyExists", 400), SsmParameterExists, "permanent", /kept/],
      [
        "InvocationDoesNotExist",
        sdk("InvocationDoesNotExist", 400),
        SsmInvocationNotFound,
        "permanent",
        /sent again/,
      ],
      [
        "any other refusal",
        sdk("ValidationException", 400),
        SsmRequestError,
        "permanent",
        /ValidationException/,
      ],
    ];
  it.each(cases)("%s", (_what, err, cls, failure, hint) => {
    const c = classifySsmError(err, ctx);
    expect(c).toBeInstanceOf(cls);
    expect(c).toBeInstanceOf(failure === "transient" ? TransientError : PermanentError);
    expect(c.failure).toBe(failure);
    expect(c.transient).toBe(failure === "transient");
    expect(c.name).toBe(cls.name);
    expect(c.cause).toBe(err);
    expect(c.remediation).toMatch(hint);
    expect(isPermanent(c)).toBe(failure === "permanent");
    expect(settlementOf(c).kind).toBe(failure);
    // The runner's log line and a dead letter carry the hint.
    expect(describeError(c)).toContain(`(fix: ${c.remediation})`);
    expect(isRemoteExecFailure(c)).toBe(true);
  });

  it("a classified failure passes through unchanged", () => {
    const c = classifySsmError(sdk("ThrottlingException", 400), ctx);
    expect(classifySsmError(c, ctx)).toBe(c);
  });

  it("NotManagedError is SsmNotManaged: transient, with the agent hint, and the installer's guard knows it", () => {
    const cause = classifySsmError(sdk("InvalidInstanceId", 400), ctx);
    const e = new NotManagedError("i-0abc", cause);
    expect(e).toBeInstanceOf(SsmNotManaged);
    expect(e.name).toBe("SsmNotManaged");
    expect(e.failure).toBe("transient");
    expect(e.cause).toBe(cause);
    expect(e.remediation).toMatch(/SSM Agent/);
    expect(isRemoteExecFailure(e) && !e.transient).toBe(false);
    expect(isRemoteExecFailure(new Error("x"))).toBe(false);
  });
});
