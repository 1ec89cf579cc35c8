/** Small helpers every benchmark shares: timing, rates, and the printed table. */

export interface Figure {
  name: string;
  value: number;
  unit: string;
  /** The raw limit measured in the same run, when the figure has one. */
  raw?: number;
  /** The ratio the issue asks for (value / raw), as a fraction. */
  goal?: number;
}

export async function timed<T>(f: () => Promise<T>): Promise<{ ms: number; result: T }> {
  const t0 = performance.now();
  const result = await f();
  return { ms: performance.now() - t0, result };
}

export const rate = (count: number, ms: number) => (count * 1000) / ms;

/** Runs `task(i)` for i in [0, n) with at most `limit` in flight. */
export async function bounded(
  n: number,
  limit: number,
  task: (i: number) => Promise<unknown>,
): Promise<void> {
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < n; i = next++) await task(i);
  };
  await Promise.all(Array.from({ length: Math.min(limit, n) }, worker));
}

export function printFigures(title: string, figures: Figure[]): void {
  const fmt = (n: number) => (n >= 100 ? Math.round(n).toLocaleString("en-US") : n.toFixed(2));
  console.log(`\n${title}`);
  for (const f of figures) {
    let line = `  ${f.name.padEnd(46)} ${fmt(f.value).padStart(12)} ${f.unit}`;
    if (f.raw !== undefined) {
      const ratio = f.value / f.raw;
      line += `   raw ${fmt(f.raw)} ${f.unit}   ratio ${(ratio * 100).toFixed(1)}%`;
      if (f.goal !== undefined)
        line +=
          ratio >= f.goal ? `   (goal ≥ ${f.goal * 100}%: met)` : `   (goal ≥ ${f.goal * 100}%: NOT met)`;
    }
    console.log(line);
  }
}
