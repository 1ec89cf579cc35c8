import { type ClusterEvent, clusterSpec, exampleClusterCreate } from "@cairn/events";
import { deciderSpec } from "@cairn/events/testing";
import { describe, expect, it } from "vitest";
import { clusterDecider } from "./decider.ts";

const ref = { type: "cluster" as const, id: "demo-1" };
const spec = clusterSpec.parse(exampleClusterCreate("demo-1").data);
const requested: ClusterEvent = { type: "cluster.requested", data: { spec } };
const cluster = deciderSpec(clusterDecider, ref);

describe("cluster decider", () => {
  describe("create", () => {
    it("accepts a new cluster as requested", () => {
      cluster.given([]).when({ type: "cluster.create", data: spec }).then([requested]);
    });
    it("refuses a second create of the same id", () => {
      cluster
        .given([requested])
        .when({ type: "cluster.create", data: spec })
        .thenRejected("already-exists", "already exists");
    });
    it("refuses to re-create a deleted id", () => {
      cluster
        .given([requested, { type: "cluster.deletion-requested", data: {} }])
        .when({ type: "cluster.create", data: spec })
        .thenRejected("already-exists");
    });
  });

  describe("scale", () => {
    it("records the pool's new count", () => {
      cluster
        .given([requested])
        .when({ type: "cluster.scale", data: { clusterId: "demo-1", pool: "workers", count: 5 } })
        .then([{ type: "cluster.scale-requested", data: { pool: "workers", from: 2, to: 5 } }]);
    });
    it("changes nothing when the count is already there", () => {
      cluster
        .given([requested])
        .when({ type: "cluster.scale", data: { clusterId: "demo-1", pool: "workers", count: 2 } })
        .then([]);
    });
    it("refuses an unknown pool and names the pools there are", () => {
      cluster
        .given([requested])
        .when({ type: "cluster.scale", data: { clusterId: "demo-1", pool: "gpu", count: 1 } })
        .thenRejected("invalid", "pools: workers");
    });
    it("refuses an unknown cluster", () => {
      cluster
        .given([])
        .when({ type: "cluster.scale", data: { clusterId: "demo-1", pool: "workers", count: 1 } })
        .thenRejected("not-found");
    });
    it("refuses while Deleting", () => {
      cluster
        .given([requested, { type: "cluster.deletion-requested", data: {} }])
        .when({ type: "cluster.scale", data: { clusterId: "demo-1", pool: "workers", count: 3 } })
        .thenRejected("conflict", "Deleting");
    });
  });

  describe("rollback", () => {
    const scaled: ClusterEvent = {
      type: "cluster.scale-requested",
      data: { pool: "workers", from: 2, to: 5 },
    };
    it("takes the spec the cluster had at that version", () => {
      cluster
        .given([requested, scaled])
        .when({ type: "cluster.rollback", data: { clusterId: "demo-1", toVersion: 1 } })
        .then([{ type: "cluster.rollback-requested", data: { toVersion: 1, spec } }]);
    });
    it("refuses a version the cluster has not reached", () => {
      cluster
        .given([requested])
        .when({ type: "cluster.rollback", data: { clusterId: "demo-1", toVersion: 7 } })
        .thenRejected("invalid", "version 1");
    });
  });

  describe("delete", () => {
    it("starts deleting", () => {
      cluster
        .given([requested])
        .when({ type: "cluster.delete", data: { clusterId: "demo-1" } })
        .then([{ type: "cluster.deletion-requested", data: {} }]);
    });
    it("is idempotent: deleting twice is one delete", () => {
      cluster
        .given([requested, { type: "cluster.deletion-requested", data: {} }])
        .when({ type: "cluster.delete", data: { clusterId: "demo-1" } })
        .then([]);
    });
    it("refuses an unknown cluster", () => {
      cluster
        .given([])
        .when({ type: "cluster.delete", data: { clusterId: "demo-1" } })
        .thenRejected("not-found");
    });
  });

  describe("evolve", () => {
    it("a rejection changes nothing", () => {
      const s = cluster.given([
        requested,
        {
          type: "cluster.rejected",
          data: { commandId: "c", commandType: "cluster.scale", code: "invalid", reason: "r" },
        },
      ]);
      expect(s.state).toEqual(cluster.given([requested]).state);
    });
    it("scaling updates the spec", () => {
      const s = cluster.given([
        requested,
        { type: "cluster.scale-requested", data: { pool: "workers", from: 2, to: 4 } },
      ]).state;
      expect(s.status).toBe("Scaling");
      expect(s.status !== "Absent" && s.spec.pools[0]?.count).toBe(4);
    });
  });
});
