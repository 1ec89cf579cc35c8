/**
 * List, then watch from the list's resourceVersion: the loop every node-ops watch runs
 * (the node facts of kube/watcher.ts, the session pods of workload/session-pod-watch.ts),
 * kept once so its failure rules cannot drift apart. It is client-go's reflector in small:
 *
 *  1. No resourceVersion to resume from: list; the list's resourceVersion is where the
 *     watch starts, at once: `onList` (a full resync) takes the list in while the watch
 *     opens, and the watch's changes are taken in after it. (Waiting for `onList` first —
 *     seconds for a 500-node list on a busy bus — let the watch cache's window pass the
 *     list's resourceVersion before the watch asked for it: a 410 and a relist, again
 *     and again while nodes kept joining.)
 *  2. Watch from the resourceVersion. Each change goes to `onEvent`, in order; the
 *     resourceVersion moves on only once `onEvent` has taken the change in, so resuming
 *     never skips one. A BOOKMARK only moves the resourceVersion on. A watch the loop has
 *     left (stopped, silent, a take-in failed) is stopped even if it opens later, and
 *     nothing it still brings is taken in; leaving one never touches the next.
 *  3. The watch ended:
 *     - closed (the server's timeout, a dropped stream): resume from the last resourceVersion (2);
 *     - silent (no event and no bookmark for `silenceMs`): relist (1). A watch resumed
 *       from a resourceVersion the server has not reached (its datastore was replaced)
 *       stays open and says nothing, for ever, on the real API server: only a relist
 *       finds where the server is now. A quiet but healthy cluster costs one list per
 *       `silenceMs`;
 *     - expired (410 Gone: the resourceVersion left the watch cache): relist (1);
 *     - failed (could not connect, 5xx, refused): `onUnreachable`, wait (capped
 *       exponential backoff, full jitter) and relist (1).
 *  A list that fails goes to `onUnreachable` and is retried the same way. `onList` or
 *  `onEvent` failing (what takes the change in is at fault, not the API) ends the watch,
 *  is logged and retried with backoff from a relist.
 */
import { fullJitterBackoff, type RunnerLogger } from "@cairn/events";
import type { WatchEnd, WatchHandle } from "../ports.ts";

/** What a watch delivers: changes of some kind, and bookmarks, each with the resourceVersion to resume after it. */
export type WatchedChange = { readonly kind: string; readonly resourceVersion: string };

export interface ListWatchOptions<L extends { resourceVersion: string }, E extends WatchedChange> {
  /** What is watched, for log lines ("nodes", "session pods"). */
  what: string;
  /** Fields every log line carries (the cluster). */
  logFields: Record<string, unknown>;
  list(): Promise<L>;
  /**
   * Watches from `resourceVersion`; `onEvent` in order, `onEnd` exactly once unless stopped
   * first. Never rejects: a watch that cannot start ends with `failed`.
   */
  watch(
    resourceVersion: string,
    onEvent: (e: E) => void,
    onEnd: (end: WatchEnd) => void,
  ): Promise<WatchHandle>;
  /** Before each (re)list. Never throws. */
  beforeList?(): Promise<void>;
  /** A full list: take it in. Throwing relists later. */
  onList(list: L): Promise<void>;
  /** A change (never a BOOKMARK), in order. Throwing ends the watch and relists later. */
  onEvent(e: E): Promise<void>;
  /**
   * Optional: the changes that arrived while the last were being taken in, together and
   * in order (a few hundred nodes turning Ready at once are then a few records, not one
   * after another). Without it, `onEvent` one by one. Throwing ends the watch and relists later.
   */
  onEvents?(es: readonly E[]): Promise<void>;
  /** The API could not be listed or watched. Never throws. */
  onUnreachable(err: unknown): Promise<void>;
  logger?: RunnerLogger;
  /** Backoff after a failure: a random delay up to min(maxMs, baseMs·2^(n-1)). Default 500 ms → 30 s. */
  backoff?: { baseMs?: number; maxMs?: number };
  /** A watch that brings neither an event nor a bookmark for this long is relisted (default 150 s). */
  silenceMs?: number;
  random?: () => number;
}

export interface ListWatch {
  /** Ends the loop (a list in hand is not waited for) and waits until it has. Idempotent. */
  stop(): Promise<void>;
}

/** What takes a change in failed (the taker, not the API, is at fault). */
class TakeFailure extends Error {
  override readonly name = "TakeFailure";
}

/** Where each running loop is now (a diagnostic: `listWatchSnapshots`). */
const loops = new Set<
  () => {
    what: string;
    fields: object;
    phase: string;
    sinceMs: number;
    stopped: boolean;
    rv: string | undefined;
    taken: number;
  }
