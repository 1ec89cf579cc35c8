/**
 * A quiet watch stays open: client-node's `Watch` aborts a watch that brought nothing for
 * 30 s (its `requestTimeoutMs`), and a quiet cluster's node watch brings nothing for
 * minutes (no change, and no bookmark while the server's resourceVersion stands still), so
 * each was reopened twice a minute. The real adapter against the sim's kube-apiserver;
 * the sim's request log counts the watches opened.
 */

import { type Sim, startSim } from "@cairn/sim";
import { KubeConfig } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { WatchEnd } from "../ports.ts";
import { openWatch, WATCH_INACTIVITY_MS, WATCH_TIMEOUT_SECONDS } from "./kube-watch.ts";

const CLUSTER = "quiet-1";
let sim: Sim;

beforeAll(async () => {
  sim = await startSim({ seed: 31 });
  sim.world.kube.ensureCluster(CLUSTER);
  sim.world.kube.registerNode(CLUSTER, {
    name: "i-0aaa0000000000031",
    role: "server",
    instanceId: "i-0aaa0000000000031",
    availabilityZone: "eu-west-1a",
    labels: {},
    taints: [],
  });
}, 30_000);
afterAll(async () => {
  await sim?.stop();
});

describe("a watch on a quiet cluster", () => {
  it("is not aborted by the client's inactivity limit before the server's own timeout", async () => {
    expect(WATCH_INACTIVITY_MS).toBeGreaterThan(WATCH_TIMEOUT_SECONDS * 1000);
    const kc = new KubeConfig();
    kc.loadFromString(sim.world.kube.kubeconfig(CLUSTER));
    sim.requests.clear();
    const ends: WatchEnd[] = [];
    const events: string[] = [];
    const handle = await openWatch({
      clusterId: CLUSTER,
      kubeConfig: async () => kc,
      path: "/api/v1/nodes",
      resourceVersion: "0",
      onObject: (phase) => events.push(phase),
      onEnd: (e) => ends.push(e),
      classify: (err) => (err instanceof Error ? err : new Error(String(err))),
    });
    try {
      // Past client-node's 30 s: nothing changes in the cluster meanwhile.
      await new Promise((r) => setTimeout(r, 36_000));
      expect(ends).toEqual([]);
      expect(sim.requests.list({ service: "kube" }).filter((r) => r.action === "watch nodes")).toHaveLength(
        1,
      );
    } finally {
      handle.stop();
    }
  }, 60_000);

  it("releases its connection when it ends: many watches ended by the server's timeout and by stop() leave no socket open", async () => {
    const kc = new KubeConfig();
    kc.loadFromString(sim.world.kube.kubeconfig(CLUSTER));
    const sockets = () => process.getActiveResourcesInfo().filter((r) => r === "TCPSocketWrap").length;
    const before = sockets();
    let ended = 0;
    for (const how of ["server", "stop", "server", "stop"] as const) {
      const handles = await Promise.all(
        Array.from({ length: 20 }, () =>
          openWatch({
            clusterId: CLUSTER,
            kubeConfig: async () => kc,
            path: "/api/v1/nodes",
            resourceVersion: "0",
            onObject: () => {},
            onEnd: () => void ended++,
            classify: (err) => (err instanceof Error ? err : new Error(String(err))),
          }),
        ),
      );
      // Open: each watch holds its own connection (both ends in this process).
      expect(sockets()).toBeGreaterThanOrEqual(before + 20);
      if (how === "server") sim.clock.advance((WATCH_TIMEOUT_SECONDS + 1) * 1000);
      else for (const h of handles) h.stop();
      const deadline = Date.now() + 5_000;
      while (sockets() > before && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      expect(sockets()).toBeLessThanOrEqual(before);
    }
    // The server's ends were told (twice 20); a stopped watch tells nothing.
    expect(ended).toBe(40);
  }, 30_000);
});
