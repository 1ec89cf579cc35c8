import { createServer, type Server, type Socket, connect as tcpConnect } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectNats, type Nats } from "./connection.ts";
import { startConsumer } from "./consumer-runner.ts";
import { PULL_EXPIRES_MS } from "./pull-requests.ts";
import { startJetStream, type TestJetStream } from "./testing/jetstream.ts";

/**
 * A TCP proxy in front of nats-server whose server → client direction can be held: what the
 * server sends waits in the socket, as it does behind a busy connection (a projector's
 * connection carries its replay, its live batches and its change announcements at once).
 */
class HoldingProxy {
  readonly #server: Server;
  readonly #upstreams = new Set<Socket>();
  #held = false;
  port = 0;

  constructor(target: number) {
    this.#server = createServer((client) => {
      const up = tcpConnect(target, "127.0.0.1");
      this.#upstreams.add(up);
      if (this.#held) up.pause();
      client.pipe(up);
      up.pipe(client);
      const end = () => {
        client.destroy();
        up.destroy();
        this.#upstreams.delete(up);
      };
      client.on("error", end).on("close", end);
      up.on("error", end).on("close", end);
    });
  }
  async listen(): Promise<void> {
    await new Promise<void>((r) => this.#server.listen(0, "127.0.0.1", r));
    this.port = (this.#server.address() as { port: number }).port;
  }
  /** What the server sends waits (its requests still reach it). */
  hold(): void {
    this.#held = true;
    for (const u of this.#upstreams) u.pause();
  }
  release(): void {
    this.#held = false;
    for (const u of this.#upstreams) u.resume();
  }
  async close(): Promise<void> {
    for (const u of this.#upstreams) u.destroy();
    await new Promise((r) => this.#server.close(r));
  }
}

let js: TestJetStream;
let proxy: HoldingProxy;
let proxied: Nats;

beforeAll(async () => {
  js = await startJetStream();
  proxy = new HoldingProxy(js.server.port);
  await proxy.listen();
  proxied = await connectNats(`nats://127.0.0.1:${proxy.port}`, { name: "proxied" });
});
afterAll(async () => {
  await proxied?.close();
  await proxy?.close();
  await js?.dispose();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("consumer runner: its pulls", () => {
  it("a message the server sent to a pull the runner gave up for silent is handled once it arrives, not after the ack wait", async () => {
    const handledAt = new Map<string, number>();
    // A long ack wait: a message lost to a pull nobody listens to any more would come back
    // only after it, far beyond the bounds below.
    const c = await startConsumer({
      js: proxied.js,
      jsm: proxied.jsm,
      stream: "CMD",
      durable: "pulls-silent",
      filterSubject: "cmd.pullsilent.>",
      ackWaitMs: 30_000,
      handle: async (m) => {
        handledAt.set(m.string(), Date.now());
      },
    });
    try {
      // The runner's first pull is open and idle on the server.
      await sleep(500);
      proxy.hold();
      // Sent by the server to that pull while its answers wait behind the held direction.
      await js.nats.js.publish("cmd.pullsilent.a", "before");
      // Long enough for any client to give that pull up (no heartbeat, no message reaches it).
      await sleep(PULL_EXPIRES_MS + 1_500);
      const releasedAt = Date.now();
      proxy.release();
      await js.nats.js.publish("cmd.pullsilent.a", "after");
      const deadline = Date.now() + 8_000;
      while ((!handledAt.has("before") || !handledAt.has("after")) && Date.now() < deadline) await sleep(20);
      // Within moments of the release, not after the 30 s ack wait (nor the old 5 s + 1 s).
      expect(handledAt.get("before")! - releasedAt).toBeLessThan(2_000);
      expect(handledAt.get("after")! - releasedAt).toBeLessThan(2_000);
    } finally {
      proxy.release();
      await c.stop();
    }
  }, 30_000);

  it("after a pull the server expired, a new message is handled at once", async () => {
    const handledAt = new Map<string, number>();
    const c = await startConsumer({
      js: proxied.js,
      jsm: proxied.jsm,
      stream: "CMD",
      durable: "pulls-expired",
      filterSubject: "cmd.pullexpired.>",
      handle: async (m) => {
        handledAt.set(m.string(), Date.now());
      },
    });
    try {
      // Across two expiries of an idle pull, a message every ~1.3 s lands at every point of it.
      const sent = new Map<string, number>();
      for (let i = 0; i < 9; i++) {
        await sleep(1_300);
        sent.set(`m${i}`, Date.now());
        await js.nats.js.publish("cmd.pullexpired.a", `m${i}`);
      }
      const deadline = Date.now() + 8_000;
      while (handledAt.size < sent.size && Date.now() < deadline) await sleep(20);
      const worst = Math.max(
        ...[...sent].map(([k, t]) => (handledAt.get(k) ?? Number.POSITIVE_INFINITY) - t),
      );
      expect(worst).toBeLessThan(1_000);
    } finally {
      await c.stop();
    }
  }, 30_000);
});
