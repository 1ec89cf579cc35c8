/** A seeded PRNG (mulberry32): the same seed gives the same ids and choices. */
export class SimRandom {
  #state: number;

  constructor(seed = 1) {
    this.#state = seed >>> 0;
  }

  /** The generator's whole state: saved and put back by the journal (journal.ts). */
  get state(): number {
    return this.#state;
  }
  set state(s: number) {
    this.#state = s >>> 0;
  }

  /** A float in [0, 1). */
  next(): number {
    this.#state = (this.#state + 0x6d2b79f5) >>> 0;
    let t = this.#state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  int(min: number, maxInclusive: number): number {
    return min + Math.floor(this.next() * (maxInclusive - min + 1));
  }

  /** `n` lowercase hex digits, as AWS ids use (`i-` + 17 hex). */
  hex(n: number): string {
    let s = "";
    while (s.length < n) s += Math.floor(this.next() * 16).toString(16);
    return s;
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error("pick from nothing");
    return items[Math.floor(this.next() * items.length)]!;
  }

  /** A UUID-shaped id (for SSM command ids, Kubernetes uids). */
  uuid(): string {
    const h = this.hex(32);
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-a${h.slice(17, 20)}-${h.slice(20, 32)}`;
  }
}
