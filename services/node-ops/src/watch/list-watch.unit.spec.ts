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
  it("returns at once when it comes while the list is being taken in, and starts no watch (it waited for the silence bound)", async () => {
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
    expect(api.watches).toEqual([]);
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
