import { catalogue, commitBody, eventEnvelope, eventSubject, SchemaError } from "@cairn/events";
import { afterEach, describe, expect, it, vi } from "vitest";
import { everyEventAsAppended } from "./testing/every-event.ts";
import { aTraceparent } from "./testing/fixtures.ts";

/**
 * The live projection reads every delivered commit with `parseCommit`, which checks the
 * envelopes with plain code and falls back to zod for anything that check is not sure of.
 * It must accept exactly what zod accepts, build exactly what zod builds, and refuse with
 * zod's reasons — the reference here is the envelope schemas themselves.
 */
const commits = everyEventAsAppended((i) => ({
  ...(i % 3 !== 0 ? { commandId: `cmd-${i}` } : {}),
  ...(i % 2 === 0 ? { traceparent: aTraceparent() } : {}),
  ...(i % 5 === 0 ? { links: [aTraceparent(), aTraceparent()] } : {}),
}));

/**
 * What the zod schemas make of a commit: the envelopes by `commitBody`, the data by
 * `parseEvent`; and every event of the commit's own aggregate.
 */
function reference(raw: unknown): unknown {
  const c = commitBody.parse(raw);
  if (c.events.some((e) => e.aggregate.type !== c.aggregate.type || e.aggregate.id !== c.aggregate.id))
    throw new Error("holds an event of another aggregate");
  return { ...c, events: c.events.map((e) => catalogue.parseEvent(e)) };
}

/** Either both accept and build the same (keys and their order), or both refuse. */
function expectSameAsZod(raw: unknown, subject?: string) {
  let want: unknown;
  let refused: unknown;
  try {
    want = reference(raw);
  } catch (err) {
    refused = err;
  }
  if (refused) {
    expect(() => catalogue.parseCommit(raw, subject ? { subject } : undefined)).toThrow(SchemaError);
    return;
  }
  const got = catalogue.parseCommit(raw, subject ? { subject } : undefined);
  expect(got).toEqual(want);
  expect(JSON.stringify(got)).toBe(JSON.stringify(want));
}

const wire = (c: unknown) => JSON.parse(JSON.stringify(c));

describe("parseCommit: the plain envelope check", () => {
  afterEach(() => vi.restoreAllMocks());

  it("builds what zod builds from every event of the fixtures, without zod's envelope parse", () => {
    const types = new Set(commits.flatMap((c) => c.events.map((e) => e.type)));
    expect(types.size).toBeGreaterThanOrEqual(25);
    const envelopeParse = vi.spyOn(eventEnvelope, "safeParse");
    for (const c of commits) expectSameAsZod(wire(c));
    // The reference parses each envelope through `commitBody` (its own schema instance);
    // parseEvent's direct use is the only way to `eventEnvelope.safeParse`.
    const byParseEvent = commits.reduce((n, c) => n + c.events.length, 0);
    expect(envelopeParse).toHaveBeenCalledTimes(byParseEvent);
  });

  it("leaves unknown keys out, as zod does", () => {
    const c = wire(commits[1]);
    c.extra = 1;
    c.aggregate.extra = 2;
    c.events[0].extra = 3;
    c.events[0].meta.extra = 4;
    c.events[0].aggregate.extra = 5;
    expectSameAsZod(c);
    const e = catalogue.parseCommit(c).events[0] as unknown as Record<string, unknown>;
    expect(e.extra).toBeUndefined();
  });

  it("refuses, or takes, every bent envelope exactly as zod does", () => {
    const base = commits[2]!;
    const bent: Array<(c: ReturnType<typeof wire>) => void> = [
      (c) => (c.commitId = ""),
      (c) => (c.commitId = 7),
      (c) => (c.aggregate = { type: "planet", id: "c1" }),
      (c) => (c.aggregate.id = "a.b"),
      (c) => (c.aggregate.id = "x".repeat(129)),
      (c) => {
        c.aggregate.id = "x".repeat(128);
        for (const e of c.events) e.aggregate.id = "x".repeat(128);
      },
      (c) => (c.events = []),
      (c) => (c.events = {}),
      (c) => (c.events[0] = null),
      (c) => (c.events[0].id = "not-a-uuid"),
      (c) => (c.events[0].id = c.events[0].id.toUpperCase()),
      (c) => (c.events[0].type = ""),
      (c) => (c.events[0].type = "cluster.exploded"),
      (c) => (c.events[0].version = 1.5),
      (c) => (c.events[0].version = 0),
      (c) => (c.events[0].version = 99),
      (c) => (c.events[0].version = "1"),
      (c) => (c.events[0].position = -1),
      (c) => (c.events[0].position = 2 ** 53),
      (c) => (c.events[0].time = "2026-12-04T10:00:00"),
      (c) => (c.events[0].time = "2026-12-04T10:00:00+02:00"),
      (c) => (c.events[0].time = "2026-02-30T10:00:00Z"),
      (c) => (c.events[0].time = "2024-02-29T10:00:00.123456Z"),
      (c) => (c.events[0].time = "2026-12-04 10:00:00Z"),
      (c) => delete c.events[0].data,
      (c) => (c.events[0].data = { nonsense: true }),
      (c) => (c.events[0].meta = "m"),
      (c) => delete c.events[0].meta.actor,
      (c) => (c.events[0].meta.causationId = 1),
      (c) => (c.events[0].meta.commandId = 1),
      (c) => (c.events[0].meta.commandId = null),
      (c) => (c.events[0].meta.traceparent = "00-zz"),
      (c) => (c.events[0].meta.traceparent = aTraceparent().toUpperCase()),
      (c) => (c.events[0].meta.links = [aTraceparent(), "nope"]),
      (c) => (c.events[0].meta.links = aTraceparent()),
      (c) => (c.events[0].meta.links = []),
      (c) => (c.events[0].aggregate = { type: "cluster", id: "other" }),
    ];
    for (const bend of bent) {
      const c = wire(base);
      bend(c);
      try {
        expectSameAsZod(c);
      } catch (err) {
        throw new Error(`${bend}: ${err}`);
      }
    }
    // Keys present but undefined (an object built in code, not read off the wire).
    const c = wire(base);
    c.events[0].meta.commandId = undefined;
    c.events[0].meta.traceparent = undefined;
    expectSameAsZod(c);
  });

  it("refuses a commit on another aggregate's subject with zod's reason", () => {
    const c = wire(commits[0]);
    expectSameAsZod(c, eventSubject(c.aggregate));
    expect(() =>
      catalogue.parseCommit(c, { subject: eventSubject({ ...c.aggregate, id: "someone-else" }) }),
    ).toThrow(/not on its aggregate's subject/);
  });
});
