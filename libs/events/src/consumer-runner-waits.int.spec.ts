/**
 * Issue 15's promise under waits: however many messages wait (`RetryLaterError`), a consumer
 * keeps delivering the messages behind them — including the ones that end those waits. A load
 * run (1 000 clusters at once) stalled the installer for good when its parked waits filled the
 * consumer's max_ack_pending: JetStream delivered nothing new, and the events that would have
 * ended the waits were among the undelivered. Here in small: room for 5 messages, 12 waits.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Nats } from "./connection.ts";
import { consumerConfig, type RunningConsumer, startConsumer } from "./consumer-runner.ts";
import { RetryLaterError } from "./errors.ts";
import { startJetStream, type TestJetStream } from "./testing/jetstream.ts";

let js: TestJetStream;
let nats: Nats;

beforeAll(async () => {
  js = await startJetStream();
  ({ nats } = js);
});
afterAll(async () => {
  await js?.dispose();
});

async function until(what: string, f: () => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!f()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/**
 * Waits `w.<i>` that end only once `r.<i>`, published after all of them, has been handled on
 * the same consumer: the installer's node-added waits ending on its step events, in small.
 */
function waitsAndReleases(released: Set<number>, done: Set<number>) {
  return async (msg: { subject: string }) => {
    const [, , kind, n] = msg.subject.split(".");
    const i = Number(n);
    if (kind === "r") {
      released.add(i);
      return;
    }
    if (!released.has(i)) throw new RetryLaterError(100, `w.${i} waits for r.${i}`);
    done.add(i);
  };
}

describe("consumer runner: waits never starve new deliveries", () => {
  const WAITS = 12;
  const ROOM = 5;

  it("more waits than the runner may hold, ended by messages queued behind them: all end", async () => {
    const released = new Set<number>();
    const done = new Set<number>();
    const c = await startConsumer({
      js: nats.js,
      jsm: nats.jsm,
      stream: "CMD",
      durable: "waits-stall",
      filterSubject: "cmd.waitstall.>",
      maxInHand: ROOM,
      concurrency: 4,
      handle: waitsAndReleases(released, done),
    });
    for (let i = 0; i < WAITS; i++) await nats.js.publish(`cmd.waitstall.w.${i}`, "{}");
    for (let i = 0; i < WAITS; i++) await nats.js.publish(`cmd.waitstall.r.${i}`, "{}");
    try {
      await until(`all ${WAITS} waits to end (${done.size} ended)`, () => done.size === WAITS, 15_000);
    } finally {
      await c.stop();
    }
    expect(released.size).toBe(WAITS);
    expect(c.stats.deadLettered).toBe(0);
    // Every wait really was parked at least once before its release came.
    expect(c.stats.waiting).toBeGreaterThanOrEqual(WAITS);
  });

  it("two replicas, one SIGKILLed mid-run (its connection cut, nothing settled): the other ends every wait", async () => {
    const released = new Set<number>();
    const done = new Set<number>();
    const handle = waitsAndReleases(released, done);
    const opts = {
      js: nats.js,
      jsm: nats.jsm,
      stream: "CMD",
      durable: "waits-stall-2",
      filterSubject: "cmd.waitstall2.>",
      maxInHand: ROOM,
      concurrency: 4,
      ackWaitMs: 1_000,
    };
    // The doomed replica has its own connection; it waits everything, releases nothing.
    const { connectNats } = await import("./connection.ts");
    const doomedNats = await connectNats(js.server.url);
    const doomed: RunningConsumer = await startConsumer({
      ...opts,
      js: doomedNats.js,
      jsm: doomedNats.jsm,
      handle: async (msg) => {
        if (msg.subject.includes(".r.")) await new Promise(() => {}); // hangs: dies holding it
        throw new RetryLaterError(100, "waits");
      },
    });
    const survivor = await startConsumer({ ...opts, handle });
    for (let i = 0; i < WAITS; i++) await nats.js.publish(`cmd.waitstall2.w.${i}`, "{}");
    await new Promise((r) => setTimeout(r, 300));
    // SIGKILL at this level: the connection goes without a word; what it held is the server's to redeliver.
    await doomedNats.nc.close();
    for (let i = 0; i < WAITS; i++) await nats.js.publish(`cmd.waitstall2.r.${i}`, "{}");
    try {
      await until(`all ${WAITS} waits to end (${done.size} ended)`, () => done.size === WAITS, 20_000);
    } finally {
      await survivor.stop();
      void doomed.stop().catch(() => {});
    }
    expect(released.size).toBe(WAITS);
    expect(survivor.stats.deadLettered).toBe(0);
  });

  it("the runner bounds what it holds itself: the server's limit is gone, never more than maxInHand in hand", async () => {
    let open: () => void = () => {};
    const gate = new Promise<void>((r) => (open = r));
    let handled = 0;
    const c = await startConsumer({
      js: nats.js,
      jsm: nats.jsm,
      stream: "CMD",
      durable: "waits-bound",
      filterSubject: "cmd.waitbound.>",
      maxInHand: ROOM,
      concurrency: 2,
      handle: async () => {
        await gate;
        handled++;
      },
    });
    for (let i = 0; i < 30; i++) await nats.js.publish(`cmd.waitbound.k${i % 3}`, "{}");
    await new Promise((r) => setTimeout(r, 700));
    const info = await nats.jsm.consumers.info("CMD", "waits-bound");
    expect(info.config.max_ack_pending).toBe(-1);
    expect(info.num_ack_pending).toBeLessThanOrEqual(ROOM);
    expect(info.num_ack_pending + info.num_pending).toBe(30);
    open();
    try {
      await until("all 30 handled", () => handled === 30, 15_000);
    } finally {
      await c.stop();
    }
  });

  it("a durable made by an older release, with a limit, is brought up to date at start", async () => {
    await nats.jsm.consumers.add("CMD", {
      ...consumerConfig({ durable: "waits-old", filterSubject: "cmd.waitold.>" }),
      max_ack_pending: 2_000,
    });
    const c = await startConsumer({
      js: nats.js,
      jsm: nats.jsm,
      stream: "CMD",
      durable: "waits-old",
      filterSubject: "cmd.waitold.>",
      handle: async () => {},
    });
    await c.stop();
    const info = await nats.jsm.consumers.info("CMD", "waits-old");
    expect(info.config.max_ack_pending).toBe(-1);
  });
});
