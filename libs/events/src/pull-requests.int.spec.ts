/**
 * The runner's pull bookkeeping against what a server may do, on a real nats-server: here the
 * pull subject is answered by this test, as a JetStream server would answer it, so that each
 * unusual answer can be given on purpose.
 */
import { headers } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PULL_EXPIRES_MS, PULL_HEARTBEAT_MS, PullRequests } from "./pull-requests.ts";
import { startJetStream, type TestJetStream } from "./testing/jetstream.ts";

let js: TestJetStream;
beforeAll(async () => {
  js = await startJetStream();
});
afterAll(async () => {
  await js?.dispose();
});

describe("pull requests", () => {
  it("a pull that only ever hears heartbeats (its end lost) is forgotten once past its expiry", async () => {
    const nc = js.nats.nc;
    // A server that holds the pull and sends its idle heartbeat, but never its 408 or a message.
    const heartbeats: NodeJS.Timeout[] = [];
    const sub = nc.subscribe("test.pull.next", {
      callback: (_err, m) => {
        const h = headers(100, "Idle Heartbeat");
        heartbeats.push(setInterval(() => m.reply && nc.publish(m.reply, "", { headers: h }), 200));
      },
    });
    let ended = 0;
    const pulls = new PullRequests({
      nc,
      subject: "test.pull.next",
      ackTimeoutMs: 1_000,
      onMessage: () => {},
      onEnded: () => ended++,
      onRefused: () => {},
    });
    try {
      const start = Date.now();
      pulls.pull(10);
      await nc.flush();
      // Heard from all along: not silent, yet over on any real server after its expiry.
      while (pulls.open > 0 && Date.now() - start < PULL_EXPIRES_MS + 5 * PULL_HEARTBEAT_MS) {
        await new Promise((r) => setTimeout(r, 100));
        pulls.forgetSilent(Date.now());
      }
      expect(pulls.open).toBe(0);
      expect(ended).toBe(1);
      expect(Date.now() - start).toBeGreaterThanOrEqual(PULL_EXPIRES_MS);
    } finally {
      for (const t of heartbeats) clearInterval(t);
      sub.unsubscribe();
      pulls.close();
    }
  }, 20_000);
});
