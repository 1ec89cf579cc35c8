/**
 * The delays of the whole runtime, written once: how long to back off after a failure,
 * and how soon to look again at work that is not done yet. Pure.
 */

/**
 * Exponential backoff with full jitter (AWS architecture blog): a random delay in
 * [0, min(cap, base·2^(n-1))] before the n-th retry of a failure.
 *
 * @example fullJitterBackoff(500, 30_000)(3) // somewhere in [0, 2000]
 */
export function fullJitterBackoff(baseMs = 500, capMs = 30_000, random: () => number = Math.random) {
  return (attempt: number) => Math.floor(random() * exponentialDelay(attempt, { baseMs, capMs }));
}

/**
 * min(cap, base·2^(n-1)): the n-th look at work that is still waiting (no jitter: a wait
 * is not contention, and a predictable poll keeps latency low).
 *
 * @example exponentialDelay(1, { baseMs: 200, capMs: 10_000 }) // 200
 * @example exponentialDelay(4, { baseMs: 200, capMs: 10_000 }) // 1600
 */
export function exponentialDelay(attempt: number, o: { baseMs: number; capMs: number }): number {
  return Math.min(o.capMs, o.baseMs * 2 ** Math.max(0, attempt - 1));
}

/**
 * When to look again at something started `elapsedMs` ago that cannot be done before
 * `firstMs` (an instance booting, an SSM step running): not before `firstMs`, then
 * every 5 % of the time waited, within [minMs, maxMs] — so the end is seen at most
 * ~5 % late and a long wait costs few looks.
 *
 * @example proportionalPollDelay(2_000, { firstMs: 10_000, minMs: 1_000, maxMs: 15_000 }) // 8000
 * @example proportionalPollDelay(100_000, { firstMs: 10_000, minMs: 1_000, maxMs: 15_000 }) // 5000
 */
export function proportionalPollDelay(
  elapsedMs: number,
  o: { firstMs: number; minMs: number; maxMs: number },
): number {
  if (elapsedMs < o.firstMs) return o.firstMs - elapsedMs;
  return Math.min(o.maxMs, Math.max(o.minMs, elapsedMs / 20));
}
