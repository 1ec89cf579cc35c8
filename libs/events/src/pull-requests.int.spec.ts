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

  it("a pull the server dropped at its expiry without a word is given up at once, not seconds later", async () => {
    // nats-server 2.9 drops an expired pull without a 408 when a message comes for it before
    // its expiry timer ran. Here: signs of life (idle heartbeats) until the expiry, then nothing.
    const nc = js.nats.nc;
    const timers: NodeJS.Timeout[] = [];
    const sub = nc.subscribe("test.pull.silent", {
      callback: (_err, m) => {
        const reply = m.reply!;
        const at = Date.now();
        const t = setInterval(() => {
          if (Date.now() - at < PULL_EXPIRES_MS)
            nc.publish(reply, "", { headers: headers(100, "Idle Heartbeat") });
          else clearInterval(t);
        }, 100);
        timers.push(t);
      },
    });
    let endedAt = 0;
    const pulls = new PullRequests({
      nc,
      subject: "test.pull.silent",
      ackTimeoutMs: 1_000,
      onMessage: () => {},
      onEnded: () => (endedAt = Date.now()),
      onRefused: () => {},
    });
    try {
      const start = Date.now();
      pulls.pull(1_000);
      await nc.flush();
      while (pulls.open > 0 && Date.now() - start < PULL_EXPIRES_MS + 5 * PULL_HEARTBEAT_MS) {
        await new Promise((r) => setTimeout(r, Math.max(1, Math.min(50, pulls.untilExpired(Date.now())))));
        pulls.forgetSilent(Date.now());
      }
      expect(pulls.open).toBe(0);
      // Given up within moments of its expiry (it used to take two heartbeats more: ~2 s with
      // no pull on the server; then 200 ms, a hole in steady deliveries at one expiry in two).
      expect(endedAt - start).toBeGreaterThanOrEqual(PULL_EXPIRES_MS);
      expect(endedAt - start).toBeLessThan(PULL_EXPIRES_MS + 150);
    } finally {
      for (const t of timers) clearInterval(t);
      sub.unsubscribe();
      pulls.close();
    }
  }, 20_000);
});
