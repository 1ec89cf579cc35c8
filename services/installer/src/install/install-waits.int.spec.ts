/**
 * The installer's waits never stall it, however many there are (issue 15: nothing stuck,
 * whatever arrives). A load run of 1 000 clusters at once stalled `installer-reactor` for
 * good: each node's `install.node-added` wait is parked until the node is a Ready node (up to
 * its join deadline, 10 min), so 3 000 waits filled the consumer's max_ack_pending (2 000) and
 * the step events that would have ended them were never delivered. Here in small: the reactor
 * may hold 2 commits, and three installs of four nodes park more node-added waits than that:
 * each install's first node-added wait is handled before its nodes are online (it is what
 * records them online), so it parks until the join deadline — at least one per install,
 * more when an install's nodes were added in more than one commit.
 */
import { exampleClusterCreate } from "@cairn/events";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ControlPlane, startControlPlane } from "../testing/control-plane.ts";

let plane: ControlPlane;

beforeAll(async () => {
  plane = await startControlPlane({
    seed: 15,
    installer: {
      reactor: { maxInHand: 2 },
      // Probe rounds only when asked: none here.
      health: { intervalMs: 3_600_000, probeTimeoutMs: 10_000, pollMs: 20 },
    },
  });
}, 60_000);
afterAll(async () => {
  await plane?.stop();
});

const workers = (count: number) => [
  { name: "workers", capacityType: "on-demand" as const, instanceTypes: ["t3.large"], count },
];

describe("installer waits", () => {
  it("more node waits than the reactor may hold: every install still finishes", async () => {
    const ids = ["w-1", "w-2", "w-3"];
    for (const id of ids) {
      const c = exampleClusterCreate(id);
      await plane.bus.send({ ...c, data: { ...c.data, pools: workers(3) } });
    }
    const installed = async (id: string) => {
      const { state: s } = await plane.installer.handler.read(
        { type: "install", id },
        { atLeastSequence: Number.MAX_SAFE_INTEGER },
      );
      if (s.status === "Absent" || !s.kubeconfig) return false;
      const nodes = Object.values(s.nodes);
      return nodes.length === 4 && nodes.every((n) => n.joined && !n.failed);
    };
    const end = Date.now() + 60_000;
    let done: string[] = [];
    while (Date.now() < end) {
      done = [];
      for (const id of ids) if (await installed(id)) done.push(id);
      if (done.length === ids.length) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(done).toEqual(ids);
    // The node waits really were more than the reactor may hold: still parked (each comes
    // back only at its join deadline, minutes away), on the server, not here: at least one
    // per install. (Fewer than twelve messages: nodes added together are one commit.)
    const info = await plane.js.nats.jsm.consumers.info("EVT", "installer-reactor");
    expect(info.num_ack_pending).toBeGreaterThanOrEqual(ids.length);
    expect(info.num_ack_pending).toBeGreaterThan(2);
    expect(info.config.max_ack_pending).toBe(-1);
  }, 90_000);
});
