import { describe, expect, it } from "vitest";
import { ACK_LINGER_MS, atTurnEnd, flushTurnWrites, withNextWrite } from "./turn-writes.ts";

describe("turn writes", () => {
  it("runs the sends of a turn at its end, in the order asked, all in one macrotask", async () => {
    const ran: string[] = [];
    atTurnEnd(() => ran.push("a"));
    await Promise.resolve();
    atTurnEnd(() => ran.push("b"));
    expect(ran).toEqual([]);
    // Microtasks queued by a send run after every send of the turn (one checkpoint: nats.js'
    // flush microtask sees them all).
    atTurnEnd(() => queueMicrotask(() => ran.push("microtask")));
    atTurnEnd(() => ran.push("c"));
    await new Promise((r) => setImmediate(r));
    expect(ran).toEqual(["a", "b", "c", "microtask"]);
  });

  it("flushTurnWrites sends now; a send that throws is dropped and the rest still go", async () => {
    const ran: string[] = [];
    atTurnEnd(() => {
      throw new Error("closed");
    });
    atTurnEnd(() => ran.push("after"));
    flushTurnWrites();
    expect(ran).toEqual(["after"]);
    await new Promise((r) => setImmediate(r));
    expect(ran).toEqual(["after"]);
  });

  it("an ack rides with the next turn's sends, ahead of them; alone it goes after the linger", async () => {
    const ran: string[] = [];
    withNextWrite(() => ran.push("ack-1"));
    await new Promise((r) => setImmediate(r));
    expect(ran).toEqual([]);
    atTurnEnd(() => ran.push("append"));
    await new Promise((r) => setImmediate(r));
    expect(ran).toEqual(["ack-1", "append"]);
    withNextWrite(() => ran.push("ack-2"));
    const t0 = performance.now();
    while (!ran.includes("ack-2")) await new Promise((r) => setTimeout(r, 1));
    expect(performance.now() - t0).toBeGreaterThanOrEqual(ACK_LINGER_MS - 1);
  });
});
