import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { loadQuotaPolicy, quotaPolicyFrom } from "./quota-policy.ts";

const dir = mkdtempSync(join(tmpdir(), "cairn-quotas-"));
const file = (name: string, text: string) => {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
};

describe("the quota policy file", () => {
  it("absent: every user gets the defaults (5 sessions, 16 CPU, 64Gi), no groups", () => {
    const p = loadQuotaPolicy(undefined);
    expect(p.userLimits("anyone")).toEqual({ sessions: 5, cpuMillis: 16_000, memoryBytes: 64 * 2 ** 30 });
    expect(p.groupsOf("anyone")).toEqual([]);
  });
  it("YAML: a user's own limits over the defaults, groups and their limits (unset: unlimited)", () => {
    const p = loadQuotaPolicy(
      file(
        "q.yaml",
        `defaults: { sessions: 2, cpu: "4", memory: 8Gi }
users:
  alice: { sessions: 10, groups: [team-a] }
groups:
  team-a: { sessions: 20, cpu: 500m }
`,
      ),
    );
    expect(p.userLimits("alice")).toEqual({ sessions: 10, cpuMillis: 4000, memoryBytes: 8 * 2 ** 30 });
    expect(p.userLimits("bob")).toEqual({ sessions: 2, cpuMillis: 4000, memoryBytes: 8 * 2 ** 30 });
    expect(p.groupsOf("alice")).toEqual(["team-a"]);
    expect(p.groupLimits("team-a")).toEqual({ sessions: 20, cpuMillis: 500 });
  });
  it("JSON too", () => {
    const p = loadQuotaPolicy(file("q.json", JSON.stringify({ defaults: { sessions: 1 } })));
    expect(p.userLimits("x")).toEqual({ sessions: 1 });
  });
  it("refuses what it cannot read, naming the place", () => {
    expect(() => quotaPolicyFrom({ defaults: { cpu: "lots" } })).toThrow(
      /defaults\.cpu: must be a Kubernetes quantity/,
    );
    expect(() => quotaPolicyFrom({ users: { alice: { groups: ["nope"] } } })).toThrow(
      /users\.alice\.groups names nope, which is not in groups/,
    );
    expect(() => quotaPolicyFrom({ default: {} })).toThrow(/quota policy is invalid/);
    expect(() => loadQuotaPolicy(file("bad.json", "{"))).toThrow(/is not valid JSON/);
  });
});
