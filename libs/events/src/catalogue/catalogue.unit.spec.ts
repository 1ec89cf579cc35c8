import { describe, expect, it } from "vitest";
import { counterCatalogue } from "../testing/counter.ts";
import { catalogue, exampleClusterCreate } from "./index.ts";

const envelope = (over: Record<string, unknown> = {}) => ({
  id: "0193a0c2-0000-7000-8000-000000000001",
  type: "workload.incremented",
  version: 2,
  aggregate: { type: "workload", id: "c1" },
  position: 1,
  time: "2026-01-01T00:00:00.000Z",
  data: { by: 3 },
  meta: { causationId: "x", correlationId: "x", actor: "t" },
  ...over,
});

describe("catalogue: events", () => {
  it("reads the current version as it is", () => {
    expect(counterCatalogue.parseEvent(envelope()).data).toEqual({ by: 3 });
  });
  it("upcasts an older version to today's shape", () => {
    const e = counterCatalogue.parseEvent(envelope({ version: 1, data: { amount: 4 } }));
    expect(e.version).toBe(2);
    expect(e.data).toEqual({ by: 4 });
  });
  it("refuses an unknown type with a reason", () => {
    expect(() => counterCatalogue.parseEvent(envelope({ type: "workload.exploded" }))).toThrow(
      /unknown event type "workload.exploded"/,
    );
  });
  it("refuses a version newer than the code", () => {
    expect(() => counterCatalogue.parseEvent(envelope({ version: 3 }))).toThrow(/newer than this code knows/);
  });
  it("refuses bad data and names the field", () => {
    expect(() => counterCatalogue.parseEvent(envelope({ data: { by: -1 } }))).toThrow(/by: /);
  });
  it("refuses a commit that mixes aggregates", () => {
    const commit = { commitId: "c", aggregate: { type: "workload", id: "other" }, events: [envelope()] };
    expect(() => counterCatalogue.parseCommit(commit)).toThrow(/another aggregate/);
  });
});

describe("catalogue: parseCommitTrusted (replay of commits already accepted)", () => {
  const commit = (...events: Record<string, unknown>[]) => ({
    commitId: "c",
    aggregate: { type: "workload", id: "c1" },
    events,
  });
  it("reads a commit as parseCommit does, today's version and upcast ones", () => {
    const c = commit(envelope(), envelope({ version: 1, data: { amount: 4 }, position: 2 }));
    expect(counterCatalogue.parseCommitTrusted(c)).toEqual(counterCatalogue.parseCommit(c));
    expect(counterCatalogue.parseCommitTrusted(c).events[1]).toMatchObject({ version: 2, data: { by: 4 } });
  });
  it("checks upcast data against today's schema", () => {
    expect(() =>
      counterCatalogue.parseCommitTrusted(commit(envelope({ version: 1, data: { amount: -1 } }))),
    ).toThrow(/by: /);
  });
  it("refuses an unknown type and a newer version with parseCommit's reasons", () => {
    expect(() =>
      counterCatalogue.parseCommitTrusted(commit(envelope({ type: "workload.exploded" }))),
    ).toThrow(/unknown event type "workload.exploded"/);
    expect(() => counterCatalogue.parseCommitTrusted(commit(envelope({ version: 3 })))).toThrow(
      /newer than this code knows/,
    );
  });
  it("refuses a bad envelope, an empty commit and a commit that mixes aggregates", () => {
    expect(() => counterCatalogue.parseCommitTrusted(commit(envelope({ position: "1" })))).toThrow(
      /position/,
    );
    expect(() => counterCatalogue.parseCommitTrusted(commit())).toThrow(/events/);
    expect(() =>
      counterCatalogue.parseCommitTrusted(commit(envelope({ aggregate: { type: "workload", id: "c2" } }))),
    ).toThrow(/another aggregate/);
  });
  it("skips only the current version's data schema (the writer checked it)", () => {
    expect(
      counterCatalogue.parseCommitTrusted(commit(envelope({ data: { by: -1 } }))).events[0]?.data,
    ).toEqual({
      by: -1,
    });
  });
});

describe("catalogue: commands", () => {
  const create = { id: "0193a0c2-0000-7000-8000-000000000002", ...exampleClusterCreate("demo-1") };
  it("accepts the public contract's example and finds its target", () => {
    const r = catalogue.parseCommand(create);
    expect(r.ok && r.value.target).toEqual({ type: "cluster", id: "demo-1" });
  });
  it("defaults the actor", () => {
    const { meta: _meta, ...noMeta } = create;
    const r = catalogue.parseCommand(noMeta);
    expect(r.ok && r.value.command.meta.actor).toBe("anonymous");
  });
  it.each([
    [{ region: "europe-1" }, "region: must be an AWS region code"],
    [{ servers: { count: 2, instanceType: "t3.medium" } }, "servers.count: must be 1, or an odd number"],
    [{ name: "my cluster" }, "name: must be token-safe"],
    [{ k3sVersion: "1.31" }, "k3sVersion: must be a K3s release"],
  ])("refuses %j with a clear reason and still knows the target", (patch, reason) => {
    const r = catalogue.parseCommand({ ...create, data: { ...create.data, ...patch } });
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.error.message).toContain(reason);
    expect(r.target).toEqual({ type: "cluster", id: "demo-1" });
    expect(r.commandId).toBe(create.id);
  });
  it("refuses a pool named twice", () => {
    const pool = create.data.pools[0];
    const r = catalogue.parseCommand({ ...create, data: { ...create.data, pools: [pool, pool] } });
    expect(!r.ok && r.error.message).toContain("named twice");
  });
  it("has no target when the id itself is bad", () => {
    const r = catalogue.parseCommand({ ...create, data: { ...create.data, clusterId: "a.b" } });
    expect(!r.ok && r.target).toBeUndefined();
  });
  it("refuses an unknown command type", () => {
    const r = catalogue.parseCommand({ ...create, type: "cluster.explode" });
    expect(!r.ok && r.error.message).toContain('unknown command type "cluster.explode"');
  });
  it("refuses an envelope without a uuid id", () => {
    const r = catalogue.parseCommand({ ...create, id: "nope" });
    expect(!r.ok && r.error.message).toContain("id:");
  });
});
