/** JetStream publishes with pipelined acks, on a real nats-server. */
import { JetStreamApiCodes, JetStreamApiError } from "@nats-io/jetstream";
import { connect, headers } from "@nats-io/transport-node";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ackedPublisher, PublishNotAcked } from "./acked-publisher.ts";
import { startJetStream, type TestJetStream } from "./testing/jetstream.ts";
import { atTurnEnd } from "./turn-writes.ts";

let js: TestJetStream;
beforeEach(async () => {
  js = await startJetStream();
  await js.nats.jsm.streams.add({ name: "PUB", subjects: ["pub.>"], max_msgs_per_subject: 1 });
});
afterEach(async () => {
  await js.dispose();
});

describe("acked publisher", () => {
  it("resolves each publish with its stored sequence; a turn's publishes all land", async () => {
    const p = ackedPublisher(js.nats.nc);
    try {
      const seqs = await Promise.all(
        Array.from({ length: 500 }, (_, i) => p.publish(`pub.k${i % 50}`, `${i}`)),
      );
      expect([...seqs].sort((a, b) => a - b)).toEqual(Array.from({ length: 500 }, (_, i) => i + 1));
      expect((await js.nats.jsm.streams.info("PUB")).state.last_seq).toBe(500);
    } finally {
      p.stop();
    }
  });

  it("a compare-and-set on the subject's last sequence: the right one lands, a stale one is refused by JetStream", async () => {
    const p = ackedPublisher(js.nats.nc);
    try {
      const first = await p.publish("pub.cas", "a", { expectedLastSubjectSequence: 0 });
      const second = await p.publish("pub.cas", "b", { expectedLastSubjectSequence: first });
      expect(second).toBeGreaterThan(first);
      const stale = await p.publish("pub.cas", "c", { expectedLastSubjectSequence: first }).catch((e) => e);
      expect(stale).toBeInstanceOf(JetStreamApiError);
      expect((stale as JetStreamApiError).code).toBe(JetStreamApiCodes.StreamWrongLastSequence);
    } finally {
      p.stop();
    }
  });

  it("a message id is published once: a second publish with it is acked as a duplicate of the first; headers go along", async () => {
    await js.nats.jsm.streams.update("PUB", { duplicate_window: 60_000_000_000 });
    const p = ackedPublisher(js.nats.nc, { lingerMs: 0 });
    try {
      const h = headers();
      h.set("Cairn-Event-Types", "a.b");
      const first = await p.publishAcked("pub.id", "a", { msgID: "m-1", headers: h });
      expect(first.duplicate).toBe(false);
      const again = await p.publishAcked("pub.id", "a", { msgID: "m-1", expectedLastSubjectSequence: 0 });
      expect(again).toEqual({ seq: first.seq, duplicate: true });
      const m = await js.nats.jsm.streams.getMessage("PUB", { seq: first.seq });
      expect(m?.header.get("Nats-Msg-Id")).toBe("m-1");
      expect(m?.header.get("Cairn-Event-Types")).toBe("a.b");
      expect((await js.nats.jsm.streams.info("PUB")).state.last_seq).toBe(first.seq);
    } finally {
      p.stop();
    }
  });

  it("headers given as a plain record are written as the message's header block, with the Nats ones", async () => {
    await js.nats.jsm.streams.update("PUB", { duplicate_window: 60_000_000_000 });
    const p = ackedPublisher(js.nats.nc, { lingerMs: 0 });
    try {
      const o = { msgID: "r-1", headers: { "Cairn-Event-Types": "a.b,c.d", traceparent: "00-ab-cd-01" } };
      const first = await p.publishAcked("pub.rec", "x", { ...o, expectedLastSubjectSequence: 0 });
      const m = await js.nats.jsm.streams.getMessage("PUB", { seq: first.seq });
      expect(m?.header.get("Cairn-Event-Types")).toBe("a.b,c.d");
      expect(m?.header.get("traceparent")).toBe("00-ab-cd-01");
      expect(m?.header.get("Nats-Msg-Id")).toBe("r-1");
      expect(m?.string()).toBe("x");
      // The Nats headers did their work: a repeat is a duplicate, a stale expectation refused.
      expect(await p.publishAcked("pub.rec", "x", o)).toEqual({ seq: first.seq, duplicate: true });
      await expect(
        p.publishAcked("pub.rec", "y", { headers: { a: "1" }, expectedLastSubjectSequence: 0 }),
      ).rejects.toMatchObject({ code: JetStreamApiCodes.StreamWrongLastSequence });
    } finally {
      p.stop();
    }
  });

  it("a header that would break the header block is refused, and nothing is published", async () => {
    const p = ackedPublisher(js.nats.nc, { lingerMs: 0 });
    try {
      await expect(p.publish("pub.bad", "x", { headers: { a: "1\r\nNats-Msg-Id: forged" } })).rejects.toThrow(
        /line break/,
      );
      await expect(p.publish("pub.bad", "x", { headers: { "bad name": "1" } })).rejects.toThrow(
        /header name/,
      );
      expect(await p.publish("pub.bad", "ok")).toBe(1);
    } finally {
      p.stop();
    }
  });

  it("acks come back under the connection's own inbox prefix", async () => {
    const nc = await connect({ servers: js.server.url, inboxPrefix: "_CAIRN_TEST" });
    const seen: string[] = [];
    const spy = nc.subscribe("_CAIRN_TEST.>", {
      callback: (_e, m) => {
        seen.push(m.subject);
      },
    });
    const p = ackedPublisher(nc, { lingerMs: 0 });
    try {
      expect(await p.publish("pub.prefixed", "a")).toBe(1);
      expect(seen.length).toBe(1);
    } finally {
      p.stop();
      spy.unsubscribe();
      await nc.close();
    }
  });

  it("a subject no stream stores is refused at once; what is pending when it stops is refused too", async () => {
    const p = ackedPublisher(js.nats.nc, { timeoutMs: 5_000 });
    const t0 = performance.now();
    const lost = await p.publish("nowhere.x", "a").catch((e) => e);
    expect(lost).toBeInstanceOf(PublishNotAcked);
    expect((lost as PublishNotAcked).reason).toBe("no-stream");
    expect(performance.now() - t0).toBeLessThan(1_000);
    const pending = p.publish("pub.late", "a");
    p.stop();
    await expect(pending).rejects.toMatchObject({ reason: "stopped" });
  });

  it("no answer in time: refused as a timeout", async () => {
    // A responder that never answers stands in for a JetStream that does not ack.
    js.nats.nc.subscribe("silent.x", { callback: () => {} });
    const p = ackedPublisher(js.nats.nc, { timeoutMs: 200 });
    try {
      await expect(p.publish("silent.x", "a")).rejects.toMatchObject({ reason: "timeout" });
    } finally {
      p.stop();
    }
  });

  it("a request on the same inbox answers with the reply's payload; nobody listening is refused at once", async () => {
    const echo = js.nats.nc.subscribe("echo.x", {
      callback: (_e, m) => {
        m.respond(`re:${m.string()}`);
      },
    });
    const p = ackedPublisher(js.nats.nc, { timeoutMs: 5_000 });
    try {
      const answers = await Promise.all([p.request("echo.x", "a"), p.request("echo.x", "b")]);
      expect(answers.map((a) => new TextDecoder().decode(a))).toEqual(["re:a", "re:b"]);
      // A JetStream API call, as the event store makes one.
      const seq = await p.publish("pub.api", "x");
      const got = JSON.parse(
        new TextDecoder().decode(
          await p.request("$JS.API.STREAM.MSG.GET.PUB", JSON.stringify({ last_by_subj: "pub.api" })),
        ),
      );
      expect(got.message.seq).toBe(seq);
      await expect(p.request("nobody.here", "x")).rejects.toMatchObject({ reason: "no-stream" });
    } finally {
      p.stop();
      echo.unsubscribe();
    }
  });

  it("publishes and other sends deferred in one turn leave in one socket write", async () => {
    const nc = await connect({ servers: js.server.url });
    // nats.js' socket (internal: what the write count is about).
    const socket = (
      nc as unknown as { protocol: { transport: { socket: { write: (...a: unknown[]) => boolean } } } }
    ).protocol.transport.socket;
    const write = socket.write.bind(socket);
    let writes = 0;
    socket.write = (...a: unknown[]) => {
      writes++;
      return write(...a);
    };
    const p = ackedPublisher(nc, { lingerMs: 0 });
    // Its inbox subscription is written by now (a write of its own, before the count).
    await nc.flush();
    writes = 0;
    try {
      const acks = Array.from({ length: 20 }, (_, i) => p.publish(`pub.turn${i}`, "x"));
      for (let i = 0; i < 5; i++) atTurnEnd(() => nc.publish("plain.x", "y"));
      await Promise.all(acks);
      expect(writes).toBe(1);
    } finally {
      p.stop();
      await nc.close();
    }
  });
});
