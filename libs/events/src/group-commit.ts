/**
 * Group commit, per key (a cluster): what many reactions want recorded on one aggregate
 * goes out as one command instead of one each. The first item is flushed at once; items
 * that arrive while a flush is in flight wait for it and go out together in the next.
 *
 * Why: an aggregate's decisions are appended one after another (one expected sequence),
 * so 500 slots recording their launches one by one cost 500 appends in a row — the
 * provisioner's and the installer's time grew with N although their cloud calls ran side
 * by side (bench/provisioner, bench/install). Batched, the appends are as many as the
 * calls take round trips. The flush decides what one command records for all its items;
 * that command must be idempotent by the aggregate's state (a redelivered item lands in
 * another batch, under another command id).
 *
 * No durability is added or lost: an item's caller waits for the flush that carries it,
 * and a failed flush fails every caller in it (their reactions are retried; every
 * recording is idempotent by the aggregate's state).
 */
export class GroupCommit<T, R> {
  readonly #flush: (key: string, items: T[]) => Promise<R>;
  readonly #queues = new Map<string, { items: T[]; waiters: Waiter<R>[]; running: boolean }>();
  readonly #gather: boolean;

  /**
   * `gather: "turn"`: the first flush of an idle key waits for the end of the current turn
   * of the event loop (`setImmediate`), so the items added in that turn — the reactions of
   * one commit, started side by side — go out in one flush rather than the first alone and
   * the rest in a second (docs/installer.md: a batch's 50 results were two appends, each
   * waited for in turn). Costs at most the rest of the turn; default: at once.
   */
  constructor(flush: (key: string, items: T[]) => Promise<R>, options: { gather?: "turn" } = {}) {
    this.#flush = flush;
    this.#gather = options.gather === "turn";
  }

  /** Resolves with the outcome of the flush that carried `item`. */
  add(key: string, item: T): Promise<R> {
    let q = this.#queues.get(key);
    if (!q) {
      q = { items: [], waiters: [], running: false };
      this.#queues.set(key, q);
    }
    const done = new Promise<R>((resolve, reject) => q.waiters.push({ resolve, reject }));
    q.items.push(item);
    if (!q.running) void this.#run(key, q);
    return done;
  }

  async #run(key: string, q: { items: T[]; waiters: Waiter<R>[]; running: boolean }): Promise<void> {
    q.running = true;
    try {
      if (this.#gather) await new Promise<void>((resolve) => setImmediate(resolve));
      while (q.items.length > 0) {
        const items = q.items.splice(0);
        const waiters = q.waiters.splice(0);
        try {
          const r = await this.#flush(key, items);
          for (const w of waiters) w.resolve(r);
        } catch (err) {
          for (const w of waiters) w.reject(err);
        }
      }
    } finally {
      q.running = false;
      if (q.items.length === 0) this.#queues.delete(key);
    }
  }
}

interface Waiter<R> {
  resolve(r: R): void;
  reject(err: unknown): void;
}
