import { Buckets } from "@cairn/events";
import { type DisposableNats, startNatsServer } from "@cairn/testkit";
import { Kvm } from "@nats-io/kv";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import type { Logger } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  acquireLeadership,
  type DeposedReason,
  type LeaderLease,
  LeaseOptionsError,
  leaseKey,
} from "./leader-lease.ts";
import { createLogger } from "./logger.ts";

const TTL = 600;
const RENEW = 150;

let server: DisposableNats;
let nc1: NatsConnection;
let nc2: NatsConnection;
const leases: LeaderLease[] = [];

beforeAll(async () => {
  server = await startNatsServer();
  nc1 = await connect({ servers: server.url });
  nc2 = await connect({ servers: server.url });
});
afterAll(async () => {
  await Promise.all(leases.map((l) => l.stop()));
  await nc1?.close();
  await nc2?.close();
  await server?.dispose();
});

let seq = 0;
const uniqueName = () => `test-${++seq}`;

/** A contender that records its callbacks. */
async function contender(
  nc: NatsConnection,
  name: string,
  holder: string,
  extra: { now?: () => number; logger?: Logger } = {},
) {
  const events: string[] = [];
  const lease = await acquireLeadership({
    nc,
    name,
    holder,
    ttlMs: TTL,
    renewEveryMs: RENEW,
    onElected: () => void events.push("elected"),
    onDeposed: (reason: DeposedReason) => void events.push(`deposed:${reason}`),
    ...extra,
  });
  leases.push(lease);
  return { lease, events };
}

