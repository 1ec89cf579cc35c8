import { describe, expect, it } from "vitest";
import { InvalidInputError } from "../errors.ts";
import { clusterCreateData, parsePool } from "./create-data.ts";
import { describeCluster } from "./describe.ts";
import { clusterVerdict } from "./outcome.ts";
import { CLUSTER_COLUMNS, type ClusterView, progressText } from "./view.ts";

const cluster = (over: Partial<ClusterView> = {}): ClusterView => ({
  id: "c-1",
  name: "c-1",
  region: "eu-west-1",
  state: "Provisioning",
  spec: {
    k3sVersion: "v1.31.4+k3s1",
    servers: { count: 1, instanceType: "t3.medium" },
    pools: [{ name: "workers", capacityType: "spot", instanceTypes: ["t3.large"], count: 2 }],
  },
  version: 5,
  progress: {
    operation: "provisioning",
    done: 1,
    total: 3,
    percent: 33,
    step: "1 of 3 nodes running",
    eta: null,
    etaSeconds: 80,
  },
  traceId: null,
  createdAt: "2025-01-31T11:58:00Z",
  updatedAt: "2025-01-31T11:59:00Z",
  ...over,
});
const accepted = { commandId: "c", status: "accepted" as const };

describe("what --wait makes of a cluster", () => {
  it("waits with its progress bar, step and ETA while it is built", () => {
    expect(
      clusterVerdict("Ready", "c-1", { view: cluster(), command: accepted, unanswered: false }),
    ).toMatchObject({
      kind: "waiting",
      state: "Provisioning",
      detail: "[#######.............] 33%  1 of 3 nodes running  ETA 80s",
    });
  });

  it("a Ready cluster counts only once the command was taken (or went unanswered: a no-op)", () => {
    const ready = cluster({ state: "Ready" });
    expect(
      clusterVerdict("Ready", "c-1", { view: ready, command: undefined, unanswered: false }),
    ).toMatchObject({
      kind: "waiting",
      state: "Ready (command not taken yet)",
    });
    expect(clusterVerdict("Ready", "c-1", { view: ready, command: accepted, unanswered: false }).kind).toBe(
      "done",
    );
    expect(clusterVerdict("Ready", "c-1", { view: ready, command: undefined, unanswered: true }).kind).toBe(
      "done",
    );
  });

  it("a view older than the command's commit does not count, even when it shows the goal (the scale race)", () => {
    // A scale of a Ready cluster: the command answered at sequence 42, but the view was read
    // before the projector folded it: still "Ready", not yet "Scaling".
    const scale = { ...accepted, sequence: 42 };
    const stale = cluster({ state: "Ready", sequence: 41 });
    expect(clusterVerdict("Ready", "c-1", { view: stale, command: scale, unanswered: true })).toMatchObject({
      kind: "waiting",
      state: "Ready (command not shown by the read model yet)",
    });
    expect(
      clusterVerdict("Ready", "c-1", {
        view: cluster({ state: "Scaling", sequence: 42 }),
        command: scale,
        unanswered: false,
      }),
    ).toMatchObject({ kind: "waiting", state: "Scaling" });
    const after = cluster({ state: "Ready", sequence: 57 });
    expect(clusterVerdict("Ready", "c-1", { view: after, command: scale, unanswered: false })).toEqual({
      kind: "done",
      view: after,
    });
    // A stale Failed view is not this command's failure either.
    expect(
      clusterVerdict("Ready", "c-1", {
        view: cluster({ state: "Failed", sequence: 30 }),
        command: { ...accepted, sequence: 42 },
        unanswered: false,
      }).kind,
    ).toBe("waiting");
  });

  it("fails with the refusal's reason, or the failure's reason and remediation", () => {
    expect(
      clusterVerdict("Ready", "c-1", {
        view: cluster(),
        command: { commandId: "c", status: "rejected", code: "conflict", reason: "cluster c-1 is Deleting" },
        unanswered: false,
      }),
    ).toEqual({
      kind: "failed",
      message: "cluster/c-1: refused: cluster c-1 is Deleting",
      hint: "see where it stands: `cairn cluster describe c-1`",
    });
    expect(
      clusterVerdict("Ready", "c-1", {
        view: cluster({
          state: "Failed",
          failure: { reason: "TagLimitExceeded", remediation: "use at most 50 tags" },
        }),
        command: accepted,
        unanswered: false,
      }),
    ).toEqual({
      kind: "failed",
      message: "cluster/c-1 Failed: TagLimitExceeded",
      hint: "use at most 50 tags",
    });
  });

  it("a create not projected yet is waited for", () => {
    expect(
      clusterVerdict("Ready", "c-1", { view: undefined, command: undefined, unanswered: false }),
    ).toMatchObject({
      kind: "waiting",
      state: "Pending",
    });
  });

  it("at rest, no progress is shown", () => {
    expect(progressText(cluster({ progress: { ...cluster().progress, operation: null } }))).toBe("");
  });
});

