/**
 * The live batch's write: a cluster row's spec goes out only when the batch changed it
 * (the table holds it otherwise), and the conditions go in their compact stored form.
 */
import { describe, expect, it } from "vitest";
import { emptyLoadedRows, foldBatch, writeStatement } from "./apply-events.ts";
import { foldCluster } from "./projections/clusters.ts";
import { compactConditions } from "./repository/stored-conditions.ts";
import { anEnvelope, cluster, deletionRequested, requested, scaleRequested } from "./testing/fixtures.ts";

const c1 = cluster("c1");
const at = (position: number, e: { type: string; data: unknown }) => ({
  event: anEnvelope(c1, position, e, { time: "2026-01-01T00:00:01.000Z" }),
  sequence: 10 + position,
});
/** The rows JSON of the statement's clusters upsert. */
const clusterRowsOf = (statement: string) => {
  const m = /cluster_rows as \(.*?json_to_recordset\(\$j\$(.*?)\$j\$::json\)/s.exec(statement);
  if (!m) throw new Error(`no clusters upsert in ${statement.slice(0, 200)}`);
  return JSON.parse(m[1]!) as { id: string; spec: unknown; conditions: unknown }[];
};
const write = (events: ReturnType<typeof at>[]) => {
  const loaded = emptyLoadedRows();
  loaded.clusters.set("c1", foldCluster([at(1, requested("c1"))])!);
  const folded = foldBatch(events, loaded);
  return {
    row: loaded.clusters.get("c1")!,
    rows: clusterRowsOf(writeStatement("s", events, folded, { name: "p", sequence: 99 })),
  };
};

describe("the live batch's cluster rows", () => {
  it("leave out a spec the batch did not change, and keep it on update", () => {
    const { rows, row } = write([at(2, deletionRequested())]);
    expect(rows).toHaveLength(1);
    expect(rows[0]!.spec).toBeNull();
    expect(rows[0]!.conditions).toEqual(JSON.parse(JSON.stringify(compactConditions(row.conditions))));
  });

  it("send a spec the batch changed", () => {
    const { rows, row } = write([at(2, scaleRequested("workers", 2, 5))]);
    expect(row.spec.pools[0]?.count).toBe(5);
    expect(rows[0]!.spec).toEqual(JSON.parse(JSON.stringify(row.spec)));
  });

  it("send the spec of a row the batch created", () => {
    const events = [at(1, requested("c2"))].map((e) => ({
      ...e,
      event: anEnvelope(cluster("c2"), 1, requested("c2")),
    }));
    const folded = foldBatch(events, emptyLoadedRows());
    const rows = clusterRowsOf(writeStatement("s", events, folded, { name: "p", sequence: 99 }));
    expect(rows[0]!.spec).toMatchObject({ name: "c2" });
  });
});