async function waitFor(cond: () => boolean, timeoutMs: number): Promise<number> {
  const started = Date.now();
  while (!cond()) {
    if (Date.now() - started > timeoutMs) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
  return Date.now() - started;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("acquireLeadership", () => {
  it("elects exactly one of two contenders, and keeps it through renewals", async () => {
    const name = uniqueName();
    const [a, b] = await Promise.all([contender(nc1, name, "a"), contender(nc2, name, "b")]);
    const leaders = () => [a, b].filter((c) => c.lease.isLeader()).map((c) => c.lease.holder);
    expect(leaders()).toHaveLength(1);
    const first = leaders()[0];

    // Several TTLs: the leader renews, the follower never gets in.
    for (let i = 0; i < 8; i++) {
      await sleep(TTL / 4);
      expect(leaders()).toEqual([first]);
    }
    const winner = first === "a" ? a : b;
    const loser = first === "a" ? b : a;
    expect(winner.events).toEqual(["elected"]);
    expect(loser.events).toEqual([]);

    const kv = await new Kvm(nc1).open(Buckets.leases);
    const entry = await kv.get(leaseKey(name));
    expect(entry?.json<{ holder: string; expiresAt: number }>().holder).toBe(first);
    expect(entry?.json<{ holder: string; expiresAt: number }>().expiresAt).toBeGreaterThan(Date.now());
  });

  it("hands over at once when the leader releases", async () => {
    const name = uniqueName();
    const a = await contender(nc1, name, "a");
    const b = await contender(nc2, name, "b");
    expect(a.lease.isLeader()).toBe(true);
    expect(b.lease.isLeader()).toBe(false);

    expect(await a.lease.release()).toBe(true);
    expect(a.lease.isLeader()).toBe(false);
    expect(a.events).toEqual(["elected", "deposed:released"]);
    // Much sooner than the TTL: the follower's watch sees the delete.
    const took = await waitFor(() => b.lease.isLeader(), TTL);
    expect(took).toBeLessThan(TTL);
    expect(b.events).toEqual(["elected"]);
    expect(await a.lease.release()).toBe(true); // idempotent: same answer
  });

  it("takes over after the TTL when the leader stops renewing", async () => {
    const name = uniqueName();
    const a = await contender(nc1, name, "a");
    const b = await contender(nc2, name, "b");
    expect(a.lease.isLeader()).toBe(true);

    await a.lease.stop();
    const stoppedAt = Date.now();
    expect(a.lease.isLeader()).toBe(false);
    expect(a.events).toEqual(["elected", "deposed:stopped"]);

    await sleep(TTL / 4);
    expect(b.lease.isLeader()).toBe(false); // the stopped leader's lease is still valid

    await waitFor(() => b.lease.isLeader(), TTL * 3);
    // The lease had between TTL - RENEW and TTL left when a stopped.
    expect(Date.now() - stoppedAt).toBeGreaterThanOrEqual(TTL - RENEW - 20);
    expect(b.events).toEqual(["elected"]);
    expect(await a.lease.release()).toBe(false); // b holds it now: nothing of a's to delete
    expect(b.lease.isLeader()).toBe(true);
  });

  it("deposes a leader whose lease was taken over (CAS lost), by the injected clock", async () => {
    const name = uniqueName();
    const a = await contender(nc1, name, "a");
    expect(a.lease.isLeader()).toBe(true);
    // b's clock runs far ahead: to b, a's lease has long expired, so b takes it by CAS.
    const b = await contender(nc2, name, "b", { now: () => Date.now() + 60_000 });
    expect(b.lease.isLeader()).toBe(true);
    // a's next renewal names a revision that is no longer the last one.
    await waitFor(() => a.events.includes("deposed:lost"), RENEW * 4);
    expect(a.lease.isLeader()).toBe(false);
    // a keeps contending but b's lease (by b's clock) ends far in a's future.
    await sleep(RENEW * 2);
    expect(a.lease.isLeader()).toBe(false);
    expect(b.lease.isLeader()).toBe(true);
  });

  it("resigns when its onElected fails, so another replica leads and does the work", async () => {
    const name = uniqueName();
    const events: string[] = [];
    // The first leader's start-up fails (as a projector's did when NATS timed out): it must
    // not keep the lease, renewing it, with nothing started.
    const failing = await acquireLeadership({
      nc: nc1,
      name,
      holder: "a",
      ttlMs: TTL,
      renewEveryMs: RENEW,
      onElected: async () => {
        events.push("a:elected");
        throw new Error("start-up timed out");
      },
      onDeposed: (reason) => void events.push(`a:deposed:${reason}`),
    });
    leases.push(failing);
    expect(failing.isLeader()).toBe(true);
    const other = await contender(nc2, name, "b");
    // Well before the TTL would have expired the lease: the key was deleted, b took it.
    await waitFor(() => other.lease.isLeader(), TTL - 100);
    expect(other.events).toEqual(["elected"]);
    expect(failing.isLeader()).toBe(false);
    expect(events).toEqual(["a:elected", "a:deposed:resigned"]);
    // And a stays a contender: once b lets go, a leads again and tries its start-up again
    // (which fails again here, so it resigns again).
    await other.lease.release();
    await waitFor(() => events.filter((e) => e === "a:elected").length >= 2, 3_000);
    expect(events.slice(2, 3)).toEqual(["a:elected"]);
  });

  it("rejects unusable options", async () => {
    await expect(acquireLeadership({ nc: nc1, name: "bad name", holder: "a" })).rejects.toThrow(
      LeaseOptionsError,
    );
    await expect(
      acquireLeadership({ nc: nc1, name: "ok", holder: "a", ttlMs: 100, renewEveryMs: 100 }),
    ).rejects.toThrow(/renewEveryMs/);
  });
});

describe("acquireLeadership when NATS goes away", () => {
  it("deposes the leader once its lease expires without renewal", async () => {
    const own = await startNatsServer();
    const nc = await connect({ servers: own.url, reconnectTimeWait: 50, maxReconnectAttempts: -1 });
    try {
      const lines: string[] = [];
      const logger = createLogger({
        service: "lease-test",
        destination: { write: (l: string) => void lines.push(l) },
      });
      const name = uniqueName();
      const a = await contender(nc, name, "a", { logger });
      expect(a.lease.isLeader()).toBe(true);
      await own.stop();
      const elapsed = await waitFor(() => a.events.includes("deposed:expired"), TTL * 3);
      expect(elapsed).toBeLessThanOrEqual(TTL + 50);
      expect(a.lease.isLeader()).toBe(false);
      await own.start();
      // Back: the lease (still ours in the store, possibly expired) is taken again.
      await waitFor(() => a.lease.isLeader(), 5_000);
      expect(a.events).toEqual(["elected", "deposed:expired", "elected"]);
      await a.lease.release();
      const logged = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(logged).toContainEqual(
        expect.objectContaining({
          msg: "lease: deposed",
          reason: "expired",
          lease: name,
          holder: "a",
          level: "warn",
        }),
      );
    } finally {
      await nc.close();
      await own.dispose();
    }
  });
});
