import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { tokenCreate } from "./token.ts";

describe("cairn token create", () => {
  it("prints the token once and the file entry holding its hash", () => {
    const out = tokenCreate("alice", "operator").split("\n");
    const token = out[1]?.trim() ?? "";
    expect(token).toMatch(/^cairn_/);
    const entry = JSON.parse(out[3] ?? "");
    expect(entry).toEqual({
      user: "alice",
      role: "operator",
      tokenSha256: createHash("sha256").update(token).digest("hex"),
    });
  });
  it("refuses an unknown role, naming the valid ones", () => {
    expect(() => tokenCreate("alice", "root")).toThrow(/--role must be one of viewer, operator, admin/);
  });
});
