/**
 * The short, seed-fixed chaos run (docs/chaos.md): 60 s of SIGKILLs, a NATS server stopped
 * for a while and a Postgres restart on the production shape with sim faults on, while
 * clusters and sessions go through their lifecycles; then every invariant of the table holds.
 * The long run is `npm run chaos -- --minutes N --seed S`.
 */
import { describe, expect, it } from "vitest";
import { formatReport, runChaos } from "./chaos.ts";

const SEED = 15;

describe("chaos (seed-fixed, short)", () => {
  it(`seed ${SEED}: every invariant holds through SIGKILLs, a NATS server down and a Postgres restart`, async () => {
    const report = await runChaos({ seconds: 60, seed: SEED, concurrentClusters: 2, sessionsPerCluster: 1 });
    const table = formatReport(report);
    console.log(`${table}\n--- actions ---\n${report.actions.join("\n")}`);
    // The driver did what it says: processes killed, a NATS server and Postgres restarted.
    expect(report.actions.filter((a) => a.includes("SIGKILL")).length).toBeGreaterThanOrEqual(5);
    expect(report.actions.some((a) => /NATS nats-\d stopped/.test(a))).toBe(true);
    expect(report.actions.some((a) => a.includes("Postgres back"))).toBe(true);
    expect(report.clusters.length).toBeGreaterThanOrEqual(2);
    expect(
      report.rows.filter((r) => !r.ok).map((r) => r.check),
      table,
    ).toEqual([]);
  }, 420_000);
});
