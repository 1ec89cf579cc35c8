/**
 * How far V8 lets a service's heap grow past what survived its last full collection.
 *
 * V8 sets the next full collection's trigger at the live heap times a growing factor it
 * picks from its GC and mutator speeds: up to 4× for a small heap. The services' live heaps
 * are small (20–70 MB) and their garbage is mostly promoted (a 1 MB young generation,
 * `--max-semi-space-size=1`), so the old space grew to 2–5× the live heap before a full
 * collection, and the RSS kept the high-water mark: under traffic every service passed
 * 100 MB while its live heap stayed well below (docs/benchmarks.md, load). A fixed factor of
 * 1 + CAIRN_HEAP_GROWING_PERCENT/100 trades some more full collections (incremental and
 * concurrent in V8) for an old space near the live heap. Unlike `--max-old-space-size` it
 * is no limit: a heap whose live part grows just grows, it never runs out of memory because
 * of this.
 *
 * `--heap-growing-percent` is not allowed in NODE_OPTIONS, and a flag on every launcher's
 * command line (Dockerfile, `cairn up`, `npm run stack`, the harness) would drift; V8 reads
 * it at each full collection, so setting it at start-up, before the heap has grown, works.
 */
import { setFlagsFromString } from "node:v8";

/** The default: an old space about 1.2× what is live after a full collection. */
export const DEFAULT_HEAP_GROWING_PERCENT = 20;

/**
 * Sets V8's heap growing factor to 1 + percent/100 for this process; 0 leaves V8's own
 * heuristics. Call once, early.
 * @example applyHeapGrowing(config.CAIRN_HEAP_GROWING_PERCENT);
 */
export function applyHeapGrowing(percent: number): void {
  if (!Number.isInteger(percent) || percent < 0)
    throw new Error(`heap growing percent must be an integer ≥ 0, got ${percent}`);
  if (percent === 0) return;
  setFlagsFromString(`--heap-growing-percent=${percent}`);
}
