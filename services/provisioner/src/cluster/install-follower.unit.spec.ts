import { derivedId, type InstallEvent } from "@cairn/events";
import { anEvent } from "@cairn/events/testing";
import { describe, expect, it } from "vitest";
import { clusterCommandFor } from "./install-follower.ts";

const ref = { type: "install" as const, id: "demo-1" };
const installEvent = (e: InstallEvent) => anEvent<InstallEvent>(e, 7, ref);

describe("clusterCommandFor: what an install outcome asks of the cluster", () => {
  it("install.completed → cluster.record-installed, named after the event, on the cluster of the same id", () => {
    const e = installEvent({ type: "install.completed", data: { nodes: 3, k3sVersion: "v1.31.4+k3s1" } });
    const c = clusterCommandFor(e);
    expect(c?.target).toEqual({ type: "cluster", id: "demo-1" });
    expect(c?.command).toMatchObject({
      id: derivedId(e.id, "cluster.record-installed"),
      type: "cluster.record-installed",
      data: { clusterId: "demo-1", nodes: 3, k3sVersion: "v1.31.4+k3s1" },
      meta: { actor: "provisioner", causationId: e.id },
    });
  });
  it("install.degraded → cluster.record-health degraded, with every failing check and the hint", () => {
    const e = installEvent({
      type: "install.degraded",
      data: {
        failing: [
          { check: "node-ready", node: "i-0aaaaaaaaaaaaaaa1", evidence: "NotReady for 5m" },
          { check: "api-reachable", evidence: "timeout" },
        ],
        remediation: "look at the kubelet",
      },
    });
    expect(clusterCommandFor(e)?.command).toMatchObject({
      type: "cluster.record-health",
      data: {
        health: "degraded",
        reason: "node-ready on i-0aaaaaaaaaaaaaaa1: NotReady for 5m; api-reachable: timeout",
        remediation: "look at the kubelet",
      },
    });
  });
  it("install.node-failed → cluster.replace-node of that slot and instance", () => {
    const e = installEvent({
      type: "install.node-failed",
      data: {
        slot: 1000,
        instanceId: "i-0aaaaaaaaaaaaaaa1",
        node: "i-0aaaaaaaaaaaaaaa1",
        reason: "not Ready in time",
        remediation: "see the output",
      },
    });
    expect(clusterCommandFor(e)?.command).toMatchObject({
      type: "cluster.replace-node",
      data: {
        clusterId: "demo-1",
        slot: 1000,
        instanceId: "i-0aaaaaaaaaaaaaaa1",
        reason: "not Ready in time",
      },
    });
  });
  it("an install event the cluster does not care about asks nothing", () => {
    expect(clusterCommandFor(installEvent({ type: "install.recovered", data: {} }))?.command.type).toBe(
      "cluster.record-health",
    );
    expect(
      clusterCommandFor(
        installEvent({ type: "install.node-ready", data: { slot: 0, node: "i-0aaaaaaaaaaaaaaa1" } }),
      ),
    ).toBeUndefined();
  });
});
