import { describe, expect, it } from "vitest";
import {
  ClusterRequested,
  CreateCluster,
  catalogue,
  ec2TagProblems,
  exampleClusterCreate,
  MAX_USER_TAGS,
} from "./index.ts";

const many = (n: number, prefix = "team") =>
  Object.fromEntries(Array.from({ length: n }, (_, i) => [`${prefix}-${i}`, "x"]));

describe("EC2's tag rules", () => {
  it("takes what EC2 takes: 44 tags of the user's (50 less Cairn's 6), any characters", () => {
    expect(MAX_USER_TAGS).toBe(44);
    expect(ec2TagProblems(many(44))).toEqual([]);
    expect(ec2TagProblems({ "Team Name/ü@=+": "élan: 100%" })).toEqual([]);
  });
  it("counts only the tags Cairn keeps: its own keys are dropped at launch", () => {
    expect(ec2TagProblems({ ...many(44), Name: "mine", "cairn:x": "y" })).toEqual([]);
  });
  it("refuses a 45th tag, saying how many and why", () => {
    const [problem, ...rest] = ec2TagProblems(many(300));
    expect(rest).toEqual([]);
    expect(problem).toBe(
      "300 tags, but an instance takes at most 44 of yours: EC2 allows 50 per resource and Cairn adds its own 6 (cairn:cluster, cairn:pool, cairn:slot, cairn:role, cairn:attempt, Name); remove 256",
    );
  });
  it("refuses aws: keys in any case, naming them", () => {
    expect(ec2TagProblems({ "aws:team": "x", "AWS:cost": "y", team: "z" })).toEqual([
      'tag keys "aws:team", "AWS:cost" start with "aws:", which AWS reserves for itself: rename them',
    ]);
  });
  it("counts characters, not UTF-16 units: 128 emoji make a valid key, 129 characters do not", () => {
    expect(ec2TagProblems({ ["😀".repeat(128)]: "x" })).toEqual([]);
    expect(ec2TagProblems({ ["k".repeat(129)]: "x" })[0]).toMatch(/longer than 128 characters/);
    expect(ec2TagProblems({ team: "v".repeat(257) })[0]).toMatch(/value of tag "team" is longer than 256/);
  });
});

describe("cluster.create's tags", () => {
  const create = (tags: Record<string, string>) => ({
    ...exampleClusterCreate("c-1"),
    id: "0193a0c2-0000-7000-8000-000000000001",
    data: { ...exampleClusterCreate("c-1").data, tags },
  });
  it("are refused by the command's schema, with the rule and the path, before anything is sent", () => {
    const parsed = catalogue.parseCommand(create(many(300)));
    expect(parsed.ok).toBe(false);
    if (parsed.ok) return;
    expect(parsed.error.issues).toEqual([
      expect.stringMatching(/^tags: 300 tags, but an instance takes at most 44/),
    ]);
    // The target is still known: the command server records the refusal on the cluster's subject.
    expect(parsed.target).toEqual({ type: "cluster", id: "c-1" });
    expect(CreateCluster.schema.safeParse(create({ "aws:x": "1" }).data).success).toBe(false);
  });
  it("but an event recorded before the rule is still read (the event's schema is not the command's)", () => {
    const spec = { ...exampleClusterCreate("c-1").data, tags: many(300) };
    expect(ClusterRequested.schema.safeParse({ spec }).success).toBe(true);
  });
});
