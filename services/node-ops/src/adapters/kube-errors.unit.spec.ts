import { SSMServiceException } from "@aws-sdk/client-ssm";
import { describeError, isPermanent, PermanentError, settlementOf, TransientError } from "@cairn/events";
import { ApiException } from "@kubernetes/client-node";
import { BrokenCircuitError, BulkheadRejectedError, TaskCancelledError } from "cockatiel";
import { describe, expect, it } from "vitest";
import { isNodeOpFailure, isPermanentFailure } from "../ports.ts";
import {
  classifyKubeconfigReadError,
  classifyKubeError,
  KubeBreakerOpen,
  KubeBulkheadFull,
  KubeConflict,
  KubeconfigForbidden,
  KubeconfigUnavailable,
  KubeEvictionBlocked,
  KubeForbidden,
  KubeHttpStatus,
  KubeInvalid,
  KubeNotFound,
  KubeRequestError,
  KubeThrottled,
  KubeTimeout,
  KubeUnauthorized,
  KubeUnavailable,
  retryAfterMsOf,
} from "./kube-errors.ts";

/** An answer as client-node v2 throws it: the Status body (a JSON string), the headers. */
const answer = (code: number, reason: string, headers: Record<string, string> = {}, extra: object = {}) =>
  new ApiException(
    code,
    `HTTP-Code: ${code}\nMessage: Unknown API Status Code!\nBody: {"secret":"do not log"}`,
    JSON.stringify({
      kind: "Status",
      apiVersion: "v1",
      status: "Failure",
      reason,
      code,
      message: "m",
      ...extra,
    }),
    headers,
  );
const budget = answer(
  429,
  "TooManyRequests",
  {},
  {
    message: "Cannot evict pod as it would violate the pod's disruption budget.",
    details: {
      causes: [
        {
          reason: "DisruptionBudget",
          message: "The disruption budget db-pdb needs 3 healthy pods and has 3 currently",
        },
      ],
    },
  },
);
const ctx = { clusterId: "c1", operation: "patchNode", target: "i-0abc" };
type Cls = abstract new (...a: never[]) => Error;

