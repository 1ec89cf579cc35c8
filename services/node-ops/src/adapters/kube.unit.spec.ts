import { describe, expect, it } from "vitest";
import { pdbOfEvictionRefusal } from "./kube.ts";

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
