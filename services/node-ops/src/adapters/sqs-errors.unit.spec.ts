import { SQSServiceException } from "@aws-sdk/client-sqs";
import { describeError, isPermanent, PermanentError, TransientError } from "@cairn/events";
import { BrokenCircuitError, TaskCancelledError } from "cockatiel";
import { describe, expect, it } from "vitest";
import {
  classifySqsError,
  SqsAccessDenied,
  SqsBreakerOpen,
  SqsQueueMissing,
  SqsReceiptInvalid,
  SqsRequestError,
  SqsThrottled,
  SqsTimeout,
  SqsUnavailable,
} from "./sqs-errors.ts";

const sdk = (name: string, status: number) =>
  new SQSServiceException({
    name,
    $fault: status >= 500 ? "server" : "client",
    $metadata: { httpStatusCode: status },
    message: `${name} said so`,
  });
const ctx = { operation: "ReceiveMessage", region: "eu-west-1", queue: "cairn-spot-interruptions" };

describe("classifySqsError: the SDK's error → one class per condition, its failure kind and its hint", () => {
  const cases: [string, unknown, abstract new (...a: never[]) => Error, "transient" | "permanent", RegExp][] =
    [
      ["RequestThrottled", sdk("RequestThrottled", 400), SqsThrottled, "transient", /request rate/],
      ["KmsThrottled", sdk("KmsThrottled", 400), SqsThrottled, "transient", /KMS/],
      ["InternalError", sdk("InternalError", 500), SqsUnavailable, "transient", /server error/],
      [
        "ECONNREFUSED",
        Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" }),
        SqsUnavailable,
        "transient",
        /AWS_ENDPOINT_URL_SQS/,
      ],
      ["a try's timeout", new TaskCancelledError("late"), SqsTimeout, "transient", /slow/],
      ["an open breaker", new BrokenCircuitError(), SqsBreakerOpen, "transient", /30 s/],
      ["QueueDoesNotExist", sdk("QueueDoesNotExist", 400), SqsQueueMissing, "permanent", /EventBridge rule/],
      ["AccessDenied", sdk("AccessDenied", 403), SqsAccessDenied, "permanent", /sqs:ReceiveMessage/],
      [
        "ReceiptHandleIsInvalid",
        sdk("ReceiptHandleIsInvalid", 400),
        SqsReceiptInvalid,
        "permanent",
        /comes back/,
      ],
      [
        "anything else",
        sdk("InvalidParameterValue", 400),
        SqsRequestError,
        "permanent",
        /InvalidParameterValue/,
      ],
    ];
  it.each(cases)("%s", (_what, err, cls, failure, hint) => {
    const c = classifySqsError(err, ctx);
    expect(c).toBeInstanceOf(cls);
    expect(c).toBeInstanceOf(failure === "transient" ? TransientError : PermanentError);
    expect(c.name).toBe(cls.name);
    expect(c.failure).toBe(failure);
    expect(c.cause).toBe(err);
    expect(c.remediation).toMatch(hint);
    expect(isPermanent(c)).toBe(failure === "permanent");
    expect(describeError(c)).toContain(`(fix: ${c.remediation})`);
  });
});