describe("classifyKubeError: client-node's answer → one class per condition, its failure kind and its hint", () => {
  const cases: [string, unknown, Cls, "transient" | "permanent", RegExp][] = [
    [
      "429 (rate limit)",
      answer(429, "TooManyRequests", { "retry-after": "2" }),
      KubeThrottled,
      "transient",
      /Retry-After/,
    ],
    ["503", answer(503, "ServiceUnavailable"), KubeUnavailable, "transient", /restarting/],
    ["500", answer(500, "InternalError"), KubeUnavailable, "transient", /retried with backoff/],
    [
      "connection refused (fetch)",
      Object.assign(new TypeError("fetch failed"), { cause: { code: "ECONNREFUSED" } }),
      KubeUnavailable,
      "transient",
      /API server is down/,
    ],
    [
      "a watch's 503",
      Object.assign(new Error("x"), { statusCode: 503 }),
      KubeUnavailable,
      "transient",
      /restarting/,
    ],
    ["a try's timeout", new TaskCancelledError("late"), KubeTimeout, "transient", /slow/],
    ["an open breaker", new BrokenCircuitError(), KubeBreakerOpen, "transient", /20 s/],
    ["a full bulkhead", new BulkheadRejectedError(10, 0), KubeBulkheadFull, "transient", /overloaded/],
    ["409", answer(409, "Conflict"), KubeConflict, "transient", /read again/],
    ["429 naming a budget", budget, KubeEvictionBlocked, "transient", /db-pdb/],
    ["404", answer(404, "NotFound"), KubeNotFound, "permanent", /check the name/],
    ["401", answer(401, "Unauthorized"), KubeUnauthorized, "permanent", /re-publish/],
    ["403", answer(403, "Forbidden"), KubeForbidden, "permanent", /RBAC/],
    ["422", answer(422, "Invalid"), KubeInvalid, "permanent", /validation/],
    ["400", answer(400, "BadRequest"), KubeInvalid, "permanent", /validation/],
    ["405", answer(405, "MethodNotAllowed"), KubeRequestError, "permanent", /report it/],
  ];
  it.each(cases)("%s", (_what, err, cls, failure, hint) => {
    const c = classifyKubeError(err, ctx);
    expect(c).toBeInstanceOf(cls);
    expect(c).toBeInstanceOf(failure === "transient" ? TransientError : PermanentError);
    expect(c.name).toBe(cls.name);
    expect(c.failure).toBe(failure);
    expect(c.transient).toBe(failure === "transient");
    expect(c.remediation).toMatch(hint);
    expect(isPermanent(c)).toBe(failure === "permanent");
    expect(settlementOf(c).kind).toBe(failure);
    expect(isNodeOpFailure(c)).toBe(true);
    expect(isPermanentFailure(c)).toBe(failure === "permanent");
    // The runner's log line and a dead letter carry the hint, and never the body.
    const line = describeError(c);
    expect(line).toContain(`(fix: ${c.remediation})`);
    expect(line).not.toContain("do not log");
    expect(c.cause).toBeDefined();
  });

  it("an HTTP answer's cause is a body-free status; anything else is chained as it is", () => {
    const c = classifyKubeError(answer(403, "Forbidden"), ctx);
    expect(c.cause).toBeInstanceOf(KubeHttpStatus);
    expect((c.cause as Error).message).toBe("HTTP 403 Forbidden");
    const refused = Object.assign(new TypeError("fetch failed"), { cause: { code: "ECONNREFUSED" } });
    expect(classifyKubeError(refused, ctx).cause).toBe(refused);
    expect(classifyKubeError(refused, { clusterId: "c1" }).message).toBe(
      "the Kubernetes API of cluster c1 did not answer (ECONNREFUSED)",
    );
  });

  it("a throttle carries the server's Retry-After; a budget's refusal names the budget; neither a 409 nor a refusal is retried as a call", () => {
    const t = classifyKubeError(answer(429, "TooManyRequests", { "Retry-After": "3" }), ctx) as KubeThrottled;
    expect(t.retryAfterMs).toBe(3_000);
    const b = classifyKubeError(budget, { clusterId: "c1", target: "default/db-0" }) as KubeEvictionBlocked;
    expect(b.blockedBy).toBe("db-pdb");
    expect(b.retryCall).toBe(false);
    expect((classifyKubeError(answer(409, "Conflict"), ctx) as KubeConflict).retryCall).toBe(false);
    expect(retryAfterMsOf({ "retry-after": "Thu, 01 Jan 1970 00:00:05 GMT" }, 1_000)).toBe(4_000);
    expect(retryAfterMsOf({})).toBeUndefined();
  });

  it("a classified failure passes through unchanged", () => {
    const c = classifyKubeError(answer(404, "NotFound"), ctx);
    expect(classifyKubeError(c, ctx)).toBe(c);
  });
});

describe("classifyKubeconfigReadError: the SSM read of a kubeconfig", () => {
  const where = { clusterId: "c1", parameter: "/cairn/c1/kubeconfig", region: "eu-west-1" };
  const sdk = (name: string, status: number) =>
    new SSMServiceException({
      name,
      $fault: status >= 500 ? "server" : "client",
      $metadata: { httpStatusCode: status },
      message: name,
    });
  it("throttled or 5xx: transient; refused: permanent, with the grant to give", () => {
    const t = classifyKubeconfigReadError(sdk("ThrottlingException", 400), where);
    expect(t).toBeInstanceOf(KubeconfigUnavailable);
    expect(t.failure).toBe("transient");
    expect(classifyKubeconfigReadError(sdk("InternalServerError", 500), where)).toBeInstanceOf(
      KubeconfigUnavailable,
    );
    const d = classifyKubeconfigReadError(sdk("AccessDeniedException", 400), where);
    expect(d).toBeInstanceOf(KubeconfigForbidden);
    expect(d.failure).toBe("permanent");
    expect(d.remediation).toMatch(/ssm:GetParameter and kms:Decrypt/);
  });
});
