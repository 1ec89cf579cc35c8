import { ApiException, type V1Node } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import {
  describeKubeError,
  evictionRefusal,
  instanceIdOfProviderId,
  observedNodeOf,
  pdbOfEvictionRefusal,
} from "./kube.ts";
import { classifyKubeError, KubeEvictionBlocked, KubeThrottled } from "./kube-errors.ts";

const refusal = {
  kind: "Status",
  apiVersion: "v1",
  metadata: {},
  status: "Failure",
  message: "Cannot evict pod as it would violate the pod's disruption budget.",
  reason: "TooManyRequests",
  code: 429,
  details: {
    causes: [
      {
        reason: "DisruptionBudget",
        message: "The disruption budget db-pdb needs 3 healthy pods and has 3 currently",
      },
    ],
  },
};

describe("pdbOfEvictionRefusal", () => {
  it("reads the PDB's name from the 429 Status, as an object or as the raw body", () => {
    expect(pdbOfEvictionRefusal(refusal)).toBe("db-pdb");
    expect(pdbOfEvictionRefusal(JSON.stringify(refusal))).toBe("db-pdb");
  });
  it("a 429 naming no budget (throttling) gives unknown", () => {
    expect(pdbOfEvictionRefusal({ code: 429, message: "Too many requests, please try again later." })).toBe(
      "unknown",
    );
    expect(pdbOfEvictionRefusal("not json")).toBe("unknown");
    expect(pdbOfEvictionRefusal(undefined)).toBe("unknown");
  });
});

describe("evictionRefusal", () => {
  /** The eviction's 429 as client-node throws it, classified as the adapter's calls are, then read. */
  const refused = (body: unknown, headers: Record<string, string> = {}) => {
    const err = classifyKubeError(new ApiException(429, "Too Many Requests", body, headers));
    if (!(err instanceof KubeEvictionBlocked || err instanceof KubeThrottled)) throw err;
    return evictionRefusal(err);
  };
  const processing = {
    ...refusal,
    details: {
      retryAfterSeconds: 10,
      causes: [
        {
          reason: "DisruptionBudget",
          message: "The disruption budget web is still being processed by the server.",
        },
      ],
    },
  };
  it("a budget not processed yet: that pod later, after the server's Retry-After", () => {
    expect(refused(JSON.stringify(processing), { "retry-after": "10" })).toEqual({
      evicted: false,
      blockedBy: "web",
      pending: true,
      retryAfterSeconds: 10,
    });
    // Without the header, the Status' retryAfterSeconds.
    expect(refused(processing)).toMatchObject({ blockedBy: "web", retryAfterSeconds: 10 });
  });
  it("a budget with no disruption left names it, without Retry-After", () => {
    expect(refused(JSON.stringify(refusal), {})).toEqual({ evicted: false, blockedBy: "db-pdb" });
  });
  it("a 429 naming no budget is throttling of that pod, not of the pass", () => {
    expect(
      refused({ code: 429, message: "Too many requests, please try again later." }, { "retry-after": "1" }),
    ).toEqual({ evicted: false, throttled: true, retryAfterSeconds: 1 });
  });
});

describe("observedNodeOf", () => {
  const node = (o: Partial<V1Node> = {}): V1Node => ({
    metadata: {
      name: "i-0abc123",
      labels: {
        "node-role.kubernetes.io/control-plane": "true",
        "cairn.dev/pool": "servers",
        "Not A Label!": "x",
      },
    },
    spec: {
      providerID: "aws:///eu-west-1a/i-0abc123",
      unschedulable: true,
      taints: [
        { key: "node.kubernetes.io/unschedulable", effect: "NoSchedule" },
        { key: "dedicated", value: "gpu", effect: "NoSchedule" },
        { key: "b-first", effect: "NoExecute", timeAdded: new Date() },
      ],
    },
    status: {
      conditions: [
        { type: "Ready", status: "False", reason: "KubeletNotReady", message: "PLEG is not healthy" },
        { type: "MemoryPressure", status: "True" },
        { type: "DiskPressure", status: "False" },
        { type: "NetworkUnavailable", status: "True" },
      ],
    },
    ...o,
  });

  it("reads role, instance, labels, taints (without the controllers' own), readiness and pressure", () => {
    expect(observedNodeOf(node())).toEqual({
      node: "i-0abc123",
      instanceId: "i-0abc123",
      role: "server",
      labels: { "node-role.kubernetes.io/control-plane": "true", "cairn.dev/pool": "servers" },
      taints: [
        { key: "b-first", effect: "NoExecute" },
        { key: "dedicated", value: "gpu", effect: "NoSchedule" },
      ],
      unschedulable: true,
      ready: false,
      notReadyReason: "KubeletNotReady: PLEG is not healthy",
      pressure: ["MemoryPressure", "NetworkUnavailable"],
    });
  });
  it("a Ready agent without a provider id or conditions beyond Ready", () => {
    const n = observedNodeOf({
      metadata: { name: "ip-10-0-1-5" },
      spec: { providerID: "k3s://ip-10-0-1-5" },
      status: { conditions: [{ type: "Ready", status: "True" }] },
    });
    expect(n).toEqual({
      node: "ip-10-0-1-5",
      role: "agent",
      labels: {},
      taints: [],
      unschedulable: false,
      ready: true,
      pressure: [],
    });
  });
  it("no Ready condition yet: not ready, saying so", () => {
    expect(observedNodeOf({ metadata: { name: "n" } })).toMatchObject({
      ready: false,
      notReadyReason: "the node has not reported a Ready condition yet",
    });
  });
});

describe("instanceIdOfProviderId", () => {
  it("takes the instance id from an AWS provider id only", () => {
    expect(instanceIdOfProviderId("aws:///eu-west-1a/i-0abc")).toBe("i-0abc");
    expect(instanceIdOfProviderId("aws:////i-0abc")).toBe("i-0abc");
    expect(instanceIdOfProviderId("k3s://node-1")).toBeUndefined();
    expect(instanceIdOfProviderId(undefined)).toBeUndefined();
  });
});

describe("describeKubeError", () => {
  it("never passes a response body on", () => {
    const e = describeKubeError("c1", new ApiException(503, "Service Unavailable", '{"secret":"x"}', {}));
    expect(e.message).toBe("the Kubernetes API of cluster c1 answered 503");
    const refused = Object.assign(new TypeError("fetch failed"), { cause: { code: "ECONNREFUSED" } });
    expect(describeKubeError("c1", refused).message).toBe(
      "the Kubernetes API of cluster c1 did not answer (ECONNREFUSED)",
    );
  });
});