describe("cluster create's input", () => {
  it("reads pools as name=count[:capacity[:types]]", () => {
    expect(parsePool("workers=2:spot:t3.large,t3a.large")).toEqual({
      name: "workers",
      count: 2,
      capacityType: "spot",
      instanceTypes: ["t3.large", "t3a.large"],
    });
    expect(parsePool("gpu=1")).toEqual({
      name: "gpu",
      count: 1,
      capacityType: "on-demand",
      instanceTypes: ["t3.large"],
    });
    expect(() => parsePool("workers")).toThrow(InvalidInputError);
  });

  const defaults = {
    region: "eu-west-1",
    k3sVersion: "v1.31.4+k3s1",
    servers: "1",
    serverType: "t3.medium",
    pool: [],
    tag: [],
  };
  it("makes the design's example from the defaults, and names bad flags as typed", async () => {
    const data = await clusterCreateData(
      "c-9",
      { ...defaults, pool: ["w=2:spot"], tag: ["team=a"] },
      () => false,
    );
    expect(data).toMatchObject({
      clusterId: "c-9",
      name: "c-9",
      servers: { count: 1, instanceType: "t3.medium" },
      pools: [{ name: "w", count: 2, capacityType: "spot" }],
      tags: { team: "a" },
    });
    const err = await clusterCreateData(
      "c-9",
      { ...defaults, servers: "2", pool: ["w=2:cheap"] },
      () => true,
    ).catch((e: unknown) => e as InvalidInputError);
    expect(err).toBeInstanceOf(InvalidInputError);
    expect((err as InvalidInputError).issues).toEqual([
      expect.stringMatching(/^--servers: must be 1, or an odd number/),
      expect.stringMatching(/^--pool #1 capacity type: /),
    ]);
  });
  it("refuses tags EC2 would refuse before anything is sent, with EC2's rule", async () => {
    const tag = Array.from({ length: 45 }, (_, i) => `t${i}=x`);
    const err = await clusterCreateData("c-9", { ...defaults, tag }, () => true).catch(
      (e: unknown) => e as InvalidInputError,
    );
    expect(err).toBeInstanceOf(InvalidInputError);
    expect((err as InvalidInputError).issues).toEqual([
      expect.stringMatching(/^--tag: 45 tags, but an instance takes at most 44 of yours: EC2 allows 50/),
    ]);
    const aws = await clusterCreateData("c-9", { ...defaults, tag: ["aws:team=x"] }, () => true).catch(
      (e: unknown) => e as InvalidInputError,
    );
    expect((aws as InvalidInputError).issues).toEqual([
      expect.stringContaining('"aws:team" starts with "aws:"'),
    ]);
  });
});

describe("cluster list", () => {
  const cell = (header: string, c: ClusterView) =>
    CLUSTER_COLUMNS.find((k) => k.header === header)!.cell(c, new Date("2025-01-31T12:00:00Z"));
  it("NODES is nodes Ready of nodes wanted; HEALTH (wide) is the API's word", () => {
    const configuring = cluster({
      state: "Configuring",
      health: "Progressing",
      progress: {
        ...cluster().progress,
        operation: "configuring",
        done: 4,
        total: 9,
        percent: 44,
        step: "4 of 9 steps: K3s: 0 of 2 agents joined",
        nodes: { ready: 0, running: 3, wanted: 3 },
      },
    });
    expect(cell("NODES", configuring)).toBe("0/3");
    expect(cell("PROGRESS", configuring)).toBe("44%");
    expect(cell("HEALTH", configuring)).toBe("Progressing");
    expect(progressText(configuring)).toBe(
      "[#########...........] 44%  4 of 9 steps: K3s: 0 of 2 agents joined  ETA 80s",
    );
  });
});

describe("cluster describe", () => {
  it("reads like kubectl describe", () => {
    const text = describeCluster(
      cluster({
        state: "Failed",
        health: "Failed",
        failure: { reason: "no capacity", remediation: "try another region" },
        conditions: [
          {
            type: "Failed",
            status: "True",
            reason: "NoCapacity",
            message: "no capacity",
            lastTransitionTime: "2025-01-31T11:59:00Z",
          },
        ],
      }),
      [],
      [
        {
          version: 1,
          time: "2025-01-31T11:58:00Z",
          type: "cluster.requested",
          actor: "alice",
          traceId: null,
        },
      ],
      new Date("2025-01-31T12:00:00Z"),
    );
    expect(text).toMatch(
      /^Name: +c-1\nState: +Failed\nHealth: +Failed\nRegion: +eu-west-1\nK3s: +v1\.31\.4\+k3s1\n/,
    );
    expect(text).toContain("Failure:\n  no capacity\n  Remediation: try another region\n");
    expect(text).toContain(
      "Conditions:\n  TYPE     STATUS   SINCE   REASON       MESSAGE\n  Failed   True     60s     NoCapacity   no capacity\n",
    );
    expect(text).toContain(
      "Pools:\n  NAME      COUNT   CAPACITY   INSTANCE TYPES\n  workers   2       spot       t3.large\n",
    );
    expect(text).toContain("Nodes: <none>\n");
    expect(text).toContain(
      "Events (last 1 of 1):\n  AGE   EVENT               ACTOR\n  2m    cluster.requested   alice\n",
    );
  });
});
