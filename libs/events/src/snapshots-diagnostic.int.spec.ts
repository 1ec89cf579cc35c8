/**
 * consumerSnapshots() and publisherSnapshots(): what bench/install's trace prints when the
 * log stops moving — which runner holds which message in a handler, and for how long; which
 * requests a publisher still waits on. On a real nats-server.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ackedPublisher, publisherSnapshots } from "./acked-publisher.ts";
import { consumerSnapshots, startConsumer } from "./consumer-runner.ts";
import { startJetStream, type TestJetStream } from "./testing/jetstream.ts";

let js: TestJetStream;
beforeAll(async () => {
  js = await startJetStream();
});
afterAll(async () => {
  await js?.dispose();
});

async function until(what: string, f: () => boolean, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!f()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe("diagnostic snapshots", () => {
  it("a runner's snapshot names the message its handler holds, and the runner leaves the list when stopped", async () => {
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    const c = await startConsumer({
      js: js.nats.js,
      jsm: js.nats.jsm,
      stream: "CMD",
      durable: "snapshot-test",
      filterSubject: "cmd.snapshottest.>",
      handle: async () => held,
    });
    const mine = () => consumerSnapshots().filter((s) => s.consumer === "snapshot-test");
    try {
      const seq = (await js.nats.js.publish("cmd.snapshottest.a", "{}")).seq;
      await until("the message in its handler", () => mine()[0]?.handling.length === 1);
      await new Promise((r) => setTimeout(r, 50));
      const s = mine()[0]!;
      expect(s.stream).toBe("CMD");
      expect(s.held).toBe(1);
      expect(s.handling[0]!.sequence).toBe(seq);
      expect(s.handling[0]!.subject).toBe("cmd.snapshottest.a");
      expect(s.handling[0]!.heldMs).toBeGreaterThanOrEqual(40);
    } finally {
      release();
      await c.stop();
    }
    expect(mine()).toEqual([]);
  });

  it("a publisher's snapshot counts the requests still unanswered per subject, none once answered or stopped", async () => {
    const p = ackedPublisher(js.nats.nc, { timeoutMs: 5_000 });
    const mine = () => publisherSnapshots().find((s) => s.timeoutMs === 5_000);
    try {
      // Nobody answers on this subject: the request waits (no responders comes only for a stream subject).
      const sub = js.nats.nc.subscribe("diag.silent");
      const unanswered = p.request("diag.silent", "{}").catch((e: unknown) => e);
      await until("the request on the wire", () => (mine()?.waiting["diag.silent"]?.count ?? 0) === 1);
      expect(mine()!.waiting["diag.silent"]!.oldestMs).toBeGreaterThanOrEqual(0);
      const acked = await p.publish("evt.counter.diag", JSON.stringify({ x: 1 })).catch(() => undefined);
      expect(mine()!.waiting["evt.counter.diag"]).toBeUndefined();
      p.stop();
      expect(await unanswered).toBeInstanceOf(Error);
      expect(mine()).toBeUndefined();
      sub.unsubscribe();
      void acked;
    } finally {
      p.stop();
    }
  });
});
