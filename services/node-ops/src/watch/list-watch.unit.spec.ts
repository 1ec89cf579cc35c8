import { describe, expect, it } from "vitest";
import type { WatchEnd } from "../ports.ts";
import { listWatchSnapshots, startListWatch, type WatchedChange } from "./list-watch.ts";

type Change = WatchedChange & { kind: "upsert" };

/**
 * A fake API: lists at once; a watch stays open until stopped or ended. As the real adapter
 * (kube-watch.ts), a watch stopped gives no end callback.
 */
function fakeApi() {
  const watches: { from: string; stopped: boolean; end(e: WatchEnd): void }[] = [];
  return {
    watches,
    list: async () => ({ resourceVersion: "10" }),
    watch: async (from: string, _onEvent: (e: Change) => void, onEnd: (e: WatchEnd) => void) => {
      const w = { from, stopped: false, end: onEnd };
      watches.push(w);
      return {
        stop: () => {
          w.stopped = true;
        },
      };
    },
  };
}

const within = <T>(p: Promise<T>, ms: number) =>
  Promise.race([
    p.then(() => "returned" as const),
    new Promise<"timed out">((r) => setTimeout(() => r("timed out"), ms)),
  ]);

describe("startListWatch's stop()", () => {
  it("returns at once when it comes while the list is being taken in, the watch opened with it stopped (it waited for the silence bound)", async () => {
    const api = fakeApi();
    let listTaken!: () => void;
    let listArrived!: () => void;
    const arrived = new Promise<void>((r) => (listArrived = r));
    const lw = startListWatch<{ resourceVersion: string }, Change>({
      what: "nodes",
      logFields: {},
      list: api.list,
      watch: api.watch,
      // The list's records take long (a 500-node list is ten commits on a busy bus).
      onList: () =>
        new Promise<void>((r) => {
          listTaken = r;
          listArrived();
        }),
      onEvent: async () => {},
      onUnreachable: async () => {},
      silenceMs: 60_000,
    });
    await arrived;
    const stopping = lw.stop();
    // The records end after stop() was called.
    listTaken();
    expect(await within(stopping, 2_000)).toBe("returned");
    expect(api.watches.map((w) => [w.from, w.stopped])).toEqual([["10", true]]);
  });

  it("ends a watch in hand: stop() returns, the watch is stopped, the loop is gone from the snapshots", async () => {
    const api = fakeApi();
    const lw = startListWatch<{ resourceVersion: string }, Change>({
      what: "nodes",
      logFields: { cluster: "c-stop" },
      list: api.list,
      watch: api.watch,
      onList: async () => {},
      onEvent: async () => {},
      onUnreachable: async () => {},
      silenceMs: 60_000,
    });
    for (let i = 0; i < 100 && api.watches.length === 0; i++) await new Promise((r) => setTimeout(r, 5));
    expect(api.watches.map((w) => w.from)).toEqual(["10"]);
    const mine = () =>
      listWatchSnapshots().filter((s) => (s.fields as { cluster?: string }).cluster === "c-stop");
    expect(mine().map((s) => [s.phase, s.rv])).toEqual([["watch", "10"]]);
    expect(await within(lw.stop(), 2_000)).toBe("returned");
    expect(api.watches[0]!.stopped).toBe(true);
    expect(mine()).toEqual([]);
  });
});

const tick = (ms = 5) => new Promise((r) => setTimeout(r, ms));

describe("startListWatch's list and watch", () => {
  it("opens the watch from the list's resourceVersion while the list is taken in; what it brings is taken in after the list, in order", async () => {
    const events: ((e: Change) => void)[] = [];
    const opened: string[] = [];
    const taken: string[] = [];
    let listTaken!: () => void;
    const lw = startListWatch<{ resourceVersion: string }, Change>({
      what: "nodes",
      logFields: {},
      list: async () => ({ resourceVersion: "10" }),
      watch: async (from, onEvent) => {
        opened.push(from);
        events.push(onEvent);
        return { stop: () => {} };
      },
      // A list's records that take long (ten commits on a busy bus).
      onList: () =>
        new Promise<void>((r) => {
          taken.push("list");
          listTaken = () => r();
        }),
      onEvent: async (e) => {
        taken.push(`change ${e.resourceVersion}`);
      },
      onUnreachable: async () => {},
      silenceMs: 60_000,
    });
    try {
      for (let i = 0; i < 100 && opened.length === 0; i++) await tick();
      // Open before the list's records are in: the watch cache's window cannot pass the list meanwhile.
      expect(taken).toEqual(["list"]);
      expect(opened).toEqual(["10"]);
      events[0]!({ kind: "upsert", resourceVersion: "11" });
      events[0]!({ kind: "upsert", resourceVersion: "12" });
      await tick(20);
      expect(taken).toEqual(["list"]);
      listTaken();
      for (let i = 0; i < 100 && taken.length < 3; i++) await tick();
      expect(taken).toEqual(["list", "change 11", "change 12"]);
    } finally {
      await lw.stop();
    }
  });

  it("a watch that opens after the loop has left it (silent) is stopped and not taken from; the next watch is left alone", async () => {
    const watches: { from: string; stopped: boolean; emit: (e: Change) => void }[] = [];
    const taken: string[] = [];
    let lists = 0;
    let release!: () => void;
    const late = new Promise<void>((r) => (release = r));
    const lw = startListWatch<{ resourceVersion: string }, Change>({
      what: "nodes",
      logFields: {},
      list: async () => ({ resourceVersion: String(10 * ++lists) }),
      watch: async (from, onEvent) => {
        const w = { from, stopped: false, emit: onEvent };
        watches.push(w);
        // The first watch's request hangs (a starved connection) past the silence bound.
        if (watches.length === 1) await late;
        return {
          stop: () => {
            w.stopped = true;
          },
        };
      },
      onList: async () => {
        taken.push("list");
      },
      onEvent: async (e) => {
        taken.push(`change ${e.resourceVersion}`);
      },
      onUnreachable: async () => {},
      silenceMs: 400,
    });
    try {
      for (let i = 0; i < 200 && watches.length < 2; i++) await tick();
      expect(watches.map((w) => w.from)).toEqual(["10", "20"]);
      // The first watch opens now, after the loop relisted and opened the second.
      release();
      await tick(20);
      expect(watches[0]!.stopped).toBe(true);
      watches[0]!.emit({ kind: "upsert", resourceVersion: "15" });
      watches[1]!.emit({ kind: "upsert", resourceVersion: "21" });
      for (let i = 0; i < 100 && !taken.includes("change 21"); i++) await tick();
      expect(taken).toEqual(["list", "list", "change 21"]);
      expect(watches[1]!.stopped).toBe(false);
    } finally {
      await lw.stop();
    }
  });
});
