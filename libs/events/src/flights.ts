/**
 * Loads in flight, one per key (single flight): a caller that finds one may join it instead
 * of starting its own — each user decides when a load in flight is fresh enough for it, from
 * the mark the load set out with or from its result. Used by `createLook` and the command
 * handler: the events of one commit are handled side by side, and 50 of them reading the same
 * aggregate at once made 50 loads of it.
 */
export class Flights<T, M = undefined> {
  readonly #inFlight = new Map<string, { readonly done: Promise<T>; readonly mark: M }>();

  /** The load in flight for `key`, and the mark it set out with. */
  get(key: string): { readonly done: Promise<T>; readonly mark: M } | undefined {
    return this.#inFlight.get(key);
  }

  /** Starts `load` as the flight of `key` (replacing any other as the one to join) until it settles. */
  async run(key: string, mark: M, load: () => Promise<T>): Promise<T> {
    const mine = { done: load(), mark };
    this.#inFlight.set(key, mine);
    try {
      return await mine.done;
    } finally {
      if (this.#inFlight.get(key) === mine) this.#inFlight.delete(key);
    }
  }
}
