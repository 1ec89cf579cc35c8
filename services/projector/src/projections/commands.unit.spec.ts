import { describe, expect, it } from "vitest";
import {
  anEnvelope,
  aTraceparent,
  cluster,
  rejected,
  requested,
  scaleRequested,
} from "../testing/fixtures.ts";
import { applyCommandEvent } from "./commands.ts";

const c1 = cluster("c1");

describe("applyCommandEvent", () => {
  it("an event with a commandId → accepted, with the command type it answers", () => {
    const tp = aTraceparent();
    const row = applyCommandEvent(
      undefined,
      anEnvelope(c1, 1, requested("c1"), { commandId: "cmd-1", traceparent: tp }),
      5,
    );
    expect(row).toMatchObject({
      commandId: "cmd-1",
      commandType: "cluster.create",
      aggregateType: "cluster",
      aggregateId: "c1",
      status: "accepted",
      reason: null,
      code: null,
      traceId: tp.split("-")[1],
      firstSequence: 5,
    });
  });

  it("a *.rejected event → rejected with code and reason", () => {
    const e = anEnvelope(c1, 2, rejected("cmd-2", "cluster.scale", "conflict", "cluster is Deleting"), {
      commandId: "cmd-2",
    });
    expect(applyCommandEvent(undefined, e, 9)).toMatchObject({
      commandId: "cmd-2",
      commandType: "cluster.scale",
      status: "rejected",
      code: "conflict",
      reason: "cluster is Deleting",
    });
  });

  it("a command id reused on another aggregate does not rewrite the first command's row (found by test/fuzz)", () => {
    const created = applyCommandEvent(
      undefined,
      anEnvelope(c1, 1, requested("c1"), { commandId: "cmd-1" }),
      5,
    );
    const elsewhere = anEnvelope(
      cluster("c2"),
      1,
      rejected("cmd-1", "cluster.scale", "not-found", "cluster c2 does not exist"),
      { commandId: "cmd-1" },
    );
    expect(applyCommandEvent(created, elsewhere, 40)).toEqual(created);
    // On its own aggregate, a later rejection of the same command still counts.
    const refusedHere = anEnvelope(c1, 2, rejected("cmd-1", "cluster.create", "invalid", "no"), {
      commandId: "cmd-1",
    });
    expect(applyCommandEvent(created, refusedHere, 41)).toMatchObject({
      status: "rejected",
      aggregateId: "c1",
    });
  });

  it("events without a commandId leave the row as it is", () => {
    expect(applyCommandEvent(undefined, anEnvelope(c1, 1, requested("c1")), 1)).toBeUndefined();
  });

  it("a rejection is final; the first sequence is kept", () => {
    const first = applyCommandEvent(
      undefined,
      anEnvelope(c1, 2, rejected("cmd-3", "cluster.scale", "invalid", "no pool x"), { commandId: "cmd-3" }),
      4,
    );
    const later = applyCommandEvent(
      first,
      anEnvelope(c1, 3, scaleRequested("x", 1, 2), { commandId: "cmd-3" }),
      8,
    );
    expect(later).toMatchObject({ status: "rejected", reason: "no pool x", firstSequence: 4 });
  });
});
