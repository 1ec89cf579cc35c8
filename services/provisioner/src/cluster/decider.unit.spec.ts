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

  // A spec recorded before creates were checked against EC2's tag rules (the command's
  // schema refuses it now): what would launch with it is refused up front, not failed later.
  describe("a spec whose tags EC2 would refuse", () => {
    const tags = Object.fromEntries(Array.from({ length: 300 }, (_, i) => [`team-${i}`, "x"]));
    const tagged: ClusterEvent = { type: "cluster.requested", data: { spec: { ...spec, tags } } };
    const failed: ClusterEvent = {
      type: "cluster.failed",
      data: { reason: "slot 0 could not be launched: TagLimitExceeded", code: "launch-failed" },
    };
    it("is not retried: the retry would fail the same way", () => {
      cluster
        .given([tagged, failed])
        .when({ type: "cluster.retry", data: { clusterId: "demo-1" } })
        .thenRejected("invalid", "300 tags, but an instance takes at most 44 of yours");
    });
    it("is not rolled back to", () => {
      cluster
        .given([tagged, { type: "cluster.rollback-requested", data: { toVersion: 1, spec } }])
        .when({ type: "cluster.rollback", data: { clusterId: "demo-1", toVersion: 1 } })
        .thenRejected("invalid", "cannot roll back to version 1");
    });
    it("is not scaled up (down is fine: it launches nothing)", () => {
      cluster
        .given([tagged])
        .when({ type: "cluster.scale", data: { clusterId: "demo-1", pool: "workers", count: 3 } })
        .thenRejected("invalid", "cannot scale pool workers up");
      cluster
        .given([tagged])
        .when({ type: "cluster.scale", data: { clusterId: "demo-1", pool: "workers", count: 1 } })
        .then([{ type: "cluster.scale-requested", data: { pool: "workers", from: 2, to: 1 } }]);
    });
    it("a spec with tags EC2 takes is retried as before", () => {
      cluster
        .given([requested, failed])
        .when({ type: "cluster.retry", data: { clusterId: "demo-1" } })
        .then([{ type: "cluster.retry-requested", data: {} }]);
    });
  });

  describe("delete", () => {
    const del = (force?: boolean) => ({
      type: "cluster.delete" as const,
      data: { clusterId: "demo-1", ...(force !== undefined ? { force } : {}) },
    });
    const none = { observed: { liveSessions: [] } };
    const running = { sessionId: "s-1", status: "Running" as const };
    const hibernated = { sessionId: "s-2", status: "Hibernated" as const };
    const two = { observed: { liveSessions: [running, hibernated] } };

    it("starts deleting a cluster no session lives on", () => {
      cluster
        .given([requested])
        .when(del(), none)
        .then([{ type: "cluster.deletion-requested", data: {} }]);
    });
    it("refuses while sessions live on it, saying how many, in which states, and that force ends them", () => {
      const { decision } = cluster.given([requested]).when(del(), two);
      expect(decision).toEqual({
        rejected: {
          code: "conflict",
          reason:
            "cluster demo-1 has 2 live sessions (1 Running, 1 Hibernated: s-1, s-2); terminate them first, or send the delete with force: true to terminate them (cause cluster-deleted) before the cluster is deleted",
        },
      });
    });
    it("refuses with force: false as without it", () => {
      cluster.given([requested]).when(del(false), two).thenRejected("conflict", "force: true");
    });
    it("with force: true, deletes and names the sessions it ends", () => {
      cluster
        .given([requested])
        .when(del(true), two)
        .then([
          {
            type: "cluster.deletion-requested",
            data: { force: true, sessions: [running, hibernated] },
          },
        ]);
    });
    it("with force: true and no sessions, deletes", () => {
      cluster
        .given([requested])
        .when(del(true), none)
        .then([{ type: "cluster.deletion-requested", data: { force: true } }]);
    });
    it("refuses without force when the sessions were not looked at (never deletes on a guess)", () => {
      cluster.given([requested]).when(del()).thenRejected("conflict", "cannot tell");
    });
    it("names ten sessions and counts the rest", () => {
      const many = Array.from({ length: 12 }, (_, i) => ({
        sessionId: `s-${String(i).padStart(2, "0")}`,
        status: "Pending" as const,
      }));
      cluster
        .given([requested])
        .when(del(), { observed: { liveSessions: many } })
        .thenRejected("conflict", "12 live sessions (12 Pending: s-00, s-01, s-02");
      cluster
        .given([requested])
        .when(del(), { observed: { liveSessions: many } })
        .thenRejected("conflict", "s-09 and 2 more)");
    });
    it("is idempotent: deleting twice is one delete, with or without force, whatever lives", () => {
      const deleting: ClusterEvent = { type: "cluster.deletion-requested", data: {} };
      cluster.given([requested, deleting]).when(del(), two).then([]);
      cluster.given([requested, deleting]).when(del(true), two).then([]);
    });
    it("refuses an unknown cluster", () => {
      cluster.given([]).when(del(), none).thenRejected("not-found");
    });
    it("finishes, naming the sessions that had not ended when it stopped waiting", () => {
      cluster
        .given([
          requested,
          { type: "cluster.deletion-requested", data: { force: true, sessions: [running] } },
        ])
        .when({
          type: "cluster.finish-deletion",
          data: { clusterId: "demo-1", terminated: ["i-1"], sessionsLeft: [running] },
        })
        .then([{ type: "cluster.deleted", data: { terminated: ["i-1"], sessionsLeft: [running] } }]);
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
