/**
 * A batch's fold copies an install's node record and step list once at most, not once per
 * event: each copy was O(nodes) per event, O(nodes²) per install (slot numbers from 1000 up
 * make V8 back the record with a ~1,000-entry array whatever the count) — the install
 * row's twin of fold-copies.unit.spec.ts. Judged by counting copies, not by time. The rows
 * it was given stay as they were, and the rows it makes equal the pure fold's.
 */
import { describe, expect, it } from "vitest";
import { emptyMoreRows, foldInto, type SequencedEvent } from "./apply-events.ts";
import { applyInstallEvent, type InstallRow, installCopies } from "./projections/installs.ts";
import { anEnvelope } from "./testing/fixtures.ts";

const join = "k3s-agent-join";

/** An install of `nodes` agents (slots 1000 up): planned, each added, its join requested, sent and succeeded, then Ready. */
function install(id: string, nodes: number): SequencedEvent[] {
  const slots = Array.from({ length: nodes }, (_, i) => 1000 + i);
  const es: { type: string; data: unknown }[] = [
    {
      type: "install.planned",
      data: { region: "eu-west-1", k3sVersion: "v1.31.4+k3s1", prebuiltAmi: false, servers: 1, pools: [] },
    },
    ...slots.map((slot) => ({
      type: "install.node-added",
      data: {
        slot,
        instanceId: `i-${slot}`,
        node: `i-${slot}`,
        role: "agent",
        pool: "workers",
        capacityType: "spot",
        joinDeadline: "2026-11-22T09:00:00.000Z",
      },
    })),
    ...slots.flatMap((slot) => [
      {
        type: "install.step-requested",
        data: { step: join, slot, instanceId: `i-${slot}`, node: `i-${slot}`, attempt: 1, number: 1, of: 1 },
      },
      {
        type: "install.step-sent",
        data: {
          step: join,
          slot,
          instanceId: `i-${slot}`,
          attempt: 1,
          commandId: `ssm-${slot}`,
          sentAt: "2026-11-22T08:00:03.000Z",
          deadline: "2026-11-22T08:10:00.000Z",
        },
      },
      {
        type: "install.step-succeeded",
        data: {
          step: join,
          slot,
          instanceId: `i-${slot}`,
          attempt: 1,
          commandId: `ssm-${slot}`,
          durationMs: 900,
          outputTail: "",
        },
      },
      { type: "install.node-ready", data: { slot, node: `i-${slot}` } },
    ]),
    { type: "install.node-removed", data: { slot: 1000, instanceId: "i-1000", node: "i-1000" } },
  ];
  return es.map((e, i) => ({
    event: anEnvelope({ type: "install", id }, i + 1, e, {
      time: new Date(Date.UTC(2026, 0, 1, 0, 0, i)).toISOString(),
    }),
    sequence: 100 + i,
  }));
}

const json = (v: unknown) => JSON.parse(JSON.stringify(v));
const pure = (events: readonly SequencedEvent[], initial?: InstallRow) =>
  events.reduce<InstallRow | undefined>(
    (row, { event, sequence }) => applyInstallEvent(row, event, sequence),
    initial,
  );
function deepFreeze<T>(v: T): T {
  if (v !== null && typeof v === "object") {
    for (const x of Object.values(v)) deepFreeze(x);
    Object.freeze(v);
  }
  return v;
}
const copiesOf = <T>(f: () => T) => {
  const c0 = installCopies.count;
  const result = f();
  return { result, copies: installCopies.count - c0 };
};
const foldAll = (events: readonly SequencedEvent[], initial?: InstallRow) => {
  const more = emptyMoreRows();
  if (initial) more.installs.set(initial.clusterId, initial);
  const changed = foldInto(events, new Map(), new Map(), more);
  return { row: more.installs.get("c1")!, changed: changed.more.installs };
};

describe("a batch's fold of a many-node install", () => {
  for (const nodes of [20, 600]) {
    it(`copies its node record and step list a bounded number of times, not per event (${nodes} nodes)`, () => {
      const events = install("c1", nodes);
      const whole = copiesOf(() => foldAll(events));
      // One copy of the node record and one of the step list for the whole batch.
      expect(whole.copies).toBeLessThanOrEqual(2);
      expect(json(whole.result.row)).toEqual(json(pure(events)));
      expect(whole.result.changed).toHaveLength(1);

      // A second batch from a row kept or read (frozen: a change in place would throw).
      const cut = 1 + nodes;
      const first = deepFreeze(json(pure(events.slice(0, cut))) as InstallRow);
      const kept = copiesOf(() => foldAll(events.slice(cut), first));
      expect(kept.copies).toBeLessThanOrEqual(2);
      expect(json(kept.result.row)).toEqual(json(pure(events)));
    });
  }

  it("the pure fold (no batch) leaves every row it was given as it was, event by event", () => {
    const events = install("c1", 4);
    let row: InstallRow | undefined;
    for (const { event, sequence } of events) {
      const before = row === undefined ? undefined : deepFreeze(json(row) as InstallRow);
      row = applyInstallEvent(before, event, sequence);
    }
    expect(row?.nodes["1000"]).toBeUndefined();
    expect(row?.nodes["1001"]?.state).toBe("ready");
  });

  it("a batch's fold equals the pure one at every cut, and leaves the row it started from as it was", () => {
    const events = install("c1", 5);
    const cut = 9;
    const before = pure(events.slice(0, cut))!;
    const snapshot = json(before);
    for (let end = cut + 1; end <= events.length; end++) {
      const { row } = foldAll(events.slice(cut, end), before);
      expect(json(row)).toEqual(json(pure(events.slice(0, end))));
      expect(json(before)).toEqual(snapshot);
    }
  });
});
