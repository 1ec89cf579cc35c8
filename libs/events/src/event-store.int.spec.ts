import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectNats, type Nats } from "./connection.ts";
import type { RawEventEnvelope } from "./envelope.ts";
import { ConcurrencyConflictError } from "./errors.ts";
import { commitIdFor, EventStore, sequenceFromHead } from "./event-store.ts";
import { newId } from "./ids.ts";
import { ensureStreams, expectedStreams } from "./streams.ts";
import { Headers } from "./subjects.ts";
import { counterCatalogue } from "./testing/counter.ts";
import { startJetStream, type TestJetStream } from "./testing/jetstream.ts";

let js: TestJetStream;
let nats: Nats;
let store: EventStore;

beforeAll(async () => {
  js = await startJetStream();
  ({ nats } = js);
  store = new EventStore({ js: nats.js, jsm: nats.jsm, catalogue: counterCatalogue });
});
afterAll(async () => {
  await js?.dispose();
});

const agg = (id: string) => ({ type: "workload" as const, id });
function incremented(id: string, position: number, by = 1, time = new Date()): RawEventEnvelope {
  return {
    id: newId(),
    type: "workload.incremented",
    version: 2,
    aggregate: agg(id),
    position,
    time: time.toISOString(),
    data: { by },
    meta: { causationId: `cause-${position}`, correlationId: "c", actor: "test" },
  };
}

describe("streams", () => {
  it("set-up is idempotent and reports drift instead of rewriting", async () => {
    const again = await ensureStreams(nats.jsm);
    expect(again.created).toEqual([]);
    expect(again.drift).toEqual([]);
    const wantMore = expectedStreams().map((s) =>
      s.name === "EVT" ? { ...s, duplicate_window: 1_000_000_000 } : s,
    );
    const report = await ensureStreams(nats.jsm, wantMore);
    expect(report.drift).toEqual([
      { stream: "EVT", field: "duplicate_window", expected: 1_000_000_000, actual: 600_000_000_000 },
    ]);
  });
});

