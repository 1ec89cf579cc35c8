/**
 * `--wait`: follow a thing until its outcome is known. The API's live stream
 * (`GET /events/stream?resource=…&id=…`) says when to look again; polling is the safety
 * net (every 2 s while the stream is up, 250 ms while it is not), so a lost stream or a
 * change between two looks costs time, never the outcome. Each look is the caller's
 * `check`, which reads the API and judges what it sees: done, failed (with the reason and
 * a hint), or still on its way (the state to show).
 */
import { setTimeout as sleep } from "node:timers/promises";
import type { ApiClient } from "./api-client.ts";
import { OutcomeError, WaitTimeoutError } from "./errors.ts";
import type { Progress } from "./progress.ts";
import { readSse } from "./sse.ts";

export type Verdict<V> =
  | { readonly kind: "done"; readonly view: V; readonly state?: string }
  | { readonly kind: "failed"; readonly message: string; readonly hint?: string | undefined }
  | {
      readonly kind: "waiting";
      readonly state: string;
      readonly detail?: string | undefined;
      /** What to tell the user if the wait times out here. */
      readonly hint?: string | undefined;
    };

export interface WaitSpec<V> {
  readonly api: ApiClient;
  /** What is followed, as people read it: `session/s-1`. */
  readonly subject: string;
  /** What it waits for: `Running`. */
  readonly goal: string;
  /** Which changes of the live stream are worth a look. */
  readonly changes: { readonly resource: string; readonly id: string };
  /** One look: reads and judges. May throw (a 404: not found). */
  readonly check: () => Promise<Verdict<V>>;
  readonly timeoutMs: number;
  readonly progress: Progress;
  /** Between looks while the stream is up (default 2 s) and while it is not (250 ms). */
  readonly pollMs?: { readonly streaming: number; readonly polling: number };
}

/**
 * The view once `check` says done. @throws OutcomeError when it says failed,
 * WaitTimeoutError when `timeoutMs` passes first; whatever `check` throws.
 */
export async function waitFor<V>(spec: WaitSpec<V>): Promise<V> {
  const poll = spec.pollMs ?? { streaming: 2_000, polling: 250 };
  const deadline = Date.now() + spec.timeoutMs;
  const feed = changeFeed(spec.api, spec.changes);
  try {
    // Look once the stream is live (or has had its chance), so no change falls between.
    await feed.live(1_000);
    let last: Verdict<V> | undefined;
    for (;;) {
      last = await spec.check();
      if (last.kind === "done") {
        spec.progress.update(last.state ?? spec.goal); // closes the state it was in, with its time
        return last.view;
      }
      if (last.kind === "failed") throw new OutcomeError(last.message, { hint: last.hint });
      spec.progress.update(last.state, last.detail);
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new WaitTimeoutError(
          `timed out after ${Math.round(spec.timeoutMs / 1000)}s waiting for ${spec.subject} to be ${spec.goal} (it is ${last.state})`,
          { hint: last.hint ?? "wait longer with --timeout, or look at it later" },
        );
      }
      await feed.next(Math.min(left, feed.streaming() ? poll.streaming : poll.polling));
    }
  } finally {
    feed.close();
    spec.progress.stop();
  }
}

/** Wake-ups from the live stream, reconnecting while open. Never throws. */
function changeFeed(api: ApiClient, filter: { resource: string; id: string }) {
  const abort = new AbortController();
  let streaming = false;
  let changed = false;
  let wake: (() => void) | undefined;
  let onLive: (() => void) | undefined;
  const signal = () => {
    changed = true;
    wake?.();
  };
  const path = `/events/stream?resource=${encodeURIComponent(filter.resource)}&id=${encodeURIComponent(filter.id)}`;
  void (async () => {
    while (!abort.signal.aborted) {
      try {
        const res = await api.stream(path, abort.signal);
        if (!res.body) throw new Error("no body");
        for await (const item of readSse(res.body)) {
          if ("comment" in item) {
            if (!streaming) {
              streaming = true;
              onLive?.();
            }
          } else if (item.event === "change") signal();
        }
      } catch {
        // Refused, cut, or aborted: poll faster meanwhile, and try again below.
      }
      streaming = false;
      onLive?.(); // whoever waits for the stream need not wait any longer
      signal(); // something may have changed while it was down
      await sleep(1_000, undefined, { signal: abort.signal }).catch(() => undefined);
    }
  })();
  return {
    streaming: () => streaming,
    /** Resolves once the stream is live, or after `ms`. */
    live(ms: number): Promise<void> {
      if (streaming) return Promise.resolve();
      return new Promise((resolve) => {
        const t = setTimeout(resolve, ms);
        onLive = () => {
          clearTimeout(t);
          onLive = undefined;
          resolve();
        };
      });
    },
    /** Resolves at the next change, or after `ms`. */
    next(ms: number): Promise<void> {
      if (changed) {
        changed = false;
        return Promise.resolve();
      }
      return new Promise((resolve) => {
        const t = setTimeout(done, ms);
        function done() {
          clearTimeout(t);
          wake = undefined;
          changed = false;
          resolve();
        }
        wake = done;
      });
    },
    close: () => abort.abort(),
  };
}
