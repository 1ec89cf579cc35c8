/** The test kit's NATS cluster: its ports, and a start that meets a port taken meanwhile. */
import { readFileSync } from "node:fs";
import { createServer } from "node:net";
import { describe, expect, it } from "vitest";
import { startNatsCluster } from "./nats-cluster.ts";
import { freePorts, PICKED_PORTS_FROM } from "./nats-server.ts";

describe("nats cluster (test kit)", () => {
  it("freePorts: as many ports as asked, all different, all free", async () => {
    const ports = await freePorts(9);
    expect(new Set(ports).size).toBe(9);
    // Never from the kernel's range for bind(0): a port handed to a process that binds it
    // later must not be given meanwhile to someone's bind(0) (a service's health port).
    const [low] = readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8")
      .trim()
      .split(/\s+/)
      .map(Number);
    for (const port of ports) {
      expect(port).toBeGreaterThanOrEqual(PICKED_PORTS_FROM);
      expect(port).toBeLessThan(low!);
    }
    for (const port of ports)
      await new Promise<void>((resolve, reject) => {
        const srv = createServer();
        srv.once("error", reject);
        srv.listen(port, "127.0.0.1", () => srv.close(() => resolve()));
      });
  });

  it("a port taken between finding it and listening on it: the cluster is planned again on other ports, and starts", async () => {
    // Someone else listens on a route port of the first plan, as another test file might.
    const squatter = createServer();
    await new Promise<void>((resolve) => squatter.listen(0, "127.0.0.1", () => resolve()));
    const taken = (squatter.address() as { port: number }).port;
    const attempts: number[][] = [];
    const cluster = await startNatsCluster({
      startTimeoutMs: 20_000,
      findPorts: async (count, attempt) => {
        const ports = await freePorts(count);
        if (attempt === 1) ports[1] = taken; // nats-1's route port
        attempts.push(ports);
        return ports;
      },
    });
    try {
      expect(attempts).toHaveLength(2);
      expect(cluster.nodes.map((n) => n.clusterPort)).not.toContain(taken);
      expect(cluster.nodes.every((n) => n.running())).toBe(true);
      const health = await fetch(`http://127.0.0.1:${cluster.nodes[0]!.monitorPort}/healthz`);
      expect(health.status).toBe(200);
    } finally {
      await cluster.dispose();
      squatter.close();
    }
  }, 60_000);
});