describe("event store", () => {
  it("appends commits and loads them back in order, with sequences", async () => {
    const a = await store.append(
      { aggregate: agg("s1"), causationId: "k1", events: [incremented("s1", 1), incremented("s1", 2, 5)] },
      0,
    );
    const b = await store.append(
      { aggregate: agg("s1"), causationId: "k2", events: [incremented("s1", 3, 2)] },
      a.sequence,
    );
    const h = await store.load(agg("s1"));
    expect(h.events.map((e) => [e.position, (e.data as { by: number }).by, e.sequence])).toEqual([
      [1, 1, a.sequence],
      [2, 5, a.sequence],
      [3, 2, b.sequence],
    ]);
    expect(h.lastSequence).toBe(b.sequence);
    expect(h.version).toBe(3);
    expect(h.commitIds.size).toBe(2);
  });

  it("an empty aggregate loads as version 0 at sequence 0", async () => {
    const h = await store.load(agg("nobody"));
    expect(h).toMatchObject({ version: 0, lastSequence: 0, events: [] });
  });

  it("refuses a commit whose expected sequence is stale", async () => {
    const first = await store.append(
      { aggregate: agg("s2"), causationId: "k1", events: [incremented("s2", 1)] },
      0,
    );
    await store.append(
      { aggregate: agg("s2"), causationId: "k2", events: [incremented("s2", 2)] },
      first.sequence,
    );
    await expect(
      store.append(
        { aggregate: agg("s2"), causationId: "k3", events: [incremented("s2", 2)] },
        first.sequence,
      ),
    ).rejects.toBeInstanceOf(ConcurrencyConflictError);
    // A new aggregate must really be new.
    await expect(
      store.append({ aggregate: agg("s2"), causationId: "k4", events: [incremented("s2", 1)] }, 0),
    ).rejects.toBeInstanceOf(ConcurrencyConflictError);
    expect((await store.load(agg("s2"))).version).toBe(2);
  });

  it("the same cause never appends twice", async () => {
    const first = await store.append(
      { aggregate: agg("s3"), causationId: "same", events: [incremented("s3", 1)] },
      0,
    );
    const again = await store.append(
      { aggregate: agg("s3"), causationId: "same", events: [incremented("s3", 1)] },
      0,
    );
    expect(again).toEqual({ sequence: first.sequence, duplicate: true, commitId: first.commitId });
    expect((await store.load(agg("s3"))).version).toBe(1);
  });

  it("loads up to a sequence, a version or a time (point in time)", async () => {
    const t0 = new Date("2026-01-01T00:00:00Z");
    let seq = 0;
    const seqs: number[] = [];
    for (let i = 1; i <= 5; i++) {
      seq = (
        await store.append(
          {
            aggregate: agg("s4"),
            causationId: `p${i}`,
            events: [incremented("s4", i, i, new Date(t0.getTime() + i * 60_000))],
          },
          seq,
        )
      ).sequence;
      seqs.push(seq);
    }
    expect((await store.load(agg("s4"), { toSequence: seqs[2] })).version).toBe(3);
    expect((await store.load(agg("s4"), { toVersion: 2 })).version).toBe(2);
    expect((await store.load(agg("s4"), { toTime: new Date(t0.getTime() + 4 * 60_000) })).version).toBe(4);
  });

  it("reads only what came after a sequence (an incremental read of a kept fold)", async () => {
    let seq = 0;
    const seqs: number[] = [];
    for (let i = 1; i <= 4; i++) {
      seq = (
        await store.append(
          { aggregate: agg("s6"), causationId: `q${i}`, events: [incremented("s6", i, i)] },
          seq,
        )
      ).sequence;
      seqs.push(seq);
      // Another aggregate's commit in between: the read skips it.
      await store.append(
        { aggregate: agg(`s6-other-${i}`), causationId: "o", events: [incremented("x", 1)] },
        0,
      );
    }
    const rest = await store.load(agg("s6"), { afterSequence: seqs[1] });
    expect(rest.events.map((e) => e.data)).toEqual([{ by: 3 }, { by: 4 }]);
    expect(rest.lastSequence).toBe(seqs[3]);
    // Nothing after the last commit: nothing read, the last sequence kept.
    const none = await store.load(agg("s6"), { afterSequence: seqs[3] });
    expect(none).toMatchObject({ events: [], lastSequence: seqs[3] });
  });

  it("a commit's message carries its commit id, its event types and no trace when there is none", async () => {
    const r = await store.append(
      { aggregate: agg("h1"), causationId: "h", events: [incremented("h1", 1), incremented("h1", 2)] },
      0,
    );
    const m = await nats.jsm.streams.getMessage("EVT", { seq: r.sequence });
    expect(m?.subject).toBe("evt.workload.h1");
    expect(m?.header.get(Headers.msgId)).toBe(r.commitId);
    expect(r.commitId).toBe(commitIdFor("h", agg("h1")));
    expect(m?.header.get(Headers.eventTypes)).toBe("workload.incremented,workload.incremented");
    expect(m?.header.has(Headers.traceparent)).toBe(false);
    expect(m?.json<{ commitId: string; events: unknown[] }>()).toMatchObject({
      commitId: r.commitId,
      events: [{ position: 1 }, { position: 2 }],
    });
  });

  it("appends pipelined on many aggregates at once each land once, in each aggregate's order", async () => {
    const ids = Array.from({ length: 40 }, (_, i) => `pipe-${i}`);
    await Promise.all(
      ids.map(async (id) => {
        let seq = 0;
        for (let k = 1; k <= 10; k++)
          seq = (
            await store.append(
              { aggregate: agg(id), causationId: `${id}-${k}`, events: [incremented(id, k, k)] },
              seq,
            )
          ).sequence;
      }),
    );
    for (const id of ids) {
      const h = await store.load(agg(id));
      expect(h.events.map((e) => (e.data as { by: number }).by)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    }
  });

  it("a client that hides its connection appends through js.publish, with the same outcomes", async () => {
    // Only the JetStreamClient interface: no `nc` to find, so the store falls back to js.publish.
    const js = nats.js;
    const bare = new EventStore({
      js: { publish: js.publish.bind(js), getOptions: js.getOptions.bind(js) } as unknown as typeof js,
      jsm: nats.jsm,
      catalogue: counterCatalogue,
    });
    const first = await bare.append(
      { aggregate: agg("b1"), causationId: "b", events: [incremented("b1", 1)] },
      0,
    );
    expect(first.duplicate).toBe(false);
    expect(
      await bare.append({ aggregate: agg("b1"), causationId: "b", events: [incremented("b1", 1)] }, 0),
    ).toEqual({ ...first, duplicate: true });
    await expect(
      bare.append({ aggregate: agg("b1"), causationId: "c", events: [incremented("b1", 2)] }, 0),
    ).rejects.toBeInstanceOf(ConcurrencyConflictError);
    // And the pipelined store sees the same log.
    expect((await store.load(agg("b1"))).lastSequence).toBe(first.sequence);
    // The subject's last sequence, asked on the connection's publisher or through jsm: the same.
    expect(await store.lastSequence(agg("b1"))).toBe(first.sequence);
    expect(await bare.lastSequence(agg("b1"))).toBe(first.sequence);
    expect(await store.lastSequence(agg("b-none"))).toBe(0);
    expect(await bare.lastSequence(agg("b-none"))).toBe(0);
  });

  it("a look at the last sequence reads it from the answer's head: the server's layout, checked", async () => {
    // A large commit (many events): the answer carries all of it, base64 in JSON.
    const events = Array.from({ length: 300 }, (_, i) => incremented("head1", i + 1, i + 1));
    const big = await store.append({ aggregate: agg("head1"), causationId: "head", events }, 0);
    const answer = await nats.nc.request(
      "$JS.API.STREAM.MSG.GET.EVT",
      JSON.stringify({ last_by_subj: "evt.workload.head1" }),
    );
    expect(answer.data.length).toBeGreaterThan(50_000);
    // nats-server writes `subject` then `seq` first: the fast path finds it (a server that
    // changed the layout would fail here, and the store would fall back to parsing it all).
    expect(sequenceFromHead(answer.data, "evt.workload.head1")).toBe(big.sequence);
    expect(sequenceFromHead(answer.data, "evt.workload.head")).toBeUndefined();
    const notFound = await nats.nc.request(
      "$JS.API.STREAM.MSG.GET.EVT",
      JSON.stringify({ last_by_subj: "evt.workload.none" }),
    );
    expect(sequenceFromHead(notFound.data, "evt.workload.none")).toBeUndefined();
    expect(await store.lastSequence(agg("head1"))).toBe(big.sequence);
    expect(await store.lastSequence(agg("none"))).toBe(0);
  });

  it("looks at one subject's last sequence side by side share looks, each sent after its call", async () => {
    const seen: string[] = [];
    const sub = nats.nc.subscribe("$JS.API.STREAM.MSG.GET.>", {
      callback: (_e, m) => {
        seen.push(m.subject);
      },
    });
    await nats.nc.flush();
    const first = await store.append(
      { aggregate: agg("look1"), causationId: "l1", events: [incremented("look1", 1)] },
      0,
    );
    // Forty at once: one look sent, one shared by the 39 that came while it was under way.
    const answers = await Promise.all(Array.from({ length: 40 }, () => store.lastSequence(agg("look1"))));
    await nats.nc.flush();
    expect(answers.every((s) => s === first.sequence)).toBe(true);
    expect(seen.length).toBeLessThanOrEqual(2);
    // A commit made while a look is under way is seen by a call made after it (the shared next look).
    const under = store.lastSequence(agg("look1"));
    const second = await store.append(
      { aggregate: agg("look1"), causationId: "l2", events: [incremented("look1", 2)] },
      first.sequence,
    );
    const after = store.lastSequence(agg("look1"));
    expect(await under).toBeGreaterThanOrEqual(first.sequence);
    expect(await after).toBe(second.sequence);
    // Other subjects are looked at on their own.
    expect(await store.lastSequence(agg("look-none"))).toBe(0);
    sub.unsubscribe();
  });

  it("the last sequence of a stream that is not there is the JetStream API's error", async () => {
    const missing = new EventStore({
      js: nats.js,
      jsm: nats.jsm,
      catalogue: counterCatalogue,
      stream: "NOPE",
    });
    await expect(missing.lastSequence(agg("x"))).rejects.toMatchObject({ code: 10059 });
  });

  it("an append still waiting for its ack when the connection closes is refused at once", async () => {
    const own = await connectNats(js.server.url);
    const s = new EventStore({ js: own.js, jsm: own.jsm, catalogue: counterCatalogue });
    await s.append({ aggregate: agg("c1"), causationId: "c1", events: [incremented("c1", 1)] }, 0);
    const t0 = performance.now();
    const pending = s.append({ aggregate: agg("c2"), causationId: "c2", events: [incremented("c2", 1)] }, 0);
    await own.nc.close();
    await expect(pending).rejects.toBeInstanceOf(Error);
    expect(performance.now() - t0).toBeLessThan(5_000);
  });

  it("an id that is not token-safe is refused before anything is written", async () => {
    await expect(
      store.append({ aggregate: agg("bad.id"), causationId: "x", events: [incremented("bad.id", 1)] }, 0),
    ).rejects.toThrow(/token-safe/);
    // A look at such an id is a refused promise too, never a throw.
    const look = store.lastSequence(agg("bad.id"));
    await expect(look).rejects.toThrow(/token-safe/);
  });

  it("reads old event versions as today's shape", async () => {
    const old = { ...incremented("s5", 1), version: 1, data: { amount: 7 } };
    await store.append({ aggregate: agg("s5"), causationId: "old", events: [old] }, 0);
    const h = await store.load(agg("s5"));
    expect(h.events[0]?.data).toEqual({ by: 7 });
    expect(h.events[0]?.version).toBe(2);
  });
});