>();

/**
 * Where every list-and-watch loop of this process is now, and for how long (a diagnostic:
 * bench/install's BENCH_TRACE prints it when a `stop()` takes long).
 */
export function listWatchSnapshots() {
  return [...loops].map((f) => f());
}

/** A watch that lived less than this and ended is counted as a failure for the backoff (no hot loop). */
const SHORT_WATCH_MS = 1_000;

/**
 * Starts the loop; it runs until `stop()`.
 *
 * @example
 * const lw = startListWatch({ what: "nodes", logFields: { cluster }, list, watch,
 *   onList: async (l) => record(l.nodes), onEvent: async (e) => record(e), onUnreachable: report });
 * await lw.stop();
 */
export function startListWatch<L extends { resourceVersion: string }, E extends WatchedChange>(
  o: ListWatchOptions<L, E>,
): ListWatch {
  const backoff = fullJitterBackoff(o.backoff?.baseMs ?? 500, o.backoff?.maxMs ?? 30_000, o.random);
  const silenceMs = o.silenceMs ?? 150_000;
  let stopped = false;
  let phase = "starting";
  let phaseAt = Date.now();
  /** The resourceVersion the loop last watched from, and how many changes it has taken in. */
  let watchedRv: string | undefined;
  let takenIn = 0;
  const at = (p: string) => {
    phase = p;
    phaseAt = Date.now();
  };
  const snapshot = () => ({
    what: o.what,
    fields: o.logFields ?? {},
    phase,
    sinceMs: Date.now() - phaseAt,
    stopped,
    rv: watchedRv,
    taken: takenIn,
  });
  loops.add(snapshot);
  let onStop: () => void = () => {};
  /** Settles when stop() is called: a list in hand is not waited for (it may hang on a dead API). */
  const stopping = new Promise<undefined>((resolve) => {
    onStop = () => resolve(undefined);
  });
  let current: WatchHandle | undefined;
  /** When the cluster last said anything (a list, an event, a bookmark): the silence bound counts from it. */
  let heardAt = Date.now();
  let wakeUp: (() => void) | undefined;
  /** Ends the watch in hand at once (on stop): its end callback will not come. */
  let abandon: (() => void) | undefined;
  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      if (stopped) return resolve();
      const t = setTimeout(resolve, ms);
      wakeUp = () => {
        clearTimeout(t);
        resolve();
      };
    }).finally(() => {
      wakeUp = undefined;
    });
  const log = (level: "info" | "warn", obj: object, msg: string) =>
    o.logger?.[level]({ ...o.logFields, ...obj }, msg);

  /**
   * Step 2: one watch, taking changes in in order; resolves with how it ended and the last
   * resourceVersion taken in. `first` (the list's take-in, after a list) runs before any
   * change is taken in: the watch opens at once, from the list's resourceVersion, and what
   * it brings meanwhile waits behind the list.
   */
  const watchOnce = (from: string, first?: () => Promise<void>) =>
    new Promise<{
      end: WatchEnd | { reason: "take-failed"; error: Error } | { reason: "silent" };
      rv: string;
    }>((resolve) => {
      let rv = from;
      let failed: Error | undefined;
      let quiet: ReturnType<typeof setTimeout> | undefined;
      /** This watch's own handle, once open; `leaving`: the loop is done with it (stopped on arrival). */
      let handle: WatchHandle | undefined;
      let leaving = false;
      const leave = () => {
        leaving = true;
        handle?.stop();
      };
      // Stop, silence and a failed take-in end this watch, never another one: the handle
      // arrives when the watch has opened, maybe after the loop has moved on.
      current = { stop: leave };
      let settled = false;
      const settle = (r: Parameters<typeof resolve>[0]) => {
        if (settled) return;
        settled = true;
        clearTimeout(quiet);
        resolve(r);
      };
      const fail = (err: Error) => {
        failed = err;
        leave();
        settle({ end: { reason: "take-failed", error: failed }, rv });
      };
      /** What is taken in, in order: the list first (if any), then each drain of changes. */
      let chain: Promise<void> = first
        ? first().catch((err) =>
            fail(new TakeFailure(`could not take in the ${o.what} list`, { cause: err })),
          )
        : Promise.resolve();
      /**
       * (Re)arms the silence bound: it fires when nothing at all (event or bookmark) has
       * come for `silenceMs` since the last list, across resumed watches (a blind watch
       * ends at its server timeout and is resumed just as blind).
       */
      const heard = (now?: number) => {
        if (now !== undefined) heardAt = now;
        if (settled) return;
        clearTimeout(quiet);
        quiet = setTimeout(
          () => {
            leave();
            void chain.then(() => settle({ end: { reason: "silent" }, rv }));
          },
          Math.max(0, heardAt + silenceMs - Date.now()),
        );
        quiet.unref?.();
      };
      heard();
      // The list taken in: the silence bound counts from here (a long take-in is not silence).
      if (first) chain = chain.then(() => heard(Date.now()));
      // On stop: no end callback will come; what is being taken in finishes first.
      abandon = () => {
        leave();
        void chain.then(() => settle({ end: { reason: "closed" }, rv }));
      };
      /** Changes seen and not yet taken in, in order; one drain on the chain takes them all. */
      let pending: E[] = [];
      const observe = (e: E) => {
        if (leaving) return; // a watch the loop has left: what it still brings is not taken in
        heard(Date.now());
        pending.push(e);
        if (pending.length > 1) return; // a drain is on the chain already
        chain = chain.then(async () => {
          const taken = pending;
          pending = [];
          if (failed || stopped) return;
          try {
            const changes = taken.filter((x) => x.kind !== "bookmark");
            at(`taking in ${changes.length} changes`);
            takenIn += changes.length;
            if (o.onEvents && changes.length > 0) await o.onEvents(changes);
            else for (const x of changes) await o.onEvent(x);
            rv = taken.at(-1)!.resourceVersion;
          } catch (err) {
            fail(new TakeFailure(`could not take in a ${o.what} change`, { cause: err }));
          }
        });
      };
      const ended = (end: WatchEnd) => {
        // Everything seen before the end is taken in before the next step.
        leaving = true;
        clearTimeout(quiet);
        void chain.then(() => settle({ end, rv }));
      };
      void o.watch(from, observe, ended).then((w) => {
        handle = w;
        if (leaving || stopped || failed) w.stop();
      });
    });

  const loop = (async () => {
    let rv: string | undefined;
    let failures = 0;
    while (!stopped) {
      /** After a list: its take-in, the first thing the watch that follows takes in. */
      let listTakeIn: (() => Promise<void>) | undefined;
      // 1. (re)list
      if (rv === undefined) {
        at("before list");
        await o.beforeList?.();
        at("list");
        let list: L | undefined;
        try {
          list = await Promise.race([o.list(), stopping]);
        } catch (err) {
          if (stopped) break;
          at("unreachable");
          await o.onUnreachable(err);
          at("sleep");
          await sleep(backoff(++failures));
          continue;
        }
        if (stopped || !list) break;
        rv = list.resourceVersion;
        heardAt = Date.now();
        const taken = list;
        // Taken in while the watch from its resourceVersion opens (see watchOnce): a
        // take-in of seconds (a 500-node list is ten commits) no longer lets the watch
        // cache's window pass the list before the watch asks for it (410, and a relist of
        // the same size, again and again while nodes keep joining) — the reflector of
        // client-go watches as soon as it has listed, too.
        listTakeIn = async () => {
          at("taking in the list");
          await o.onList(taken);
          failures = 0;
          at("watch");
          log("info", { resourceVersion: taken.resourceVersion }, `${o.what} listed; watching`);
        };
      }
      // A stop that came while the list was being read: no watch is started.
      if (stopped) break;
      // 2. watch
      const started = Date.now();
      at("watch");
      watchedRv = rv;
      const { end, rv: last } = await watchOnce(rv, listTakeIn);
      current = undefined;
      abandon = undefined;
      if (stopped) break;
      rv = last;
      at(`after watch (${end.reason})`);
      // 3. how it ended
      switch (end.reason) {
        case "closed":
          // Resume from where it was; only a watch that keeps ending at once backs off.
          if (Date.now() - started < SHORT_WATCH_MS) await sleep(backoff(++failures));
          else failures = 0;
          break;
        case "expired":
          log("info", { resourceVersion: rv }, `${o.what}: resourceVersion expired (410); relisting`);
          rv = undefined;
          break;
        case "silent":
          log(
            "info",
            { resourceVersion: rv, silenceMs },
            `${o.what}: watch silent (no event, no bookmark); relisting`,
          );
          rv = undefined;
          break;
        case "failed":
          await o.onUnreachable(end.error);
          rv = undefined;
          await sleep(backoff(++failures));
          break;
        case "take-failed":
          log("warn", { err: String(end.error.cause ?? end.error) }, `${end.error.message}; relisting later`);
          rv = undefined;
          await sleep(backoff(++failures));
          break;
      }
    }
  })();

  return {
    stop: async () => {
      stopped = true;
      onStop();
      current?.stop();
      abandon?.();
      wakeUp?.();
      await loop;
      loops.delete(snapshot);
    },
  };
}
