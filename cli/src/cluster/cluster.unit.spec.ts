import { describe, expect, it } from "vitest";
import { InvalidInputError } from "../errors.ts";
import { clusterCreateData, parsePool } from "./create-data.ts";
import { describeCluster } from "./describe.ts";
import { clusterVerdict } from "./outcome.ts";
import { type ClusterView, progressText } from "./view.ts";

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
});

describe("cluster describe", () => {
  it("reads like kubectl describe", () => {
    const text = describeCluster(
      cluster({ state: "Failed", failure: { reason: "no capacity", remediation: "try another region" } }),
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
    expect(text).toMatch(/^Name: +c-1\nState: +Failed\nRegion: +eu-west-1\nK3s: +v1\.31\.4\+k3s1\n/);
    expect(text).toContain("Failure:\n  no capacity\n  Remediation: try another region\n");
    expect(text).toContain(
      "Pools:\n  NAME      COUNT   CAPACITY   INSTANCE TYPES\n  workers   2       spot       t3.large\n",
    );
    expect(text).toContain("Nodes: <none>\n");
    expect(text).toContain(
      "Events (last 1 of 1):\n  AGE   EVENT               ACTOR\n  2m    cluster.requested   alice\n",
    );
  });
});
